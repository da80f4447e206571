"""The check's images from one image list per engine, on the classic store only.

``data/info-image-store.json`` holds the ``docker info`` fields that name the image store:
recorded from Engine 20.10 and 26.1 (classic store), and the containerd store's answer written
from moby's ``LayerStoreStatus``. The image list and inspect answers below are the recorded
1.45 inspects (``data/inspect-api1.45.json``) and list entries made from them with the fields
``GET /images/json`` sends; the real engines' lists are exercised by the integration tests
(``tests/integration/test_scale_calls.py``).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import structlog

from watchkeeper.actions.check import (
    ImageViews,
    Verdict,
    Watched,
    classify_local,
    complete_images,
    read_images,
)
from watchkeeper.containers.origin import classic_image_store
from watchkeeper.errors import EngineError
from watchkeeper.settings import load_settings

DATA = Path(__file__).parent / "data"


@cache
def _infos() -> dict[str, Any]:
    return dict(json.loads((DATA / "info-image-store.json").read_text()))


@cache
def _recording() -> dict[str, Any]:
    return dict(json.loads((DATA / "inspect-api1.45.json").read_text()))


def info(store: str) -> dict[str, Any]:
    return dict(_infos()[store])


def pulled_image(index: int) -> dict[str, Any]:
    """A pulled image's inspect: the recorded new image of 26.1, with its own ID and digest."""
    image = json.loads(json.dumps(_recording()["new_image"]))
    image["Id"] = f"sha256:{index:064x}"
    image["RepoDigests"] = [f"registry.test/app{index}@sha256:{index + 100:064x}"]
    image["RepoTags"] = [f"registry.test/app{index}:1"]
    return dict(image)


def list_entry(image: dict[str, Any]) -> dict[str, Any]:
    """The ``GET /images/json`` entry of an image (swagger ``ImageSummary``)."""
    return {
        "Id": image["Id"],
        "ParentId": "",
        "RepoTags": image["RepoTags"],
        "RepoDigests": image["RepoDigests"],
        "Created": 1_700_000_000,
        "Size": image["Size"],
        "SharedSize": -1,
        "Labels": image["Config"].get("Labels") or {},
        "Containers": -1,
    }


class ImagesEngine:
    """What the check asks an engine about images: its info, its image list, inspects."""

    api_version = "1.45"
    host_label = "test-engine"

    def __init__(self, images: list[dict[str, Any]], store: str = "api1.45") -> None:
        self.images = {image["Id"]: image for image in images}
        self.listed = [list_entry(image) for image in images]
        self.store = store
        self.asked: list[str] = []
        self.list_fails = False
        self.info_fails = False
        self.inspect_fails: set[str] = set()

    def recent_info(self) -> dict[str, Any]:
        self.asked.append("info")
        if self.info_fails:
            raise EngineError("info: engine gone")
        return info(self.store)

    def list_images(self) -> list[dict[str, Any]]:
        self.asked.append("list")
        if self.list_fails:
            raise EngineError("list images: 500 Server Error")
        return [dict(entry) for entry in self.listed]

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        self.asked.append(f"inspect {ref}")
        if ref in self.inspect_fails:
            raise EngineError(f"inspect image {ref}: 500 Server Error")
        found = self.images.get(ref)
        return dict(found) if found is not None else None

    def inspects(self) -> list[str]:
        return sorted(a.removeprefix("inspect ") for a in self.asked if a.startswith("inspect"))


def container_of(image: dict[str, Any], name: str, labels: dict[str, str] | None = None) -> Any:
    """A container view on ``image``, created from its tag."""
    return {
        "Id": f"{name:0>64}",
        "Name": f"/{name}",
        "Image": image["Id"],
        "Config": {"Image": image["RepoTags"][0], "Labels": labels or {}},
        "State": {"Status": "running"},
    }


def test_classic_store_recorded_engines_containerd_store_not() -> None:
    """Engine 20.10 and 26.1 (recorded) keep the classic store; the containerd store says
    ``driver-type: io.containerd.snapshotter.v1``; an info without DriverStatus is classic."""
    assert classic_image_store(info("api1.41")) is True
    assert classic_image_store(info("api1.45")) is True
    assert classic_image_store(info("containerd")) is False
    assert classic_image_store({"ServerVersion": "20.10.0"}) is True
    assert classic_image_store({"DriverStatus": None}) is True


def test_read_images_classic_store_one_list_no_inspect() -> None:
    """Three containers' two images: one image list, nothing inspected, each image listed."""
    images = [pulled_image(1), pulled_image(2), pulled_image(3)]
    engine = ImagesEngine(images)
    views = read_images(engine, [images[0]["Id"], images[1]["Id"], images[0]["Id"]])
    assert engine.asked == ["info", "list"]
    assert set(views.listed) == {images[0]["Id"], images[1]["Id"]}
    assert views.listed[images[0]["Id"]]["RepoDigests"] == images[0]["RepoDigests"]
    assert views.inspected == {}


