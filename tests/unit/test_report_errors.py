"""Errors of a run that are no container's update: engines in error, failed-digest memory.

The report keeps its JSON shape and adds ``engines`` and ``counts.engine_errors``; an engine in
error makes the run a failure for ``run --once``, ``NOTIFY_ON`` and the subject line. A failed
digest is remembered only while the engine answers (an engine gone says nothing of the image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from watchkeeper.actions.check import Verdict, Watched
from watchkeeper.actions.outcomes import (
    Target,
    UpdateContext,
    failed_before,
    forget_failed_digest,
    outcome_for,
    remember_failed_digest,
)
from watchkeeper.errors import EngineError
from watchkeeper.notify.announced import Announcements
from watchkeeper.notify.render import render_report, render_subject
from watchkeeper.registry.auth import CredentialStore
from watchkeeper.report import ContainerOutcome, EngineOutcome, EngineState, Report, State
from watchkeeper.settings import Settings
from watchkeeper.state import StateStore

DIGEST = "sha256:" + "a" * 64


class StubEngine:
    """The two things the failed-digest memory asks of an engine: its name and ``info``."""

    host_label = "edge-1"

    def __init__(self, *, answers: bool = True) -> None:
        self.answers = answers

    def info(self) -> dict[str, Any]:
        if not self.answers:
            raise EngineError("info: connection refused")
        return {"Name": "edge-1"}


def engine_failed_report() -> Report:
    """A finished report: one fresh container, one engine in error, one fine."""
    report = Report(host="h")
    report.add(ContainerOutcome(name="web", image="web:1", state=State.FRESH))
    report.add_engine(EngineOutcome("edge-1", EngineState.ERROR, "list containers: refused"))
    report.add_engine(EngineOutcome("local", api_version="1.41"))
    return report.finish()


def test_report_engine_error_counted_and_listed_old_keys_kept() -> None:
    """``engines`` and ``counts.engine_errors`` are added; every earlier key is still there."""
    data = engine_failed_report().to_dict()
    assert {"host", "started_at", "finished_at", "duration_s", "counts", "containers"} <= set(data)
    assert data["counts"]["engine_errors"] == 1
    assert data["counts"]["fresh"] == 1
    assert data["engines"] == [
        {"name": "edge-1", "url": None, "state": "error", "error": "list containers: refused",
         "version": None, "api_version": None},
        {"name": "local", "url": None, "state": "ok", "error": None, "version": None,
         "api_version": "1.41"},
    ]  # fmt: skip


def test_report_engine_error_is_failure_and_change() -> None:
    """An engine in error fails the run (exit 1) and is news under changes and failures."""
    report = engine_failed_report()
    assert report.has_failures
    assert report.has_changes
    for notify_on in ("changes", "failures"):
        assert Announcements(None).select(report, notify_on).report is report


def test_render_engine_error_in_subject_and_bodies() -> None:
    """The subject counts the engine in error; both bodies name it with its error."""
    report = engine_failed_report()
    assert render_subject(report).endswith("1 engine unreachable")
    message = render_report(report)
    for body in (message.text, message.html or ""):
        assert "edge-1" in body
        assert "list containers: refused" in body


def watched_item() -> Watched:
    """A stale container of ``web:1``."""
    container = {"Id": "c1", "Name": "/web", "Image": "sha256:old", "Config": {"Image": "web:1"}}
    return Watched(container, None, None, Verdict.STALE, remote_digest=DIGEST)


def context(tmp_path: Path, engine: StubEngine) -> UpdateContext:
    """An update context on ``engine`` with a state store in ``tmp_path``."""
    return UpdateContext(
        engine=engine,  # type: ignore[arg-type]
        credentials=CredentialStore(),
        settings=Settings(),
        state=StateStore(tmp_path),
    )


def test_remember_failed_digest_engine_answers_remembered_then_forgotten(tmp_path: Path) -> None:
    """A failure while the engine answers is remembered; an update forgets it."""
    ctx = context(tmp_path, StubEngine())
    item = watched_item()
    remember_failed_digest(ctx, Target(item, {"Id": "sha256:new"}))
    assert failed_before(ctx, item, DIGEST)
    assert not failed_before(ctx, item, "sha256:" + "b" * 64)
    forget_failed_digest(ctx, item)
    assert not failed_before(ctx, item, DIGEST)


def test_remember_failed_digest_engine_gone_not_remembered(tmp_path: Path) -> None:
    """A failure while the engine does not answer says nothing of the image: retried."""
    ctx = context(tmp_path, StubEngine(answers=False))
    item = watched_item()
    remember_failed_digest(ctx, Target(item, {"Id": "sha256:new"}))
    assert not failed_before(ctx, item, DIGEST)


def test_outcome_for_with_new_image_fills_its_id() -> None:
    """One builder: the check's fields, and the new image's ID when there is one."""
    row = outcome_for(watched_item(), State.FAILED, new_image={"Id": "sha256:new"}, error="x")
    assert (row.name, row.image, row.old_image_id) == ("web", "web:1", "sha256:old")
    assert (row.new_image_id, row.new_digest, row.error) == ("sha256:new", DIGEST, "x")
