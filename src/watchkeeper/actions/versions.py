"""The update rules of each container: its tag policy, the minimum image age, the update window.

This is the second half of the check (README, "Versions, maturity and windows"): after the digest
check (:mod:`actions.check`) has set every container's verdict, :func:`apply_update_rules` reads
each container's rules (the settings, unless its ``watchkeeper.*`` label says otherwise) and

1. **tag policy** (``patch``, ``minor``, ``major``, ``none``): reads the repository's tags (once
   per repository per run, :mod:`registry.tags`) and asks :func:`versions.choose_tag` for the
   highest allowed one; a move makes the container ``stale`` on that tag (its digest: one HEAD),
   ``none`` never lets it be stale (``pinned``), whatever the digest says;
2. **update window**: a stale container outside its window *waits* (``window``), nothing is read;
3. **minimum age**: the image it would move to is dated (:mod:`registry.tags`, only now that a
   change was seen, kept by digest); too young, it *waits* (``cooldown``); among several tags the
   highest one old enough is taken now (:func:`versions.pick_mature`).

A waiting container is ``available`` in the run, with the reason, and nothing is pulled.
``--force`` (``run --once --force``, ``POST /v1/update?force=true``) skips 2 and 3, never 1.
NO_PULL containers follow their local tag: no tag policy, no age (their images are built here),
but the window applies. A label that cannot be read makes the container's verdict ``error``
with the label named (``label_error``: the row is ``skipped``, nothing is touched, and the run
fails, since only a person can fix it).

Swarm services (:mod:`actions.services`) follow the same rules, read on the service's own
labels: anything with the attributes of :class:`Ruled` is ruled here, a checked container
(:class:`~watchkeeper.actions.check.Watched`) as a checked service.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from watchkeeper.actions.check import Verdict
from watchkeeper.actions.policy import no_pull, tag_policy
from watchkeeper.errors import RegistryAuthError, RegistryError
from watchkeeper.labels import container_labels
from watchkeeper.registry.digest import RegistryClient
from watchkeeper.registry.reference import Reference
from watchkeeper.registry.tags import Platform
from watchkeeper.report import State
from watchkeeper.settings import Settings
from watchkeeper.settings.model import window_timezone
from watchkeeper.settings.values import parse_duration
from watchkeeper.versions import (
    TagFilters,
    TagPolicy,
    UpdateWindow,
    check_age,
    choose_tag,
    compile_tag_regex,
    parse_created,
    parse_version,
    parse_window,
    pick_mature,
)

log = structlog.get_logger()

INCLUDE_LABEL = "watchkeeper.tag-include"
EXCLUDE_LABEL = "watchkeeper.tag-exclude"
MIN_AGE_LABEL = "watchkeeper.min-age"
# Watchtower forks' name for the minimum age; ours wins when both are set.
COOLDOWN_LABEL = "com.centurylinklabs.watchtower.cooldown-delay"
WINDOW_LABEL = "watchkeeper.update-window"
COMPOSE_PROJECT_LABEL = "com.docker.compose.project"
STACK_LABEL = "com.docker.stack.namespace"

WINDOW, COOLDOWN = "window", "cooldown"


class Ruled(Protocol):
    """A checked container or service as the rules read and change it.

    ``container`` is what ``labels.py`` reads (a service's own labels in a container's shape),
    ``platform`` whose manifest of an index dates a new image.
    """

    reference: Reference | None
    verdict: Verdict
    remote_digest: str | None
    error: str | None
    auth_failed: bool
    skip_reason: str | None
    policy: str | None
    candidate_tag: str | None
    new_tag: str | None
    ranked_tags: tuple[str, ...]
    waiting: str | None
    wait_reason: str | None
    rules_note: str | None
    label_error: bool

    @property
    def name(self) -> str: ...
    @property
    def container(self) -> dict[str, Any]: ...
    @property
    def image_ref(self) -> str: ...
    @property
    def current_tag(self) -> str | None: ...
    @property
    def pull_ref(self) -> str: ...
    @property
    def platform(self) -> Platform: ...


@dataclass(frozen=True)
class UpdateRules:
    """One container's rules: the settings, each replaced by its label when set."""

    policy: TagPolicy
    filters: TagFilters
    min_age: float
    window: UpdateWindow | None


def rules_for(settings: Settings, container: dict[str, Any]) -> UpdateRules:
    """The rules of ``container``. Raises ValueError naming the label that cannot be read."""
    labels = container_labels(container)
    policy = tag_policy(settings, container)
    filters = _from_label(
        "", settings_filters(settings.tag_include, settings.tag_exclude).with_labels,
        labels.get(INCLUDE_LABEL), labels.get(EXCLUDE_LABEL),
    )  # fmt: skip
    min_age = settings.min_image_age
    for name in (MIN_AGE_LABEL, COOLDOWN_LABEL):
        if name in labels:
            min_age = _from_label(name, parse_duration, labels[name])
            break
    window_text = settings.update_window
    if WINDOW_LABEL in labels:
        window_text = labels[WINDOW_LABEL].strip() or None
        window = _from_label(WINDOW_LABEL, _window, window_text) if window_text else None
    else:
        window = _window(window_text) if window_text else None
    return UpdateRules(policy=policy, filters=filters, min_age=max(0.0, min_age), window=window)


