"""The check: which containers are watched and whether the registry has moved their tag.

This is the whole of ``watchkeeper check`` and the first half of every run. It asks the registry
one HEAD per distinct image reference and compares the answer with the digests of the image each
container *runs* (its image ID, never the tag, which may have moved locally). Nothing is pulled.

With NO_PULL (the ``watchkeeper.no-pull`` label, or the setting through :func:`apply_no_pull`)
the registry is not asked at all: the container is stale when the image its tag names *on this
engine* is not the one it runs (images built on the host).

The check reads the engine's container list, never one inspect per container (README, "Speed"):
:func:`select_on_engine` selects from the list's views (:mod:`containers.summary`) and inspects
only a selected container whose list entry showed its image ID instead of the reference it was
created from. The images come from one image list where the engine's store lets that list
decide (:func:`read_images`), else each distinct image is inspected once, a few at a time
(:func:`inspect_images`); an image read from the list is inspected only for a container that may
be updated (:func:`complete_images`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import structlog

from watchkeeper.actions.policy import tag_policy
from watchkeeper.actions.select import image_matches, select_containers
from watchkeeper.containers.engine import Engine
from watchkeeper.containers.origin import (
    classic_image_store,
    local_only_reason,
    registry_digests,
)
from watchkeeper.containers.recreate import parse_api_version
from watchkeeper.errors import EngineError, RegistryAuthError, RegistryError
from watchkeeper.labels import container_name, read_bool_label
from watchkeeper.registry.digest import RegistryClient
from watchkeeper.registry.reference import Reference, is_image_id, parse_reference
from watchkeeper.registry.tags import Platform
from watchkeeper.settings import Settings

log = structlog.get_logger()

# Image inspects in flight at once: the engine answers them in parallel, and each distinct image
# of a 500-container estate is inspected once per check. Fewer than the listen backlog of a
# small socket proxy in front of the engine (Python's socketserver: 5), which refuses a larger
# burst of new connections.
IMAGE_INSPECTS = 4

# An image's inspect, None when the engine has no such image, or why it could not be read.
ImageAnswer = dict[str, Any] | EngineError | None


class Verdict(StrEnum):
    """What the registry says about a container's image."""

    FRESH = "fresh"
    STALE = "stale"
    PINNED = "pinned"
    LOCAL_ONLY = "local-only"
    ERROR = "error"


@dataclass(kw_only=True)
class RuleFields:
    """What the update rules (actions/versions.py) find for a checked container or service: the
    tag policy and what it found, the tag it moves to (None: it follows its own tag's digest),
    why a stale one waits. ``label_error``: a watchkeeper.* label of the rules is invalid, and a
    person must fix it (``skipped``, exit 1)."""

    policy: str | None = None
    candidate_tag: str | None = None
    new_tag: str | None = None
    ranked_tags: tuple[str, ...] = ()
    waiting: str | None = None
    wait_reason: str | None = None
    rules_note: str | None = None
    label_error: bool = False


