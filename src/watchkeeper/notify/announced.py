"""No noise: what a run's summary must not repeat, and when a summary is worth sending at all.

In monitor-only a container whose registry has a new digest is ``available`` in every run until
someone updates it; a digest that failed and was rolled back may be reported again by later runs.
Telling the same thing every five minutes teaches people to ignore the mail, so each such
(container, state, digest) is announced once. The memory is the state store's ``notified``
section (it survives restarts), keyed ``<engine>|<container>|<state>`` -> the new digest; a new
digest for the same container is news again. A move to another tag (a tag policy) is announced
once per tag: the value is then ``tag:<new tag>``.

A key is written only once a channel delivered the summary (a failed send must not silence the
news for good); between the decision and the delivery it is "pending" in memory, so that a run
that starts while the previous summary is still being sent does not announce it a second time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from watchkeeper.notify.base import should_notify
from watchkeeper.report import ContainerOutcome, Report, State
from watchkeeper.state import StateStore

SECTION = "notified"
ANNOUNCED_ONCE = (State.AVAILABLE, State.ROLLED_BACK)


def announcement_key(outcome: ContainerOutcome, default_host: str) -> str:
    """``<engine>|<container>|<state>``: one memory slot per container and state."""
    return f"{outcome.host or default_host}|{outcome.name.lstrip('/')}|{outcome.state}"


def announced_value(outcome: ContainerOutcome) -> str | None:
    """What is announced once: the new tag of a tag move, else the new digest."""
    return f"tag:{outcome.new_tag}" if outcome.new_tag else outcome.new_digest


@dataclass(frozen=True)
class Selection:
    """What to send for one run: the report to render (None: send nothing) and its new keys."""

    report: Report | None
    keys: dict[str, str] = field(default_factory=dict)


class Announcements:
    """Decides what of a report is news, and remembers what was delivered."""

    def __init__(self, store: StateStore | None) -> None:
        self.store = store
        self._pending: dict[str, str] = {}
        self._lock = threading.Lock()

    def already_announced(self, key: str, digest: str) -> bool:
        """True when ``digest`` was delivered, or is being delivered, under ``key``."""
        with self._lock:
            if self._pending.get(key) == digest:
                return True
        return self.store is not None and self.store.get(SECTION, key) == digest

    def select(self, report: Report, notify_on: str) -> Selection:
        """The summary to send for ``report`` under ``NOTIFY_ON``, or none when it is old news.

        The decision ignores the rows already announced, so a run whose only news is old news
        sends nothing; a run that does send shows every row (the counts stay true, and the
        containers still waiting are worth seeing next to the new one). The new keys returned
        are reserved as pending until ``confirm`` or ``release``.
        """
        fresh_keys: dict[str, str] = {}
        news: list[ContainerOutcome] = []
        for outcome in report.containers:
            key = announcement_key(outcome, report.host)
            news_of = announced_value(outcome)
            if outcome.state in ANNOUNCED_ONCE and news_of:
                if self.already_announced(key, news_of):
                    continue
                fresh_keys[key] = news_of
            news.append(outcome)
        if not should_notify(_copy_with(report, news), notify_on):
            return Selection(None)
        with self._lock:
            self._pending.update(fresh_keys)
        return Selection(report, fresh_keys)

    def confirm(self, keys: dict[str, str]) -> None:
        """A channel delivered the summary: remember its keys for good."""
        for key, digest in keys.items():
            if self.store is not None:
                self.store.put(SECTION, key, digest)
        self.release(keys)

    def release(self, keys: Iterable[str]) -> None:
        """Forget the pending keys (after ``confirm``, or when no channel delivered)."""
        with self._lock:
            for key in keys:
                self._pending.pop(key, None)


def _copy_with(report: Report, containers: list[ContainerOutcome]) -> Report:
    """A copy of ``report`` holding only ``containers`` (and every engine: an engine in error
    is news at every run, like a failed container), to decide on the news alone."""
    return Report(
        host=report.host,
        started_at=report.started_at,
        finished_at=report.finished_at,
        containers=list(containers),
        engines=list(report.engines),
    )
