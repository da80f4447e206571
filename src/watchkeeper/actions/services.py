"""Swarm services: select, check and update the services of a Swarm manager (README, "Swarm").

watchkeeper does not move a service's tasks: it asks Swarm for one service update that changes
only the image, pinned to the registry's digest (``repo:tag@sha256:NEW``), and Swarm's own rolling
update (the service's ``UpdateConfig``: parallelism, order, failure action, monitor) does the work
on every node. What is shared with containers, and why:

- selection: the same labels and settings (``watchkeeper.enable``, LABEL_ENABLE, SCOPE,
  DISABLE_CONTAINERS, names), read on the service's own labels;
- check: the digest pinned in the spec against the registry's digest for ``repo:tag``, asked
  through the same registry client (one HEAD per image);
- update rules: tag policy, minimum age and update window (:mod:`actions.versions`), read on
  the service's labels; a tag move sets ``repo:NEWTAG@sha256:...``, a service that waits is
  ``available`` with the reason, and an unreadable label is ``skipped`` with its error;
- memory: a digest Swarm rolled back, or paused on, is kept in the state store's ``failed``
  section and not tried again until the registry moves on;
- rows: the report's rows (and their log lines, :func:`actions.outcomes.log_outcome`),
  ``kind: "service"`` with the desired ``replicas``.

A service update is never sent when the spec already names the image it would set: Swarm would
redeploy every task for nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from watchkeeper.actions.check import RuleFields, Verdict
from watchkeeper.actions.outcomes import (
    FAILED_SECTION,
    engine_answers,
    log_outcome,
    settled_row,
)
from watchkeeper.actions.policy import monitor_only
from watchkeeper.actions.select import image_matches, label_selected
from watchkeeper.actions.versions import apply_update_rules, row_fields
from watchkeeper.containers.engine import Engine
from watchkeeper.errors import EngineError, RegistryAuthError, RegistryError
from watchkeeper.registry.auth import CredentialStore, to_docker_auth_config
from watchkeeper.registry.digest import RegistryClient
from watchkeeper.registry.reference import Reference, parse_reference
from watchkeeper.registry.tags import Platform
from watchkeeper.report import ContainerOutcome, State
from watchkeeper.settings import Settings
from watchkeeper.state import StateStore
from watchkeeper.swarm.services import (
    ServiceConflictError,
    SwarmServices,
    UpdateResult,
    is_swarm_manager,
    labelled,
    replicas,
    service_image,
    service_name,
)

log = structlog.get_logger()


@dataclass(frozen=True)
class ServiceRun:
    """What the services of one engine need for a run."""

    engine: Engine
    registry: RegistryClient
    credentials: CredentialStore
    settings: Settings
    state: StateStore
    stop: threading.Event = field(default_factory=threading.Event)
    # ``run --once --force`` / ``?force=true``: no update window, no minimum age.
    force: bool = False


@dataclass
class WatchedService(RuleFields):
    """One watched service, its image and the verdict of the check (and, inherited, what the
    update rules found: :class:`actions.versions.Ruled`).

    ``image_ref`` is the spec's image without its digest (``repo:tag``, the user's spelling);
    ``local_digest`` the digest pinned in the spec (None when the spec names none).
    """

    service: dict[str, Any]
    reference: Reference | None
    verdict: Verdict = Verdict.FRESH
    local_digest: str | None = None
    remote_digest: str | None = None
    error: str | None = None
    skip_reason: str | None = None
    auth_failed: bool = False

    @property
    def name(self) -> str:
        return service_name(self.service)

    @property
    def container(self) -> dict[str, Any]:
        """The service in the shape the label readers take (its own labels)."""
        return labelled(self.service)

    @property
    def image(self) -> str:
        """The spec's image as it is (``repo:tag@sha256:...``)."""
        return service_image(self.service)

    @property
    def image_ref(self) -> str:
        return self.image.split("@", 1)[0]

    @property
    def current_tag(self) -> str | None:
        return self.reference.tag if self.reference is not None else None

    @property
    def pull_ref(self) -> str:
        """``repo:tag``, with the new tag when a tag policy moves the service."""
        if self.new_tag is None or self.current_tag is None:
            return self.image_ref
        return f"{self.image_ref.removesuffix(f':{self.current_tag}')}:{self.new_tag}"

    @property
    def pinned_target(self) -> str:
        """The image the update sets: ``repo:tag`` (or ``repo:NEWTAG``) pinned to its digest."""
        return f"{self.pull_ref}@{self.remote_digest}"

    @property
    def platform(self) -> Platform:
        """Whose manifest of an index dates a new image: the first platform of the spec's
        placement (the docker CLI lists the image's own there), else linux/amd64."""
        placement = (self.service["Spec"].get("TaskTemplate") or {}).get("Placement") or {}
        for entry in placement.get("Platforms") or []:
            return Platform(
                os=str(entry.get("OS") or "linux").lower(),
                architecture=str(entry.get("Architecture") or "amd64").lower(),
            )
        return Platform()


