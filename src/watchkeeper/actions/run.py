"""One run: select, check, update, clean up, and return the Report (README, "The report").

The run is the unit the scheduler, the API and ``run --once`` all trigger; it logs
``run.started`` and exactly one ``run.finished`` with the counts. An engine that fails during
the run (its containers cannot be listed, say) is an error of the run, never a silent gap: it
gets an ``error`` entry in the report's ``engines`` (``engine.failed`` in the log), counts in
``engine_errors``, and the other engines go on.

Engines are handled in parallel, at most HOST_CONCURRENCY at a time, each under its own lock
(README, "Many hosts"): an engine that is down, busy with another watchkeeper, refuses TLS or
stops answering is that engine's ``error`` (``engine.unreachable``), never a reason to leave the
others alone, and costs the run at most ENGINE_TIMEOUT per call. It is connected again at the
next run (``engine.recovered`` when it answers). The registry client is shared: inside a run
each distinct image is asked for once, however many engines run it.
"""

from __future__ import annotations

import contextvars
import threading
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import structlog

from watchkeeper.actions.check import Verdict, Watched, check_containers, select_on_engine
from watchkeeper.actions.lifecycle import run_post_check_hooks, run_pre_check_hooks
from watchkeeper.actions.outcomes import UpdateContext
from watchkeeper.actions.recover import recover_from_whole_list, recover_swaps
from watchkeeper.actions.services import ServiceRun, update_services
from watchkeeper.actions.update import outcome_without_update, update_stale
from watchkeeper.actions.versions import apply_update_rules
from watchkeeper.containers.endpoints import EngineHandle
from watchkeeper.containers.engine import Engine
from watchkeeper.errors import EngineError, EngineUnreachableError
from watchkeeper.labels import container_name
from watchkeeper.locks import EngineLockTable, LockBusyError
from watchkeeper.metrics import Metrics
from watchkeeper.registry.auth import CredentialStore
from watchkeeper.registry.digest import RegistryClient
from watchkeeper.report import ContainerOutcome, EngineOutcome, EngineState, Report, State
from watchkeeper.settings import Settings
from watchkeeper.state import StateStore

log = structlog.get_logger()


@dataclass
class Services:
    """The long-lived adapters and memories the runs use, all built once by
    :func:`watchkeeper.daemon.build_services` (``state``: failed and notified digests)."""

    settings: Settings
    engines: list[EngineHandle]
    registry: RegistryClient
    credentials: CredentialStore
    state: StateStore
    metrics: Metrics
    stop: threading.Event = field(default_factory=threading.Event)
    # One lock per engine for the whole process (runs and startup recovery).
    locks: EngineLockTable = field(init=False)

    def __post_init__(self) -> None:
        self.locks = EngineLockTable(self.settings.state_dir)


def check_engine(
    services: Services,
    engine: Engine,
    names: Sequence[str],
    images: Sequence[str] = (),
    *,
    force: bool = False,
    containers: list[dict[str, Any]] | None = None,
) -> tuple[list[Watched], list[ContainerOutcome]]:
    """Check one engine's containers from its container list: (watched, skipped outcomes).

    ``containers``: the list already read (:meth:`Engine.list_views`), else it is read now.
    The update rules (tag policy, window, minimum age) follow the digest check; ``force``
    ignores the window and the age.
    """
    selected, skipped = select_on_engine(engine, services.settings, names, images, containers)
    outcomes = []
    for container, reason in skipped:
        log.info("container.skipped", container=container_name(container), reason=reason)
        outcomes.append(
            ContainerOutcome(
                name=container_name(container),
                image=str(container["Config"]["Image"]),
                state=State.SKIPPED,
                reason=reason,
                host=engine.host_label,
            )
        )
    # NO_PULL judges by the local tag: the registry is not asked at all.
    watched = check_containers(engine, services.registry, selected, services.settings)
    apply_update_rules(watched, services.registry, services.settings, force=force)
    return watched, outcomes


