"""Tag policies: which registry tag a container moves to (watchkeeper.versions.candidates)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.versions.candidates import (
    TagFilters,
    TagPolicy,
    TagRegexError,
    allowed_by,
    choose_tag,
    compile_tag_regex,
    parse_policy,
)
from watchkeeper.versions.tags import Version, parse_version

FAST = settings(max_examples=50, deadline=None)
PUSHED = ["1.2.3", "1.2.4", "1.3.0", "2.0.0", "latest"]


def version(tag: str) -> Version:
    """The parsed version of a tag the test knows to be one."""
    parsed = parse_version(tag)
    assert parsed is not None
    return parsed


@pytest.mark.parametrize(
    ("current", "tags", "policy", "expected"),
    [
        ("1.2.3", PUSHED, TagPolicy.PATCH, "1.2.4"),
        ("1.2.3", PUSHED, TagPolicy.MINOR, "1.3.0"),
        ("1.2.3", PUSHED, TagPolicy.MAJOR, "2.0.0"),
        ("1.9", ["1.8", "1.9", "1.10"], TagPolicy.MINOR, "1.10"),
        ("1.9", ["1.8", "1.9", "1.10"], TagPolicy.MAJOR, "1.10"),
        ("v1.2.3", ["1.2.4", "1.3.0"], TagPolicy.MAJOR, None),
        ("v1.2.3", ["1.2.4", "v1.2.4"], TagPolicy.PATCH, "v1.2.4"),
        ("1.2.3-alpine", ["1.2.4", "1.2.5", "1.2.4-alpine"], TagPolicy.PATCH, "1.2.4-alpine"),
        ("1.2.3-alpine", ["1.2.4", "1.3.0"], TagPolicy.MAJOR, None),
        ("10.11.4", ["2021.12.16", "20211216"], TagPolicy.MAJOR, None),
        ("10.11.4", ["2021.12.16", "10.11.5"], TagPolicy.MAJOR, "10.11.5"),
        ("1.2.3", ["1.3.0-rc.1"], TagPolicy.MAJOR, None),
        ("1.2.3", ["1.2.4-rc.1", "1.2.4-beta"], TagPolicy.PATCH, None),
        ("1.3.0-rc.1", ["1.3.0"], TagPolicy.PATCH, "1.3.0"),
        ("1.3.0-rc.1", ["1.3.0-rc.2"], TagPolicy.PATCH, "1.3.0-rc.2"),
        ("1.3.0-rc.1", ["1.3.0-rc.2", "1.3.0"], TagPolicy.MINOR, "1.3.0"),
        ("1.3.0-rc.1", ["1.3.1-rc.1", "1.4.0-rc.1"], TagPolicy.MAJOR, None),
        ("1.3.0-rc.1", ["1.3.0-beta.5"], TagPolicy.MAJOR, None),
    ],
)
def test_choose_tag_must_show_table_expected_tag(
    current: str, tags: list[str], policy: TagPolicy, expected: str | None
) -> None:
    """Every example the issue must show picks the expected tag (or none)."""
    assert choose_tag(current, tags, policy).tag == expected


def test_choose_tag_patch_finds_patch_despite_new_major() -> None:
    """Filtering comes first: a new major never hides the patch release `patch` waits for."""
    choice = choose_tag("1.2.3", ["1.2.4", "2.0.0", "3.0.0"], TagPolicy.PATCH)
    assert choice.tag == "1.2.4"
    assert choice.newest == "3.0.0"


@pytest.mark.parametrize(
    ("current", "tags", "policy", "expected"),
    [
        ("1.2.3.4", ["1.2.3.5", "1.2.4.0", "1.3.0.0"], TagPolicy.PATCH, "1.2.4.0"),
        ("1.9", ["1.10", "1.9-x"], TagPolicy.PATCH, None),
        ("14", ["15", "16"], TagPolicy.MINOR, None),
        ("14", ["15", "16"], TagPolicy.MAJOR, "16"),
        ("1.2.3-ls41", ["1.2.3-ls42", "1.2.3-ls40"], TagPolicy.PATCH, "1.2.3-ls42"),
        ("1.2.3-alpine3.19", ["1.2.4-alpine3.20", "1.2.4"], TagPolicy.PATCH, "1.2.4-alpine3.20"),
        ("1.2", ["1.02", "1.2"], TagPolicy.MAJOR, None),
        ("2021.12.16", ["2022.01.05", "10.11.5"], TagPolicy.MAJOR, "2022.01.05"),
        ("3.13.0b2", ["3.13.0rc1", "3.13.0", "3.14.0a1"], TagPolicy.MINOR, "3.13.0"),
        ("1.2.3", ["1.2.3", "1.2.2", "1.0.0"], TagPolicy.MAJOR, None),
    ],
)
def test_choose_tag_edge_cases_expected_tag(
    current: str, tags: list[str], policy: TagPolicy, expected: str | None
) -> None:
    """4 parts, too few parts for the policy, suffix digits, padded numbers, CalVer, PEP 440."""
    assert choose_tag(current, tags, policy).tag == expected


def test_choose_tag_ranked_highest_first_all_allowed() -> None:
    """`ranked` lists every allowed candidate, highest first, the chosen one leading."""
    choice = choose_tag("1.2.3", [*PUSHED, "1.2.10", "1.2.9"], TagPolicy.MINOR)
    assert choice.ranked == ("1.3.0", "1.2.10", "1.2.9", "1.2.4")
    assert choice.tag == choice.ranked[0]


@pytest.mark.parametrize("policy", [TagPolicy.PATCH, TagPolicy.MINOR, TagPolicy.MAJOR])
def test_choose_tag_non_version_current_follows_digest(policy: TagPolicy) -> None:
    """A current tag that is no version has no candidate whatever the policy: its digest rules."""
    choice = choose_tag("latest", PUSHED, policy)
    assert choice.tag is None
    assert choice.reason == "'latest' is no version: its digest is followed"


def test_choose_tag_none_policy_non_version_never_updates() -> None:
    """`none` on `latest` says it never updates, not that the digest is followed."""
    choice = choose_tag("latest", PUSHED, TagPolicy.NONE)
    assert (choice.tag, choice.reason, choice.newest) == (None, "policy none never updates", None)


def test_choose_tag_digest_policy_reads_no_tags() -> None:
    """`digest` never moves and never needs the tag list."""
    assert not TagPolicy.DIGEST.reads_tags
    choice = choose_tag("1.2.3", iter(()), TagPolicy.DIGEST)
    assert choice.tag is None
    assert choice.reason == "policy digest follows the tag's own digest"


def test_choose_tag_none_policy_shows_newest_for_information() -> None:
    """`none` never moves but names the highest tag of the family for `check`."""
    choice = choose_tag("1.2.3", PUSHED, TagPolicy.NONE)
    assert choice.tag is None
    assert choice.newest == "2.0.0"
    assert TagPolicy.NONE.reads_tags


def test_choose_tag_nothing_newer_newest_is_current() -> None:
    """With nothing newer, the newest tag of the family is the current one."""
    choice = choose_tag("2.0.0", PUSHED, TagPolicy.MAJOR)
    assert (choice.tag, choice.newest) == (None, "2.0.0")
    assert choice.reason == "no newer tag in the family of 2.0.0"


def test_choose_tag_policy_bound_reason_names_newest() -> None:
    """When only the policy holds a newer tag back, the reason names it."""
    choice = choose_tag("1.2.4", ["1.2.4", "2.0.0"], TagPolicy.PATCH)
    assert choice.reason == "no newer tag allowed by patch (newest: 2.0.0)"


def test_choose_tag_include_narrows_candidates() -> None:
    """An include regex keeps only the tags it matches whole."""
    filters = TagFilters(include=re.compile(r"1\.2\.\d+"))
    assert choose_tag("1.2.3", PUSHED, TagPolicy.MAJOR, filters).tag == "1.2.4"


def test_choose_tag_exclude_removes_candidates() -> None:
    """An exclude regex removes the tags it matches whole, and the next one wins."""
    filters = TagFilters(exclude=re.compile(r"2\..*"))
    assert choose_tag("1.2.3", PUSHED, TagPolicy.MAJOR, filters).tag == "1.3.0"


def test_tag_filters_match_whole_tag() -> None:
    """`1.2` as include does not admit `1.2.4`: regexes match the whole tag."""
    filters = TagFilters(include=re.compile(r"1\.2"))
    assert not filters.admits("1.2.4")
    assert filters.admits("1.2")


def test_tag_filters_label_wins_over_setting() -> None:
    """An include label replaces the include setting; the exclude setting stays."""
    setting = TagFilters(
        include=compile_tag_regex(r"1\..*", name="TAG_INCLUDE"),
        exclude=compile_tag_regex(r".*\.0", name="TAG_EXCLUDE"),
    )
    merged = setting.with_labels(include=r"2\..*", exclude=None)
    tags = ["1.9.9", "2.0.0", "2.0.1"]
    assert choose_tag("1.0.1", tags, TagPolicy.MAJOR, setting).tag == "1.9.9"
    assert choose_tag("1.0.1", tags, TagPolicy.MAJOR, merged).tag == "2.0.1"


def test_tag_filters_empty_label_clears_setting() -> None:
    """An empty label removes its setting's regex for that container."""
    setting = TagFilters(include=compile_tag_regex(r"1\..*", name="TAG_INCLUDE"))
    assert setting.with_labels(include="", exclude=None).include is None


