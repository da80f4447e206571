"""Dependencies between containers and the groups a run moves (``containers.order``), no engine."""

from __future__ import annotations

from typing import Any

from watchkeeper.containers.order import (
    DependencyGraph,
    cycle_reason,
    plan_groups,
)


def container(
    name: str,
    *,
    labels: dict[str, str] | None = None,
    links: list[str] | None = None,
    network_mode: str = "default",
    pid_mode: str = "",
    ipc_mode: str = "private",
) -> dict[str, Any]:
    """A minimal inspect dict; the ID is the name padded to 64 hex-ish characters."""
    return {
        "Id": (name.encode().hex() + "0" * 64)[:64],
        "Name": f"/{name}",
        "Config": {"Labels": labels or {}},
        "HostConfig": {
            "Links": links,
            "NetworkMode": network_mode,
            "PidMode": pid_mode,
            "IpcMode": ipc_mode,
        },
        "State": {"Running": True},
    }


def ids(*items: dict[str, Any]) -> list[str]:
    return [str(c["Id"]) for c in items]


def names_of(plan_group: list[Any]) -> list[str]:
    return [p.name for p in plan_group]


def test_graph_every_dependency_kind_is_an_edge() -> None:
    """Our label, Watchtower's label, links, container: mode and compose depends_on all count."""
    db, cache, vpn, auth, app = (container(n) for n in ("db", "cache", "vpn", "auth", "app"))
    compose = {"com.docker.compose.project": "shop", "com.docker.compose.service": "auth"}
    auth["Config"]["Labels"] = compose
    app = container(
        "app",
        labels={
            "watchkeeper.depends-on": "db",
            "com.centurylinklabs.watchtower.depends-on": "/cache",
            "com.docker.compose.project": "shop",
            "com.docker.compose.depends_on": "auth:service_healthy:false",
        },
        links=["/vpn:/app/tunnel"],
    )
    side = container("side", network_mode=f"container:{vpn['Id']}")
    graph = DependencyGraph([db, cache, vpn, auth, app, side])

    kinds = {graph.name(p): k for p, k in graph.parents[app["Id"]].items()}
    assert kinds == {
        "db": {"depends-on"},
        "cache": {"depends-on"},
        "vpn": {"link"},
        "auth": {"compose"},
    }
    assert graph.parents[side["Id"]] == {vpn["Id"]: {"network"}}


def test_graph_pid_and_ipc_container_modes_are_edges() -> None:
    """``--pid container:x`` and ``--ipc container:x`` (by ID, as inspect shows them) are edges."""
    x = container("x", ipc_mode="shareable")
    both = container("both", pid_mode=f"container:{x['Id']}", ipc_mode=f"container:{x['Id']}")
    host = container("host", pid_mode="host", ipc_mode="host")
    graph = DependencyGraph([x, both, host])
    assert graph.parents[both["Id"]] == {x["Id"]: {"pid", "ipc"}}
    assert graph.parents[host["Id"]] == {}
    assert graph.parents[x["Id"]] == {}


def test_graph_unknown_names_and_other_projects_are_ignored() -> None:
    """A depends-on naming no container, or a compose service of another project, adds nothing."""
    other = container(
        "auth",
        labels={"com.docker.compose.project": "other", "com.docker.compose.service": "auth"},
    )
    app = container(
        "app",
        labels={
            "watchkeeper.depends-on": "ghost, ,",
            "com.docker.compose.project": "shop",
            "com.docker.compose.depends_on": "auth:service_started",
        },
    )
    graph = DependencyGraph([other, app])
    assert graph.parents[app["Id"]] == {}


def test_plan_dependents_stop_first_start_after_in_one_group() -> None:
    """db stale; app depends on db, web on app: one group in start order db, app, web."""
    db = container("db")
    app = container("app", labels={"watchkeeper.depends-on": "db"})
    web = container("web", labels={"watchkeeper.depends-on": "app"})
    lone = container("lone")
    graph = DependencyGraph([web, lone, app, db])

    plan = plan_groups(graph, ids(db))

    assert [names_of(g) for g in plan.groups] == [["db", "app", "web"]]
    (group,) = plan.groups
    assert [(p.target, p.recreate) for p in group] == [(True, True), (False, False), (False, False)]


def test_plan_network_and_link_dependents_are_recreated_label_ones_restarted() -> None:
    """A container: child and a linked child get new containers; a label child only restarts."""
    vpn = container("vpn")
    ns = container("ns", network_mode=f"container:{vpn['Id']}")
    linked = container("linked", links=["/vpn:/linked/v"])
    labelled = container("labelled", labels={"watchkeeper.depends-on": "vpn"})
    graph = DependencyGraph([vpn, ns, linked, labelled])

    (group,) = plan_groups(graph, ids(vpn)).groups

    assert {p.name: p.recreate for p in group} == {
        "vpn": True,
        "ns": True,
        "linked": True,
        "labelled": False,
    }
    assert group[0].name == "vpn"


