"""Local-only verdict and registry digests, on image inspects of every engine generation.

``data/inspect-api1.41.json`` and ``-api1.45.json`` are recorded (Engine 20.10 and 26.1);
``-api1.48.json`` (Docker 28, classic image store), ``-api1.52.json`` and ``-api1.54.json``
(Docker 29.0 and 29.3, containerd image store) are derived from the 1.45 recording by
``data/derive_inspect.py``, which names the moby API definition of every change. Each derived
file has ``image_origins``: the old image built here, pulled, dangling and loaded.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.actions.check import Verdict, classify_local
from watchkeeper.containers.origin import local_only_reason, registry_digests
from watchkeeper.containers.recreate import parse_api_version

DATA = Path(__file__).parent / "data"


@cache
def _load(api_version: str) -> dict[str, Any]:
    return dict(json.loads((DATA / f"inspect-api{api_version}.json").read_text()))


def origin(api_version: str, name: str) -> dict[str, Any]:
    """One image of a recording's ``image_origins``."""
    return dict(_load(api_version)["image_origins"][name])


def reason(api_version: str, name: str) -> str | None:
    """The local-only reason of one image origin, read at the recording's API version."""
    return local_only_reason(origin(api_version, name), parse_api_version(api_version))


def test_origin_recorded_images_without_digests_local_only() -> None:
    """20.10 and 26.1 (classic store): the built images have no RepoDigests, local-only."""
    for api_version in ("1.41", "1.45"):
        image = _load(api_version)["old_image"]
        assert image["RepoDigests"] == []
        assert local_only_reason(image, parse_api_version(api_version)) == (
            "image has no registry digest"
        )


def test_origin_docker_28_classic_store_repo_digests_decide() -> None:
    """Docker 28 (classic store): only a pull gives RepoDigests, and a dangling image keeps
    them."""
    assert reason("1.48", "built") == "image has no registry digest"
    assert reason("1.48", "loaded") == "image has no registry digest"
    assert reason("1.48", "pulled") is None
    assert reason("1.48", "dangling") is None
    assert registry_digests(origin("1.48", "dangling")) == registry_digests(
        origin("1.48", "pulled")
    )


def test_origin_containerd_store_synthesized_repo_digest_is_the_image_id() -> None:
    """Docker 29: a local build gets a ``name@<ID>`` RepoDigest, so it has digests."""
    built = origin("1.52", "built")
    assert built["RepoDigests"] == [f"wk-record/app@{built['Id']}"]
    assert registry_digests(built) == [built["Id"]]


def test_origin_containerd_store_dangling_image_compared_by_its_id() -> None:
    """A dangling image on the containerd store has no RepoDigests; its ID is the digest it
    was pulled by, so it is still checked, not local-only."""
    dangling = origin("1.52", "dangling")
    assert dangling["RepoDigests"] == []
    assert registry_digests(dangling) == [dangling["Id"]]
    assert reason("1.52", "dangling") is None
    assert reason("1.54", "dangling") is None


def test_origin_api_154_identity_build_local_only_pull_checked() -> None:
    """From API 1.53 ``Identity`` decides: built here is local-only despite its RepoDigest,
    pulled is checked."""
    assert reason("1.54", "built") == "image was built on this engine"
    assert reason("1.54", "pulled") is None


def test_origin_api_154_no_identity_on_containerd_store_local_only() -> None:
    """From API 1.53 a containerd-store image without ``Identity`` (``docker load``) came from
    no registry."""
    assert "Identity" not in origin("1.54", "loaded")
    assert reason("1.54", "loaded") == "image was not pulled from a registry"


def test_origin_api_152_without_identity_synthesized_digest_is_checked() -> None:
    """Before API 1.53 nothing tells a build from a pull on the containerd store: the
    registry is asked (README, "Engines and API versions")."""
    assert reason("1.52", "built") is None
    assert reason("1.52", "pulled") is None


def test_origin_identity_pull_and_build_is_checked() -> None:
    """A local build that was pushed (``Identity`` has both) is on a registry: checked."""
    image = origin("1.54", "built")
    image["Identity"] = {**image["Identity"], "Pull": [{"Repository": "example/app"}]}
    assert local_only_reason(image, (1, 54)) is None


class _Engine:
    """What ``classify_local`` reads from an engine: image inspect by ID, the API version."""

    def __init__(self, api_version: str, images: dict[str, dict[str, Any]]) -> None:
        self.api_version = api_version
        self._images = images
        self.asked: list[str] = []

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        self.asked.append(ref)
        return self._images.get(ref)


@pytest.mark.parametrize(
    ("name", "verdict"),
    [("built", Verdict.LOCAL_ONLY), ("pulled", Verdict.FRESH), ("loaded", Verdict.LOCAL_ONLY)],
)
def test_classify_local_api_154_verdict_from_identity(name: str, verdict: Verdict) -> None:
    """The check's local-only verdict follows ``Identity`` on a Docker 29.3 recording."""
    data = _load("1.54")
    image = origin("1.54", name)
    container = data["containers"]["plain"]
    engine = _Engine("1.54", {container["Image"]: image})
    watched = classify_local(container, engine)
    assert watched.verdict is verdict
    assert watched.local_digests == [image["Id"]]


def test_classify_local_image_picked_by_container_image_id() -> None:
    """The image is inspected by the container's ``Image`` ID, never by its tag: the tag
    may name a newer image, the old one keeps its digests."""
    data = _load("1.54")
    container = data["containers"]["plain"]
    engine = _Engine("1.54", {container["Image"]: origin("1.54", "dangling")})
    watched = classify_local(container, engine)
    assert engine.asked == [container["Image"]]
    assert watched.verdict is Verdict.FRESH
    assert watched.local_digests == [container["Image"]]