def test_read_images_image_missing_from_list_inspected() -> None:
    """An image the list leaves out (a build intermediate) is inspected; one gone from the
    engine answers None, as an inspect does."""
    images = [pulled_image(1), pulled_image(2)]
    engine = ImagesEngine(images)
    engine.listed = engine.listed[:1]
    gone = f"sha256:{9:064x}"
    views = read_images(engine, [images[0]["Id"], images[1]["Id"], gone])
    assert engine.inspects() == sorted([images[1]["Id"], gone])
    assert set(views.listed) == {images[0]["Id"]}
    assert views.inspected == {images[1]["Id"]: images[1], gone: None}


@pytest.mark.parametrize("failing", ["list", "info", "containerd"])
def test_read_images_inspects_when_the_list_cannot_decide(failing: str) -> None:
    """A failing list (logged), an unreadable info and the containerd store: every distinct
    image inspected once, nothing taken from a list."""
    images = [pulled_image(1), pulled_image(2)]
    engine = ImagesEngine(images, store="containerd" if failing == "containerd" else "api1.45")
    engine.list_fails = failing == "list"
    engine.info_fails = failing == "info"
    with structlog.testing.capture_logs() as logs:
        views = read_images(engine, [i["Id"] for i in images] * 2)
    assert views.listed == {}
    assert engine.inspects() == sorted(i["Id"] for i in images)
    assert ("list" in engine.asked) is (failing == "list")
    failed = [e for e in logs if e["event"] == "engine.image_list_failed"]
    assert len(failed) == (1 if failing == "list" else 0)


def test_classify_from_list_entry_same_verdict_and_digests_as_from_inspect() -> None:
    """A container judged from its image's list entry gets the verdict and digests an inspect
    gives; reading its platform or configuration before the image is inspected is refused."""
    image = pulled_image(1)
    container = container_of(image, "web")
    engine = ImagesEngine([image])
    listed = classify_local(container, engine, ImageViews({}, {image["Id"]: list_entry(image)}))
    inspected = classify_local(container, engine, {image["Id"]: image})
    assert engine.asked == []
    assert (listed.verdict, listed.local_digests) == (inspected.verdict, inspected.local_digests)
    assert listed.local_digests == [f"sha256:{101:064x}"]
    assert listed.image_listed is True
    assert inspected.image_listed is False
    with pytest.raises(RuntimeError, match="listed, not inspected"):
        _ = listed.platform
    with pytest.raises(RuntimeError, match="listed, not inspected"):
        _ = listed.inspected_image
    assert inspected.platform.architecture == image["Architecture"]


def test_classify_built_image_list_entry_local_only() -> None:
    """An image built on a classic-store engine has no RepoDigests in its list entry either:
    local-only, never asked of a registry."""
    built = dict(_recording()["old_image"])
    assert built["RepoDigests"] == []
    built["RepoTags"] = ["app:dev"]
    container = container_of(built, "dev")
    engine = ImagesEngine([built])
    watched = classify_local(container, engine, ImageViews({}, {built["Id"]: list_entry(built)}))
    assert watched.verdict is Verdict.LOCAL_ONLY
    assert watched.skip_reason == "image has no registry digest"


def _listed(image: dict[str, Any], name: str, verdict: Verdict, **labels: str) -> Watched:
    item = Watched(
        container=container_of(image, name, labels),
        image=list_entry(image),
        reference=None,
        verdict=verdict,
        image_listed=True,
    )
    return item


def test_complete_images_inspects_only_what_may_be_updated() -> None:
    """Stale, and fresh under a tag policy that reads tags: inspected (once per image). Fresh
    under the digest policy, pinned and local-only: left listed. A failing inspect is that
    container's error."""
    images = [pulled_image(i) for i in range(1, 7)]
    engine = ImagesEngine(images)
    engine.inspect_fails = {images[5]["Id"]}
    stale = _listed(images[0], "stale", Verdict.STALE)
    stale_twin = _listed(images[0], "stale-twin", Verdict.STALE)
    moving = _listed(images[1], "moving", Verdict.FRESH, **{"watchkeeper.tag-policy": "minor"})
    steady = _listed(images[2], "steady", Verdict.FRESH)
    pinned = _listed(images[3], "pinned", Verdict.PINNED)
    bad_label = _listed(images[4], "bad", Verdict.FRESH, **{"watchkeeper.tag-policy": "newest"})
    broken = _listed(images[5], "broken", Verdict.STALE)
    items = [stale, stale_twin, moving, steady, pinned, bad_label, broken]
    complete_images(engine, items, load_settings({}, {}))
    assert engine.inspects() == sorted(images[i]["Id"] for i in (0, 1, 5))
    for item, image in ((stale, images[0]), (stale_twin, images[0]), (moving, images[1])):
        assert item.image_listed is False
        assert item.inspected_image == image
        assert item.platform.architecture == image["Architecture"]
    assert [i.image_listed for i in (steady, pinned, bad_label)] == [True, True, True]
    assert broken.verdict is Verdict.ERROR
    assert broken.error == f"inspect image {images[5]['Id']}: 500 Server Error"
    assert steady.verdict is Verdict.FRESH