def _from_label(name: str, parse: Callable[..., Any], *values: Any) -> Any:
    """``parse(*values)``; its ValueError says which label to fix (``label <name>: ...``)."""
    try:
        return parse(*values)
    except ValueError as exc:
        # A regex error already starts with its label's name.
        raise ValueError(f"label {name + ': ' if name else ''}{exc}") from exc


@functools.lru_cache(maxsize=64)
def settings_filters(include: str | None, exclude: str | None) -> TagFilters:
    """TAG_INCLUDE/TAG_EXCLUDE compiled (they were checked when the settings were loaded)."""
    return TagFilters(
        include=compile_tag_regex(include, name="TAG_INCLUDE"),
        exclude=compile_tag_regex(exclude, name="TAG_EXCLUDE"),
    )


def _window(text: str) -> UpdateWindow:
    return _parsed_window(text.strip(), window_timezone())


@functools.lru_cache(maxsize=64)
def _parsed_window(text: str, timezone: str) -> UpdateWindow:
    return parse_window(text, timezone)


def apply_update_rules(
    items: Sequence[Ruled],
    registry: RegistryClient,
    settings: Settings,
    *,
    force: bool = False,
    now: datetime | None = None,
    kind: str = "container",
) -> None:
    """Apply every item's rules to its verdict (see the module docstring), in place.

    ``kind``: ``container`` or ``service``, the key that names an item in the log; NO_PULL is
    for containers only (a service's image is always the registry's).
    """
    moment = now or datetime.now(UTC)
    ruled: list[tuple[Ruled, UpdateRules]] = []
    for item in items:
        if item.reference is None or item.verdict not in (Verdict.FRESH, Verdict.STALE):
            continue
        try:
            rules = rules_for(settings, item.container)
        except ValueError as exc:
            item.verdict, item.error, item.label_error = Verdict.ERROR, str(exc), True
            log.warning("label.invalid", **{kind: item.name}, error=str(exc))
            continue
        item.policy = str(rules.policy)
        ruled.append((item, rules))
    local = {
        id(item) for item, _ in ruled if kind == "container" and no_pull(settings, item.container)
    }
    _apply_tag_policies(registry, [(i, r) for i, r in ruled if id(i) not in local], kind)
    if force:
        return
    dates = _Dates(registry)
    for item, rules in ruled:
        if item.verdict is Verdict.STALE:
            _wait_if_due(item, rules, moment, None if id(item) in local else dates)


# -- 1. tag policies -------------------------------------------------------------------------


def _apply_tag_policies(
    registry: RegistryClient, ruled: list[tuple[Ruled, UpdateRules]], kind: str
) -> None:
    """Choose each item's tag; one tag list per repository, one HEAD per new tag.

    Tags are listed only for a policy that reads them and a current tag that is a version.
    """
    moves: list[Ruled] = []
    for item, rules in ruled:
        ref, current = item.reference, item.current_tag
        if not rules.policy.reads_tags or ref is None or current is None:
            continue
        tags: list[str] = []
        if parse_version(current) is not None:
            try:
                tags = registry.tags.list_tags(ref)
            except RegistryError as exc:
                if rules.policy is not TagPolicy.NONE:
                    item.verdict, item.error = Verdict.ERROR, f"tag list: {exc}"
                    item.auth_failed = isinstance(exc, RegistryAuthError)
                    continue
        choice = choose_tag(current, tags, rules.policy, rules.filters)
        item.rules_note = choice.reason
        if rules.policy is TagPolicy.NONE:
            item.candidate_tag = choice.newest if choice.newest != current else None
            if item.verdict is Verdict.STALE:
                item.verdict, item.skip_reason = Verdict.PINNED, "tag policy none: never updated"
        elif choice.tag is not None:
            item.candidate_tag = item.new_tag = choice.tag
            item.ranked_tags = choice.ranked
            moves.append(item)
    _head_new_tags(registry, moves, kind)


