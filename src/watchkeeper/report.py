"""The report of one run, shared by the CLI, the API, notifications and logs (README, "The report").

A run produces one ``Report`` holding one ``ContainerOutcome`` per watched container and one
``EngineOutcome`` per engine; the counts are derived from them so they can never disagree.
An engine that failed during the run has no container rows to show it, so its entry in
``engines`` is where the failure is reported, and ``counts.engine_errors`` where it is counted:
without them a run whose engine failed would look like a run with nothing to do.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


class State(StrEnum):
    """What happened to one container in a run."""

    FRESH = "fresh"
    UPDATED = "updated"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    SKIPPED = "skipped"
    AVAILABLE = "available"


@dataclass
class ContainerOutcome:
    """The result for one container: its state and the images and digests involved."""

    name: str
    image: str
    state: State
    old_image_id: str | None = None
    new_image_id: str | None = None
    old_digest: str | None = None
    new_digest: str | None = None
    duration_s: float = 0.0
    error: str | None = None
    # Why it was skipped, failed or rolled back, in words; ``log_tail``: the failed container's
    # last log lines (rolled back).
    reason: str | None = None
    host: str | None = None
    log_tail: list[str] = field(default_factory=list)
    # ``service`` for a Swarm service (README, "Swarm"), with its desired ``replicas``
    # (a number, or ``global``).
    kind: str = "container"
    replicas: int | str | None = None
    # A tag policy's move (README, "Versions, maturity and windows"): from the tag the container
    # was created from to the one it moves to (or would move to, while it waits); else None.
    old_tag: str | None = None
    new_tag: str | None = None
    # A ``skipped`` row whose label of the update rules cannot be read (its ``error`` names the
    # label): only a person can fix it, so it fails the run as a failed update does. Not a key
    # of the JSON: ``state`` and ``error`` say it there.
    label_error: bool = False

    @property
    def needs_attention(self) -> bool:
        """Failed, rolled back, or skipped for a label that a person must fix."""
        return self.state in (State.FAILED, State.ROLLED_BACK) or self.label_error

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape described in the README, "The report"."""
        return {
            "name": self.name,
            "image": self.image,
            "state": str(self.state),
            "old_image_id": self.old_image_id,
            "new_image_id": self.new_image_id,
            "old_digest": self.old_digest,
            "new_digest": self.new_digest,
            "duration_s": round(self.duration_s, 3),
            "error": self.error,
            "reason": self.reason,
            "host": self.host,
            "log_tail": list(self.log_tail),
            "kind": self.kind,
            "replicas": self.replicas,
            "old_tag": self.old_tag,
            "new_tag": self.new_tag,
        }


class EngineState(StrEnum):
    """Whether an engine's containers could be listed and checked in a run."""

    OK = "ok"
    ERROR = "error"


@dataclass
class EngineOutcome:
    """One engine of a run: ``error`` says why its containers could not be handled."""

    name: str
    state: EngineState = EngineState.OK
    error: str | None = None
    api_version: str | None = None
    # Where it was reached (never with credentials) and its release, when it answered.
    url: str | None = None
    version: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of one entry of the report's ``engines``."""
        return {
            "name": self.name,
            "url": self.url,
            "state": str(self.state),
            "error": self.error,
            "version": self.version,
            "api_version": self.api_version,
        }


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Report:
    """Everything one run did; ``finish`` stamps the end time."""

    host: str = field(default_factory=socket.gethostname)
    started_at: datetime = field(default_factory=_now)
    finished_at: datetime | None = None
    containers: list[ContainerOutcome] = field(default_factory=list)
    engines: list[EngineOutcome] = field(default_factory=list)

    def add(self, outcome: ContainerOutcome) -> None:
        """Record one container's outcome."""
        self.containers.append(outcome)

    def add_engine(self, outcome: EngineOutcome) -> None:
        """Record how one engine fared."""
        self.engines.append(outcome)

    @property
    def engine_errors(self) -> list[EngineOutcome]:
        """The engines whose containers could not be listed or checked."""
        return [e for e in self.engines if e.state is EngineState.ERROR]

    def finish(self) -> Report:
        """Stamp the end of the run and return self."""
        self.finished_at = _now()
        return self

    @property
    def duration_s(self) -> float:
        """Seconds between start and finish (0 while unfinished)."""
        if self.finished_at is None:
            return 0.0
        return (self.finished_at - self.started_at).total_seconds()

    def counts(self) -> dict[str, int]:
        """Containers scanned and per state, with every state present, and engines in error."""
        result = {"scanned": len(self.containers)}
        for state in State:
            result[str(state)] = sum(1 for c in self.containers if c.state is state)
        result["engine_errors"] = len(self.engine_errors)
        return result

    @property
    def has_failures(self) -> bool:
        """True when an update failed or was rolled back, a row was skipped for an invalid label,
        or an engine failed: ``run --once`` then exits 1, NOTIFY_ON=failures sends, the
        last-success time stays."""
        failed = any(c.needs_attention for c in self.containers)
        return failed or bool(self.engine_errors)

    @property
    def has_changes(self) -> bool:
        """True when something worth telling happened (NOTIFY_ON=changes)."""
        return bool(self.engine_errors) or any(
            c.state in (State.UPDATED, State.AVAILABLE) or c.needs_attention
            for c in self.containers
        )

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON shape described in the README, "The report"."""
        return {
            "host": self.host,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "duration_s": round(self.duration_s, 3),
            "counts": self.counts(),
            "containers": [c.to_dict() for c in self.containers],
            "engines": [e.to_dict() for e in self.engines],
        }
