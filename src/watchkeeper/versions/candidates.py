"""Which registry tag a container moves to under its tag policy.

Policies: ``digest`` (follow the container's own tag, never another one), ``none`` (never
update), and ``patch``, ``minor``, ``major``: move to the highest tag that changes at most that
part of the version. ``patch`` keeps the first two numeric parts, ``minor`` the first one,
``major`` none; so on a 4-part tag ``patch`` may change the third and fourth parts, on a 2-part
tag (``1.9``) ``patch`` changes no number (only a rebuild such as ``1.9-ls41`` to ``1.9-ls42``
moves) and ``minor`` takes ``1.10``, and on a 1-part tag (``14``) only ``major`` moves.

A registry tag is a candidate when all of these hold, each on its own (so the answer never
depends on which other tags exist):

1. it is a version in the current tag's family (same prefix, number of parts, suffix shape and
   scheme: see :mod:`.tags`), ``1.2.3-alpine`` never to ``1.2.4``, ``v1.2.3`` never to ``1.2.4``,
   ``10.11.4`` never to ``2021.12.16``;
2. it is a release, or a pre-release of the very numbers of a current pre-release:
   ``1.2.3`` never to ``1.3.0-rc.1``, but ``1.3.0-rc.1`` to ``1.3.0-rc.2`` or ``1.3.0``;
3. it ranks above the current tag (the same version spelled ``1.02`` is no move);
4. the include regex, when there is one, matches the whole tag, and the exclude regex does not;
5. the policy allows it.

The winner is the highest candidate: filtering comes first, so a new major release never hides
the patch release that ``patch`` is waiting for. A current tag that is no version (``latest``)
has no candidates: its digest is followed whatever the policy.

Include and exclude are Python regexes matched against the whole tag. A label replaces only its
own setting (an include label keeps the setting's exclude); an empty value means no regex, so an
empty label clears its setting.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from watchkeeper.versions.tags import Version, parse_version

INCLUDE_LABEL = "watchkeeper.tag-include"
EXCLUDE_LABEL = "watchkeeper.tag-exclude"


class TagPolicy(StrEnum):
    """How far a container may move from its tag."""

    DIGEST = "digest"
    NONE = "none"
    PATCH = "patch"
    MINOR = "minor"
    MAJOR = "major"

    @property
    def reads_tags(self) -> bool:
        """Whether this policy needs the registry's tag list (``digest`` never does)."""
        return self is not TagPolicy.DIGEST


_KEPT_PARTS = {TagPolicy.PATCH: 2, TagPolicy.MINOR: 1, TagPolicy.MAJOR: 0}


def parse_policy(text: str) -> TagPolicy:
    """Read a ``TAG_POLICY`` value (case and blanks ignored); ValueError names the choices."""
    try:
        return TagPolicy(text.strip().lower())
    except ValueError:
        choices = ", ".join(p.value for p in TagPolicy)
        raise ValueError(f"{text!r} is not a tag policy (use one of {choices})") from None


class TagRegexError(ValueError):
    """An include or exclude regex that does not compile; ``name`` is where it was set."""

    def __init__(self, name: str, text: str, error: re.error) -> None:
        super().__init__(f"{name}: {text!r} is not a valid regex ({error})")
        self.name = name
        self.text = text


def compile_tag_regex(text: str | None, *, name: str) -> re.Pattern[str] | None:
    """Compile one include/exclude regex; None for an absent or blank one.

    ``name`` (``TAG_INCLUDE``, ``watchkeeper.tag-include``...) goes into the error, so that the
    caller can say which setting or label to fix.
    """
    if text is None or not text.strip():
        return None
    try:
        return re.compile(text.strip())
    except re.error as exc:
        raise TagRegexError(name, text, exc) from exc


@dataclass(frozen=True)
class TagFilters:
    """The include/exclude regexes narrowing one container's candidates."""

    include: re.Pattern[str] | None = None
    exclude: re.Pattern[str] | None = None

    def admits(self, tag: str) -> bool:
        """Whether the regexes let this tag be a candidate."""
        if self.include is not None and not self.include.fullmatch(tag):
            return False
        return self.exclude is None or not self.exclude.fullmatch(tag)

    def with_labels(self, include: str | None, exclude: str | None) -> TagFilters:
        """These (the settings' filters) with a container's labels; a label absent is None.

        Raises TagRegexError naming the label when a label's regex does not compile.
        """
        return TagFilters(
            include=self.include
            if include is None
            else compile_tag_regex(include, name=INCLUDE_LABEL),
            exclude=self.exclude
            if exclude is None
            else compile_tag_regex(exclude, name=EXCLUDE_LABEL),
        )


@dataclass(frozen=True)
class Choice:
    """What the tag policy says for one container.

    ``tag`` is the tag to move to (None: stay on the current tag), ``reason`` says why there is
    none, ``ranked`` holds every candidate the policy allows, highest first (``tag`` is the first;
    a minimum age may settle on a lower one), and ``newest`` is the highest tag of the family the
    filters admit whatever the policy's bound (the current tag when nothing is newer), for
    information (``check`` shows it for ``none``).
    """

    tag: str | None
    reason: str | None
    ranked: tuple[str, ...] = field(default=())
    newest: str | None = None


def choose_tag(
    current: str,
    tags: Iterable[str],
    policy: TagPolicy,
    filters: TagFilters | None = None,
) -> Choice:
    """The highest registry tag the policy allows for a container on ``current``."""
    if policy is TagPolicy.DIGEST:
        return Choice(tag=None, reason="policy digest follows the tag's own digest")
    now = parse_version(current)
    if policy is TagPolicy.NONE and now is None:
        return Choice(tag=None, reason="policy none never updates")
    if now is None:
        return Choice(tag=None, reason=f"{current!r} is no version: its digest is followed")
    family = newer_in_family(now, tags, filters or TagFilters())
    newest = family[0].tag if family else current
    if policy is TagPolicy.NONE:
        return Choice(tag=None, reason="policy none never updates", newest=newest)
    ranked = tuple(v.tag for v in family if allowed_by(policy, now, v))
    if ranked:
        return Choice(tag=ranked[0], reason=None, ranked=ranked, newest=newest)
    if family:
        reason = f"no newer tag allowed by {policy.value} (newest: {newest})"
    else:
        reason = f"no newer tag in the family of {current}"
    return Choice(tag=None, reason=reason, newest=newest)


def newer_in_family(current: Version, tags: Iterable[str], filters: TagFilters) -> list[Version]:
    """Every tag that could replace ``current`` under some policy, highest first."""
    found: dict[str, Version] = {}
    for tag in tags:
        version = parse_version(tag)
        if version is not None and is_candidate(current, version, filters):
            found[tag] = version
    return sorted(found.values(), key=lambda v: (v.rank, v.tag), reverse=True)


def is_candidate(current: Version, other: Version, filters: TagFilters) -> bool:
    """Rules 1 to 4: same family, pre-release rule, above the current tag, admitted by regexes."""
    if other.family != current.family or other.rank <= current.rank:
        return False
    if other.is_prerelease and not (current.is_prerelease and other.parts == current.parts):
        return False
    return filters.admits(other.tag)


def allowed_by(policy: TagPolicy, current: Version, other: Version) -> bool:
    """Rule 5: whether ``other`` changes at most the part of the version the policy lets move."""
    kept = _KEPT_PARTS.get(policy)
    return kept is not None and other.parts[:kept] == current.parts[:kept]