def run_once(
    services: Services,
    names: Sequence[str] = (),
    trigger: str = "schedule",
    images: Sequence[str] = (),
    *,
    force: bool = False,
) -> Report:
    """Do one full run over every engine and return its report; never raises for one container.

    ``names`` and ``images`` (``REPO[:TAG]``, the API's filter) restrict the run; ``force``
    (``run --once --force``, ``?force=true``) updates outside UPDATE_WINDOW and before
    MIN_IMAGE_AGE, never past a tag policy.
    """
    run_id = uuid.uuid4().hex[:12]
    report = Report(host=services.settings.host_name)
    with structlog.contextvars.bound_contextvars(run_id=run_id):
        log.info(
            "run.started",
            trigger=trigger,
            names=list(names) or None,
            images=list(images) or None,
            force=force or None,
        )
        services.registry.tags.new_run()  # tag lists are read once per run
        with services.registry.shared_run():
            passes = _in_parallel(services, services.engines, _engine_pass, names, images, force)
        for outcomes, engine_outcome in passes:
            for outcome in outcomes:
                report.add(outcome)
            report.add_engine(engine_outcome)
        report.finish()
        log.info(
            "run.finished",
            trigger=trigger,
            duration_s=round(report.duration_s, 3),
            **report.counts(),
        )
    return report


def _in_parallel(
    services: Services, handles: Sequence[EngineHandle], work: Any, *args: Any
) -> list[Any]:
    """``work(services, handle, *args)`` for every engine, HOST_CONCURRENCY at a time, in order.

    Each thread runs in a copy of the caller's context, so its log lines carry the run's ID.
    """
    if not handles:
        return []
    workers = min(services.settings.host_concurrency, len(handles))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="engine") as pool:
        futures = [
            pool.submit(contextvars.copy_context().run, work, services, handle, *args)
            for handle in handles
        ]
        return [future.result() for future in futures]


def connect_engine(handle: EngineHandle) -> Engine:
    """The handle's engine, connected if needed: ``engine.unreachable`` when it does not
    answer, ``engine.recovered`` when it answers after it did not. Raises EngineUnreachableError."""
    if handle.just_failed:
        handle.just_failed = False
        raise EngineUnreachableError(handle.last_error or handle.url)
    try:
        engine = handle.connect()
    except EngineUnreachableError as exc:
        handle.down, handle.last_error = True, str(exc)
        log.error("engine.unreachable", engine=handle.name, url=handle.url, error=str(exc))
        raise
    if handle.down:
        handle.down = False
        log.info("engine.recovered", engine=handle.name, url=handle.url)
    return engine


def _engine_pass(
    services: Services,
    handle: EngineHandle,
    names: Sequence[str],
    images: Sequence[str],
    force: bool = False,
) -> tuple[list[ContainerOutcome], EngineOutcome]:
    """One engine's part of a run: connect, take its lock, recover once, check and update.

    The check reads the container list recovery read when nothing moved since: recovery in this
    pass (an engine down at start), or ``run --once``'s startup recovery, whose lock is kept.
    Every failure that ends it (unreachable, busy, failing mid-run) is the engine's ``error``;
    the adapter is dropped after one, so the next run connects afresh.
    """
    unanswered = EngineOutcome(handle.name, EngineState.ERROR, url=handle.url)
    try:
        engine = connect_engine(handle)
    except EngineUnreachableError as exc:
        unanswered.error = str(exc)
        return [], unanswered
    settings = services.settings
    try:
        with services.locks.held(engine, settings.lock_timeout, services.stop):
            listed = _recover_if_due(services, handle, engine, names, whole_list=True)
            if listed is None:
                listed = handle.take_listed()
            outcomes, outcome = run_engine(
                services, engine, names, images, force=force, listed=listed
            )
    except LockBusyError as exc:
        log.warning("engine.busy", engine=handle.name, reason=str(exc), pid=exc.holder)
        return [], _engine_outcome(engine, error=str(exc))
    if outcome.state is EngineState.ERROR:
        handle.drop()
    for row in outcomes:
        row.host = handle.name
    return outcomes, outcome


def _recover_if_due(
    services: Services,
    handle: EngineHandle,
    engine: Engine,
    names: Sequence[str],
    *,
    whole_list: bool = False,
) -> list[dict[str, Any]] | None:
    """Startup recovery of ``engine``, once, before its first run (its lock held).

    ``whole_list``: a check follows under this hold of the lock, so recovery reads the whole
    container list and returns it when nothing moved (the check's list); else None.
    """
    if not handle.recovery_due:
        return None
    listed = None
    if whole_list:
        listed = recover_from_whole_list(engine, services.settings, names)
    else:
        recover_swaps(engine, services.settings, names)
    handle.recovery_due = False
    return listed


