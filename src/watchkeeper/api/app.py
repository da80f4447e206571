"""The FastAPI application and the uvicorn server that carries it beside the scheduler.

The socket is bound by :meth:`ApiServer.bind` before the daemon starts anything, so a busy or
bad ``HTTP_API_LISTEN`` is a configuration error at start (exit 2), not a thread dying later.
uvicorn runs in a thread of its own without its signal handlers (the daemon owns SIGTERM) and
without its access log: the ``api.request`` line written here replaces it and never carries
headers, so the token cannot reach the logs this way.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import structlog
import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from watchkeeper import __version__
from watchkeeper.api.routes import ApiBackend, build_router

log = structlog.get_logger()


class RequestLog:
    """ASGI middleware: one ``api.request`` line per request (method, path, status, auth)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and log how it ended."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = 500

        async def send_and_remember(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_remember)
        finally:
            client = scope.get("client")
            log.info(
                "api.request",
                method=scope["method"],
                path=scope["path"],
                status=status,
                auth=scope.get("state", {}).get("auth"),
                client=client[0] if client else None,
                duration_s=round(time.monotonic() - started, 3),
            )


def create_app(backend: ApiBackend) -> FastAPI:
    """The API application: the routes the README lists, ``/openapi.json``, no docs pages."""
    app = FastAPI(
        title="watchkeeper",
        version=__version__,
        description="Trigger runs, read the last report and the metrics of a watchkeeper daemon.",
        docs_url=None,
        redoc_url=None,
    )
    app.include_router(build_router(backend))
    app.add_middleware(RequestLog)
    return app


class ApiServer:
    """uvicorn serving the app on a socket bound in advance, in a background thread."""

    def __init__(self, app: FastAPI, sock: socket.socket) -> None:
        self._sock = sock
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="watchkeeper-api", daemon=True
        )

    @staticmethod
    def bind(host: str, port: int) -> socket.socket:
        """Listen on ``host:port``. Raises OSError (address in use, unknown host)."""
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        return socket.create_server(address, family=family, backlog=128)

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real port when 0 was asked for)."""
        name: Any = self._sock.getsockname()
        return str(name[0]), int(name[1])

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    @property
    def alive(self) -> bool:
        """True while the server thread runs."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask uvicorn to exit, wait for it, and close the socket."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._sock.close()
