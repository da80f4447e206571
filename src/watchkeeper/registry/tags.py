"""What the update policies ask a registry besides a digest: its tags and an image's age.

- **Tags** (tag policies): ``GET /v2/<repo>/tags/list?n=1000``, then every page its ``Link:
  <...>; rel="next"`` header names (resolved against the registry, as Docker Hub and the CNCF
  registry send it relative), until there is none. Asked once per repository per run
  (:meth:`RegistryTags.new_run` starts a run), however many containers and engines use it.
- **Created** (minimum image age): the ``created`` of an image's config, read with a ``GET`` of
  the manifest by digest (for an index, then of the manifest of the engine's platform) and a
  ``GET`` of its config blob, never a layer. Read only for a digest a container would move to,
  and kept by digest for the life of the process (a digest's content never changes).

Both go through :meth:`RegistryClient.request`: the same TLS, credentials, pull token and
request counts as the ``HEAD``. Failures are RegistryError (RegistryAuthError for credentials);
the caller decides (a tag list that cannot be read is the container's error; an age that cannot
be read counts as too young).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import structlog

from watchkeeper.errors import RegistryError
from watchkeeper.registry.reference import Reference

log = structlog.get_logger()

PAGE_SIZE = 1000
MAX_PAGES = 200
MAX_CACHED_DATES = 4096
INDEX_MEDIA_TYPES = frozenset(
    {
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.index.v1+json",
    }
)


@dataclass(frozen=True)
class Platform:
    """The platform whose manifest of an index the engine pulls (its image's ``Os``...)."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    @classmethod
    def of_image(cls, image: dict[str, Any] | None) -> Platform:
        """The platform of an inspected image (what the engine pulled for it before)."""
        image = image or {}
        return cls(
            os=str(image.get("Os") or "linux"),
            architecture=str(image.get("Architecture") or "amd64"),
            variant=str(image["Variant"]) if image.get("Variant") else None,
        )


class RegistryRequests(Protocol):
    """What the tags need of the registry client (``RegistryClient.request``, which owns them):
    one request about a repository with its TLS, credentials and pull token."""

    def request(
        self, ref: Reference, method: str, path: str, accept: str = ...
    ) -> httpx.Response: ...


class RegistryTags:
    """Tag lists and image dates of one registry client; safe to use from many threads."""

    def __init__(self, client: RegistryRequests) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._key_locks: dict[Hashable, threading.Lock] = {}
        self._tags: dict[tuple[str, str], list[str] | RegistryError] = {}
        self._dates: dict[tuple[str, Platform], str | None] = {}

    def new_run(self) -> None:
        """Forget the tag lists: the next run asks again (image dates are kept)."""
        with self._lock:
            self._tags.clear()

    def list_tags(self, ref: Reference) -> list[str]:
        """Every tag of ``ref``'s repository, all pages, once per run (an error too).

        Raises:
            RegistryError: the list could not be read (RegistryAuthError for credentials).
        """
        key = (ref.registry, ref.repository)
        with self._lock_for(("tags", key)):
            with self._lock:
                known = self._tags.get(key)
            if known is None:
                try:
                    known = self._fetch_tags(ref)
                except RegistryError as exc:
                    log.warning("registry.tags_failed", image=ref.name, error=str(exc))
                    known = exc
                with self._lock:
                    self._tags[key] = known
        if isinstance(known, RegistryError):
            raise known
        return list(known)

    def created(self, ref: Reference, digest: str, platform: Platform) -> str | None:
        """The ``created`` of the config of ``digest`` in ``ref``'s repository (None: absent).

        For an index, the manifest of ``platform`` is read (None when it has none). Kept by
        digest; an error is not kept, so the next run asks again.

        Raises:
            RegistryError: a manifest or the config could not be read.
        """
        key = (digest, platform)
        with self._lock_for(("created", key)):
            with self._lock:
                if key in self._dates:
                    return self._dates[key]
            created = self._fetch_created(ref, digest, platform)
            with self._lock:
                if len(self._dates) >= MAX_CACHED_DATES:
                    self._dates.clear()
                self._dates[key] = created
            return created

    # -- the requests ---------------------------------------------------------------------

    def _fetch_tags(self, ref: Reference) -> list[str]:
        """Follow ``rel="next"`` from the first page to the last."""
        tags: list[str] = []
        path: str | None = f"/v2/{ref.repository}/tags/list?n={PAGE_SIZE}"
        seen: set[str] = set()
        while path is not None:
            if path in seen or len(seen) >= MAX_PAGES:
                raise RegistryError(f"{ref.name}: the tag list does not end (page {path!r})")
            seen.add(path)
            response = self._client.request(ref, "GET", path, accept="application/json")
            if response.status_code == 404:
                raise RegistryError(f"{ref.name}: repository not found on {ref.registry}")
            body = _json(ref, response, "the tag list")
            tags += [str(tag) for tag in body.get("tags") or []]
            path = response.links.get("next", {}).get("url")
        log.debug("registry.tags_listed", image=ref.name, tags=len(tags), pages=len(seen))
        return tags

    def _fetch_created(self, ref: Reference, digest: str, platform: Platform) -> str | None:
        """Manifest (and the platform's manifest of an index), then the config's ``created``."""
        manifest = self._manifest(ref, digest)
        if _is_index(manifest):
            chosen = pick_platform(manifest, platform)
            if chosen is None:
                return None
            manifest = self._manifest(ref, chosen)
        config_digest = (manifest.get("config") or {}).get("digest")
        if not isinstance(config_digest, str):
            return None
        response = self._client.request(
            ref, "GET", f"/v2/{ref.repository}/blobs/{config_digest}", accept="*/*"
        )
        created = _json(ref, response, "the image config").get("created")
        return created if isinstance(created, str) else None

    def _manifest(self, ref: Reference, digest: str) -> dict[str, Any]:
        response = self._client.request(ref, "GET", f"/v2/{ref.repository}/manifests/{digest}")
        return _json(ref, response, f"manifest {digest[:19]}")

    def _lock_for(self, key: Hashable) -> threading.Lock:
        with self._lock:
            return self._key_locks.setdefault(key, threading.Lock())


def pick_platform(index: dict[str, Any], platform: Platform) -> str | None:
    """The digest of the index's manifest for ``platform`` (the variant when both name one)."""
    fitting = []
    for entry in index.get("manifests") or []:
        wanted = entry.get("platform") or {}
        if (wanted.get("os"), wanted.get("architecture")) != (platform.os, platform.architecture):
            continue
        variant = wanted.get("variant")
        if platform.variant and variant and variant != platform.variant:
            continue
        fitting.append((variant == platform.variant, str(entry.get("digest") or "")))
    fitting = [item for item in fitting if item[1]]
    if not fitting:
        return None
    return max(fitting, key=lambda item: item[0])[1]


def _is_index(manifest: dict[str, Any]) -> bool:
    return manifest.get("mediaType") in INDEX_MEDIA_TYPES or (
        "manifests" in manifest and "config" not in manifest
    )


def _json(ref: Reference, response: Any, what: str) -> dict[str, Any]:
    """The JSON object of a 2xx answer. Raises RegistryError for anything else."""
    if not response.is_success:
        raise RegistryError(
            f"{ref.name}: {ref.registry} answered HTTP {response.status_code} for {what}"
        )
    try:
        body = json.loads(response.content)
    except ValueError as exc:
        raise RegistryError(f"{ref.name}: {what} is not JSON") from exc
    if not isinstance(body, dict):
        raise RegistryError(f"{ref.name}: {what} is not a JSON object")
    return body
