"""Swap, rollback and crash-recovery orderings (``containers.swap``, ``containers.recovery``)
against the in-memory engine of ``tests.fake_engine``: no Docker.

The real-engine tests prove the same promises at a few points; here every step can fail,
before or after it took effect, and a crash (a ``BaseException`` that no ``except Exception``
catches, as a SIGKILL) can be made at any call. Gates use ``settle_s=0.0`` and containers are
healthy or broken at once, so the health gate decides at its first look.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable
from typing import Any

import pytest

from tests.fake_engine import Call, FakeEngine
from watchkeeper.containers.moves import (
    Gate,
    GroupResult,
    Move,
    Phase,
    aside_name,
    done_name,
    failed_name,
    held_name,
    next_name,
    read_mark,
)
from watchkeeper.containers.order import DependencyGraph, plan_groups
from watchkeeper.containers.recovery import (
    find_units,
    group_units,
    repair_group,
    undo_group,
)
from watchkeeper.containers.swap import swap_group
from watchkeeper.errors import EngineError

GATE = Gate(settle_s=0.0, health_timeout_s=None, stop_timeout_s=10.0)
HEALTHCHECK = {"Test": ["CMD", "true"], "Interval": 1_000_000_000, "Retries": 1}


class Crash(BaseException):
    """watchkeeper killed at this point: like SIGKILL, no ``except Exception`` sees it."""


def image(repo: str, version: int) -> dict[str, Any]:
    """A minimal image inspect; versions of one repository share the tag."""
    digest = hashlib.sha256(f"{repo}:{version}".encode()).hexdigest()
    return {
        "Id": f"sha256:{digest}",
        "RepoTags": [f"example/{repo}:latest"],
        "Config": {"Env": ["PATH=/bin"], "Cmd": [repo], "Labels": {}},
    }


WEB_OLD, WEB_NEW = image("web", 1), image("web", 2)
VPN_OLD, VPN_NEW = image("vpn", 1), image("vpn", 2)
APP, WORKER = image("app", 1), image("worker", 1)


def move(container: dict[str, Any], new_image: dict[str, Any] | None = None) -> Move:
    """The Move ``actions.policy.move_for`` makes, with a gate that decides at once."""
    old_image = next(i for i in (WEB_OLD, VPN_OLD, APP, WORKER) if i["Id"] == container["Image"])
    return Move(
        container=container,
        new_image=new_image,
        old_image=old_image,
        stop_timeout_s=10.0,
        settle_s=0.0,
        health_timeout_s=5.0,
    )


def names_by_id(engine: FakeEngine) -> dict[str, str]:
    """The run's snapshot of names, as ``swap_group`` gets it."""
    return {cid: name for name, cid in engine.names().items()}


def web(engine: FakeEngine, **kwargs: Any) -> list[Move]:
    """One container ``web`` to move from WEB_OLD to WEB_NEW."""
    return [move(engine.add("web", WEB_OLD, **kwargs), WEB_NEW)]


def vpn_group(engine: FakeEngine, app_healthcheck: dict[str, Any] | None = None) -> list[Move]:
    """``vpn`` (new image), ``app`` in its network namespace (recreated, same image) and
    ``worker`` that depends on it by label (restart only), planned by ``order.plan_groups``."""
    snapshot = [
        engine.add("vpn", VPN_OLD),
        engine.add(
            "app", APP, host_config={"NetworkMode": "container:vpn"}, healthcheck=app_healthcheck
        ),
        engine.add("worker", WORKER, labels={"watchkeeper.depends-on": "vpn"}),
    ]
    by_id = {c["Id"]: c for c in snapshot}
    plan = plan_groups(DependencyGraph(snapshot), [snapshot[0]["Id"]])
    [group] = plan.groups
    assert [(p.name, p.recreate) for p in group] == [
        ("vpn", True),
        ("app", True),
        ("worker", False),
    ]
    new_images = {"vpn": VPN_NEW, "app": APP}
    return [move(by_id[p.container_id], new_images.get(p.name)) for p in group]


def swap(engine: FakeEngine, moves: list[Move]) -> GroupResult:
    """Run the swap with the run's snapshot of names."""
    return swap_group(engine, moves, names_by_id(engine))


