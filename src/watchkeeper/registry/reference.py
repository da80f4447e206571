"""Image references: parse and normalise ``[registry/]repository[:tag][@digest]``.

A container's ``Config.Image`` is whatever the user typed (``nginx``, ``ghcr.io/a/b:1``,
``127.0.0.1:5000/app@sha256:...``). The registry client needs the registry host, the repository
path it serves and the tag to ask about; deduplication needs one canonical form per image. The
rules follow docker's reference grammar (``distribution/reference``): the first path component is
a registry only when it contains ``.`` or ``:``, is ``localhost``, or has upper-case letters;
everything else is on Docker Hub, where single-name (official) images live under ``library/``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DOCKER_HUB = "docker.io"
DOCKER_HUB_API_HOST = "registry-1.docker.io"
DEFAULT_TAG = "latest"

# Every name by which Docker Hub is known; all normalise to ``docker.io``.
_HUB_ALIASES = frozenset({DOCKER_HUB, "index.docker.io", DOCKER_HUB_API_HOST})
_MAX_NAME_LENGTH = 255

_ALNUM = r"[a-z0-9]+"
_PATH_COMPONENT = re.compile(rf"{_ALNUM}(?:(?:[._]|__|-+){_ALNUM})*")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[a-z][a-z0-9]*(?:[-_+.][a-z][a-z0-9]*)*:[a-zA-Z0-9=_-]{32,}")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha512": 128}
_IMAGE_ID = re.compile(r"sha256:[0-9a-f]{64}|[0-9a-f]{12,64}")


@dataclass(frozen=True)
class Reference:
    """One normalised image reference; hashable, so it can key dicts of results."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None

    @property
    def api_host(self) -> str:
        """The host[:port] that serves the registry API (Docker Hub's differs from its name)."""
        return DOCKER_HUB_API_HOST if self.registry == DOCKER_HUB else self.registry

    @property
    def is_pinned(self) -> bool:
        """True when the reference names a digest: its content cannot change."""
        return self.digest is not None

    @property
    def name(self) -> str:
        """The canonical string, e.g. ``docker.io/library/nginx:latest``."""
        text = f"{self.registry}/{self.repository}"
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    def __str__(self) -> str:
        return self.name


def parse_reference(text: str) -> Reference:
    """Parse and normalise an image reference as docker does.

    Raises:
        ValueError: ``text`` is not a valid reference; the message says which part is wrong.
    """
    original = text
    text = text.strip()
    if not text:
        raise ValueError("invalid image reference: empty string")
    remainder, digest = _split_digest(original, text)
    remainder, tag = _split_tag(original, remainder)
    registry, repository = _split_registry(original, remainder)
    if len(f"{registry}/{repository}") > _MAX_NAME_LENGTH:
        raise ValueError(f"invalid image reference {original!r}: name longer than 255 characters")
    if tag is None and digest is None:
        tag = DEFAULT_TAG
    return Reference(registry=registry, repository=repository, tag=tag, digest=digest)


def is_image_id(text: str) -> bool:
    """True when ``text`` is an image ID (``sha256:<64 hex>`` or 12-64 hex), not a reference.

    A container created from an image ID has no tag to follow, so it is skipped.
    """
    return _IMAGE_ID.fullmatch(text.strip()) is not None


def _split_digest(original: str, text: str) -> tuple[str, str | None]:
    """Split off ``@algorithm:hex``; raises ValueError on a malformed digest."""
    if "@" not in text:
        return text, None
    remainder, _, digest = text.partition("@")
    algorithm, _, encoded = digest.partition(":")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    valid = _DIGEST.fullmatch(digest) is not None
    if expected is not None:
        valid = re.fullmatch(rf"[0-9a-f]{{{expected}}}", encoded) is not None
    if not valid:
        raise ValueError(f"invalid image reference {original!r}: bad digest {digest!r}")
    return remainder, digest


def _split_tag(original: str, text: str) -> tuple[str, str | None]:
    """Split off ``:tag`` (a colon after the last slash); raises ValueError on a bad tag."""
    colon = text.rfind(":")
    if colon <= text.rfind("/"):
        return text, None
    tag = text[colon + 1 :]
    if _TAG.fullmatch(tag) is None:
        raise ValueError(f"invalid image reference {original!r}: bad tag {tag!r}")
    return text[:colon], tag


def _split_registry(original: str, text: str) -> tuple[str, str]:
    """Return (normalised registry, repository); raises ValueError on a bad name."""
    first, slash, rest = text.partition("/")
    is_domain = bool(slash) and (
        "." in first or ":" in first or first == "localhost" or first != first.lower()
    )
    registry, path = (first, rest) if is_domain else (DOCKER_HUB, text)
    if _DOMAIN.fullmatch(registry) is None:
        raise ValueError(f"invalid image reference {original!r}: bad registry {registry!r}")
    _check_path(original, path)
    registry = normalise_registry(registry)
    if registry == DOCKER_HUB and "/" not in path:
        path = f"library/{path}"
    return registry, path


def _check_path(original: str, path: str) -> None:
    """Raise ValueError unless every ``/`` component of the repository path is valid."""
    if not path:
        raise ValueError(f"invalid image reference {original!r}: missing repository name")
    if re.fullmatch(r"[0-9a-f]{64}", path):
        raise ValueError(
            f"invalid image reference {original!r}: a 64-hex string is an image ID, not a name"
        )
    for component in path.split("/"):
        if _PATH_COMPONENT.fullmatch(component) is not None:
            continue
        if _PATH_COMPONENT.fullmatch(component.lower()) is not None:
            raise ValueError(
                f"invalid image reference {original!r}: repository name must be lowercase"
            )
        raise ValueError(f"invalid image reference {original!r}: bad path component {component!r}")


def normalise_registry(host: str) -> str:
    """Lower-case a registry host[:port] and map every Docker Hub alias to ``docker.io``."""
    host = host.lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host
