"""Version tags: what is a version, its parts, family and order (watchkeeper.versions.tags)."""

from __future__ import annotations

import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.versions.tags import Stage, parse_version

FAST = settings(max_examples=100, deadline=None)
TAG_ALPHABET = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"


@pytest.mark.parametrize(
    ("tag", "prefix", "parts", "stage", "shape"),
    [
        ("1", "", (1,), Stage.RELEASE, ""),
        ("1.2", "", (1, 2), Stage.RELEASE, ""),
        ("1.2.3", "", (1, 2, 3), Stage.RELEASE, ""),
        ("1.2.3.4", "", (1, 2, 3, 4), Stage.RELEASE, ""),
        ("v1.2.3", "v", (1, 2, 3), Stage.RELEASE, ""),
        ("V1.2.3", "V", (1, 2, 3), Stage.RELEASE, ""),
        ("version-1.2", "version-", (1, 2), Stage.RELEASE, ""),
        ("release_1.2", "release_", (1, 2), Stage.RELEASE, ""),
        ("alpine3.19", "alpine", (3, 19), Stage.RELEASE, ""),
        ("1.2.3-alpine", "", (1, 2, 3), Stage.RELEASE, "-alpine"),
        ("1.2.3-alpine3.20", "", (1, 2, 3), Stage.RELEASE, "-alpine#.#"),
        ("1.2.3-ls42", "", (1, 2, 3), Stage.RELEASE, "-ls#"),
        ("16-bookworm", "", (16,), Stage.RELEASE, "-bookworm"),
        ("1.2.3_1", "", (1, 2, 3), Stage.RELEASE, "_#"),
        ("1.2.3-develop", "", (1, 2, 3), Stage.RELEASE, "-develop"),
        ("1.3.0-rc.1", "", (1, 3, 0), Stage.RC, ""),
        ("1.3.0-RC1", "", (1, 3, 0), Stage.RC, ""),
        ("1.3.0-rc", "", (1, 3, 0), Stage.RC, ""),
        ("1.3.0-beta.2", "", (1, 3, 0), Stage.BETA, ""),
        ("1.3.0-alpha1", "", (1, 3, 0), Stage.ALPHA, ""),
        ("1.3.0-pre", "", (1, 3, 0), Stage.PRE, ""),
        ("1.3.0-preview.4", "", (1, 3, 0), Stage.PRE, ""),
        ("1.3.0-dev", "", (1, 3, 0), Stage.DEV, ""),
        ("1.3.0-rc.1-alpine", "", (1, 3, 0), Stage.RC, "-alpine"),
        ("1.3.0-alpine-rc1", "", (1, 3, 0), Stage.RC, "-alpine"),
        ("3.13.0rc1", "", (3, 13, 0), Stage.RC, ""),
        ("3.13.0b2", "", (3, 13, 0), Stage.BETA, ""),
        ("3.13.0a6", "", (3, 13, 0), Stage.ALPHA, ""),
        ("3.13.0rc1-alpine3.20", "", (3, 13, 0), Stage.RC, "-alpine#.#"),
        ("2021.12.16", "", (2021, 12, 16), Stage.RELEASE, ""),
        ("20211216", "", (20211216,), Stage.RELEASE, ""),
    ],
)
def test_parse_version_table_reads_parts(
    tag: str, prefix: str, parts: tuple[int, ...], stage: Stage, shape: str
) -> None:
    """Each tag of the table reads as its prefix, numbers, pre-release stage and suffix shape."""
    version = parse_version(tag)
    assert version is not None
    assert (version.prefix, version.parts, version.stage, version.suffix_shape) == (
        prefix,
        parts,
        stage,
        shape,
    )
    assert version.tag == tag


@pytest.mark.parametrize(
    "tag",
    [
        "latest",
        "stable",
        "edge",
        "main",
        "3f2a9c1",
        "abc1234",
        "0123456789abcdef0123456789abcdef01234567",
        "sha256-" + "a1" * 32 + ".sig",
        "sha256-" + "b2" * 32 + ".att",
        "sha256-" + "c3" * 32,
        "1.2.3.4.5",
        "1234abc",
        "1.0a",
        "1.2.3-",
        "1.2.3..",
        "-1.2.3",
        "1.2.3 ",
        "",
    ],
)
def test_parse_version_non_versions_none(tag: str) -> None:
    """Names, hashes, signature tags, five parts and stray letters are no versions."""
    assert parse_version(tag) is None


@pytest.mark.parametrize(
    ("tag", "scheme"),
    [
        ("10.11.4", "plain"),
        ("999.1", "plain"),
        ("1000.1", "plain"),
        ("2021.12.16", "year"),
        ("1999.1", "year"),
        ("20211216", "long"),
        ("12345", "long"),
    ],
)
def test_version_scheme_year_long_plain(tag: str, scheme: str) -> None:
    """A 4-digit 19xx/20xx first part is a year, more than 4 digits is long, else plain."""
    version = parse_version(tag)
    assert version is not None
    assert version.scheme == scheme


