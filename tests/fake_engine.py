"""An in-memory engine for unit tests of swap, rollback and crash-recovery orderings.

It implements :class:`~watchkeeper.containers.calls.EngineCalls` with the few engine rules the
swap relies on, so that a test sees the same refusals the real engine gives:

- names are unique: a create or rename onto a taken name is a conflict (``EngineError``);
- ``container:<x>`` network, PID and IPC modes are resolved to ``x``'s ID at create, and a
  container whose namespace parent does not run cannot be started;
- a running container is not removed without ``force`` (and never its volumes: there is no
  such flag);
- timestamps are RFC 3339 with nanoseconds, as the engine writes them, from a fake clock that
  moves forward at every change, so :func:`recovery.find_units` can order them.

What the real engine cannot be made to do on demand is the point of it: every call is logged
(:attr:`FakeEngine.calls`), any call can fail before or after it took effect
(:meth:`FakeEngine.fail`, also with a ``BaseException`` that stands for a kill), and a started
container can exit or turn unhealthy at once (:meth:`FakeEngine.break_on_start`).

Like the engine, it announces its changes as container events (``start``, ``die``, ``stop``,
``destroy``, ``health_status: ...``) with the fake clock's time, to the gates that
:meth:`FakeEngine.watch`; :meth:`FakeEngine.set_health` changes a health status from a test,
announced or (a lost event) not. Calls and test controls hold one lock, so gates in several
threads may share it.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from watchkeeper.containers.engine import NotFoundError
from watchkeeper.containers.events import ContainerEvent, EventHub, Subscription
from watchkeeper.containers.order import NAMESPACE_MODES
from watchkeeper.containers.recreate import CreateSpec
from watchkeeper.errors import EngineError

# Calls that change the engine; inspects, listings and logs only read it.
CHANGES = frozenset(
    {"create_container", "connect_network", "rename", "start", "stop", "remove_container"}
)
ZERO_TIME = "0001-01-01T00:00:00Z"
_START_NS = 1_700_000_000 * 1_000_000_000
# A tick of the fake clock: a bit over a second, so the nanosecond digits are not all zero.
_TICK_NS = 1_000_000_123

Breakage = Literal["exit", "unhealthy"]


@dataclass
class Call:
    """One call the engine received: positional arguments in ``args``, keyword-only ones in
    ``kwargs`` (as :class:`EngineCalls` declares them). ``create_container`` logs the name as
    its argument and the whole spec as ``kwargs["spec"]``."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Fault:
    """A call that fails: the ``nth`` call of ``method`` for which ``when`` holds, and the
    ``times - 1`` matching calls after it (``times`` None: every one from the nth on).

    ``after``: the call takes effect first, then raises (a stop that timed out once the
    container had stopped); else it raises with nothing done.
    """

    method: str
    error: BaseException
    when: Callable[[Call], bool]
    nth: int = 1
    times: int | None = 1
    after: bool = False
    seen: int = 0
    fired: int = 0

    def trips(self, call: Call) -> bool:
        """Count ``call`` if it matches; True when this fault fires for it."""
        if call.method != self.method or not self.when(call):
            return False
        self.seen += 1
        if self.seen < self.nth or (self.times is not None and self.fired >= self.times):
            return False
        self.fired += 1
        return True