def swarm_services(engine: Engine) -> SwarmServices | None:
    """The engine's service adapter when it is a Swarm manager, else None. Raises EngineError."""
    # The answer of the connect when it is recent: a run --once asks docker info once.
    return SwarmServices(engine) if is_swarm_manager(engine.recent_info()) else None


def select_services(
    services: Sequence[dict[str, Any]],
    settings: Settings,
    names: Sequence[str] = (),
    images: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split services into (watched, disabled by DISABLE_CONTAINERS) as containers are split."""
    wanted = {n.lstrip("/") for n in names}
    watched, disabled = [], []
    for service in services:
        view = labelled(service)
        if wanted and view["Name"] not in wanted:
            continue
        if not image_matches(view, images) or not label_selected(view, settings):
            continue
        if view["Name"] in settings.disable_containers:
            disabled.append(service)
        else:
            watched.append(service)
    return watched, disabled


def check_services(
    registry: RegistryClient,
    services: Sequence[dict[str, Any]],
    settings: Settings,
    *,
    force: bool = False,
) -> list[WatchedService]:
    """Ask the registry for each service's ``repo:tag`` (one HEAD per distinct image), then
    apply each one's update rules (tag policy, window, minimum age; ``force`` skips the last
    two)."""
    watched = [classify_service(s) for s in services]
    to_ask = [w.reference for w in watched if w.verdict is Verdict.FRESH and w.reference]
    answers = registry.fetch_digests(to_ask) if to_ask else {}
    for item in watched:
        if item.verdict is Verdict.FRESH and item.reference is not None:
            apply_service_answer(item, answers.get(item.reference))
    apply_update_rules(watched, registry, settings, force=force, kind="service")
    return watched


def classify_service(service: dict[str, Any]) -> WatchedService:
    """The verdicts that need no registry: pinned by the user, no digest in the spec, bad image.

    A spec without a digest (made through the API, not the CLI) cannot say what its tasks run:
    it is never updated, so never restarted when nothing changed (README, "Swarm").
    """
    item = WatchedService(service=service, reference=None)
    try:
        ref = parse_reference(item.image)
    except ValueError as exc:
        item.verdict, item.error = Verdict.ERROR, str(exc)
        return item
    if ref.tag is None:
        item.verdict, item.skip_reason = Verdict.PINNED, "pinned to a digest"
        return item
    item.local_digest = ref.digest
    item.reference = Reference(ref.registry, ref.repository, ref.tag, None)
    if ref.digest is None:
        item.verdict = Verdict.LOCAL_ONLY
        item.skip_reason = "the service's image names no digest; deploy it with the docker CLI"
    return item


def apply_service_answer(item: WatchedService, answer: str | RegistryError | None) -> None:
    """Set the verdict from the registry's answer; log ``image.stale`` or ``image.checked``."""
    if isinstance(answer, str):
        item.remote_digest = answer
        item.verdict = Verdict.FRESH if answer == item.local_digest else Verdict.STALE
    else:
        item.verdict = Verdict.ERROR
        item.error = str(answer) if answer is not None else "no answer from the registry"
        item.auth_failed = isinstance(answer, RegistryAuthError)
    fields = {
        "service": item.name,
        "image": item.image_ref,
        "verdict": str(item.verdict),
        "local_digest": item.local_digest,
        "remote_digest": item.remote_digest,
        "error": item.error,
    }
    if item.verdict is Verdict.STALE:
        log.info("image.stale", **fields)
    else:
        log.debug("image.checked", **fields)


def update_services(
    run: ServiceRun, names: Sequence[str] = (), images: Sequence[str] = ()
) -> list[ContainerOutcome]:
    """Check and update the services of ``run.engine`` when it is a Swarm manager; their rows.

    Raises EngineError when the services cannot be listed (an error of the engine).
    """
    adapter = swarm_services(run.engine)
    if adapter is None:
        return []
    watched_services, disabled = select_services(
        adapter.list_services(), run.settings, names, images
    )
    rows = [_row_of_disabled(s) for s in disabled]
    checked = check_services(run.registry, watched_services, run.settings, force=run.force)
    for item in checked:
        row = (
            update_service(run, adapter, item)
            if item.verdict is Verdict.STALE
            else row_without_update(item)
        )
        log_outcome(row)
        rows.append(row)
    return rows


def _row_of_disabled(service: dict[str, Any]) -> ContainerOutcome:
    item = WatchedService(service=service, reference=None)
    row = service_row(item, State.SKIPPED, reason="disabled")
    log_outcome(row)
    return row


def row_without_update(item: WatchedService) -> ContainerOutcome:
    """The row of a service the check settled (fresh, pinned, no digest, registry error, a
    label of the update rules that cannot be read), as a container's
    (:func:`actions.outcomes.settled_row`)."""
    return settled_row(item, service_row, "service")


