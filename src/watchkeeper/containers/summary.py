"""Pure: the engine's container list (``GET /containers/json``) read as partial inspect dicts.

A run with nothing new needs, per container, only what the list already says: the name, the
state, the labels, the image ID and the reference it was created from. Inspecting all 500
containers of an engine to learn that is 500 round trips for nothing, so the check works from
these *views* and an inspect is made only where the list cannot answer (README, "Speed"):

- the list shows the image ID instead of the configured reference once that reference no longer
  resolves to the container's image (a newer image was pulled under the tag, or the tag is
  gone; moby ``daemon/list.go`` ``refreshImage``), and for a container created from a full
  image ID; then ``Config.Image`` is unknown here (:func:`needs_inspect`);
- a summary without an ID, an image ID, a state or a plain name (every name but the one it is
  known by has a second ``/``: a legacy link alias) gives no view at all.

What the list gives differs by engine (recorded in ``tests/unit/data/summaries-api*.json``):
Docker 29 (API 1.52) adds ``Health``, Docker 28 (API 1.48) ``ImageManifestDescriptor`` with the
containerd image store; ``Labels`` is ``null`` for a container without labels,
``HostConfig.NetworkMode`` and ``HostConfig.Annotations`` are omitted when empty. None of those
is read here. A view carries only what the check and the selection read; anything that acts on a
container works from full inspects: the update inspects every container for its dependency graph
before it moves one, each swap inspects its container afresh, and recovery inspects what it
repairs (:func:`is_view` tells a view from an inspect).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class SummaryView(dict[str, Any]):
    """A partial inspect dict made from a container summary (see the module docstring).

    ``reference_known`` is False when the summary showed the image ID where the configured
    reference belongs: its ``Config.Image`` is then that ID, not what the user wrote.
    """

    reference_known: bool = True


def summary_view(summary: Mapping[str, Any]) -> SummaryView | None:
    """The partial inspect dict of one list entry; None when the entry cannot stand for it.

    The view has ``Id``, ``Name``, ``Image`` (the image ID), ``Config.Image`` and
    ``Config.Labels``, ``State`` (``Status`` and the ``Running``/``Paused``/``Restarting`` flags
    the inspect derives from it) and ``HostConfig.NetworkMode`` when the summary has one.
    """
    container_id = summary.get("Id")
    image_id = summary.get("ImageID")
    status = summary.get("State")
    name = plain_name(summary.get("Names") or [])
    if not (container_id and image_id and isinstance(status, str) and name):
        return None
    reference = str(summary.get("Image") or "")
    view = SummaryView(
        Id=str(container_id),
        Name="/" + name,
        Image=str(image_id),
        Config={"Image": reference, "Labels": dict(summary.get("Labels") or {})},
        State=_state(status),
    )
    network_mode = (summary.get("HostConfig") or {}).get("NetworkMode")
    if network_mode:
        view["HostConfig"] = {"NetworkMode": str(network_mode)}
    view.reference_known = bool(reference) and reference != image_id
    return view


def plain_name(names: list[str]) -> str | None:
    """The container's own name among the list's ``Names`` (``/app``), without the slash.

    With legacy links the list also names the container by each alias a linking container
    gave it (``/web/db``); a container's own name never has a second slash.
    """
    own = [n.lstrip("/") for n in names if isinstance(n, str) and n.count("/") == 1]
    return own[0] if len(own) == 1 and own[0] else None


def _state(status: str) -> dict[str, Any]:
    """``State`` as inspect shows it: a paused or restarting container is still ``Running``
    (moby ``container/state.go``: ``SetRestarting`` and pausing keep ``Running`` true)."""
    return {
        "Status": status,
        "Running": status in ("running", "paused", "restarting"),
        "Paused": status == "paused",
        "Restarting": status == "restarting",
    }


def is_view(container: Mapping[str, Any]) -> bool:
    """Whether ``container`` is a view from the list rather than a full inspect."""
    return isinstance(container, SummaryView)


def needs_inspect(container: Mapping[str, Any]) -> bool:
    """Whether the check must inspect ``container`` first: a view whose summary showed the image
    ID where the configured reference belongs."""
    return isinstance(container, SummaryView) and not container.reference_known
