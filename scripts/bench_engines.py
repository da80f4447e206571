"""Many engines on one machine for ``scripts/benchmark.py``: one real engine under N identities.

watchkeeper keeps one lock per engine identity (``docker info`` ``ID``, README "Many hosts"): ten
names of one socket share it and take turns, which is right for a real estate (one engine is
never worked on twice at once) but measures a queue, not ten engines. So each "engine" here is
a relay: a Unix socket in a temporary folder whose bytes go to and from the real engine's
socket, with the engine's ``ID`` replaced by one of the same length that is the relay's own.
Everything else (containers, images, the list, the inspects) is the real engine's answer.
The run's lock files (``STATE_DIR/locks/engine-<ID>.lock``) prove that the run saw N engines.
"""

from __future__ import annotations

import contextlib
import socket
import tempfile
import threading
from pathlib import Path

import docker


class IdentityRelay:
    """``unix://FOLDER/NAME.sock`` in front of ``engine_socket``, answering with ``engine_id``."""

    def __init__(self, folder: Path, name: str, engine_socket: str, real_id: str, fake_id: str):
        if len(real_id) != len(fake_id):
            raise ValueError("the relay's ID must have the engine ID's length")
        self._engine_socket = engine_socket
        self._swap = (real_id.encode(), fake_id.encode())
        self.path = folder / f"{name}.sock"
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._listener.bind(str(self.path))
        self._listener.listen(64)
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"unix://{self.path}"

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            engine.connect(self._engine_socket)
            threading.Thread(target=_pipe, args=(client, engine, None), daemon=True).start()
            threading.Thread(target=_pipe, args=(engine, client, self._swap), daemon=True).start()


def _pipe(source: socket.socket, target: socket.socket, swap: tuple[bytes, bytes] | None) -> None:
    """Copy ``source`` to ``target`` (replacing ``swap[0]`` by ``swap[1]``) until one closes.

    The ID is replaced inside one read: the ``/info`` answer is a few KiB written at once. A
    split ID would show as fewer lock files than engines, which the measure checks.
    """
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            if swap is not None:
                data = data.replace(*swap)
            target.sendall(data)
    for side in (source, target):
        with contextlib.suppress(OSError):
            side.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(OSError):
            side.close()


def fake_id(real_id: str, index: int) -> str:
    """An ID of ``real_id``'s length that differs from it and from every other index's."""
    suffix = f"{index:04d}"
    fake = real_id[: -len(suffix)] + suffix
    return fake if fake != real_id else real_id[: -len(suffix)] + f"{index + 5000:04d}"


class Estate:
    """N relays of one engine: ``DOCKER_HOSTS`` entries ``e0=unix://…/e0.sock,…``."""

    def __init__(self, engine_url: str, count: int) -> None:
        client = docker.DockerClient(base_url=engine_url, timeout=60)
        real_id = str(client.info()["ID"])
        client.close()
        self.folder = Path(tempfile.mkdtemp(prefix="wk-bench-engines-"))
        socket_path = engine_url.removeprefix("unix://")
        self.relays = [
            IdentityRelay(self.folder, f"e{i}", socket_path, real_id, fake_id(real_id, i))
            for i in range(count)
        ]

    def docker_hosts(self, count: int | None = None) -> str:
        """The ``DOCKER_HOSTS`` value naming the first ``count`` relays (all by default)."""
        relays = self.relays[: count or len(self.relays)]
        return ",".join(f"e{i}={relay.url}" for i, relay in enumerate(relays))

    def close(self) -> None:
        for relay in self.relays:
            relay.close()


def lock_files(state_dir: str) -> int:
    """How many engine lock files a run left in its state folder (one per engine identity)."""
    return len(list((Path(state_dir) / "locks").glob("engine-*.lock")))