@dataclass
class Watched(RuleFields):
    """One watched container, its image, and the verdict of the check (and, inherited, what
    the update rules found)."""

    container: dict[str, Any]
    image: dict[str, Any] | None
    reference: Reference | None
    verdict: Verdict = Verdict.FRESH
    local_digests: list[str] = field(default_factory=list)
    remote_digest: str | None = None
    error: str | None = None
    # The registry refused the credentials or wants some that cannot be had: a person must act.
    auth_failed: bool = False
    skip_reason: str | None = None
    # NO_PULL: the image ID the local tag points at, which the container moves to.
    target_image_id: str | None = None
    # ``image`` is the image's entry in the engine's list, not its inspect (read_images).
    image_listed: bool = False

    @property
    def name(self) -> str:
        return container_name(self.container)

    @property
    def image_ref(self) -> str:
        """The reference the user gave when creating the container."""
        return str(self.container["Config"]["Image"])

    @property
    def image_id(self) -> str:
        return str(self.container["Image"])

    @property
    def current_tag(self) -> str | None:
        """The tag the container was created from (None for a digest or an image ID)."""
        return self.reference.tag if self.reference is not None else None

    @property
    def pull_ref(self) -> str:
        """What the update pulls and recreates from: the user's reference, with the new tag
        when the tag policy moves the container (``registry:5000/app:1.2.4``)."""
        if self.new_tag is None or self.current_tag is None:
            return self.image_ref
        return f"{self.image_ref.removesuffix(f':{self.current_tag}')}:{self.new_tag}"

    @property
    def local_digest(self) -> str | None:
        """The digest shown for the running image (the first of its RepoDigests)."""
        return self.local_digests[0] if self.local_digests else None

    @property
    def platform(self) -> Platform:
        """The platform of the image it runs: the manifest of an index that dates a new image."""
        return Platform.of_image(self.inspected_image)

    @property
    def inspected_image(self) -> dict[str, Any] | None:
        """The inspect of the image it runs (None: not on the engine), for what the image list
        does not carry (platform, configuration). Raises RuntimeError when the check only listed
        it: :func:`complete_images` inspects those of every container that may be updated, and a
        reader past it must never get a list entry in place of an inspect."""
        if self.image_listed:
            raise RuntimeError(f"the image of {self.name} was listed, not inspected")
        return self.image


def select_on_engine(
    engine: Engine,
    settings: Settings,
    names: Sequence[str] = (),
    images: Sequence[str] = (),
    containers: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], list[tuple[dict[str, Any], str]]]:
    """The engine's watched and skipped containers (:func:`select_containers`), restricted to
    ``images`` (``REPO[:TAG]``), from one container list (``containers``: one already made by
    :meth:`Engine.list_views`).

    Only a container the run would watch or report, and whose list entry showed its image ID
    instead of its configured reference, is inspected; it is then selected again from its
    inspect. Raises EngineError.
    """
    views = engine.list_views(all=True) if containers is None else containers
    watched, skipped = select_containers(views, settings, names)
    wanted = {str(c["Id"]) for c in watched} | {str(c["Id"]) for c, _ in skipped}
    chosen = engine.completed([c for c in views if str(c["Id"]) in wanted])
    watched, skipped = select_containers(chosen, settings, names)
    return (
        [c for c in watched if image_matches(c, images)],
        [(c, reason) for c, reason in skipped if image_matches(c, images)],
    )


def inspect_images(engine: Engine, image_ids: Iterable[str]) -> dict[str, ImageAnswer]:
    """Each distinct image inspected once, ``IMAGE_INSPECTS`` at a time; never raises (an
    image that could not be read answers its EngineError)."""

    def one(image_id: str) -> ImageAnswer:
        try:
            return engine.inspect_image(image_id)
        except EngineError as exc:
            return exc

    distinct = list(dict.fromkeys(image_ids))
    if len(distinct) <= 1:
        return {image_id: one(image_id) for image_id in distinct}
    workers = min(IMAGE_INSPECTS, len(distinct))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="inspect") as pool:
        return dict(zip(distinct, pool.map(one, distinct), strict=True))


@dataclass(frozen=True)
class ImageViews:
    """The images one check read: ``listed``, entries of the engine's image list (classic
    store), and ``inspected``, the answers of inspects (every image the list did not hold)."""

    inspected: Mapping[str, ImageAnswer]
    listed: Mapping[str, dict[str, Any]] = field(default_factory=dict)


def read_images(engine: Engine, image_ids: Iterable[str]) -> ImageViews:
    """The images with these IDs, in as few requests as the engine's store allows; never raises.

    On the classic store one image list decides every verdict of the check (its ``RepoDigests``
    are the inspect's): one request per engine instead of one per image, which is most of a
    check's requests (README, "Speed"). An image the list leaves out (a build intermediate), a
    list that fails, the containerd store and an engine whose ``docker info`` cannot be read
    are inspected as before, a few at a time.
    """
    distinct = list(dict.fromkeys(image_ids))
    listed: dict[str, dict[str, Any]] = {}
    if distinct and _lists_decide(engine):
        try:
            by_id = {str(image.get("Id")): image for image in engine.list_images()}
        except EngineError as exc:
            log.warning("engine.image_list_failed", engine=engine.host_label, error=str(exc))
            by_id = {}
        listed = {image_id: by_id[image_id] for image_id in distinct if image_id in by_id}
    rest = [image_id for image_id in distinct if image_id not in listed]
    return ImageViews(inspected=inspect_images(engine, rest), listed=listed)


