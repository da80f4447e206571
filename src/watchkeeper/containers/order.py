"""Pure: which containers depend on which, and in what order a group moves.

A container depends on another through any of: the ``watchkeeper.depends-on`` label and its
Watchtower twin (both are read: the union), a legacy link, a namespace shared with
``container:<x>`` (``network_mode``, ``--pid``, ``--ipc``), and compose's
``com.docker.compose.depends_on`` label (service names, resolved within the same compose
project); the README's "What an update does" lists them for users. From a run's snapshot of
every container, :class:`DependencyGraph` holds those edges, and :func:`plan_groups` turns the
stale containers into groups that move together: each stale container with every container that
(transitively) depends on it. Within a group, dependents stop before what they depend on and
start after it (``Planned`` items are in start order). A dependent is *recreated* when it
shares a namespace of, or links to, a recreated container (its mode would name the removed
container, and a shared PID namespace dies with the parent's PID 1); else it is only
restarted. Containers in a dependency cycle cannot be ordered: they are left out with a
reason, the rest goes on.

No I/O here: inputs are inspect dicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.labels import container_labels, container_name

DEPENDS_ON_LABELS = ("watchkeeper.depends-on", "com.centurylinklabs.watchtower.depends-on")
COMPOSE_DEPENDS_ON = "com.docker.compose.depends_on"
COMPOSE_PROJECT = "com.docker.compose.project"
COMPOSE_SERVICE = "com.docker.compose.service"
# ``HostConfig`` fields that may name another container's namespace (``container:<x>``), and
# the edge kind each one makes.
NAMESPACE_MODES = {"NetworkMode": "network", "PidMode": "pid", "IpcMode": "ipc"}
# Edge kinds after which a dependent must get a new container, not only a restart.
RECREATE_KINDS = frozenset({"link", *NAMESPACE_MODES.values()})


@dataclass(frozen=True)
class Planned:
    """One container of a group: ``target`` when its own image changed, ``recreate`` when it
    gets a new container (a target, or a dependent that must follow a recreated parent)."""

    container_id: str
    name: str
    target: bool
    recreate: bool


@dataclass
class Plan:
    """The groups of a run, each in start order, and the containers left out (id -> reason)."""

    groups: list[list[Planned]] = field(default_factory=list)
    left_out: dict[str, str] = field(default_factory=dict)


class DependencyGraph:
    """Edges ``dependent -> dependency`` among the containers of one engine."""

    def __init__(self, snapshots: Iterable[dict[str, Any]]) -> None:
        self.containers = {str(c["Id"]): c for c in snapshots}
        self._by_name = {container_name(c): cid for cid, c in self.containers.items()}
        self.parents: dict[str, dict[str, set[str]]] = {cid: {} for cid in self.containers}
        self.children: dict[str, dict[str, set[str]]] = {cid: {} for cid in self.containers}
        for cid, container in self.containers.items():
            for parent, kind in self._dependencies(container):
                self.parents[cid].setdefault(parent, set()).add(kind)
                self.children[parent].setdefault(cid, set()).add(kind)
        self._cycles = self._find_cycles()

    def name(self, container_id: str) -> str:
        """The container's name."""
        return container_name(self.containers[container_id])

    def _resolve(self, reference: str) -> str | None:
        """The ID of the container a name or (prefix of an) ID names, else None."""
        reference = reference.strip().lstrip("/")
        if not reference:
            return None
        if reference in self._by_name:
            return self._by_name[reference]
        if len(reference) >= 12:
            return next((cid for cid in self.containers if cid.startswith(reference)), None)
        return None

    def _dependencies(self, container: dict[str, Any]) -> list[tuple[str, str]]:
        """(dependency ID, kind) of every dependency of ``container`` that exists here."""
        found: list[tuple[str | None, str]] = []
        labels = container_labels(container)
        for key in DEPENDS_ON_LABELS:
            found += [(self._resolve(n), "depends-on") for n in labels.get(key, "").split(",")]
        host_config = container.get("HostConfig") or {}
        for link in host_config.get("Links") or []:
            found.append((self._resolve(link.partition(":")[0]), "link"))
        for field_name, kind in NAMESPACE_MODES.items():
            mode = str(host_config.get(field_name) or "")
            if mode.startswith("container:"):
                found.append((self._resolve(mode.removeprefix("container:")), kind))
        found += [(cid, "compose") for cid in self._compose_dependencies(labels)]
        return [(cid, kind) for cid, kind in found if cid is not None]

    def _compose_dependencies(self, labels: dict[str, str]) -> list[str]:
        """Containers of the services named in compose's ``depends_on`` label, same project.

        The label reads ``db:service_healthy:false,cache:service_started:true``.
        """
        project = labels.get(COMPOSE_PROJECT)
        services = {
            item.split(":", 1)[0].strip()
            for item in labels.get(COMPOSE_DEPENDS_ON, "").split(",")
            if item.strip()
        }
        if not project or not services:
            return []
        return [
            cid
            for cid, other in self.containers.items()
            if container_labels(other).get(COMPOSE_PROJECT) == project
            and container_labels(other).get(COMPOSE_SERVICE) in services
        ]

    def cycle_of(self, container_id: str) -> list[str] | None:
        """The names in the dependency cycle ``container_id`` belongs to, None if in none."""
        return self._cycles.get(container_id)

    def _find_cycles(self) -> dict[str, list[str]]:
        """Every container in a cycle (a strongly connected component of 2+, or a self-loop)."""
        cycles: dict[str, list[str]] = {}
        for component in _strong_components(self.parents):
            looped = len(component) > 1 or component[0] in self.parents[component[0]]
            if looped:
                names = sorted(self.name(cid) for cid in component)
                for cid in component:
                    cycles[cid] = names
        return cycles