def test_tag_filters_invalid_label_names_label() -> None:
    """A label regex that does not compile raises an error naming the label."""
    with pytest.raises(TagRegexError) as caught:
        TagFilters().with_labels(include=None, exclude="(")
    assert caught.value.name == "watchkeeper.tag-exclude"
    assert "watchkeeper.tag-exclude" in str(caught.value)


def test_compile_tag_regex_invalid_setting_names_setting() -> None:
    """A setting regex that does not compile raises a ValueError naming the setting."""
    with pytest.raises(ValueError, match="TAG_INCLUDE"):
        compile_tag_regex("[", name="TAG_INCLUDE")


@pytest.mark.parametrize("text", [None, "", "   "])
def test_compile_tag_regex_blank_none(text: str | None) -> None:
    """No text, or blank text, is no regex."""
    assert compile_tag_regex(text, name="TAG_INCLUDE") is None


@pytest.mark.parametrize(
    ("text", "policy"),
    [("digest", TagPolicy.DIGEST), (" Patch ", TagPolicy.PATCH), ("MAJOR", TagPolicy.MAJOR)],
)
def test_parse_policy_known_value_policy(text: str, policy: TagPolicy) -> None:
    """Policy names are read case- and blank-insensitively."""
    assert parse_policy(text) is policy


