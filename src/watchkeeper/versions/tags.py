"""Version tags: what a tag such as ``v1.2.3-alpine`` is made of, and how two of them compare.

A tag is a version when it reads as ``[prefix]N[.N[.N[.N]]][pre-release][suffix]``:

- prefix: letters, optionally joined or ended by ``-``, ``_`` or ``.`` (``v``, ``version-``,
  ``release_``); case matters (``V1.2`` and ``v1.2`` are different prefixes);
- 1 to 4 numeric parts, compared as numbers (``1.10`` > ``1.9``; ``1.02`` equals ``1.2``);
- an optional pre-release marker: ``dev``, ``alpha``, ``beta``, ``pre``/``preview`` or ``rc``,
  optionally numbered (``-rc.1``, ``-beta2``, ``_rc_3``), either as one ``-``/``_``/``.``
  separated piece of the suffix or stuck to the numbers (``3.13.0rc1``, and Python's ``a1``/``b2``
  only when numbered: ``3.13.0b2``); case does not matter;
- an optional suffix: the rest, starting with ``-``, ``_``, ``.`` or ``+`` and a letter or digit
  (``-alpine``, ``-bookworm``, ``-ls42``, ``-alpine3.20``). Its *shape* is the suffix without
  the pre-release marker and with every run of digits standing for any number: ``-alpine3.19``
  and ``-alpine3.20`` have the same shape, ``-alpine`` another one.

Not versions: a tag without digits (``latest``, ``stable``); a 7-64 character hex string with
letters and digits (a commit: ``3f2a9c1``); a signature, attestation or SBOM tag
(``sha256-<hex>.sig``); a fifth numeric part (``1.2.3.4.5``); letters stuck to the numbers that
are not a pre-release marker (``1234abc``, ``1.0a``); a suffix that is only a separator.

A version's *scheme* is ``year`` when its first part has 4 digits starting with ``19`` or ``20``,
``long`` when it has more than 4 digits (a date, a build number), else ``plain``. Two versions are
in the same *family* when they have the same prefix, number of parts, suffix shape and scheme, so
``1.2.3-alpine`` and ``1.2.4`` are different families, and ``10.11.4`` and ``2021.12.16`` too.

Order within a family: the numeric parts; then a release above its own pre-releases
(``dev`` < ``alpha`` < ``beta`` < ``pre`` < ``rc`` < release, then the marker's number, none
counting as 0); then the suffix's numbers (``1.2.3-ls42`` > ``1.2.3-ls41``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import IntEnum

_HASH = re.compile(r"[0-9a-f]{7,64}")
_SIGNATURE = re.compile(r"sha256[-:_]", re.IGNORECASE)
_SHAPE = re.compile(r"(?P<prefix>\D*)(?P<numbers>\d+(?:\.\d+){0,3})(?P<rest>.*)", re.DOTALL)
_PREFIX = re.compile(r"(?:[A-Za-z]+(?:[-_.][A-Za-z]+)*[-_.]?)?")
_STUCK_MARKER = re.compile(
    r"(?:(?P<word>alpha|beta|preview|pre|rc|dev)(?P<word_n>\d*)|(?P<letter>[ab])(?P<letter_n>\d+))"
    r"(?=$|[-_.+])",
    re.IGNORECASE,
)
_PIECE_MARKER = re.compile(
    r"[-_.+](?P<word>alpha|beta|preview|pre|rc|dev)(?:[._]?(?P<word_n>\d+))?(?=$|[-_.+])",
    re.IGNORECASE,
)
_SUFFIX = re.compile(r"[-_.+][A-Za-z0-9][A-Za-z0-9_.+-]*")
_DIGITS = re.compile(r"\d+")


class Stage(IntEnum):
    """Where a tag stands on the way to a release; a release outranks its pre-releases."""

    DEV = 0
    ALPHA = 1
    BETA = 2
    PRE = 3
    RC = 4
    RELEASE = 5


_STAGES = {
    "dev": Stage.DEV,
    "alpha": Stage.ALPHA,
    "a": Stage.ALPHA,
    "beta": Stage.BETA,
    "b": Stage.BETA,
    "pre": Stage.PRE,
    "preview": Stage.PRE,
    "rc": Stage.RC,
}


@dataclass(frozen=True)
class Version:
    """A tag read as a version; ``tag`` is the registry's spelling, kept to name it back."""

    tag: str
    prefix: str
    parts: tuple[int, ...]
    stage: Stage
    stage_number: int
    suffix_shape: str
    suffix_numbers: tuple[int, ...]
    first_digits: int

    @property
    def is_prerelease(self) -> bool:
        """True for ``-rc.1``, ``-beta``, ``b2``... tags."""
        return self.stage is not Stage.RELEASE

    @property
    def scheme(self) -> str:
        """``year``, ``long`` or ``plain``: a change of scheme is never an update."""
        if self.first_digits > 4:
            return "long"
        if self.first_digits == 4 and self.parts[0] // 100 in (19, 20):
            return "year"
        return "plain"

    @property
    def family(self) -> tuple[str, int, str, str]:
        """What a candidate must share with the current tag to replace it."""
        return (self.prefix, len(self.parts), self.suffix_shape, self.scheme)

    @property
    def rank(self) -> tuple[tuple[int, ...], int, int, tuple[int, ...]]:
        """The order within a family; equal ranks are the same version spelled differently."""
        return (self.parts, int(self.stage), self.stage_number, self.suffix_numbers)


def parse_version(tag: str) -> Version | None:
    """The version a tag stands for, or None when the tag is no version (``latest``, a hash)."""
    if _HASH.fullmatch(tag) and not tag.isdigit() and re.search(r"\d", tag):
        return None
    if _SIGNATURE.match(tag):
        return None
    match = _SHAPE.fullmatch(tag)
    if match is None or not _PREFIX.fullmatch(match["prefix"]):
        return None
    rest = match["rest"]
    if re.match(r"\.\d", rest):
        return None
    stage, stage_number, suffix = _split_marker(rest)
    if suffix is None:
        return None
    numbers = match["numbers"].split(".")
    return Version(
        tag=tag,
        prefix=match["prefix"],
        parts=tuple(int(n) for n in numbers),
        stage=stage,
        stage_number=stage_number,
        suffix_shape=_DIGITS.sub("#", suffix),
        suffix_numbers=tuple(int(n) for n in _DIGITS.findall(suffix)),
        first_digits=len(numbers[0]),
    )


def _split_marker(rest: str) -> tuple[Stage, int, str | None]:
    """Take the pre-release marker out of what follows the numbers; None when that is no suffix."""
    stuck = _STUCK_MARKER.match(rest)
    if stuck is not None:
        word = stuck["word"] or stuck["letter"]
        number = stuck["word_n"] or stuck["letter_n"] or "0"
        suffix = rest[stuck.end() :]
        if suffix and not _SUFFIX.fullmatch(suffix):
            return Stage.RELEASE, 0, None
        return _STAGES[word.lower()], int(number), suffix
    if rest and not _SUFFIX.fullmatch(rest):
        return Stage.RELEASE, 0, None
    piece = _PIECE_MARKER.search(rest)
    if piece is None:
        return Stage.RELEASE, 0, rest
    suffix = rest[: piece.start()] + rest[piece.end() :]
    return _STAGES[piece["word"].lower()], int(piece["word_n"] or "0"), suffix
