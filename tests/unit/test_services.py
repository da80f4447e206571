"""Swarm services without an engine: selection by labels, the check's verdicts, Swarm's verdict
turned into rows, and the update body (only the image changes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from watchkeeper.actions.check import Verdict
from watchkeeper.actions.services import (
    ServiceRun,
    WatchedService,
    apply_service_answer,
    classify_service,
    row_after_update,
    row_without_update,
    select_services,
    service_row,
    update_service,
)
from watchkeeper.actions.versions import apply_update_rules
from watchkeeper.notify.render import build_row
from watchkeeper.registry.auth import Credentials
from watchkeeper.registry.tags import Platform
from watchkeeper.report import Report, State
from watchkeeper.settings import load_settings
from watchkeeper.state import StateStore
from watchkeeper.swarm.services import (
    ServiceConflictError,
    SwarmServices,
    UpdateResult,
    replicas,
    spec_with_image,
)

OLD = "sha256:" + "a" * 64
NEW = "sha256:" + "b" * 64


def service(
    name: str, image: str = f"127.0.0.1:5000/app:1@{OLD}", mode: Any = None, **labels: str
) -> dict[str, Any]:
    """A service as ``GET /services`` shows it (what watchkeeper reads)."""
    return {
        "ID": f"id-{name}",
        "Version": {"Index": 7},
        "Spec": {
            "Name": name,
            "Labels": {k.replace("_", "."): v for k, v in labels.items()},
            "TaskTemplate": {"ContainerSpec": {"Image": image, "Env": ["A=1"]}},
            "Mode": mode or {"Replicated": {"Replicas": 2}},
            "UpdateConfig": {"Order": "start-first", "FailureAction": "rollback"},
        },
    }


def selected(services: list[dict[str, Any]], environ: dict[str, str], *names: str) -> list[str]:
    """Names of the services the selection watches under ``environ``."""
    watched, _ = select_services(services, load_settings(environ=environ), names)
    return [s["Spec"]["Name"] for s in watched]


def test_select_services_labels_follow_container_rules() -> None:
    """enable=false, LABEL_ENABLE and SCOPE read the service's own labels, as for containers."""
    found = [
        service("plain"),
        service("off", watchkeeper_enable="false"),
        service("on", com_centurylinklabs_watchtower_enable="true"),
        service("scoped", watchkeeper_enable="true", watchkeeper_scope="blue"),
    ]

    assert selected(found, {}) == ["plain", "on", "scoped"]
    assert selected(found, {"WATCHKEEPER_LABEL_ENABLE": "true"}) == ["on", "scoped"]
    assert selected(found, {"WATCHKEEPER_SCOPE": "blue"}) == ["scoped"]
    assert selected(found, {}, "on") == ["on"]


def test_select_services_disable_containers_names_them_disabled() -> None:
    """DISABLE_CONTAINERS applies to service names: reported, never watched."""
    watched, disabled = select_services(
        [service("web"), service("db")],
        load_settings(environ={"WATCHKEEPER_DISABLE_CONTAINERS": "db"}),
    )

    assert [s["Spec"]["Name"] for s in watched] == ["web"]
    assert [s["Spec"]["Name"] for s in disabled] == ["db"]


@pytest.mark.parametrize(
    ("image", "verdict", "digest"),
    [
        (f"127.0.0.1:5000/app:1@{OLD}", Verdict.FRESH, OLD),
        (f"127.0.0.1:5000/app@{OLD}", Verdict.PINNED, None),
        ("127.0.0.1:5000/app:1", Verdict.LOCAL_ONLY, None),
        ("127.0.0.1:5000/App:1", Verdict.ERROR, None),
    ],
)
def test_classify_service_spec_image_gives_verdict(
    image: str, verdict: Verdict, digest: str | None
) -> None:
    """Tag and digest: asked; digest alone: pinned; no digest: never updated; bad: error."""
    item = classify_service(service("web", image))

    assert (item.verdict, item.local_digest) == (verdict, digest)


def test_apply_service_answer_other_digest_stale_and_target_pinned() -> None:
    """A registry digest other than the spec's is stale, and the target pins repo:tag to it."""
    item = classify_service(service("web"))
    apply_service_answer(item, NEW)

    assert item.verdict is Verdict.STALE
    assert item.pinned_target == f"127.0.0.1:5000/app:1@{NEW}"
    assert item.reference is not None
    assert item.reference.digest is None