def test_parse_policy_unknown_lists_choices() -> None:
    """An unknown policy is a ValueError listing the choices."""
    with pytest.raises(ValueError, match="digest, none, patch, minor, major"):
        parse_policy("semver")


# Properties over generated tag lists drawn from a small space, so that families collide.

PREFIXES = ["", "v"]
SUFFIXES = ["", "-alpine", "-alpine3.1", "-alpine3.2"]
STAGES = ["", "-rc.1", "-rc.2", "-beta", "-alpha.3"]
POLICIES = [TagPolicy.PATCH, TagPolicy.MINOR, TagPolicy.MAJOR]


@st.composite
def version_tags(draw: st.DrawFn, size: int | None = None) -> str:
    """A version tag from a small space, so that generated lists share families."""
    count = size or draw(st.integers(2, 3))
    numbers = draw(st.lists(st.integers(0, 3), min_size=count, max_size=count))
    if draw(st.booleans()) and draw(st.booleans()):
        numbers[0] = draw(st.sampled_from([2021, 2024, 20240101]))
    prefix = draw(st.sampled_from(PREFIXES))
    stage = draw(st.sampled_from(STAGES))
    suffix = draw(st.sampled_from(SUFFIXES))
    return prefix + ".".join(map(str, numbers)) + stage + suffix


tag_lists = st.lists(
    st.one_of(version_tags(), st.sampled_from(["latest", "3f2a9c1", "stable"])), max_size=20
)


