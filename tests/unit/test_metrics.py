"""Prometheus metrics: what a run, a crash and a notification add, per daemon registry."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from watchkeeper.metrics import Metrics, NoMetrics
from watchkeeper.report import ContainerOutcome, EngineOutcome, EngineState, Report, State


class FakeRegistryClient:
    """Only the counters the metrics read from the registry client."""

    requests_by_registry = {"127.0.0.1:5000": 3, "ghcr.io": 1}
    errors_by_registry = {"ghcr.io": 1}


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    """The value of one sample in the rendered exposition text, None when absent."""
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return None


def report_of(*states: State) -> Report:
    """A finished report of the engine ``local`` with one container per state."""
    report = Report(host="h")
    report.add_engine(EngineOutcome("local"))
    for i, state in enumerate(states):
        report.add(ContainerOutcome(name=f"c{i}", image="img:1", state=state, host="local"))
    return report.finish()


def test_metrics_record_run_counts_trigger_outcome_and_states() -> None:
    """A run with an update and a rollback counts as a failure, by trigger, with its states."""
    metrics = Metrics()
    metrics.record_run("api", report_of(State.UPDATED, State.ROLLED_BACK, State.FRESH))
    assert value(metrics, "watchkeeper_runs_total", trigger="api", outcome="failure") == 1
    assert value(metrics, "watchkeeper_containers", engine="local", state="updated") == 1
    assert value(metrics, "watchkeeper_containers", engine="local", state="rolled_back") == 1
    assert value(metrics, "watchkeeper_containers", engine="local", state="failed") == 0
    assert value(metrics, "watchkeeper_rollbacks_total", engine="local") == 1
    assert value(metrics, "watchkeeper_run_duration_seconds_count") == 1
    assert value(metrics, "watchkeeper_last_success_timestamp_seconds") == 0


def test_metrics_containers_gauge_shows_last_run_counter_accumulates() -> None:
    """The state gauge is the last run's; the outcome counter adds every run."""
    metrics = Metrics()
    metrics.record_run("schedule", report_of(State.UPDATED, State.UPDATED))
    metrics.record_run("schedule", report_of(State.FRESH, State.FRESH))
    assert value(metrics, "watchkeeper_containers", engine="local", state="updated") == 0
    assert value(metrics, "watchkeeper_containers", engine="local", state="fresh") == 2
    assert (
        value(metrics, "watchkeeper_container_outcomes_total", engine="local", state="updated") == 2
    )
    assert value(metrics, "watchkeeper_runs_total", trigger="schedule", outcome="success") == 2
    success = value(metrics, "watchkeeper_last_success_timestamp_seconds")
    assert (success or 0) > 0


def test_metrics_crash_counts_error_outcome() -> None:
    """A run that raised counts with outcome "error" and no success time."""
    metrics = Metrics()
    metrics.record_crash("start", 0.5)
    assert value(metrics, "watchkeeper_runs_total", trigger="start", outcome="error") == 1
    assert value(metrics, "watchkeeper_last_success_timestamp_seconds") == 0


def test_metrics_notifications_counted_by_channel_and_result() -> None:
    """Each channel's delivery is counted as sent or failed."""
    metrics = Metrics()
    metrics.record_notification("sendgrid", True)
    metrics.record_notification("sendgrid", True)
    metrics.record_notification("smtp", False)
    assert value(metrics, "watchkeeper_notifications_sent_total", channel="sendgrid") == 2
    assert value(metrics, "watchkeeper_notifications_failed_total", channel="smtp") == 1
    assert value(metrics, "watchkeeper_notifications_failed_total", channel="sendgrid") is None


def test_metrics_registry_counters_read_from_client_at_scrape() -> None:
    """Registry requests and errors are the registry client's own counters."""
    client = FakeRegistryClient()
    metrics = Metrics(client)  # type: ignore[arg-type]
    registry = "127.0.0.1:5000"
    assert value(metrics, "watchkeeper_registry_requests_total", registry=registry) == 3
    assert value(metrics, "watchkeeper_registry_errors_total", registry="ghcr.io") == 1
    client.requests_by_registry = {registry: 7}
    assert value(metrics, "watchkeeper_registry_requests_total", registry=registry) == 7


def test_metrics_two_daemons_do_not_share_counters() -> None:
    """Each Metrics has its own registry: one daemon's runs never show in another's."""
    first, second = Metrics(), Metrics()
    first.record_run("api", report_of(State.FRESH))
    assert value(first, "watchkeeper_runs_total", trigger="api", outcome="success") == 1
    assert value(second, "watchkeeper_runs_total", trigger="api", outcome="success") is None


def test_metrics_queue_state_read_at_scrape() -> None:
    """Run in progress and queue length come from the queue when scraped."""
    metrics = Metrics()
    state = {"running": True, "pending": 2}
    metrics.watch_queue(lambda: bool(state["running"]), lambda: int(state["pending"]))
    assert value(metrics, "watchkeeper_run_in_progress") == 1
    assert value(metrics, "watchkeeper_runs_queued") == 2
    state.update(running=False, pending=0)
    assert value(metrics, "watchkeeper_run_in_progress") == 0


def test_metrics_engine_error_counts_failure_keeps_last_success() -> None:
    """A run whose engine failed is a failure: the last-success time does not move."""
    metrics = Metrics()
    report = report_of(State.FRESH)
    report.add_engine(EngineOutcome("edge-1", EngineState.ERROR, "list containers: refused"))
    metrics.record_run("schedule", report)
    assert value(metrics, "watchkeeper_runs_total", trigger="schedule", outcome="failure") == 1
    assert value(metrics, "watchkeeper_last_success_timestamp_seconds") == 0
    assert value(metrics, "watchkeeper_engine_up", engine="edge-1") == 0
    assert value(metrics, "watchkeeper_engine_up", engine="local") == 1


def test_no_metrics_takes_every_record_and_renders_nothing() -> None:
    """NoMetrics (``run --once``, a daemon whose API serves no metrics) takes what a Runner and a
    Daemon give it and holds nothing."""
    metrics = NoMetrics()

    metrics.watch_queue(lambda: True, lambda: 1)
    metrics.record_run("once", report_of(State.UPDATED, State.ROLLED_BACK))
    metrics.record_crash("once", 1.5)
    metrics.record_notification("sendgrid", delivered=False)

    assert metrics.render() == b""
    assert vars(metrics) == {}