def recover(engine: FakeEngine) -> list[str]:
    """What a start does: find the interrupted swaps, repair them group by group."""
    units = find_units(engine.list_containers(all=True), lambda _container: GATE)
    return [repair_group(engine, group) for group in group_units(units)]


def assert_services(engine: FakeEngine, images: dict[str, dict[str, Any]]) -> None:
    """Exactly these containers exist, each running under its service name on its image."""
    assert sorted(engine.names()) == sorted(images)
    for name, expected in images.items():
        container = engine.inspect(name)
        assert container["Image"] == expected["Id"], name
        assert container["State"]["Running"], name


def renamed_to(target: Callable[[str], bool]) -> Callable[[Call], bool]:
    """A fault predicate: a rename whose new name passes ``target``."""
    return lambda call: call.method == "rename" and target(str(call.args[1]))


def on(container_id: Callable[[], str | None]) -> Callable[[Call], bool]:
    """A fault predicate: a call on the container ``container_id()`` names at call time."""
    return lambda call: bool(call.args) and call.args[0] == container_id()


def nth_change(engine: FakeEngine, n: int) -> Callable[[Call], bool]:
    """A fault predicate: the ``n``-th change the engine is asked for from now on."""
    before = len(engine.actions())
    return lambda _call: len(engine.actions()) == before + n


def role(name: str) -> str | None:
    """The swap marker's role in a container name, None for a service name."""
    mark = read_mark(name)
    return mark.role if mark else None


# -- a successful swap ----------------------------------------------------------------------


def test_swap_group_one_container_creates_before_stop_and_removes_old_last() -> None:
    """One container: create aside, stop old, rename both, start, mark done, remove."""
    engine = FakeEngine()
    moves = web(engine)
    old = moves[0].old_id

    result = swap(engine, moves)

    new = moves[0].new_id
    assert result.ok
    assert result.restored
    assert new is not None
    assert engine.actions() == [
        ("create_container", next_name("web", old)),
        ("stop", old),
        ("rename", old, aside_name("web", old, new)),
        ("rename", new, "web"),
        ("start", new),
        ("rename", old, done_name("web", old, new)),
        ("remove_container", old),
    ]
    assert [c.kwargs["force"] for c in engine.calls_of("remove_container")] == [False]
    assert engine.calls_of("stop")[0].kwargs == {"signal": None, "timeout_s": 10.0}
    assert_services(engine, {"web": WEB_NEW})


def test_swap_group_stopped_container_replaced_without_start() -> None:
    """A stopped container is replaced by a stopped one: nothing is stopped or started."""
    engine = FakeEngine()
    moves = web(engine, running=False)
    old = moves[0].old_id

    result = swap(engine, moves)

    new = moves[0].new_id
    assert result.ok
    assert new is not None
    assert engine.actions() == [
        ("create_container", next_name("web", old)),
        ("rename", old, aside_name("web", old, new)),
        ("rename", new, "web"),
        ("rename", old, done_name("web", old, new)),
        ("remove_container", old),
    ]
    assert engine.names() == {"web": new}
    assert engine.inspect("web")["State"]["Status"] == "created"


def test_swap_group_parent_and_dependents_stop_dependents_first_start_parents_first() -> None:
    """A group: dependents stop first, parents start first, the held one is marked meanwhile."""
    engine = FakeEngine()
    moves = vpn_group(engine)
    vpn, app, worker = (m.old_id for m in moves)

    result = swap(engine, moves)

    vpn_new, app_new = moves[0].new_id, moves[1].new_id
    assert result.ok
    assert vpn_new is not None
    assert app_new is not None
    assert engine.actions() == [
        ("create_container", next_name("vpn", vpn)),
        ("create_container", next_name("app", app)),
        ("rename", worker, held_name("worker", worker)),
        ("stop", worker),
        ("stop", app),
        ("stop", vpn),
        ("rename", vpn, aside_name("vpn", vpn, vpn_new)),
        ("rename", vpn_new, "vpn"),
        ("rename", app, aside_name("app", app, app_new)),
        ("rename", app_new, "app"),
        ("start", vpn_new),
        ("start", app_new),
        ("start", worker),
        ("rename", worker, "worker"),
        ("rename", vpn, done_name("vpn", vpn, vpn_new)),
        ("rename", app, done_name("app", app, app_new)),
        ("remove_container", app),
        ("remove_container", vpn),
    ]
    assert [c.kwargs["force"] for c in engine.calls_of("remove_container")] == [False, False]
    assert_services(engine, {"vpn": VPN_NEW, "app": APP, "worker": WORKER})
    assert engine.names()["worker"] == worker