def test_plan_pid_and_ipc_dependents_are_recreated_after_parent() -> None:
    """Children in x's PID or IPC namespace get new containers, started after x."""
    x = container("x", ipc_mode="shareable")
    pid = container("pid", pid_mode=f"container:{x['Id']}")
    ipc = container("ipc", ipc_mode="container:x")
    (group,) = plan_groups(DependencyGraph([pid, ipc, x]), ids(x)).groups
    assert [(p.name, p.target, p.recreate) for p in group] == [
        ("x", True, True),
        ("ipc", False, True),
        ("pid", False, True),
    ]


def test_plan_unrelated_targets_on_one_image_move_one_at_a_time() -> None:
    """Two replicas and an unrelated container: three groups of one."""
    first, second, other = container("first"), container("second"), container("other")
    plan = plan_groups(DependencyGraph([first, second, other]), ids(first, second, other))
    assert sorted(names_of(g)[0] for g in plan.groups) == ["first", "other", "second"]
    assert all(len(g) == 1 for g in plan.groups)


def test_plan_stale_dependent_of_stale_parent_appears_once() -> None:
    """A stale child of a stale parent is one member of the parent's group, never swapped twice."""
    db = container("db")
    app = container("app", network_mode=f"container:{db['Id']}")
    plan = plan_groups(DependencyGraph([db, app]), ids(app, db))
    assert [[(p.name, p.target) for p in g] for g in plan.groups] == [[("db", True), ("app", True)]]


def test_plan_cycle_left_out_with_reason_rest_planned() -> None:
    """a <-> b is a cycle: left out with its reason; the unrelated c is planned."""
    a = container("a", labels={"watchkeeper.depends-on": "b"})
    b = container("b", labels={"watchkeeper.depends-on": "a"})
    c = container("c")
    graph = DependencyGraph([a, b, c])

    plan = plan_groups(graph, ids(a, b, c))

    assert [names_of(g) for g in plan.groups] == [["c"]]
    assert set(plan.left_out) == set(ids(a, b))
    assert plan.left_out[a["Id"]] == "dependency cycle: a -> b -> a"
    assert graph.cycle_of(c["Id"]) is None
    assert cycle_reason(["x"]) == "dependency cycle: x -> x"


def test_plan_self_dependency_is_a_cycle() -> None:
    """A container that names itself in depends-on cannot be ordered."""
    me = container("me", labels={"watchkeeper.depends-on": "me"})
    assert DependencyGraph([me]).cycle_of(me["Id"]) == ["me"]


def test_plan_dependent_in_cycle_skipped_parent_still_updated() -> None:
    """db stale; x and y depend on db and on each other: db is planned, x and y left out."""
    db = container("db")
    x = container("x", labels={"watchkeeper.depends-on": "db,y"})
    y = container("y", labels={"watchkeeper.depends-on": "x,db"})
    plan = plan_groups(DependencyGraph([db, x, y]), ids(db))
    assert [names_of(g) for g in plan.groups] == [["db"]]
    assert set(plan.left_out) == set(ids(x, y))


def test_plan_disabled_dependent_not_restarted() -> None:
    """A dependent labelled enable=false is left out of its parent's group, with a reason."""
    db = container("db")
    app = container("app", labels={"watchkeeper.depends-on": "db"})
    plan = plan_groups(DependencyGraph([db, app]), ids(db), excluded=ids(app))
    assert [names_of(g) for g in plan.groups] == [["db"]]
    assert "disabled" in plan.left_out[app["Id"]]


def test_plan_long_chain_orders_parents_first() -> None:
    """A 200-long chain plans in order without recursion limits."""
    chain = [container("n000")]
    for i in range(1, 200):
        chain.append(container(f"n{i:03d}", labels={"watchkeeper.depends-on": f"n{i - 1:03d}"}))
    (group,) = plan_groups(DependencyGraph(reversed(chain)), ids(chain[0])).groups
    assert names_of(group) == [f"n{i:03d}" for i in range(200)]


def test_plan_namespace_child_by_name_recreated_label_child_only_restarted() -> None:
    """``container:<name>`` makes a child that must follow its recreated parent; a label not."""
    vpn = container("vpn")
    ns = container("ns", network_mode="container:vpn")
    labelled = container("labelled", labels={"watchkeeper.depends-on": "vpn"})

    (group,) = plan_groups(DependencyGraph([vpn, ns, labelled]), ids(vpn)).groups

    assert [p.name for p in group if p.recreate and not p.target] == ["ns"]
    assert [p.name for p in group if not p.recreate] == ["labelled"]
