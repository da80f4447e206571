"""Pure: where an image came from, from its inspect — the digests a registry may know it by,
and whether it is local-only (built or loaded here, so no registry can have a newer one).

With the classic image store an image has ``RepoDigests`` only once it was pulled or pushed,
so "no RepoDigests" meant local-only. The containerd image store (the default of fresh Docker
29 installs) changes both halves: its image ID *is* the manifest or index digest, and every
tagged image gets a ``RepoDigests`` entry made from that ID, locally built ones included. A
registry that serves the same name would then make a local build look stale, and an update
would replace it with someone else's image. From API 1.53 the engine says where an image
came from (``Identity``: ``Pull`` for the repositories it was pulled from or pushed to,
``Build`` for a build here); where it says, that decides. README, "Engines and API versions".

No I/O here: inputs are image inspect dicts, unit-tested against recorded JSON.
"""

from __future__ import annotations

from typing import Any

# From this API version a containerd-store engine reports ``Identity`` whenever it knows one.
_IDENTITY_API = (1, 53)
# What ``docker info`` names the containerd image store by (``DriverStatus``, ``driver-type``).
_SNAPSHOTTER = "io.containerd.snapshotter"


def registry_digests(image: dict[str, Any]) -> list[str]:
    """The digests a registry may know ``image`` by: its ``RepoDigests``, then its own ID
    when the engine uses the containerd image store.

    On that store the ID is the digest the image was pulled by, and an image whose tag has
    moved on (dangling) loses its ``RepoDigests`` there, yet still runs: its ID is what the
    registry's answer must be compared with.
    """
    digests = [ref.split("@", 1)[1] for ref in image.get("RepoDigests") or [] if "@" in ref]
    image_id = str(image.get("Id") or "")
    if _containerd_store(image) and image_id and image_id not in digests:
        digests.append(image_id)
    return digests


def local_only_reason(image: dict[str, Any], api_version: tuple[int, ...]) -> str | None:
    """Why ``image`` cannot be checked against a registry, or None when it can.

    ``api_version`` is the one the inspect was read with: ``Identity`` is only sent from 1.53
    on, so its absence means "came from no pull" only there, and only on the containerd store
    (the classic store never reports it).
    """
    identity = image.get("Identity")
    if isinstance(identity, dict):
        if identity.get("Pull"):
            return None
        if identity.get("Build"):
            return "image was built on this engine"
        return "image was not pulled from a registry"
    if _containerd_store(image) and api_version >= _IDENTITY_API:
        return "image was not pulled from a registry"
    if not registry_digests(image):
        return "image has no registry digest"
    return None


def classic_image_store(info: dict[str, Any]) -> bool:
    """Whether an engine keeps its images in the classic store, from its ``docker info``.

    There an image's entry in the engine's image list (``GET /images/json``) has the same
    ``RepoDigests`` as its inspect, and they alone decide both halves above, so a check may
    read one list instead of an inspect per image. The containerd store says so in
    ``DriverStatus`` (``driver-type: io.containerd.snapshotter.v1``); its verdicts need the
    inspect's ``Descriptor`` and ``Identity``, which the list does not carry.
    """
    status = info.get("DriverStatus") or []
    return not any(
        isinstance(pair, list | tuple)
        and len(pair) == 2
        and pair[0] == "driver-type"
        and str(pair[1]).startswith(_SNAPSHOTTER)
        for pair in status
    )


def _containerd_store(image: dict[str, Any]) -> bool:
    """Whether the inspect comes from the containerd image store (API 1.48+).

    Only a multi-platform image store fills ``Descriptor`` (the OCI descriptor of the image
    target, whose digest is the image ID).
    """
    descriptor = image.get("Descriptor")
    return isinstance(descriptor, dict) and bool(descriptor.get("digest"))