def recover_engines(services: Services, names: Sequence[str] = (), *, hold: bool = False) -> None:
    """At start: repair the swaps a crash left on every engine that answers, each under its
    lock. Never raises: an engine down or busy is repaired before its first run instead
    (``recovery.deferred``).

    ``hold`` (``run --once``): each lock stays taken until ``services.locks.release_held()``,
    and the container list recovery read is left on the handle for the run's check.
    """
    _in_parallel(services, services.engines, _recover_one, names, hold)


def _recover_one(
    services: Services, handle: EngineHandle, names: Sequence[str], hold: bool = False
) -> None:
    settings = services.settings
    try:
        engine = connect_engine(handle)
        if hold:
            services.locks.hold(engine, settings.lock_timeout, services.stop)
        with services.locks.held(engine, settings.lock_timeout, services.stop):
            handle.leave_listed(_recover_if_due(services, handle, engine, names, whole_list=hold))
    except (EngineUnreachableError, LockBusyError) as exc:
        log.warning("recovery.deferred", engine=handle.name, reason=str(exc))


def run_engine(
    services: Services,
    engine: Engine,
    names: Sequence[str],
    images: Sequence[str] = (),
    *,
    force: bool = False,
    listed: list[dict[str, Any]] | None = None,
) -> tuple[list[ContainerOutcome], EngineOutcome]:
    """Check and update the containers of one engine: their rows, and how the engine fared.

    ``listed``: the engine's whole container list as recovery read it, the engine's lock held
    since; else the check lists the containers. An EngineError that ends the engine's part of
    the run (its containers cannot be listed) is returned as the engine's ``error``, with the
    rows settled before it.
    """
    outcomes: list[ContainerOutcome] = []
    try:
        _check_and_update(services, engine, names, images, outcomes, force=force, listed=listed)
        # A Swarm manager's services (README, "Swarm"); nothing on other engines.
        service_run = ServiceRun(
            engine, services.registry, services.credentials, services.settings, services.state,
            services.stop, force,
        )  # fmt: skip
        outcomes += update_services(service_run, names, images)
    except EngineError as exc:
        log.error("engine.failed", engine=engine.host_label, error=str(exc))
        return outcomes, _engine_outcome(engine, error=str(exc))
    return outcomes, _engine_outcome(engine)


def _engine_outcome(engine: Engine, error: str | None = None) -> EngineOutcome:
    """The report's entry for ``engine``: ``ok``, or ``error`` with the reason."""
    state = EngineState.OK if error is None else EngineState.ERROR
    return EngineOutcome(
        engine.host_label,
        state,
        error,
        api_version=engine.api_version,
        url=engine.url,
        version=engine.version,
    )


def _check_and_update(
    services: Services,
    engine: Engine,
    names: Sequence[str],
    images: Sequence[str],
    outcomes: list[ContainerOutcome],
    *,
    force: bool = False,
    listed: list[dict[str, Any]] | None = None,
) -> None:
    """Hooks, check and update of one engine; appends its rows to ``outcomes``.

    Raises EngineError when the engine fails beyond one container (listing its containers).
    """
    settings = services.settings
    views = engine.list_views(all=True, summaries=listed)  # the one container list of the run
    if settings.lifecycle_hooks:
        run_pre_check_hooks(engine, settings, names, images, views)
    watched, skipped = check_engine(services, engine, names, images, force=force, containers=views)
    outcomes += skipped
    stale = [w for w in watched if w.verdict is Verdict.STALE]
    outcomes += [outcome_without_update(w) for w in watched if w.verdict is not Verdict.STALE]
    ctx = UpdateContext(
        engine=engine,
        credentials=services.credentials,
        settings=settings,
        stop=services.stop,
        state=services.state,
    )
    outcomes += update_stale(ctx, stale)  # inspects every container only when one may swap
    if settings.lifecycle_hooks:
        run_post_check_hooks(engine, [w.name for w in watched])