@FAST
@given(current=version_tags(), tags=tag_lists, policy=st.sampled_from(POLICIES))
def test_choose_tag_property_choice_allowed_same_family_higher(
    current: str, tags: list[str], policy: TagPolicy
) -> None:
    """A chosen tag is in the list, of the same family, higher, allowed, and a release
    unless the current tag is a pre-release of the same numbers."""
    choice = choose_tag(current, tags, policy)
    if choice.tag is None:
        assert choice.reason
        return
    now, chosen = version(current), version(choice.tag)
    assert choice.tag in tags
    assert chosen.family == now.family
    assert chosen.prefix == now.prefix
    assert chosen.rank > now.rank
    assert allowed_by(policy, now, chosen)
    assert not chosen.is_prerelease or (now.is_prerelease and chosen.parts == now.parts)


@FAST
@given(current=version_tags(), tags=tag_lists, policy=st.sampled_from(POLICIES))
def test_choose_tag_property_nothing_allowed_is_higher(
    current: str, tags: list[str], policy: TagPolicy
) -> None:
    """No tag of the list that the rules admit ranks above the chosen one (or exists at all)."""
    choice = choose_tag(current, tags, policy)
    now = version(current)
    for tag in tags:
        other = parse_version(tag)
        if other is None or other.family != now.family or other.rank <= now.rank:
            continue
        if other.is_prerelease and not (now.is_prerelease and other.parts == now.parts):
            continue
        if not allowed_by(policy, now, other):
            continue
        assert choice.tag is not None
        assert other.rank <= version(choice.tag).rank


@FAST
@given(current=version_tags(), tags=tag_lists, extra=tag_lists, policy=st.sampled_from(POLICIES))
def test_choose_tag_property_monotonic_in_tag_list(
    current: str, tags: list[str], extra: list[str], policy: TagPolicy
) -> None:
    """More tags in the registry never lower the choice."""
    before = choose_tag(current, tags, policy).tag
    after = choose_tag(current, tags + extra, policy).tag
    if before is not None:
        assert after is not None
        assert version(after).rank >= version(before).rank


@FAST
@given(current=version_tags(), tags=tag_lists, data=st.data())
def test_choose_tag_property_order_and_duplicates_irrelevant(
    current: str, tags: list[str], data: st.DataObject
) -> None:
    """The registry's order and repeated tags do not change the choice."""
    shuffled = data.draw(st.permutations(tags + tags[:3]))
    for policy in POLICIES:
        assert choose_tag(current, tags, policy) == choose_tag(current, shuffled, policy)


@FAST
@given(current=version_tags(), tags=tag_lists)
def test_choose_tag_property_policies_nest(current: str, tags: list[str]) -> None:
    """`patch` never goes past `minor`, nor `minor` past `major`; their candidates nest."""
    patch, minor, major = (choose_tag(current, tags, p) for p in POLICIES)
    assert set(patch.ranked) <= set(minor.ranked) <= set(major.ranked)
    assert major.ranked[:1] == ((major.newest,) if major.newest != current else ())


@FAST
@given(
    current=version_tags(),
    tags=tag_lists,
    policy=st.sampled_from(POLICIES),
    pattern=st.sampled_from([r".*alpine.*", r"v.*", r"\d+\.\d+", r".*rc.*"]),
)
def test_choose_tag_property_filters_only_narrow(
    current: str, tags: list[str], policy: TagPolicy, pattern: str
) -> None:
    """Include and exclude only remove candidates; together they split them."""
    regex = re.compile(pattern)
    every = set(choose_tag(current, tags, policy).ranked)
    kept = set(choose_tag(current, tags, policy, TagFilters(include=regex)).ranked)
    dropped = set(choose_tag(current, tags, policy, TagFilters(exclude=regex)).ranked)
    assert kept | dropped == every
    assert not kept & dropped


@FAST
@given(current=version_tags(), tags=tag_lists, policy=st.sampled_from(POLICIES))
def test_choose_tag_property_ranked_strictly_descending(
    current: str, tags: list[str], policy: TagPolicy
) -> None:
    """`ranked` is sorted highest first with no tag twice."""
    ranked = choose_tag(current, tags, policy).ranked
    assert len(set(ranked)) == len(ranked)
    keys = [(version(t).rank, t) for t in ranked]
    assert keys == sorted(keys, reverse=True)
