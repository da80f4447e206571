"""The endpoints of the README's "Schedule, HTTP API and metrics" and their bearer-token check.

The token is compared with ``hmac.compare_digest`` on bytes (constant time, and no TypeError
for non-ASCII input); a missing or wrong token is 401, never FastAPI's default 403. Whether
the token was missing, wrong or right is left in the request state for the ``api.request``
log line, which never contains the token itself.
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from watchkeeper import __version__
from watchkeeper.api.schemas import ErrorBody, Health, RunReport, Status
from watchkeeper.labels import FALSE_WORDS, TRUE_WORDS
from watchkeeper.locks import LockBusyError
from watchkeeper.metrics import CONTENT_TYPE
from watchkeeper.registry.reference import parse_reference
from watchkeeper.report import Report
from watchkeeper.scheduler import QueueClosedError, QueueFullError

UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "missing or wrong bearer token"}
}


@dataclass
class DaemonStatus:
    """What ``GET /v1/status`` shows, read from the daemon when asked."""

    last_report: Report | None
    next_run: datetime | None
    running: str | None
    queued: int
    periodic_polls: bool


@dataclass
class ApiBackend:
    """What the API needs from the daemon; tests give it stubs.

    ``withdraw`` takes back the part of a waiting run that a request whose client hung up
    had asked for. ``metrics`` None turns ``/v1/metrics`` off; ``update_enabled`` False turns
    ``/v1/update`` off (HTTP_API_METRICS, HTTP_API_UPDATE).
    """

    token: str
    # (trigger, image filters, force) -> the future report of the run that covers them.
    submit: Callable[[str, Sequence[str], bool], Future[Report]]
    status: Callable[[], DaemonStatus]
    alive: Callable[[], bool]
    withdraw: Callable[[Future[Report]], bool] = lambda future: False
    metrics: Callable[[], bytes] | None = None
    update_enabled: bool = True


ImageFilter = Annotated[
    list[str] | None,
    Query(description="only containers of these images, REPO or REPO:TAG (repeat, or commas)"),
]
Force = Annotated[
    str | None,
    Query(
        description="true: update outside UPDATE_WINDOW and before MIN_IMAGE_AGE (never past a "
        "tag policy; MONITOR_ONLY still wins)"
    ),
]
# auto_error=False: FastAPI would answer 403 for a missing header; the contract says 401.
BEARER = HTTPBearer(auto_error=False, description="the value of HTTP_API_TOKEN")


def token_check(token: str) -> Callable[..., None]:
    """A dependency that raises 401 unless the request carries ``Bearer <token>``."""
    expected = token.encode()

    def require_token(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)],
    ) -> None:
        if credentials is None:
            request.state.auth = "missing"
        elif hmac.compare_digest(credentials.credentials.encode(), expected):
            request.state.auth = "ok"
            return
        else:
            request.state.auth = "invalid"
        raise HTTPException(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})

    return require_token


def parse_image_filters(values: Sequence[str]) -> list[str]:
    """Split ``image`` values on commas (Watchtower's form) and check each reference.

    Raises HTTPException 422 naming the first invalid one.
    """
    filters = [item.strip() for value in values for item in value.split(",") if item.strip()]
    for item in filters:
        try:
            parse_reference(item)
        except ValueError as exc:
            raise HTTPException(422, f"image={item!r}: {exc}") from None
    return filters


def parse_force(value: str | None) -> bool:
    """``force``: ``true``/``1``/``yes``/``on`` or their opposites (absent: false).

    Raises HTTPException 422 for anything else.
    """
    if value is None:
        return False
    if value.strip().lower() in TRUE_WORDS:
        return True
    if value.strip().lower() in FALSE_WORDS:
        return False
    raise HTTPException(422, f"force={value!r}: use true or false")


def build_router(backend: ApiBackend) -> APIRouter:
    """Every endpoint, wired to ``backend``."""
    router = APIRouter()
    secured = [Depends(token_check(backend.token))]

    @router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
    def healthz(response: Response) -> dict[str, str]:
        """200 while the scheduler and the run worker are alive (no token needed)."""
        if backend.alive():
            return {"status": "ok"}
        response.status_code = 503
        return {"status": "unavailable"}

    @router.get("/v1/status", response_model=Status, dependencies=secured, responses=UNAUTHORIZED)
    def status() -> dict[str, Any]:
        """The last report, the next scheduled run and the version."""
        return status_body(backend.status())

    if backend.update_enabled:
        add_update_routes(router, backend, secured)
    if backend.metrics is not None:
        add_metrics_route(router, backend.metrics, secured)
    return router


def status_body(state: DaemonStatus) -> dict[str, Any]:
    """The JSON of ``GET /v1/status``."""
    return {
        "version": __version__,
        "last_report": state.last_report.to_dict() if state.last_report else None,
        "next_run": state.next_run.isoformat() if state.next_run else None,
        "running": state.running,
        "queued": state.queued,
        "periodic_polls": state.periodic_polls,
    }


def add_update_routes(router: APIRouter, backend: ApiBackend, secured: list[Any]) -> None:
    """``POST /v1/update``, and ``GET`` for Watchtower users' scripts (not in the schema)."""
    responses: dict[int | str, dict[str, Any]] = {
        **UNAUTHORIZED,
        422: {
            "model": ErrorBody,
            "description": "an image filter is not a reference, or force not true/false",
        },
        429: {"model": ErrorBody, "description": "too many different runs wait already"},
        503: {
            "model": ErrorBody,
            "description": "the daemon is stopping, or another watchkeeper kept the engine busy",
        },
    }

    async def update(request: Request, image: ImageFilter = None, force: Force = None) -> Any:
        """Run a check-and-update now and answer its report when it ends.

        A request that arrives during a run gets the next run; requests that arrive while that
        one waits to start join it. A client that hangs up before its run starts takes it back.
        ``force=true`` updates outside the update window and before the minimum image age.
        """
        filters = parse_image_filters(image or [])
        try:
            future = backend.submit("api", filters, parse_force(force))
        except QueueClosedError as exc:
            raise HTTPException(503, str(exc)) from None
        except QueueFullError as exc:
            raise HTTPException(429, str(exc), {"Retry-After": "60"}) from None
        try:
            report = await report_unless_hung_up(request, future)
        except (QueueClosedError, LockBusyError) as exc:
            raise HTTPException(503, str(exc)) from None
        if report is None:
            backend.withdraw(future)
            # Nobody reads this answer: the client is gone (499, as nginx logs it).
            return JSONResponse({"detail": "client closed the request"}, status_code=499)
        return report.to_dict()

    router.add_api_route(
        "/v1/update",
        update,
        methods=["POST"],
        response_model=RunReport,
        dependencies=secured,
        responses=responses,
    )
    router.add_api_route(
        "/v1/update",
        update,
        methods=["GET"],
        response_model=RunReport,
        dependencies=secured,
        include_in_schema=False,
    )


async def report_unless_hung_up(request: Request, future: Future[Report]) -> Report | None:
    """The run's report, or None as soon as the client hangs up before it is there.

    Raises what the run raised (QueueClosedError, LockBusyError, a crash).
    """
    # shield: the run is shared with other requests and ticks; only ``withdraw`` gives it up.
    waiting: asyncio.Future[Report] = asyncio.ensure_future(
        asyncio.shield(asyncio.wrap_future(future))
    )
    hung_up: asyncio.Future[None] = asyncio.ensure_future(client_hung_up(request))
    both: list[asyncio.Future[Any]] = [waiting, hung_up]
    done, _ = await asyncio.wait(both, return_when=asyncio.FIRST_COMPLETED)
    for task in both:
        if task not in done:
            task.cancel()
    if waiting in done:
        return waiting.result()
    return None


async def client_hung_up(request: Request) -> None:
    """Return when the ASGI server says the client went away (``http.disconnect``)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def add_metrics_route(router: APIRouter, render: Callable[[], bytes], secured: list[Any]) -> None:
    """``GET /v1/metrics``: Prometheus text format."""

    def metrics() -> Response:
        """Prometheus metrics of this daemon."""
        return Response(content=render(), media_type=CONTENT_TYPE)

    router.add_api_route(
        "/v1/metrics",
        metrics,
        methods=["GET"],
        response_class=Response,
        dependencies=secured,
        responses={**UNAUTHORIZED, 200: {"content": {"text/plain": {}}, "description": "metrics"}},
    )