def stale_item() -> WatchedService:
    """A service whose spec pins OLD while the registry has NEW."""
    item = classify_service(service("web"))
    apply_service_answer(item, NEW)
    return item


@pytest.mark.parametrize(
    ("result", "state", "reason"),
    [
        (UpdateResult("completed", "update completed", f"127.0.0.1:5000/app:1@{NEW}", False),
         State.UPDATED, None),
        (UpdateResult("rollback_completed", "update rolled back due to failure of task x",
                      f"127.0.0.1:5000/app:1@{OLD}", True),
         State.ROLLED_BACK, "update rolled back due to failure of task x"),
        (UpdateResult("completed", "rolled back: task x", f"127.0.0.1:5000/app:1@{NEW}", True),
         State.ROLLED_BACK, "rolled back: task x"),
        (UpdateResult("completed", "update completed", f"127.0.0.1:5000/app:1@{OLD}", False),
         State.ROLLED_BACK, "update completed"),
        (UpdateResult("paused", "update paused due to failure", f"127.0.0.1:5000/app:1@{NEW}",
                      False),
         State.FAILED, "update paused due to failure"),
        (UpdateResult("timeout", None, f"127.0.0.1:5000/app:1@{NEW}", False),
         State.FAILED, "timeout"),
    ],
)  # fmt: skip
def test_row_after_update_swarm_verdict_gives_state(
    result: UpdateResult, state: State, reason: str | None
) -> None:
    """updated only on completed with the new digest and no rollback seen; Swarm's message kept."""
    row = row_after_update(stale_item(), result)

    assert (row.state, row.reason) == (state, reason)
    assert (row.kind, row.replicas) == ("service", 2)
    assert (row.old_digest, row.new_digest) == (OLD, NEW)


def test_spec_with_image_changes_only_the_image() -> None:
    """The update body is the service's own spec with the image replaced; the original is kept."""
    original = service("web")
    body = spec_with_image(original, f"127.0.0.1:5000/app:1@{NEW}")

    assert body["TaskTemplate"]["ContainerSpec"]["Image"] == f"127.0.0.1:5000/app:1@{NEW}"
    body["TaskTemplate"]["ContainerSpec"]["Image"] = original["Spec"]["TaskTemplate"][
        "ContainerSpec"
    ]["Image"]
    assert body == original["Spec"]


def test_replicas_replicated_number_global_word() -> None:
    """Replicated services give their desired count, global ones ``global``."""
    assert replicas(service("a")) == 2
    assert replicas(service("b", mode={"Global": {}})) == "global"


class StubApi:
    """docker-py's low-level client as the adapter uses it: inspects answer in turn."""

    def __init__(self, statuses: list[dict[str, str] | None], image: str) -> None:
        self.statuses = statuses
        self.image = image
        self.inspected = 0

    def tasks(self, filters: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {"ID": "t" * 25, "Status": {"State": "failed", "Err": "task: non-zero exit (1)",
                                        "Timestamp": "2026-12-02T21:00:02Z"}},
            {"ID": "o" * 25, "Status": {"State": "running", "Timestamp": "2026-12-02T21:00:03Z"}},
        ]  # fmt: skip

    def inspect_service(self, service_id: str) -> dict[str, Any]:
        status = self.statuses[min(self.inspected, len(self.statuses) - 1)]
        self.inspected += 1
        found = service(service_id, self.image)
        if status is not None:
            found["UpdateStatus"] = status
        return found


class StubEngine:
    """An engine as the adapter reads it: only its low-level client."""

    def __init__(self, api: StubApi) -> None:
        self.api_client = api


def wait(statuses: list[dict[str, str] | None], timeout_s: float = 60) -> UpdateResult:
    """Run the adapter's wait over ``statuses``, one per poll, on a clock that ticks 1 s a poll."""
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += 1

    adapter = SwarmServices(StubEngine(StubApi(statuses, f"r/app:1@{NEW}")))
    return adapter.wait_for_update("web", timeout_s=timeout_s, clock=lambda: now[0], sleep=sleep)