def test_version_family_calver_differs_from_semver() -> None:
    """`10.11.4` and `2021.12.16` are different families although both have 3 parts."""
    semver, calver = parse_version("10.11.4"), parse_version("2021.12.16")
    assert semver is not None
    assert calver is not None
    assert semver.family != calver.family


@pytest.mark.parametrize(
    ("same", "other"),
    [
        ("1.2.3-alpine3.19", "1.2.4-alpine3.20"),
        ("1.3.0-rc.1", "1.3.0"),
        ("1.3.0-rc.1-alpine", "1.3.0-alpine"),
        ("v1.2.3", "v9.0.0"),
        ("1.2.3-ls41", "1.2.3-ls42"),
    ],
)
def test_version_family_same_when_shape_matches(same: str, other: str) -> None:
    """Digits in the suffix and a pre-release marker do not change the family."""
    first, second = parse_version(same), parse_version(other)
    assert first is not None
    assert second is not None
    assert first.family == second.family


@pytest.mark.parametrize(
    ("same", "other"),
    [
        ("1.2.3-alpine", "1.2.4"),
        ("v1.2.3", "1.2.4"),
        ("1.2.3", "1.2.3.1"),
        ("1.2", "1.2.0"),
        ("1.2.3-alpine", "1.2.3-alpine3.19"),
        ("1.2.3-alpine", "1.2.3-bookworm"),
        ("V1.2.3", "v1.2.3"),
    ],
)
def test_version_family_differs_on_prefix_parts_shape(same: str, other: str) -> None:
    """Another prefix, number of parts or suffix shape is another family."""
    first, second = parse_version(same), parse_version(other)
    assert first is not None
    assert second is not None
    assert first.family != second.family


@pytest.mark.parametrize(
    "ascending",
    [
        ["1.9", "1.10", "1.11", "2.0", "10.0"],
        ["1.3.0-dev", "1.3.0-alpha.1", "1.3.0-beta", "1.3.0-beta.2", "1.3.0-pre", "1.3.0-rc.1"],
        ["1.3.0-rc.1", "1.3.0-rc.2", "1.3.0-rc.10", "1.3.0", "1.3.1"],
        ["1.2.3-ls9", "1.2.3-ls10", "1.2.4-ls1"],
        ["3.13.0a6", "3.13.0b2", "3.13.0rc1", "3.13.0"],
    ],
)
def test_version_rank_orders_numbers_then_stage_then_suffix(ascending: list[str]) -> None:
    """Numbers compare as numbers, a release outranks its pre-releases, then suffix digits."""
    ranks = []
    for tag in ascending:
        version = parse_version(tag)
        assert version is not None
        ranks.append(version.rank)
    assert ranks == sorted(ranks)
    assert len(set(ranks)) == len(ranks)


def test_version_rank_leading_zeros_equal() -> None:
    """`1.02` and `1.2` are the same version spelled twice."""
    padded, plain = parse_version("1.02"), parse_version("1.2")
    assert padded is not None
    assert plain is not None
    assert padded.rank == plain.rank


@FAST
@given(st.text(alphabet=TAG_ALPHABET, max_size=128))
def test_parse_version_any_tag_never_raises(tag: str) -> None:
    """Any tag-shaped text parses to a version or None, and a version keeps the tag."""
    version = parse_version(tag)
    assert version is None or (version.tag == tag and 1 <= len(version.parts) <= 4)


@FAST
@given(
    prefix=st.sampled_from(["", "v", "version-", "r"]),
    parts=st.lists(st.integers(0, 99999), min_size=1, max_size=4),
    suffix=st.sampled_from(["", "-alpine", "-alpine3.19", "-bookworm", "-ls7"]),
)
def test_parse_version_built_tag_reads_back(prefix: str, parts: list[int], suffix: str) -> None:
    """A tag built from a prefix, numbers and a suffix reads back as exactly those."""
    version = parse_version(prefix + ".".join(map(str, parts)) + suffix)
    assert version is not None
    assert version.prefix == prefix
    assert version.parts == tuple(parts)
    assert version.stage is Stage.RELEASE


@pytest.mark.parametrize(
    "tag", ["a" * 120 + "1", "a-" * 60 + "1", "1." + "-a" * 60 + "!", "v" * 127, "1" + ".a" * 60]
)
def test_parse_version_pathological_tag_fast(tag: str) -> None:
    """Long, nearly matching tags are parsed in linear time (no regex backtracking blow-up)."""
    started = time.perf_counter()
    parse_version(tag)
    assert time.perf_counter() - started < 0.05