def test_swap_group_old_container_running_again_removed_by_force_second() -> None:
    """An old container that cannot be removed as is (it runs again) is removed by force."""
    engine = FakeEngine()
    moves = web(engine)
    old = moves[0].old_id
    engine.fail("remove_container", when=lambda call: not call.kwargs["force"])

    result = swap(engine, moves)

    assert result.ok
    assert [c.kwargs["force"] for c in engine.calls_of("remove_container")] == [False, True]
    assert old not in engine.containers
    assert_services(engine, {"web": WEB_NEW})


def test_swap_group_dependent_replacement_joins_parent_replacement_by_id() -> None:
    """The dependent's replacement is created with ``container:<parent replacement ID>``."""
    engine = FakeEngine()
    moves = vpn_group(engine)

    swap(engine, moves)

    vpn_new = moves[0].new_id
    [_, app_create] = engine.calls_of("create_container")
    assert app_create.kwargs["spec"].body["HostConfig"]["NetworkMode"] == f"container:{vpn_new}"
    assert engine.inspect("app")["HostConfig"]["NetworkMode"] == f"container:{vpn_new}"


# -- rollback -------------------------------------------------------------------------------


def test_swap_group_start_refused_restores_old_container() -> None:
    """The replacement's start is refused: the old container runs under its name again."""
    engine = FakeEngine()
    moves = web(engine)
    engine.fail("start", when=lambda call: call.args[0] == moves[0].new_id)

    result = swap(engine, moves)

    assert result.failure is not None
    assert result.failure.phase is Phase.START
    assert result.restored
    assert_services(engine, {"web": WEB_OLD})
    assert engine.names()["web"] == moves[0].old_id
    assert ("remove_container", moves[0].new_id) in engine.actions()


def test_swap_group_replacement_exits_in_gate_restores_old_container() -> None:
    """The replacement exits at once: READY failure with its log tail, old container back."""
    engine = FakeEngine()
    moves = web(engine)
    engine.break_on_start("exit", when=lambda c: c["Image"] == WEB_NEW["Id"])

    result = swap(engine, moves)

    assert result.failure is not None
    assert result.failure.phase is Phase.READY
    assert "not running" in result.failure.error
    assert result.failure.log_tail[-1] == "web: broken (exit)"
    assert result.restored
    assert_services(engine, {"web": WEB_OLD})
    new, old = moves[0].new_id, moves[0].old_id
    assert new is not None
    # Rollback: the failed replacement leaves the name, the old one starts then takes it.
    assert engine.actions()[-4:] == [
        ("rename", new, failed_name("web", new)),
        ("start", old),
        ("rename", old, "web"),
        ("remove_container", new),
    ]


def test_swap_group_replacement_unhealthy_in_gate_restores_old_container() -> None:
    """The replacement reports unhealthy: READY failure, the old container is back."""
    engine = FakeEngine()
    moves = web(engine, healthcheck=HEALTHCHECK)
    engine.break_on_start("unhealthy", when=lambda c: c["Image"] == WEB_NEW["Id"])

    result = swap(engine, moves)

    assert result.failure is not None
    assert result.failure.phase is Phase.READY
    assert "unhealthy: probe failed" in result.failure.error
    assert result.restored
    assert_services(engine, {"web": WEB_OLD})