def _lists_decide(engine: Engine) -> bool:
    """Whether the engine's image list decides its check (classic store), from the
    ``docker info`` its connection or Swarm check just read."""
    try:
        return classic_image_store(engine.recent_info())
    except EngineError:
        return False


def complete_images(engine: Engine, items: Sequence[Watched], settings: Settings) -> None:
    """Inspect the listed images of every container that may be updated, in place.

    A stale one, and a fresh one whose tag policy reads the registry's tags (it may move to a
    newer tag): the update rules date their new image for the image's platform, and the
    recreate tells the container's own configuration from its image's. An image that cannot be
    read is that container's ``error``, as in :func:`classify_local`.
    """
    wanted = [w for w in items if w.image_listed and _may_update(w, settings)]
    answers = inspect_images(engine, (w.image_id for w in wanted))
    for item in wanted:
        answer = answers[item.image_id]
        if isinstance(answer, EngineError):
            item.verdict, item.error = Verdict.ERROR, str(answer)
            continue
        item.image, item.image_listed = answer, False


def _may_update(item: Watched, settings: Settings) -> bool:
    """Whether the update rules or the update may read ``item``'s image inspect."""
    if item.verdict is Verdict.STALE:
        return True
    if item.verdict is not Verdict.FRESH:
        return False
    try:
        return tag_policy(settings, item.container).reads_tags
    except ValueError:
        return False  # the rules make it a label error, nothing is updated


def classify_local(
    container: dict[str, Any],
    engine: Engine,
    images: Mapping[str, ImageAnswer] | ImageViews | None = None,
) -> Watched:
    """Build a Watched with the verdicts that need no registry: pinned and local-only.

    The image is the one the container runs, read by its ID (``images``: what
    :func:`read_images` or :func:`inspect_images` already read): a tag may name another image
    by now, and an old image keeps its digests (README, "Engines and API versions"). Raises
    EngineError when it cannot be read.
    """
    image_id = str(container["Image"])
    listed = images.listed if isinstance(images, ImageViews) else {}
    inspected = images.inspected if isinstance(images, ImageViews) else images
    image = listed[image_id] if image_id in listed else _image_of(engine, image_id, inspected)
    ref_text = str(container["Config"]["Image"])
    watched = Watched(
        container=container, image=image, reference=None, image_listed=image_id in listed
    )
    watched.local_digests = registry_digests(image or {})
    if is_image_id(ref_text) or container["Image"].removeprefix("sha256:").startswith(
        ref_text.removeprefix("sha256:")
    ):
        watched.verdict, watched.skip_reason = Verdict.PINNED, "created from an image ID"
        return watched
    try:
        watched.reference = parse_reference(ref_text)
    except ValueError as exc:
        watched.verdict, watched.error = Verdict.ERROR, str(exc)
        return watched
    if watched.reference.is_pinned:
        watched.verdict, watched.skip_reason = Verdict.PINNED, "pinned to a digest"
    elif reason := local_only_reason(image or {}, parse_api_version(engine.api_version)):
        watched.verdict, watched.skip_reason = Verdict.LOCAL_ONLY, reason
    return watched


