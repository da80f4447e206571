"""A loopback TCP front for a real engine's Unix socket, plain or mutual TLS, and a hung engine.

``EngineRelay`` listens on ``127.0.0.1`` and copies bytes both ways between each client and the
engine's socket, so watchkeeper reaches a real engine as ``tcp://127.0.0.1:PORT``. With
``tls`` it is a TLS-terminating front with client certificates required (what ``dockerd
--tlsverify`` demands): it proves the client side of mutual TLS without a second TLS-listening
dockerd; with ``hang_on`` it stops answering at a given request, as an engine that hangs in the
middle of a run. ``hung_engine`` is a socket that accepts connections and never answers.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ServerTls:
    """The relay's certificate and key, and the CA client certificates must chain to."""

    certificate: Path
    key: Path
    client_ca: Path


class EngineRelay:
    """``tcp://127.0.0.1:PORT`` in front of ``engine_socket`` (a path), until ``close``."""

    def __init__(
        self,
        engine_socket: str,
        tls: ServerTls | None = None,
        port: int = 0,
        hang_on: bytes | None = None,
    ) -> None:
        self._engine_socket = engine_socket
        # A request containing these bytes is never forwarded: the engine seems to hang there.
        self._hang_on = hang_on
        self._context = _server_context(tls) if tls is not None else None
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port = int(self._listener.getsockname()[1])
        self.handshake_failures = 0
        self._closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        if self._context is not None:
            try:
                client = self._context.wrap_socket(client, server_side=True)
            except (ssl.SSLError, OSError):
                self.handshake_failures += 1
                client.close()
                return
        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        engine.connect(self._engine_socket)
        threading.Thread(target=_pipe, args=(engine, client), daemon=True).start()
        _pipe(client, engine, self._hang_on, self._closed)


def _pipe(
    source: socket.socket,
    target: socket.socket,
    hang_on: bytes | None = None,
    closed: threading.Event | None = None,
) -> None:
    """Copy ``source`` to ``target`` until either side closes, then close both.

    Data containing ``hang_on`` is held back until ``closed`` is set: no answer ever comes.
    """
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            if hang_on is not None and hang_on in data and closed is not None:
                closed.wait()
                break
            target.sendall(data)
    for side in (source, target):
        with contextlib.suppress(OSError):
            side.close()


def _server_context(tls: ServerTls) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(tls.certificate), str(tls.key))
    context.load_verify_locations(str(tls.client_ca))
    context.verify_mode = ssl.CERT_REQUIRED
    return context


@contextlib.contextmanager
def hung_engine() -> Iterator[str]:
    """The ``tcp://`` URL of a loopback socket that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=64)
    held: list[socket.socket] = []
    closed = threading.Event()

    def accept() -> None:
        while not closed.is_set():
            try:
                held.append(listener.accept()[0])
            except OSError:
                return

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"tcp://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        closed.set()
        listener.close()
        for conn in held:
            conn.close()