def test_swap_group_dependent_fails_gate_restores_whole_group() -> None:
    """The dependent's replacement turns unhealthy after the parent's passed: all goes back."""
    engine = FakeEngine()
    moves = vpn_group(engine, app_healthcheck=HEALTHCHECK)
    old_ids = {m.name: m.old_id for m in moves}
    engine.break_on_start("unhealthy", when=lambda c: c["Name"] == "/app")

    result = swap(engine, moves)

    assert result.failure is not None
    assert result.failure.move.name == "app"
    assert result.restored
    assert_services(engine, {"vpn": VPN_OLD, "app": APP, "worker": WORKER})
    assert engine.names() == old_ids
    # Replacements stop dependents first; old containers start parents first.
    stops = [c.args[0] for c in engine.calls_of("stop")][3:]
    assert stops == [moves[1].new_id, moves[0].new_id]
    starts = [c.args[0] for c in engine.calls_of("start")][2:]
    assert starts == [old_ids["vpn"], old_ids["app"], old_ids["worker"]]


# Steps of the group swap that can fail, each by the call that makes it.
GROUP_STEPS: dict[str, tuple[str, Callable[[list[Move]], Callable[[Call], bool]]]] = {
    "create": ("create_container", lambda ms: lambda call: call.args[0].startswith("app-")),
    "stop-held": ("stop", lambda ms: on(lambda: ms[2].old_id)),
    "stop-dependent": ("stop", lambda ms: on(lambda: ms[1].old_id)),
    "hold": ("rename", lambda ms: renamed_to(lambda name: role(name) == "held")),
    "stop-parent": ("stop", lambda ms: on(lambda: ms[0].old_id)),
    "aside": ("rename", lambda ms: renamed_to(lambda name: name.startswith("app-wk-old-"))),
    "take-name": ("rename", lambda ms: renamed_to(lambda name: name == "app")),
    "start-parent": ("start", lambda ms: on(lambda: ms[0].new_id)),
    "start-dependent": ("start", lambda ms: on(lambda: ms[1].new_id)),
    "unhold": ("rename", lambda ms: renamed_to(lambda name: name == "worker")),
    "start-held": ("start", lambda ms: on(lambda: ms[2].old_id)),
}


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("step", sorted(GROUP_STEPS))
def test_swap_group_step_fails_before_or_after_effect_restores_group(
    step: str, after: bool
) -> None:
    """A step fails, before or after it took effect: every old container is back, running."""
    engine = FakeEngine()
    moves = vpn_group(engine)
    old_ids = {m.name: m.old_id for m in moves}
    method, predicate = GROUP_STEPS[step]
    fault = engine.fail(method, when=predicate(moves), after=after)

    result = swap(engine, moves)

    assert fault.fired == 1
    assert result.failure is not None
    assert result.restored
    assert_services(engine, {"vpn": VPN_OLD, "app": APP, "worker": WORKER})
    assert engine.names() == old_ids


def test_swap_group_create_fails_after_creating_removes_replacement() -> None:
    """A create that errors once the container exists: found by its temporary name, removed."""
    engine = FakeEngine()
    moves = web(engine)
    engine.fail("create_container", after=True)

    result = swap(engine, moves)

    assert result.failure is not None
    assert result.failure.phase is Phase.PREPARE
    assert moves[0].new_id is None
    assert result.restored
    assert_services(engine, {"web": WEB_OLD})
    assert engine.calls_of("stop") == []


def test_swap_group_stop_fails_after_stopping_starts_old_again() -> None:
    """A stop that times out once the container stopped: the rollback sees it and starts it."""
    engine = FakeEngine()
    moves = web(engine)
    old = moves[0].old_id
    engine.fail("stop", after=True)

    result = swap(engine, moves)

    assert result.failure is not None
    assert result.failure.phase is Phase.STOP
    assert result.restored
    assert ("start", old) in engine.actions()
    assert_services(engine, {"web": WEB_OLD})


def test_swap_group_old_container_cannot_start_again_reports_not_restored() -> None:
    """The old container refuses to start in the rollback: restored is False, name given back."""
    engine = FakeEngine()
    moves = web(engine)
    old = moves[0].old_id
    engine.break_on_start("exit", when=lambda c: c["Image"] == WEB_NEW["Id"])
    engine.fail("start", when=on(lambda: old), times=None)

    result = swap(engine, moves)

    assert result.failure is not None
    assert not result.restored
    assert engine.names() == {"web": old}
    assert not engine.inspect("web")["State"]["Running"]