class FakeEngine:
    """An engine held in a dict of inspect dicts; see the module docstring."""

    api_version = "1.45"
    host_label = "fake"

    def __init__(self) -> None:
        self.containers: dict[str, dict[str, Any]] = {}
        self.logs: dict[str, list[str]] = {}
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self._breakages: list[tuple[Callable[[dict[str, Any]], bool], Breakage]] = []
        self._clock_ns = _START_NS
        self._ids = 0
        self._lock = threading.RLock()
        self._quiet = False
        self._called = threading.Condition(self._lock)
        # Always live: every change is published as it happens.
        self.events = EventHub(None, name="fake events")

    # -- test controls -------------------------------------------------------------------

    def fail(
        self,
        method: str,
        *,
        nth: int = 1,
        when: Callable[[Call], bool] | None = None,
        after: bool = False,
        error: BaseException | None = None,
        times: int | None = 1,
    ) -> Fault:
        """Make a call fail (see :class:`Fault`); the default error is an ``EngineError``."""
        fault = Fault(
            method,
            error or EngineError(f"injected failure of {method}"),
            when or (lambda _call: True),
            nth=nth,
            times=times,
            after=after,
        )
        self.faults.append(fault)
        return fault

    def break_on_start(self, how: Breakage, *, when: Callable[[dict[str, Any]], bool]) -> None:
        """Containers for which ``when(inspect)`` holds start, then at once exit (code 1) or
        report ``unhealthy``: what the health gate sees at its first look."""
        self._breakages.append((when, how))

    def add(
        self,
        name: str,
        image: dict[str, Any],
        *,
        running: bool = True,
        labels: dict[str, str] | None = None,
        host_config: dict[str, Any] | None = None,
        healthcheck: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Seed a container as a user made it (not logged, no faults); return its inspect.

        ``image`` is an image inspect (``Id``, ``RepoTags``, ``Config``); the container gets
        the image's config merged under its own, as the engine does.
        """
        image_config = image.get("Config") or {}
        reference = (image.get("RepoTags") or [image["Id"]])[0]
        body: dict[str, Any] = {
            **copy.deepcopy(image_config),
            "Image": reference,
            "Labels": {**(image_config.get("Labels") or {}), **(labels or {})},
            "HostConfig": {"NetworkMode": "default", **(host_config or {})},
        }
        if healthcheck is not None:
            body["Healthcheck"] = healthcheck
        mode = body["HostConfig"]["NetworkMode"]
        if not (mode.startswith("container:") or mode in ("host", "none")):
            network = "bridge" if mode == "default" else mode
            body["NetworkingConfig"] = {"EndpointsConfig": {network: {}}}
        container_id = self._create(CreateSpec(name=name, body=body, image_id=str(image["Id"])))
        if running:
            self._start(container_id)
        return self.inspect(container_id)

    def exit(self, id_or_name: str, exit_code: int = 1) -> None:
        """Make a running container exit by itself (not logged)."""
        with self._lock:
            container = self._find(id_or_name)
            self._stopped(container, exit_code)

    def restart(self, id_or_name: str, *, announce: bool = True) -> None:
        """Make a running container exit and come back at once, as a restart policy does
        (not logged): a new ``StartedAt``, the ``die`` and ``start`` events (dropped when not
        ``announce``, as a stream that broke at that moment would)."""
        with self._lock:
            container = self._find(id_or_name)
            self._quiet = not announce
            try:
                self._stopped(container, 1)
                self._start(container["Id"])
            finally:
                self._quiet = False

    def set_health(self, id_or_name: str, status: str, *, announce: bool = True) -> None:
        """Set a running container's health status (not logged); ``announce`` False drops
        the ``health_status`` event, as a stream that broke at that moment would."""
        with self._lock:
            container = self._find(id_or_name)
            health = container["State"].setdefault("Health", {"FailingStreak": 0, "Log": []})
            health["Status"] = status
            if announce:
                self._clock_ns += _TICK_NS
                self._announce(container, f"health_status: {status}")

    def inspect(self, id_or_name: str) -> dict[str, Any]:
        """An inspect that is not logged and cannot fail: for the test's own assertions."""
        with self._lock:
            return copy.deepcopy(self._find(id_or_name))

    def names(self) -> dict[str, str]:
        """Every container's name -> ID."""
        return {_name(c): cid for cid, c in self.containers.items()}

    def actions(self) -> list[tuple[Any, ...]]:
        """The calls that change the engine, as ``(method, *args)``, in order."""
        return [(call.method, *call.args) for call in self.calls if call.method in CHANGES]

    def calls_of(self, method: str) -> list[Call]:
        """Every call of ``method``, in order."""
        with self._lock:
            return [call for call in self.calls if call.method == method]

    def wait_for_calls(self, method: str, count: int, timeout_s: float = 10.0) -> None:
        """Block until ``method`` was called ``count`` times (another thread calls it)."""
        with self._called:
            if not self._called.wait_for(lambda: len(self.calls_of(method)) >= count, timeout_s):
                raise AssertionError(f"{method} called {len(self.calls_of(method))} times")

    # -- EngineCalls ---------------------------------------------------------------------

    def watch(self, container_id: str) -> Subscription:
        return self.events.subscribe(container_id)

    def list_containers(self, *, all: bool) -> list[dict[str, Any]]:
        with self._call("list_containers", all=all):
            found = [
                copy.deepcopy(c) for c in self.containers.values() if all or c["State"]["Running"]
            ]
        return sorted(found, key=lambda c: str(c["Created"]), reverse=True)  # newest first

    def inspect_container(self, id_or_name: str) -> dict[str, Any]:
        with self._call("inspect_container", id_or_name):
            found = self.inspect(id_or_name)
        return found

    def create_container(self, spec: CreateSpec) -> str:
        with self._call("create_container", spec.name, spec=spec):
            container_id = self._create(spec)
        return container_id

    def connect_network(self, network: str, container_id: str, endpoint: dict[str, Any]) -> None:
        with self._call("connect_network", network, container_id, endpoint):
            container = self._find(container_id)
            container["NetworkSettings"]["Networks"][network] = copy.deepcopy(endpoint)

    def rename(self, container_id: str, new_name: str) -> None:
        with self._call("rename", container_id, new_name):
            container = self._find(container_id)
            if _name(container) == new_name:
                raise EngineError("Renaming a container with the same name as its current name")
            self._check_name_free(new_name)
            container["Name"] = "/" + new_name

    def start(self, container_id: str) -> None:
        with self._call("start", container_id):
            self._start(container_id)

    def stop(self, container_id: str, *, signal: str | None, timeout_s: float) -> None:
        with self._call("stop", container_id, signal=signal, timeout_s=timeout_s):
            container = self._find(container_id)
            if container["State"]["Running"]:
                self._stopped(container, 0)

    def remove_container(self, container_id: str, *, force: bool) -> None:
        with self._call("remove_container", container_id, force=force):
            container = self._find(container_id)
            if container["State"]["Running"] and not force:
                raise EngineError(
                    f"You cannot remove a running container {container['Id']}. Stop the "
                    "container before attempting removal or force remove"
                )
            del self.containers[container["Id"]]
            self._announce(container, "destroy")

    def container_logs(self, container_id: str, *, tail: int) -> list[str]:
        with self._call("container_logs", container_id, tail=tail):
            lines = self.logs.get(self._find(container_id)["Id"], [])
        return lines[-tail:] if tail > 0 else []

    # -- the engine's rules --------------------------------------------------------------

    @contextmanager
    def _call(self, method: str, *args: Any, **kwargs: Any) -> Iterator[None]:
        """Log the call and apply the faults that match it: before its effect, or after."""
        with self._lock:
            call = Call(method, args, kwargs)
            self.calls.append(call)
            self._called.notify_all()
            tripped = [fault for fault in self.faults if fault.trips(call)]
            early = [fault for fault in tripped if not fault.after]
            if early:
                raise early[0].error
            yield
            if tripped:
                raise tripped[0].error

    def _announce(self, container: dict[str, Any], action: str, **attributes: str) -> None:
        """Publish a container event at the fake clock's current instant."""
        if not self._quiet:
            self.events.publish(ContainerEvent(container["Id"], action, self._clock_ns, attributes))

    def _tick(self) -> str:
        """The fake clock's next instant, formatted as the engine does (Go's RFC3339Nano)."""
        self._clock_ns += _TICK_NS
        seconds, nanos = divmod(self._clock_ns, 1_000_000_000)
        stamp = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        fraction = f"{nanos:09d}".rstrip("0")
        return f"{stamp}.{fraction}Z" if fraction else f"{stamp}Z"

    def _find(self, id_or_name: str) -> dict[str, Any]:
        """The container a full ID, a name or a unique ID prefix names (the engine's order)."""
        if id_or_name in self.containers:
            return self.containers[id_or_name]
        wanted = id_or_name.lstrip("/")
        for container in self.containers.values():
            if _name(container) == wanted:
                return container
        matches = [c for cid, c in self.containers.items() if id_or_name and cid.startswith(wanted)]
        if len(matches) == 1:
            return matches[0]
        raise NotFoundError(f"No such container: {id_or_name}")

    def _check_name_free(self, name: str) -> None:
        """Raise the engine's conflict when another container holds ``name``."""
        holder = next((c for c in self.containers.values() if _name(c) == name), None)
        if holder is not None:
            raise EngineError(
                f'Conflict. The container name "/{name}" is already in use by container '
                f'"{holder["Id"]}". You have to remove (or rename) that container to be able '
                "to reuse that name."
            )

    def _create(self, spec: CreateSpec) -> str:
        """Store a container from a create body; namespace modes resolved to IDs."""
        self._check_name_free(spec.name)
        body = copy.deepcopy(spec.body)
        host_config = body.pop("HostConfig", None) or {}
        networking = body.pop("NetworkingConfig", None) or {}
        for mode_field in NAMESPACE_MODES:
            mode = str(host_config.get(mode_field) or "")
            if mode.startswith("container:"):
                parent = self._find(mode.removeprefix("container:"))
                host_config[mode_field] = "container:" + parent["Id"]
        self._ids += 1
        container_id = hashlib.sha256(f"fake-container-{self._ids}".encode()).hexdigest()
        body.setdefault("Labels", {})
        self.containers[container_id] = {
            "Id": container_id,
            "Name": "/" + spec.name,
            "Created": self._tick(),
            "Image": spec.image_id,
            "Config": body,
            "HostConfig": host_config,
            "NetworkSettings": {"Networks": dict(networking.get("EndpointsConfig") or {})},
            "RestartCount": 0,
            "State": {
                "Status": "created",
                "Running": False,
                "Paused": False,
                "Restarting": False,
                "Dead": False,
                "Pid": 0,
                "ExitCode": 0,
                "Error": "",
                "StartedAt": ZERO_TIME,
                "FinishedAt": ZERO_TIME,
            },
        }
        self.logs[container_id] = []
        return container_id

    def _start(self, container_id: str) -> None:
        """Start a container (a running one is left alone), or refuse as the engine does."""
        container = self._find(container_id)
        state = container["State"]
        if state["Running"]:
            return
        for mode_field in NAMESPACE_MODES:
            mode = str(container["HostConfig"].get(mode_field) or "")
            if not mode.startswith("container:"):
                continue
            parent = self.containers.get(mode.removeprefix("container:"))
            if parent is None or not parent["State"]["Running"]:
                raise EngineError(
                    f"cannot join {mode_field} of a non running container: "
                    f"{mode.removeprefix('container:')}"
                )
        state.update(Status="running", Running=True, Pid=1000 + self._ids, ExitCode=0)
        state["StartedAt"] = self._tick()
        state.pop("Health", None)
        self._announce(container, "start")
        check = container["Config"].get("Healthcheck") or {}
        if (check.get("Test") or ["NONE"])[0] != "NONE":
            state["Health"] = {"Status": "healthy", "FailingStreak": 0, "Log": []}
            self._announce(container, "health_status: healthy")
        self.logs[container["Id"]].append(f"{_name(container)} started")
        for when, how in self._breakages:
            if not when(copy.deepcopy(container)):
                continue
            self.logs[container["Id"]].append(f"{_name(container)}: broken ({how})")
            if how == "exit":
                self._stopped(container, 1)
            else:
                state["Health"] = {
                    "Status": "unhealthy",
                    "FailingStreak": 3,
                    "Log": [{"ExitCode": 1, "Output": "probe failed"}],
                }
                self._announce(container, "health_status: unhealthy")

    def _stopped(self, container: dict[str, Any], exit_code: int) -> None:
        """Mark a container exited now."""
        container["State"].update(Status="exited", Running=False, Pid=0, ExitCode=exit_code)
        container["State"]["FinishedAt"] = self._tick()
        self._announce(container, "die", exitCode=str(exit_code))
        self._announce(container, "stop")


def _name(container: dict[str, Any]) -> str:
    return str(container["Name"]).lstrip("/")
