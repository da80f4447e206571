"""The engine calls a swap, its rollback and crash recovery make, as a protocol.

:class:`~watchkeeper.containers.engine.Engine` is the real one; the unit tests drive the same
swap and recovery code with a fake engine that records the order of calls and can fail any call
before or after it took effect, which the real engine cannot be made to do on demand.
"""

from __future__ import annotations

from typing import Any, Protocol

from watchkeeper.containers.events import Subscription
from watchkeeper.containers.recreate import CreateSpec


class EngineCalls(Protocol):
    """What :mod:`swap`, :mod:`recovery` and :mod:`ready` need from an engine.

    Every method raises ``EngineError`` (``NotFoundError`` for a 404) and nothing else.
    """

    api_version: str
    host_label: str

    def list_containers(self, *, all: bool) -> list[dict[str, Any]]: ...

    def inspect_container(self, id_or_name: str) -> dict[str, Any]: ...

    def create_container(self, spec: CreateSpec) -> str: ...

    def connect_network(
        self, network: str, container_id: str, endpoint: dict[str, Any]
    ) -> None: ...

    def rename(self, container_id: str, new_name: str) -> None: ...

    def start(self, container_id: str) -> None: ...

    def stop(self, container_id: str, *, signal: str | None, timeout_s: float) -> None: ...

    def remove_container(self, container_id: str, *, force: bool) -> None: ...

    def container_logs(self, container_id: str, *, tail: int) -> list[str]: ...

    def watch(self, container_id: str) -> Subscription:
        """The container's events from now on (the health gate sleeps on them); never raises.

        An engine without an event stream hands out a subscription that is not ``live``: the
        gate then polls.
        """
        ...