def test_swap_group_old_container_exits_again_reports_not_restored() -> None:
    """The old container starts but exits at once in the rollback: restored is False."""
    engine = FakeEngine()
    moves = web(engine)
    old = moves[0].old_id
    engine.fail("stop", after=True)  # stopped, then the stop "fails": a rollback
    engine.break_on_start("exit", when=lambda c: c["Id"] == old)

    result = swap(engine, moves)

    assert result.failure is not None
    assert not result.restored
    assert not engine.inspect(old)["State"]["Running"]


def test_swap_group_dependent_parent_cannot_start_reports_group_not_restored() -> None:
    """Old vpn refuses to start again: app (in its namespace) cannot either; not restored."""
    engine = FakeEngine()
    moves = vpn_group(engine)
    engine.break_on_start("exit", when=lambda c: c["Name"] == "/app")
    engine.fail("start", when=on(lambda: moves[0].old_id), times=None)

    result = swap(engine, moves)

    assert not result.restored
    assert not engine.inspect(moves[0].old_id)["State"]["Running"]
    assert not engine.inspect(moves[1].old_id)["State"]["Running"]


def test_undo_group_name_not_given_back_keeps_replacement_for_recovery() -> None:
    """The old container cannot take its name back: not restored, the next start repairs it."""
    engine = FakeEngine()
    moves = web(engine)
    engine.break_on_start("exit", when=lambda c: c["Image"] == WEB_NEW["Id"])
    engine.fail("rename", when=renamed_to(lambda name: name == "web"), nth=2, times=None)

    result = swap(engine, moves)

    assert not result.restored
    new = moves[0].new_id
    assert new is not None
    assert new in engine.containers  # the aside name still points at it
    engine.faults.clear()

    assert recover(engine) == ["undone"]
    assert_services(engine, {"web": WEB_OLD})


# -- crash repair ---------------------------------------------------------------------------


# A crash point: the call at which watchkeeper dies (before or after its effect), and whether
# the next start must finish the swap or undo it.
CrashPoint = tuple[str, Callable[[list[Move]], Callable[[Call], bool]], bool, str]

SINGLE_CRASHES: dict[str, CrashPoint] = {
    "created": ("create_container", lambda ms: lambda call: True, True, "undone"),
    "stopped": ("rename", lambda ms: renamed_to(lambda n: role(n) == "old"), False, "undone"),
    "aside": ("rename", lambda ms: renamed_to(lambda n: n == "web"), False, "undone"),
    "renamed": ("start", lambda ms: lambda call: True, False, "undone"),
    "health_wait": ("start", lambda ms: lambda call: True, True, "finished"),
    "done": ("remove_container", lambda ms: lambda call: True, False, "finished"),
    "rollback-renamed-out": (
        "rename",
        lambda ms: renamed_to(lambda n: role(n) == "new"),
        True,
        "undone",
    ),
    "rollback-started": ("start", lambda ms: on(lambda: ms[0].old_id), True, "undone"),
    "rollback-name-back": (
        "rename",
        lambda ms: lambda call: call.args == (ms[0].old_id, "web"),
        True,
        "undone",
    ),
}


@pytest.mark.parametrize("point", sorted(SINGLE_CRASHES))
def test_repair_group_single_crash_at_each_step_restores_consistent_service(point: str) -> None:
    """Killed at any step (or in its rollback), one start later ``web`` runs, unmarked."""
    engine = FakeEngine()
    moves = web(engine)
    method, predicate, after, expected = SINGLE_CRASHES[point]
    if point.startswith("rollback-"):
        engine.break_on_start("exit", when=lambda c: c["Image"] == WEB_NEW["Id"])
    engine.fail(method, when=predicate(moves), after=after, error=Crash(point))

    with pytest.raises(Crash):
        swap(engine, moves)

    assert recover(engine) == [expected]
    assert_services(engine, {"web": WEB_NEW if expected == "finished" else WEB_OLD})
    assert recover(engine) == []