def update_service(
    run: ServiceRun, adapter: SwarmServices, item: WatchedService
) -> ContainerOutcome:
    """Ask Swarm to roll one stale service to the registry's digest (of its new tag, when a tag
    policy moves it) and wait for its verdict; a service outside its window or whose new image
    is too young is ``available`` with the reason, and nothing is sent."""
    if monitor_only(run.settings, item.container):
        return service_row(item, State.AVAILABLE, reason="monitor-only")
    if item.waiting is not None:
        return service_row(item, State.AVAILABLE, reason=item.wait_reason)
    if run.state.is_failed(memory_key(run.engine, item), item.remote_digest):
        short = (item.remote_digest or "").removeprefix("sha256:")[:12]
        reason = f"{short} failed or was rolled back before; waiting for a newer image"
        return service_row(item, State.SKIPPED, reason=reason)
    if run.stop.is_set():
        return service_row(item, State.SKIPPED, reason="shutting down")
    started = time.monotonic()
    try:
        result = _send_and_wait(run, adapter, item)
    except (EngineError, RegistryAuthError) as exc:
        row = service_row(item, State.FAILED, error=str(exc), reason="service update refused")
    else:
        row = row_after_update(item, result)
        _remember_or_forget(run, item, row)
    row.duration_s = time.monotonic() - started
    return row


def _send_and_wait(run: ServiceRun, adapter: SwarmServices, item: WatchedService) -> UpdateResult:
    """One service update to the pinned digest, with the registry's credentials; a service
    changed since it was read (its version moved) is read again and tried once more, unless
    it already names that digest.

    Raises EngineError, RegistryAuthError (a credential helper failed).
    """
    assert item.reference is not None  # a stale service has a tag
    creds = run.credentials.lookup(item.reference.registry)
    auth = to_docker_auth_config(creds) if creds else None
    service_id = str(item.service["ID"])
    try:
        adapter.update_image(item.service, item.pinned_target, auth)
    except ServiceConflictError:
        current = adapter.inspect_service(service_id)
        # Someone else already moved it to this digest: sending it again would redeploy it.
        if service_image(current) != item.pinned_target:
            adapter.update_image(current, item.pinned_target, auth)
    log.info(
        "service.update_started",
        service=item.name,
        image=item.image_ref,
        new_tag=item.new_tag,
        local_digest=item.local_digest,
        remote_digest=item.remote_digest,
    )
    return adapter.wait_for_update(service_id, timeout_s=run.settings.service_update_timeout)


def row_after_update(item: WatchedService, result: UpdateResult) -> ContainerOutcome:
    """The row Swarm's verdict gives: ``updated`` only when the spec names the new digest and
    no rollback was seen (Swarm may say ``completed`` once a rollback completed)."""
    message = result.message
    if result.state == "timeout":
        return service_row(item, State.FAILED, reason="timeout", error=message)
    if result.rolled_back or result.state == "rollback_completed":
        return service_row(item, State.ROLLED_BACK, reason=message or "rolled back by Swarm")
    if result.state in ("paused", "rollback_paused"):
        return service_row(item, State.FAILED, reason=message or f"update {result.state}")
    if result.image != item.pinned_target:
        return service_row(item, State.ROLLED_BACK, reason=message or "the spec was put back")
    return service_row(item, State.UPDATED)


def _remember_or_forget(run: ServiceRun, item: WatchedService, row: ContainerOutcome) -> None:
    """Remember the digest Swarm rolled back or paused on; forget it once one went through.

    A timeout is not remembered: Swarm may still finish, and the next check sees its spec.
    """
    key = memory_key(run.engine, item)
    if row.state is State.UPDATED:
        run.state.forget(FAILED_SECTION, key)
    elif row.reason != "timeout" and row.state in (State.ROLLED_BACK, State.FAILED):
        if item.remote_digest is None or not engine_answers(run.engine):
            return
        run.state.put(FAILED_SECTION, key, item.remote_digest)
        log.info(
            "service.digest_remembered",
            service=item.name,
            image=item.image_ref,
            remote_digest=item.remote_digest,
        )


def memory_key(engine: Engine, item: WatchedService) -> str:
    """The state store key of a service: ``<engine>|service:<name>`` (one per service, since
    Swarm rolls back a service, not an image)."""
    return f"{engine.host_label}|service:{item.name}"


def service_row(item: WatchedService, state: State, **extra: Any) -> ContainerOutcome:
    """A report row for one service (``kind: "service"``), from its check; a move to another
    tag adds ``old_tag``/``new_tag`` (:func:`actions.versions.row_fields`)."""
    return ContainerOutcome(
        name=item.name,
        image=item.image_ref,
        state=state,
        old_digest=item.local_digest,
        new_digest=item.remote_digest,
        kind="service",
        replicas=replicas(item.service),
        **{**row_fields(item, state), **extra},
    )


def check_only(
    engine: Engine, registry: RegistryClient, settings: Settings, names: Sequence[str] = ()
) -> list[WatchedService]:
    """``watchkeeper check`` for a Swarm manager's services (none elsewhere): verdicts only.

    Raises EngineError when the services cannot be listed.
    """
    adapter = swarm_services(engine)
    if adapter is None:
        return []
    watched, _ = select_services(adapter.list_services(), settings, names)
    return check_services(registry, watched, settings)