def check_containers(
    engine: Engine,
    registry: RegistryClient,
    containers: Sequence[dict[str, Any]],
    settings: Settings,
) -> list[Watched]:
    """Ask the registry about every watched container's tag; one HEAD per distinct reference.

    Containers under NO_PULL (the setting, or their label) are judged by the local tag instead.
    Every container that may be updated leaves with its image inspected (:func:`complete_images`).
    """
    no_pull = settings.no_pull
    watched = []
    images = read_images(engine, (str(c["Image"]) for c in containers))
    for container in containers:
        try:
            watched.append(classify_local(container, engine, images))
        except EngineError as exc:
            watched.append(Watched(container, None, None, Verdict.ERROR, error=str(exc)))
    local = [w for w in watched if _no_pull(w.container, no_pull)]
    apply_no_pull(engine, local)
    judged_locally = {id(w) for w in local}
    to_ask = [
        w.reference
        for w in watched
        if w.verdict is Verdict.FRESH and w.reference and not _no_pull(w.container, no_pull)
    ]
    answers = registry.fetch_digests(to_ask) if to_ask else {}
    for item in watched:
        if item.verdict is Verdict.FRESH and item.reference and id(item) not in judged_locally:
            apply_answer(item, answers.get(item.reference))
    complete_images(engine, watched, settings)
    return watched


def _image_of(
    engine: Engine, image_id: str, images: Mapping[str, ImageAnswer] | None
) -> dict[str, Any] | None:
    """The inspect of image ``image_id``: from ``images`` when it holds it, else asked now.
    Raises EngineError."""
    if images is None or image_id not in images:
        return engine.inspect_image(image_id)
    answer = images[image_id]
    if isinstance(answer, EngineError):
        raise answer
    return answer


def _no_pull(container: dict[str, Any], default: bool) -> bool:
    label = read_bool_label(container, "no-pull")
    return default if label is None else label


def apply_no_pull(engine: Engine, items: Sequence[Watched]) -> None:
    """Judge ``items`` by the image their tag names on this engine, not by the registry.

    Pinned containers stay pinned; a tag missing locally is an ``error`` verdict.
    """
    by_tag: dict[str, ImageAnswer] = {}
    for item in items:
        if item.verdict is Verdict.PINNED or item.reference is None:
            continue
        try:
            if item.image_ref not in by_tag:  # one inspect per tag
                by_tag[item.image_ref] = inspect_images(engine, [item.image_ref])[item.image_ref]
            image = _image_of(engine, item.image_ref, by_tag)
        except EngineError as exc:
            item.verdict, item.error = Verdict.ERROR, str(exc)
            continue
        if image is None:
            item.verdict, item.error = Verdict.ERROR, "no local image for the tag (NO_PULL)"
            continue
        item.error, item.skip_reason = None, None
        item.target_image_id = str(image["Id"])
        digests = [d.split("@", 1)[1] for d in image.get("RepoDigests") or [] if "@" in d]
        item.remote_digest = digests[0] if digests else None
        item.verdict = Verdict.FRESH if item.target_image_id == item.image_id else Verdict.STALE
        log_verdict(item, no_pull=True)


def apply_answer(item: Watched, answer: str | RegistryError | None) -> None:
    """Set the verdict from the registry's answer and log ``image.checked``/``image.stale``."""
    if isinstance(answer, str):
        item.remote_digest = answer
        item.verdict = Verdict.FRESH if answer in item.local_digests else Verdict.STALE
    else:
        item.verdict = Verdict.ERROR
        item.error = str(answer) if answer is not None else "no answer from the registry"
        item.auth_failed = isinstance(answer, RegistryAuthError)
    log_verdict(item, error=item.error)


def log_verdict(item: Watched, **extra: Any) -> None:
    """Log a stale container as ``image.stale`` (info), any other as ``image.checked`` (debug).

    Every container is checked at every poll: "nothing changed" at info would be 144,000 lines a
    day for 500 containers every 5 minutes; ``run.finished`` carries the counts at info.
    """
    fields = {
        "container": item.name,
        "image": item.image_ref,
        "verdict": str(item.verdict),
        "local_digest": item.local_digest,
        "remote_digest": item.remote_digest,
        **extra,
    }
    if item.verdict is Verdict.STALE:
        log.info("image.stale", **fields)
    else:
        log.debug("image.checked", **fields)