GROUP_CRASHES: dict[str, CrashPoint] = {
    "created-parent": ("create_container", lambda ms: lambda call: True, True, "undone"),
    "created-dependent": (
        "create_container",
        lambda ms: lambda call: call.args[0].startswith("app-"),
        True,
        "undone",
    ),
    "stopped-held": ("stop", lambda ms: on(lambda: ms[2].old_id), True, "undone"),
    "held": ("rename", lambda ms: renamed_to(lambda n: role(n) == "held"), True, "undone"),
    "stopped-dependent": ("stop", lambda ms: on(lambda: ms[1].old_id), True, "undone"),
    "stopped": ("rename", lambda ms: renamed_to(lambda n: role(n) == "old"), False, "undone"),
    "aside": ("rename", lambda ms: renamed_to(lambda n: n == "vpn"), False, "undone"),
    "renamed-parent": ("rename", lambda ms: renamed_to(lambda n: n == "vpn"), True, "undone"),
    "renamed": ("start", lambda ms: lambda call: True, False, "undone"),
    "health_wait-parent": ("start", lambda ms: on(lambda: ms[0].new_id), True, "undone"),
    "health_wait-dependent": ("start", lambda ms: on(lambda: ms[1].new_id), True, "finished"),
    "unheld": ("start", lambda ms: on(lambda: ms[2].old_id), False, "finished"),
    "held-started": ("start", lambda ms: on(lambda: ms[2].old_id), True, "finished"),
    "done-parent": ("rename", lambda ms: renamed_to(lambda n: role(n) == "done"), True, "finished"),
    "done": ("remove_container", lambda ms: lambda call: True, False, "finished"),
    "removed-dependent": ("remove_container", lambda ms: lambda call: True, True, "finished"),
}


@pytest.mark.parametrize("point", sorted(GROUP_CRASHES))
def test_repair_group_group_crash_at_each_step_finishes_or_undoes_whole_group(
    point: str,
) -> None:
    """Killed at any step of a group swap: the next start finishes or undoes the whole group."""
    engine = FakeEngine()
    moves = vpn_group(engine)
    method, predicate, after, expected = GROUP_CRASHES[point]
    engine.fail(method, when=predicate(moves), after=after, error=Crash(point))

    with pytest.raises(Crash):
        swap(engine, moves)

    assert set(recover(engine)) == {expected}
    if expected == "finished":
        assert_services(engine, {"vpn": VPN_NEW, "app": APP, "worker": WORKER})
        assert engine.names()["app"] == moves[1].new_id
    else:
        assert_services(engine, {"vpn": VPN_OLD, "app": APP, "worker": WORKER})
        assert engine.names() == {m.name: m.old_id for m in moves}
    vpn_id = engine.names()["vpn"]
    assert engine.inspect("app")["HostConfig"]["NetworkMode"] == f"container:{vpn_id}"
    assert recover(engine) == []


@pytest.mark.parametrize("point", sorted(GROUP_CRASHES))
def test_repair_group_recovery_killed_at_any_change_is_repeated_to_same_end(point: str) -> None:
    """Recovery itself killed at any of its changes: the next start still ends it cleanly."""
    for kill_at in range(1, 30):
        engine = FakeEngine()
        moves = vpn_group(engine)
        method, predicate, after, expected = GROUP_CRASHES[point]
        engine.fail(method, when=predicate(moves), after=after, error=Crash(point))
        with pytest.raises(Crash):
            swap(engine, moves)
        engine.faults.clear()
        kill = nth_change(engine, kill_at)
        for changing in ("rename", "start", "stop", "remove_container"):
            engine.fail(changing, when=kill, after=True, error=Crash("recovery"))
        try:
            recover(engine)
        except Crash:
            engine.faults.clear()
        else:
            assert kill_at > 1, "recovery made no change"
            return  # every change of the recovery was a kill point
        assert set(recover(engine)) <= {"finished", "undone"}
        images = {"vpn": VPN_NEW if expected == "finished" else VPN_OLD}
        assert_services(engine, {**images, "app": APP, "worker": WORKER})
        vpn_id = engine.names()["vpn"]
        assert engine.inspect("app")["HostConfig"]["NetworkMode"] == f"container:{vpn_id}"
    pytest.fail("recovery made more changes than expected")