def test_wait_for_update_rollback_seen_then_completed_is_rolled_back() -> None:
    """A rollback seen once stays a rollback, with its reason, whatever Swarm says after."""
    result = wait(
        [
            None,
            {"State": "updating", "Message": "update in progress"},
            {"State": "rollback_started", "Message": "update rolled back due to failure of task t"},
            {"State": "completed", "Message": "update completed"},
        ]
    )

    assert (result.state, result.rolled_back) == ("completed", True)
    assert result.message == "update rolled back due to failure of task t"


def test_wait_for_update_no_final_state_times_out() -> None:
    """Swarm still updating at the deadline gives ``timeout`` with its last message."""
    result = wait([{"State": "updating", "Message": "update in progress"}], timeout_s=5)

    assert (result.state, result.message, result.rolled_back) == (
        "timeout",
        "update in progress",
        False,
    )


class FakeAdapter:
    """The service adapter of a manager whose service moved on once since it was read."""

    def __init__(self, result: UpdateResult, moved_to: str = f"127.0.0.1:5000/app:1@{OLD}") -> None:
        self.result = result
        self.moved_to = moved_to
        self.sent: list[tuple[int, str, dict[str, str] | None]] = []

    def update_image(self, found: dict[str, Any], image: str, auth: dict[str, str] | None) -> None:
        self.sent.append((found["Version"]["Index"], image, auth))
        if len(self.sent) == 1:
            raise ServiceConflictError("update out of sequence")

    def inspect_service(self, service_id: str) -> dict[str, Any]:
        moved = service("web", self.moved_to)
        moved["Version"] = {"Index": 8}
        return moved

    def wait_for_update(self, service_id: str, *, timeout_s: float) -> UpdateResult:
        return self.result


class FakeCredentials:
    """Credentials for the test registry only."""

    def lookup(self, registry: str) -> Credentials | None:
        return Credentials("me", "secret") if registry == "127.0.0.1:5000" else None


class FakeEngine:
    """An engine that answers ``docker info``."""

    host_label = "local"

    def info(self) -> dict[str, Any]:
        return {}

    def recent_info(self) -> dict[str, Any]:
        return self.info()


def run_for(tmp_path: Path, **environ: str) -> ServiceRun:
    """A ServiceRun over fakes, with a real state store under ``tmp_path``."""
    return ServiceRun(
        engine=FakeEngine(),
        registry=None,
        credentials=FakeCredentials(),
        settings=load_settings(environ=environ),
        state=StateStore(tmp_path),
    )


def test_update_service_conflict_read_again_sent_once_more_with_credentials(
    tmp_path: Path,
) -> None:
    """A version conflict is read again and sent once more, pinned, with the credentials."""
    done = UpdateResult("completed", "update completed", f"127.0.0.1:5000/app:1@{NEW}", False)
    adapter = FakeAdapter(done)

    row = update_service(run_for(tmp_path), adapter, stale_item())

    auth = {"username": "me", "password": "secret"}
    target = f"127.0.0.1:5000/app:1@{NEW}"
    assert adapter.sent == [(7, target, auth), (8, target, auth)]
    assert row.state is State.UPDATED


def test_update_service_rolled_back_digest_skipped_next_time(tmp_path: Path) -> None:
    """A digest Swarm rolled back is remembered: the same digest is skipped, never sent."""
    rolled = UpdateResult(
        "rollback_completed", "task t failed", f"127.0.0.1:5000/app:1@{OLD}", True
    )
    run = run_for(tmp_path)
    update_service(run, FakeAdapter(rolled), stale_item())
    again = FakeAdapter(rolled)

    row = update_service(run, again, stale_item())

    assert (row.state, again.sent) == (State.SKIPPED, [])
    assert NEW.removeprefix("sha256:")[:12] in (row.reason or "")


def test_update_service_monitor_only_label_available_nothing_sent(tmp_path: Path) -> None:
    """monitor-only on the service's label: ``available``, no update sent."""
    item = classify_service(service("web", **{"watchkeeper_monitor-only": "true"}))
    apply_service_answer(item, NEW)
    adapter = FakeAdapter(UpdateResult("completed", None, "", False))

    row = update_service(run_for(tmp_path), adapter, item)

    assert (row.state, adapter.sent) == (State.AVAILABLE, [])


