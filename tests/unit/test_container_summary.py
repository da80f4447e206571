"""The container list read as partial inspects, on recorded and derived ``GET /containers/json``.

``data/summaries-api1.41.json`` and ``-api1.45.json`` were recorded on Engine 20.10 and 26.1
(``data/record_summaries.py``), ``-api1.48.json`` and ``-api1.52.json`` derived from the 26.1
recording for Docker 28 and 29 (``data/derive_summaries.py``). Each holds, beside the list, the
inspect of every container listed: a view must say what that inspect says, or ask for it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.actions.check import Verdict, Watched, classify_local
from watchkeeper.actions.outcomes import UpdateContext
from watchkeeper.actions.recover import swap_containers
from watchkeeper.actions.select import select_containers
from watchkeeper.actions.update import update_stale
from watchkeeper.containers.moves import (
    ASIDE_MARKER,
    DONE_MARKER,
    FAILED_MARKER,
    HELD_MARKER,
    MARK_PART,
    NEXT_MARKER,
    read_mark,
)
from watchkeeper.containers.recovery import swap_related
from watchkeeper.containers.summary import is_view, needs_inspect, plain_name, summary_view
from watchkeeper.registry.reference import parse_reference
from watchkeeper.settings import load_settings
from watchkeeper.state import StateStore

DATA = Path(__file__).parent / "data"
VERSIONS = ("1.41", "1.45", "1.48", "1.52")
# The scenarios whose list entry shows the image ID where the reference belongs.
NEED_INSPECT = {"tag-moved", "from-full-id"}


def recorded(version: str) -> dict[str, Any]:
    return dict(json.loads((DATA / f"summaries-api{version}.json").read_text()))


def scenario_of(record: dict[str, Any]) -> dict[str, str]:
    """Container ID -> scenario name."""
    return {cid: name for name, cid in record["scenarios"].items()}


@pytest.mark.parametrize("version", VERSIONS)
def test_summary_view_says_what_the_inspect_says(version: str) -> None:
    """Name (not a link alias), image ID, labels, state flags and network mode match the
    inspect; the configured reference too, except where the list shows the image ID."""
    record = recorded(version)
    names = scenario_of(record)
    assert len(record["summaries"]) == 12
    for summary in record["summaries"]:
        inspect = record["inspects"][summary["Id"]]
        view = summary_view(summary)
        assert view is not None
        assert is_view(view)
        assert view["Id"] == inspect["Id"]
        assert view["Name"] == inspect["Name"]
        assert view["Image"] == inspect["Image"]
        assert view["Config"]["Labels"] == inspect["Config"]["Labels"]
        assert view["State"] == inspect["State"], names[summary["Id"]]
        assert view["HostConfig"]["NetworkMode"] == inspect["HostConfig"]["NetworkMode"]
        assert needs_inspect(view) is (names[summary["Id"]] in NEED_INSPECT)
        if not needs_inspect(view):
            assert view["Config"]["Image"] == inspect["Config"]["Image"]


@pytest.mark.parametrize("version", VERSIONS)
def test_summary_view_selects_as_the_inspect_does(version: str) -> None:
    """Selection (names, state, labels, marks) gives the same containers from the views as
    from the inspects, stopped ones included or not."""
    record = recorded(version)
    views = [summary_view(s) for s in record["summaries"]]
    inspects = [record["inspects"][s["Id"]] for s in record["summaries"]]
    for environ in ({}, {"WATCHKEEPER_INCLUDE_STOPPED": "true"}, {"WATCHKEEPER_LABEL_ENABLE": "1"}):
        settings = load_settings(environ=environ)
        from_views, _ = select_containers([v for v in views if v is not None], settings)
        from_inspects, _ = select_containers(inspects, settings)
        assert [c["Id"] for c in from_views] == [c["Id"] for c in from_inspects]
    settings = load_settings(environ={})
    watched, _ = select_containers([v for v in views if v is not None], settings)
    names = {scenario_of(record)[c["Id"]] for c in watched}
    assert not names & {"marked", "exited", "created", "paused"}
    assert {"plain", "linked", "netns", "tag-moved"} <= names


class ImageEngine:
    """What ``classify_local`` asks an engine: an image by ID, the API version."""

    api_version = "1.45"

    def inspect_image(self, ref: str) -> dict[str, Any]:
        return {"Id": ref, "RepoDigests": [f"registry.example.test/app@sha256:{'c' * 64}"]}


@pytest.mark.parametrize("version", VERSIONS)
def test_summary_view_gets_the_verdict_the_inspect_gets(version: str) -> None:
    """Pinned (a short image ID), fresh-to-check (a tag): the same from the view as from the
    inspect, for every container whose reference the list showed."""
    record = recorded(version)
    engine: Any = ImageEngine()
    for summary in record["summaries"]:
        view = summary_view(summary)
        assert view is not None
        if needs_inspect(view):
            continue
        inspect = record["inspects"][summary["Id"]]
        from_view = classify_local(view, engine)
        from_inspect = classify_local(inspect, engine)
        assert (from_view.verdict, from_view.reference) == (
            from_inspect.verdict,
            from_inspect.reference,
        )


def test_summary_view_fields_omitted_when_empty() -> None:
    """``Labels: null`` is no labels; no ``HostConfig.NetworkMode`` (omitted when empty) is no
    mode; ``Health``, ``ImageManifestDescriptor`` and ``Annotations`` are not read."""
    summary = dict(recorded("1.52")["summaries"][0])
    summary["Labels"] = None
    summary["HostConfig"] = {}
    view = summary_view(summary)
    assert view is not None
    assert view["Config"]["Labels"] == {}
    assert "HostConfig" not in view


@pytest.mark.parametrize(
    ("changes", "why"),
    [
        ({"Names": ["/web/db"]}, "only a link alias"),
        ({"Names": ["/a", "/b"]}, "two plain names"),
        ({"Names": []}, "no name"),
        ({"ImageID": ""}, "no image ID"),
        ({"State": {"Status": "running"}}, "a state in another shape"),
    ],
)
def test_summary_view_none_when_the_entry_cannot_stand_for_an_inspect(
    changes: dict[str, Any], why: str
) -> None:
    summary = {**recorded("1.41")["summaries"][0], **changes}
    assert summary_view(summary) is None, why


def test_plain_name_skips_link_aliases() -> None:
    assert plain_name(["/web/db", "/db"]) == "db"
    assert plain_name(["/web/db"]) is None


@pytest.mark.parametrize("version", VERSIONS)
def test_swap_related_is_the_marked_container_and_the_one_it_names(version: str) -> None:
    """On the recorded list, recovery inspects the leftover replacement and its old container
    (named by an 8-hex ID prefix in the mark), nothing else; none without a mark."""
    record = recorded(version)
    names = scenario_of(record)
    related = swap_related(record["summaries"])
    assert sorted(names[cid] for cid in related) == ["marked", "plain"]
    unmarked = [s for s in record["summaries"] if names[s["Id"]] != "marked"]
    assert swap_related(unmarked) == []


def test_swap_related_follows_an_older_watchkeepers_label() -> None:
    """A replacement labelled with its old container's ID (written by an older watchkeeper)
    and that old container are both inspected."""
    summaries = recorded("1.41")["summaries"]
    old, new, other = summaries[1], dict(summaries[2]), summaries[3]
    new["Labels"] = {**(new["Labels"] or {}), "watchkeeper.swap.previous-id": old["Id"]}
    assert swap_related([old, new, other]) == [old["Id"], new["Id"]]


def test_every_swap_mark_holds_the_part_recovery_lists_by() -> None:
    """Recovery asks the engine only for names holding ``MARK_PART``: every mark must."""
    markers = (NEXT_MARKER, ASIDE_MARKER, DONE_MARKER, FAILED_MARKER, HELD_MARKER)
    assert all(MARK_PART in marker for marker in markers)
    for role in ("next", "old", "done", "new", "held"):
        name = f"web-wk-{role}-0123abcd-4567ef01"
        assert read_mark(name) is not None
        assert MARK_PART in name


class NoListEngine:
    """An engine whose containers must not be inspected: every list of them fails the test."""

    host_label = "local"

    def list_containers(self, *, all: bool) -> list[dict[str, Any]]:
        raise AssertionError("every container was inspected for rows that need none")


def test_update_monitor_only_rows_inspect_no_container(tmp_path: Path) -> None:
    """Stale containers under MONITOR_ONLY are ``available`` from their views alone; a stale
    one that may swap makes the update inspect every container first."""
    record = recorded("1.45")
    view = summary_view(record["summaries"][0])
    assert view is not None
    settings = load_settings(environ={"WATCHKEEPER_MONITOR_ONLY": "true"})
    engine: Any = NoListEngine()
    credentials: Any = None
    ctx = UpdateContext(
        engine=engine, credentials=credentials, settings=settings, state=StateStore(tmp_path)
    )
    item = Watched(container=view, image=None, reference=None, verdict=Verdict.STALE)
    item.reference = parse_reference(view["Config"]["Image"])
    item.remote_digest = "sha256:" + "d" * 64
    (row,) = update_stale(ctx, [item])
    assert row.state.value == "available"
    ctx.settings = load_settings(environ={})
    with pytest.raises(AssertionError, match="every container was inspected"):
        update_stale(ctx, [item])


class ListingEngine:
    """An engine that answers the recorded list, ignoring filters as a proxy might."""

    def __init__(self, summaries: list[dict[str, Any]], inspects: dict[str, Any]) -> None:
        self.summaries, self.inspects = summaries, inspects
        self.lists: list[str | None] = []

    def list_summaries(self, *, all: bool, name_part: str | None = None) -> list[dict[str, Any]]:
        self.lists.append(name_part)
        return list(self.summaries)

    def inspected(self, containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.inspects[c["Id"]] for c in containers]


def test_swap_containers_one_list_without_marks_even_when_the_filter_is_ignored() -> None:
    """Recovery on an engine without a marked name: one (filtered) list, no inspect, even when
    the engine answers every container; with one, the whole list and the related inspects."""
    record = recorded("1.45")
    names = scenario_of(record)
    clean = [s for s in record["summaries"] if names[s["Id"]] != "marked"]
    engine: Any = ListingEngine(clean, record["inspects"])
    assert swap_containers(engine) == []
    assert engine.lists == [MARK_PART]
    engine = ListingEngine(record["summaries"], record["inspects"])
    found = swap_containers(engine)
    assert engine.lists == [MARK_PART, None]
    assert sorted(names[c["Id"]] for c in found) == ["marked", "plain"]