GROUP_ROLLBACK_CRASHES: dict[str, tuple[str, Callable[[list[Move]], Callable[[Call], bool]]]] = {
    "stopped-replacement": ("stop", lambda ms: on(lambda: ms[0].new_id)),
    "renamed-out": ("rename", lambda ms: renamed_to(lambda n: role(n) == "new")),
    "parent-started": ("start", lambda ms: on(lambda: ms[0].old_id)),
    "parent-named": ("rename", lambda ms: renamed_to(lambda n: n == "vpn")),
    "dependent-named": ("rename", lambda ms: renamed_to(lambda n: n == "app")),
    "held-named": ("rename", lambda ms: renamed_to(lambda n: n == "worker")),
    "replacement-removed": ("remove_container", lambda ms: lambda call: True),
}


@pytest.mark.parametrize("point", sorted(GROUP_ROLLBACK_CRASHES))
def test_repair_group_crash_in_group_rollback_undoes_whole_group(point: str) -> None:
    """Killed while rolling a group back (app failed its gate): the next start undoes it all."""
    engine = FakeEngine()
    moves = vpn_group(engine)
    engine.break_on_start("exit", when=lambda c: c["Name"] == "/app")
    method, predicate = GROUP_ROLLBACK_CRASHES[point]
    matches = predicate(moves)

    def in_rollback(call: Call) -> bool:
        # The failed container's log tail is read just before the rollback begins.
        return bool(engine.calls_of("container_logs")) and matches(call)

    engine.fail(method, when=in_rollback, after=True, error=Crash(point))

    with pytest.raises(Crash):
        swap(engine, moves)

    assert set(recover(engine)) == {"undone"}
    assert_services(engine, {"vpn": VPN_OLD, "app": APP, "worker": WORKER})
    assert engine.names() == {m.name: m.old_id for m in moves}
    assert recover(engine) == []


def test_repair_group_stopped_service_crash_after_rename_leaves_it_stopped() -> None:
    """A stopped service killed mid-swap is undone and stays stopped (it did not run)."""
    engine = FakeEngine()
    moves = web(engine, running=False)
    engine.fail("rename", when=renamed_to(lambda n: n == "web"), after=True, error=Crash())

    with pytest.raises(Crash):
        swap(engine, moves)

    assert recover(engine) == ["undone"]
    assert engine.names() == {"web": moves[0].old_id}
    assert not engine.inspect("web")["State"]["Running"]


def test_undo_group_of_found_units_is_idempotent() -> None:
    """Undoing the same interrupted group twice changes nothing the second time."""
    engine = FakeEngine()
    moves = vpn_group(engine)
    engine.fail("start", error=Crash())
    with pytest.raises(Crash):
        swap(engine, moves)
    [group] = group_units(find_units(engine.list_containers(all=True), lambda _c: GATE))

    assert undo_group(engine, group) == []
    restored = copy.deepcopy(engine.containers)
    assert undo_group(engine, group) == []

    assert engine.containers == restored
    assert_services(engine, {"vpn": VPN_OLD, "app": APP, "worker": WORKER})


# -- what recovery reads from the engine ----------------------------------------------------


def test_find_units_old_stopped_after_replacement_created_ran() -> None:
    """An old container that stopped after its replacement was created ran: the swap stopped it."""
    engine = FakeEngine()
    old = engine.add("web", WEB_OLD)
    new_id = engine.add(next_name("web", old["Id"]), WEB_NEW, running=False)["Id"]
    engine.stop(old["Id"], signal=None, timeout_s=10.0)

    [unit] = find_units(engine.list_containers(all=True), lambda _c: GATE)

    assert (unit.name, unit.old_id, unit.new_id, unit.ran) == ("web", old["Id"], new_id, True)


def test_find_units_old_stopped_before_replacement_created_did_not_run() -> None:
    """An old container that had stopped before its replacement was created did not run."""
    engine = FakeEngine()
    old = engine.add("web", WEB_OLD)
    engine.stop(old["Id"], signal=None, timeout_s=10.0)
    new_id = engine.add(next_name("web", old["Id"]), WEB_NEW, running=False)["Id"]
    engine.rename(old["Id"], aside_name("web", old["Id"], new_id))

    [unit] = find_units(engine.list_containers(all=True), lambda _c: GATE)

    assert (unit.name, unit.old_id, unit.new_id, unit.ran) == ("web", old["Id"], new_id, False)


