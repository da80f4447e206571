"""No noise: each new digest in monitor-only and each rolled-back digest is announced once."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.errors import ConfigError
from watchkeeper.notify.announced import Announcements, announcement_key
from watchkeeper.report import ContainerOutcome, Report, State
from watchkeeper.state import StateStore

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
D3 = "sha256:" + "3" * 64


def report_of(*outcomes: ContainerOutcome) -> Report:
    report = Report(host="web-1")
    for outcome in outcomes:
        report.add(outcome)
    return report.finish()


def available(name: str = "api", digest: str = D2) -> ContainerOutcome:
    return ContainerOutcome(
        name, "acme/api:1", State.AVAILABLE, old_digest=D1, new_digest=digest, host="local"
    )


def rolled_back(name: str = "web", digest: str = D2) -> ContainerOutcome:
    return ContainerOutcome(
        name,
        "acme/web:1",
        State.ROLLED_BACK,
        old_digest=D1,
        new_digest=digest,
        error="not healthy",
        host="local",
    )


def updated(name: str = "db") -> ContainerOutcome:
    return ContainerOutcome(
        name, "acme/db:1", State.UPDATED, old_digest=D1, new_digest=D2, host="local"
    )


def fresh(name: str = "cache") -> ContainerOutcome:
    return ContainerOutcome(name, "acme/cache:1", State.FRESH, old_digest=D1, host="local")


@pytest.fixture
def store(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path)


def deliver(announcements: Announcements, report: Report, notify_on: str = "changes") -> bool:
    """Select, and confirm as if a channel delivered; True when something was to be sent."""
    selection = announcements.select(report, notify_on)
    if selection.report is None:
        return False
    announcements.confirm(selection.keys)
    return True


def test_select_same_available_digest_three_runs_sends_once(store: StateStore) -> None:
    """Monitor-only: the same new digest in three runs gives one summary, not three."""
    announcements = Announcements(store)
    sent = [deliver(announcements, report_of(available(), fresh())) for _ in range(3)]
    assert sent == [True, False, False]


def test_select_next_digest_after_announced_one_sends_again(store: StateStore) -> None:
    """A newer digest for the same container is news again."""
    announcements = Announcements(store)
    assert deliver(announcements, report_of(available(digest=D2)))
    assert not deliver(announcements, report_of(available(digest=D2)))
    assert deliver(announcements, report_of(available(digest=D3)))


def test_select_rolled_back_digest_is_announced_once(store: StateStore) -> None:
    """A digest that was rolled back is reported once, however many runs report it."""
    announcements = Announcements(store)
    assert deliver(announcements, report_of(rolled_back()))
    assert not deliver(announcements, report_of(rolled_back()))


def test_select_updates_are_always_news(store: StateStore) -> None:
    """Updated rows are never silenced: each update is a different event."""
    announcements = Announcements(store)
    assert deliver(announcements, report_of(updated()))
    assert deliver(announcements, report_of(updated()))


def test_select_old_news_beside_new_news_keeps_every_row(store: StateStore) -> None:
    """A run with news sends the whole report, already-announced rows included."""
    announcements = Announcements(store)
    assert deliver(announcements, report_of(available("api")))
    report = report_of(available("api"), available("worker"), fresh())
    selection = announcements.select(report, "changes")
    assert selection.report is report
    assert list(selection.keys) == ["local|worker|available"]


def test_select_memory_survives_a_restart(tmp_path: Path) -> None:
    """The announced digests are kept in the state store, so a restart does not repeat them."""
    assert deliver(Announcements(StateStore(tmp_path)), report_of(available()))
    assert not deliver(Announcements(StateStore(tmp_path)), report_of(available()))
    assert StateStore(tmp_path).get("notified", "local|api|available") == D2


def test_select_undelivered_summary_is_news_again(store: StateStore) -> None:
    """When no channel delivered, the keys are released: the next run tries again."""
    announcements = Announcements(store)
    selection = announcements.select(report_of(available()), "changes")
    assert selection.report is not None
    announcements.release(selection.keys)
    assert announcements.select(report_of(available()), "changes").report is not None
    assert store.get("notified", "local|api|available") is None


def test_select_while_previous_send_pending_does_not_repeat(store: StateStore) -> None:
    """A run that starts while the last summary is still being sent does not announce twice."""
    announcements = Announcements(store)
    first = announcements.select(report_of(available()), "changes")
    assert first.report is not None
    assert announcements.select(report_of(available()), "changes").report is None


@pytest.mark.parametrize(
    ("notify_on", "outcome", "expected"),
    [
        ("changes", fresh(), False),
        ("changes", available(), True),
        ("failures", available(), False),
        ("failures", rolled_back(), True),
        ("failures", updated(), False),
        ("always", fresh(), True),
        ("never", rolled_back(), False),
    ],
)
def test_select_follows_notify_on(
    store: StateStore, notify_on: str, outcome: ContainerOutcome, expected: bool
) -> None:
    """NOTIFY_ON decides on the news: changes, failures, always, never."""
    selection = Announcements(store).select(report_of(outcome), notify_on)
    assert (selection.report is not None) is expected


def test_select_always_sends_every_run_even_old_news(store: StateStore) -> None:
    """With ``always`` the user asked for every run: old news does not silence it."""
    announcements = Announcements(store)
    assert deliver(announcements, report_of(available()), "always")
    assert deliver(announcements, report_of(available()), "always")


def test_select_unknown_notify_on_raises_config_error(store: StateStore) -> None:
    """A NOTIFY_ON value that is not known is a configuration error, not silence."""
    with pytest.raises(ConfigError, match="NOTIFY_ON"):
        Announcements(store).select(report_of(available()), "sometimes")


def test_announcement_key_names_engine_container_and_state() -> None:
    """Keys are ``<engine>|<container>|<state>``, the report's host when the row has none."""
    assert announcement_key(available(), "web-1") == "local|api|available"
    row = ContainerOutcome("/api", "a:1", State.ROLLED_BACK)
    assert announcement_key(row, "web-1") == "web-1|api|rolled_back"


def test_select_without_store_still_filters_within_the_process() -> None:
    """Without a state store (read-only disk), pending keys still stop an immediate repeat."""
    announcements = Announcements(None)
    first = announcements.select(report_of(available()), "changes")
    assert first.report is not None
    assert announcements.select(report_of(available()), "changes").report is None


def test_select_tag_move_announced_once_per_tag(store: StateStore) -> None:
    """Monitor-only on a tag policy: a newer tag is announced once, whatever its digest does;
    the next tag is news again."""
    announcements = Announcements(store)

    def moving(tag: str, digest: str) -> ContainerOutcome:
        return ContainerOutcome(
            "api", "acme/api:1.2.3", State.AVAILABLE, new_digest=digest, old_tag="1.2.3",
            new_tag=tag, host="local",
        )  # fmt: skip

    assert deliver(announcements, report_of(moving("1.2.4", D2)))
    assert not deliver(announcements, report_of(moving("1.2.4", D3)))
    assert deliver(announcements, report_of(moving("1.2.5", D3)))