def _head_new_tags(registry: RegistryClient, moves: list[Ruled], kind: str) -> None:
    """The digest of each move's tag (one HEAD per distinct tag); a move is ``stale``."""
    refs = {id(item): _with_tag(item, str(item.new_tag)) for item in moves}
    answers = registry.fetch_digests(refs.values()) if refs else {}
    for item in moves:
        answer = answers.get(refs[id(item)])
        if isinstance(answer, str):
            item.verdict, item.remote_digest, item.skip_reason = Verdict.STALE, answer, None
            log.info(
                "image.stale", **{kind: item.name}, image=item.image_ref, new_tag=item.new_tag,
                remote_digest=answer,
            )  # fmt: skip
        else:
            item.verdict, item.new_tag = Verdict.ERROR, None
            item.error = str(answer) if answer is not None else "no answer from the registry"
            item.auth_failed = isinstance(answer, RegistryAuthError)


def _with_tag(item: Ruled, tag: str) -> Reference:
    assert item.reference is not None
    return replace(item.reference, tag=tag)


# -- 2. and 3. the window and the age -------------------------------------------------------


def _wait_if_due(item: Ruled, rules: UpdateRules, now: datetime, dates: _Dates | None) -> None:
    """Make a stale container wait outside its window or while its new image is too young.

    ``dates`` None: no age (NO_PULL). With several candidate tags the highest one old enough
    is taken; the higher one that is too young is named in ``rules_note``.
    """
    reason = rules.window.waiting_reason(now) if rules.window is not None else None
    if reason is not None:
        item.waiting, item.wait_reason = WINDOW, reason
        return
    if dates is None or rules.min_age <= 0:
        return
    if item.new_tag is None:
        created = dates.created(item, item.current_tag, item.remote_digest)
        verdict = check_age(created, rules.min_age, now)
        if not verdict.old_enough:
            item.waiting, item.wait_reason = COOLDOWN, verdict.reason
        return
    dates.remember(item, item.new_tag, item.remote_digest)
    pick = pick_mature(
        item.ranked_tags,
        lambda tag: dates.created(item, tag, dates.digest(item, tag)),
        rules.min_age,
        now,
    )
    if pick.tag is None:
        item.waiting, item.wait_reason = COOLDOWN, f"{pick.highest} {pick.reason}"
    elif pick.tag != item.new_tag:
        item.rules_note = f"{pick.highest} {pick.reason}; {pick.tag} meanwhile"
        item.new_tag, item.remote_digest = pick.tag, dates.digest(item, pick.tag)


class _Dates:
    """Image dates for one check: each tag's digest asked once, dates kept by the registry
    client by digest. An age that cannot be read is no date (too young); it is logged."""

    def __init__(self, registry: RegistryClient) -> None:
        self._registry = registry
        self._digests: dict[Reference, str | None] = {}

    def remember(self, item: Ruled, tag: str, digest: str | None) -> None:
        """A tag's digest already known (the HEAD of the move's tag)."""
        self._digests[_with_tag(item, tag)] = digest

    def digest(self, item: Ruled, tag: str) -> str | None:
        """The digest of ``tag`` in the container's repository (one HEAD), None on failure."""
        ref = _with_tag(item, tag)
        if ref not in self._digests:
            try:
                self._digests[ref] = self._registry.fetch_remote_digest(ref)
            except RegistryError:
                self._digests[ref] = None  # logged by the client
        return self._digests[ref]

    def created(self, item: Ruled, tag: str | None, digest: str | None) -> datetime | None:
        """When the image ``digest`` (for the container's platform) was created, if known."""
        if digest is None or tag is None:
            return None
        ref = _with_tag(item, tag)
        try:
            created = self._registry.tags.created(ref, digest, item.platform)
        except RegistryError as exc:
            log.warning("registry.created_failed", image=ref.name, digest=digest, error=str(exc))
            return None
        return parse_created(created)


# -- what the rows say -----------------------------------------------------------------------
def row_fields(item: Ruled, state: State) -> dict[str, Any]:
    """A row's ``old_tag``/``new_tag`` when the item moves (or would move) to another tag; an
    ``updated`` one says why it is not on the highest tag, and what a compose or stack file
    needs."""
    if item.new_tag is None:
        return {}
    fields: dict[str, Any] = {"old_tag": item.current_tag, "new_tag": item.new_tag}
    if state is State.UPDATED:
        notes = [note for note in (item.rules_note, compose_note(item)) if note]
        if notes:
            fields["reason"] = "; ".join(notes)
    return fields


def compose_note(item: Ruled) -> str | None:
    """For a compose container (or a stack's service) moved to another tag: the compose (or
    stack) file still names the old one, and deploying it again goes back to it."""
    labels = container_labels(item.container)
    if item.new_tag is None:
        return None
    if COMPOSE_PROJECT_LABEL in labels:
        what, command = "compose file", "docker compose up"
    elif STACK_LABEL in labels:
        what, command = "stack file", "docker stack deploy"
    else:
        return None
    return (
        f"moved to {item.new_tag}: the {what} still names {item.image_ref}; change it to "
        f"{item.pull_ref}, or the next `{command}` goes back to {item.current_tag}"
    )