def test_find_units_held_dependent_ran() -> None:
    """A held dependent is a unit of its own that ran (the swap stopped it)."""
    engine = FakeEngine()
    worker = engine.add("worker", WORKER)
    engine.stop(worker["Id"], signal=None, timeout_s=10.0)
    engine.rename(worker["Id"], held_name("worker", worker["Id"]))

    [unit] = find_units(engine.list_containers(all=True), lambda _c: GATE)

    assert (unit.name, unit.old_id, unit.new, unit.ran, unit.held) == (
        "worker",
        worker["Id"],
        None,
        True,
        True,
    )


# -- the fake engine's own rules ------------------------------------------------------------


def test_fake_engine_refuses_start_in_namespace_of_stopped_container() -> None:
    """Like the engine: no start in the network namespace of a container that does not run."""
    engine = FakeEngine()
    vpn = engine.add("vpn", VPN_OLD)
    app = engine.add("app", APP, host_config={"NetworkMode": "container:vpn"}, running=False)
    engine.stop(vpn["Id"], signal=None, timeout_s=1.0)

    with pytest.raises(EngineError, match="non running container"):
        engine.start(app["Id"])
    assert app["HostConfig"]["NetworkMode"] == f"container:{vpn['Id']}"


def test_fake_engine_rename_onto_taken_name_conflicts() -> None:
    """Like the engine: a name is unique; a running container is not removed without force."""
    engine = FakeEngine()
    a = engine.add("a", WEB_OLD)
    engine.add("b", WEB_OLD)

    with pytest.raises(EngineError, match="Conflict"):
        engine.rename(a["Id"], "b")
    with pytest.raises(EngineError, match="cannot remove a running container"):
        engine.remove_container(a["Id"], force=False)
    assert a["Created"].endswith("Z")
    assert len(a["Created"].split(".")[1]) > 6  # nanoseconds


# -- the downtime slot (UPDATE_CONCURRENCY: groups take turns from first stop to first start) ---


def slot_is_free(slots: threading.BoundedSemaphore) -> bool:
    """Whether another group could take the slot now (taken and given back at once)."""
    if not slots.acquire(blocking=False):
        return False
    slots.release()
    return True


def test_swap_group_holds_downtime_slot_from_stop_to_start_not_in_gate() -> None:
    """The slot is held while the old container stops and the replacement starts, and given
    back before the replacement's gate: the next group may stop its containers meanwhile."""
    engine = FakeEngine()
    moves = web(engine, healthcheck=HEALTHCHECK)
    slots = threading.BoundedSemaphore(1)
    seen: dict[str, list[bool]] = {"stop": [], "start": [], "gate": []}

    def record(method: str) -> Callable[[Call], bool]:
        def look(_call: Call) -> bool:
            started = bool(engine.calls_of("start"))
            key = "gate" if method == "inspect_container" and started else method
            if key in seen:
                seen[key].append(slot_is_free(slots))
            return False  # never fails: only looks

        return look

    for method in ("stop", "start", "inspect_container"):
        engine.fail(method, when=record(method), times=None)

    result = swap_group(engine, moves, names_by_id(engine), slots)

    assert result.failure is None
    assert seen["stop"] == [False]
    assert seen["start"] == [False]
    assert seen["gate"]
    assert all(seen["gate"])
    assert slot_is_free(slots)
    assert_services(engine, {"web": WEB_NEW})


@pytest.mark.parametrize("after", [False, True], ids=["before", "after"])
@pytest.mark.parametrize("step", sorted(GROUP_STEPS))
def test_swap_group_failed_step_gives_downtime_slot_back_after_rollback(
    step: str, after: bool
) -> None:
    """A step of a group (container: netns, depends-on) fails before or after it took effect:
    the group is restored and its slot given back, so no other group waits for it forever."""
    engine = FakeEngine()
    moves = vpn_group(engine)
    method, predicate = GROUP_STEPS[step]
    fault = engine.fail(method, when=predicate(moves), after=after)
    slots = threading.BoundedSemaphore(1)

    result = swap_group(engine, moves, names_by_id(engine), slots)

    assert fault.fired == 1
    assert result.failure is not None
    assert result.restored
    assert slot_is_free(slots)
    assert_services(engine, {"vpn": VPN_OLD, "app": APP, "worker": WORKER})