def cycle_reason(names: list[str]) -> str:
    """The report's words for a cycle: ``dependency cycle: a -> b -> a``."""
    return "dependency cycle: " + " -> ".join([*names, names[0]])


def _strong_components(edges: Mapping[str, Mapping[str, Any]]) -> list[list[str]]:
    """Tarjan's strongly connected components, iteratively (no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, successors = work[-1]
            nxt = next((s for s in successors if s in edges), None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(edges[nxt]))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                components.append(_pop_component(stack, on_stack, node))
    return components


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    """Pop Tarjan's stack down to ``root``: one strongly connected component."""
    component = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == root:
            return component


def plan_groups(
    graph: DependencyGraph, targets: Iterable[str], *, excluded: Iterable[str] = ()
) -> Plan:
    """Group the stale ``targets`` (container IDs) with the containers depending on them.

    Only dependencies tie containers into one group: unrelated containers, even on the same
    image, are separate groups, which share no container and so can swap side by side
    (UPDATE_CONCURRENCY; one at a time with ROLLING_RESTART, so that a bad image never takes
    every replica down at once). ``excluded`` containers
    (disabled by label) are never pulled into a group. Containers in a cycle are left out.
    Raises nothing.
    """
    targets = set(targets)
    plan = Plan()
    blocked = set(excluded)
    members = _affected(graph, targets, blocked, plan.left_out)
    order = _topological(graph, members)
    recreate: dict[str, bool] = {}
    for cid in order:
        recreate[cid] = cid in targets or any(
            recreate.get(parent, False) and kinds & RECREATE_KINDS
            for parent, kinds in graph.parents[cid].items()
        )
    for component in _components(graph, members):
        plan.groups.append(
            [
                Planned(cid, graph.name(cid), target=cid in targets, recreate=recreate[cid])
                for cid in order
                if cid in component
            ]
        )
    plan.groups.sort(key=lambda group: order.index(group[0].container_id))
    return plan


def _affected(
    graph: DependencyGraph, targets: set[str], blocked: set[str], left_out: dict[str, str]
) -> set[str]:
    """The targets and every container depending on one of them, minus cycles and blocked."""
    members: set[str] = set()
    queue = sorted(cid for cid in targets if cid in graph.containers)
    while queue:
        cid = queue.pop()
        if cid in members:
            continue
        cycle = graph.cycle_of(cid)
        if cycle is not None:
            left_out[cid] = cycle_reason(cycle)
            continue
        if cid in blocked and cid not in targets:
            left_out[cid] = "disabled (watchkeeper.enable=false), not restarted with its dependency"
            continue
        members.add(cid)
        queue.extend(graph.children[cid])
    return members


def _topological(graph: DependencyGraph, members: set[str]) -> list[str]:
    """``members`` with every dependency before its dependents; ties broken by name."""
    waiting = {cid: {p for p in graph.parents[cid] if p in members} for cid in members}
    order: list[str] = []
    while waiting:
        ready = sorted((cid for cid, deps in waiting.items() if not deps), key=graph.name)
        if not ready:  # unreachable: cycles were left out; never loop forever
            ready = sorted(waiting, key=graph.name)
        for cid in ready:
            order.append(cid)
            del waiting[cid]
        for deps in waiting.values():
            deps.difference_update(ready)
    return order


def _components(graph: DependencyGraph, members: set[str]) -> list[set[str]]:
    """Connected parts of ``members``, following dependency edges either way."""
    root = {cid: cid for cid in members}

    def find(cid: str) -> str:
        while root[cid] != cid:
            root[cid] = root[root[cid]]
            cid = root[cid]
        return cid

    def union(a: str, b: str) -> None:
        root[find(a)] = find(b)

    for cid in members:
        for parent in graph.parents[cid]:
            if parent in members:
                union(cid, parent)
    parts: dict[str, set[str]] = {}
    for cid in members:
        parts.setdefault(find(cid), set()).add(cid)
    return list(parts.values())