def test_update_service_conflict_already_on_digest_not_sent_again(tmp_path: Path) -> None:
    """A service someone moved to the same digest meanwhile gets no second, no-op update."""
    target = f"127.0.0.1:5000/app:1@{NEW}"
    adapter = FakeAdapter(UpdateResult("completed", "update completed", target, False), target)

    row = update_service(run_for(tmp_path), adapter, stale_item())

    assert [image for _, image, _ in adapter.sent] == [target]
    assert row.state is State.UPDATED


def test_mail_row_names_service_and_replicas() -> None:
    """In the mail a service's row says it is a service, with its replicas."""
    item = stale_item()
    row = row_after_update(item, UpdateResult("completed", None, item.pinned_target, False))
    global_row = service_row(classify_service(service("agent", mode={"Global": {}})), State.FRESH)

    assert build_row(row).name == "web (service, 2 replicas)"
    assert build_row(global_row).name == "agent (service, global)"


def test_wait_for_update_quick_rollback_reason_from_failed_task() -> None:
    """A rollback whose start was not seen takes its reason from the newest failed task."""
    result = wait(
        [
            {"State": "updating", "Message": "update in progress"},
            {"State": "rollback_completed", "Message": "rollback completed"},
        ]
    )

    assert (result.state, result.rolled_back) == ("rollback_completed", True)
    assert result.message == "rollback completed; task tttttttttttt: task: non-zero exit (1)"


def test_update_service_tag_move_pins_new_tag_digest_with_stack_note(tmp_path: Path) -> None:
    """A tag policy's move sets ``repo:NEWTAG@digest``; the row has both tags and says that
    the stack file still names the old one."""
    item = classify_service(
        service("web", f"127.0.0.1:5000/app:1.2.3@{OLD}", com_docker_stack_namespace="demo")
    )
    item.verdict, item.new_tag, item.remote_digest = Verdict.STALE, "1.2.4", NEW
    target = f"127.0.0.1:5000/app:1.2.4@{NEW}"
    adapter = FakeAdapter(UpdateResult("completed", None, target, False))

    row = update_service(run_for(tmp_path), adapter, item)

    assert [image for _, image, _ in adapter.sent] == [target, target]
    assert (row.state, row.old_tag, row.new_tag) == (State.UPDATED, "1.2.3", "1.2.4")
    assert "the stack file still names 127.0.0.1:5000/app:1.2.3" in (row.reason or "")


def test_update_service_waiting_available_with_reason_nothing_sent(tmp_path: Path) -> None:
    """Outside its window (or too young) a stale service is ``available`` with the reason."""
    item = stale_item()
    item.waiting, item.wait_reason = "window", "outside update window (next 03:00 UTC)"
    adapter = FakeAdapter(UpdateResult("completed", None, "", False))

    row = update_service(run_for(tmp_path), adapter, item)

    assert (row.state, row.reason, adapter.sent) == (State.AVAILABLE, item.wait_reason, [])


def test_service_bad_rule_label_skipped_names_label_and_fails_run() -> None:
    """An invalid ``watchkeeper.tag-include`` on a service: ``skipped``, the error names the
    label, and the run counts it as a failure (exit 1); no registry is asked."""
    item = classify_service(service("web", **{"watchkeeper_tag-include": "1.(2"}))
    apply_service_answer(item, NEW)
    apply_update_rules([item], None, load_settings(environ={}), kind="service")  # type: ignore

    row = row_without_update(item)
    report = Report(containers=[row])

    assert (row.state, row.label_error) == (State.SKIPPED, True)
    assert (row.error or "").startswith("label watchkeeper.tag-include: ")
    assert report.has_failures
    assert report.has_changes


def test_service_platform_first_of_placement_else_amd64() -> None:
    """A service's new image is dated for the first platform its placement lists."""
    arm = service("web")
    arm["Spec"]["TaskTemplate"]["Placement"] = {
        "Platforms": [{"Architecture": "arm64", "OS": "linux"}, {"Architecture": "amd64"}]
    }

    assert classify_service(arm).platform == Platform("linux", "arm64")
    assert classify_service(service("web")).platform == Platform("linux", "amd64")
