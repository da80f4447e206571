"""``POST /v1/update`` against the real run queue, in-process: joining, hanging up, the bound.

The requests go straight into the ASGI app (no socket), so a test decides exactly when a client
hangs up (``http.disconnect``), as uvicorn tells the app when a connection drops.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message

from tests.unit.test_api_app import TOKEN, StubDaemon, bearer
from watchkeeper.api.app import create_app
from watchkeeper.api.routes import ApiBackend
from watchkeeper.locks import LockBusyError
from watchkeeper.report import Report
from watchkeeper.scheduler import QueueFullError, RunQueue

WAIT_S = 5.0


class BlockingRuns:
    """A run function that records each run and holds it until the test lets it go."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.started = threading.Semaphore(0)
        self.release = threading.Semaphore(0)

    def __call__(self, trigger: str, images: tuple[str, ...], force: bool = False) -> Report:
        self.calls.append(trigger)
        self.started.release()
        assert self.release.acquire(timeout=WAIT_S), "the test never released the run"
        return Report(host=f"{trigger}-{len(self.calls)}").finish()


class QueuedApi:
    """The app around a real RunQueue; ``submitted`` is set each time a request is queued."""

    def __init__(self) -> None:
        self.runs = BlockingRuns()
        self.queue = RunQueue(self.runs)
        self.submitted: asyncio.Queue[Future[Report]] | None = None
        self.app = create_app(
            ApiBackend(
                token=TOKEN,
                submit=self.submit,
                status=StubDaemon().status,
                alive=lambda: True,
                withdraw=self.queue.withdraw,
            )
        )

    def submit(self, trigger: str, images: Sequence[str], force: bool = False) -> Future[Report]:
        future = self.queue.submit(trigger, images, force)
        if self.submitted is not None:
            self.submitted.put_nowait(future)
        return future

    def occupy_worker(self) -> None:
        """Start a scheduled run and wait until it runs, so API requests must queue."""
        self.queue.submit("schedule")
        assert self.runs.started.acquire(timeout=WAIT_S)


@pytest.fixture
def api() -> Iterator[QueuedApi]:
    """The app and its started queue; every run released and the queue closed afterwards."""
    queued = QueuedApi()
    queued.queue.start()
    yield queued
    for _ in range(10):
        queued.runs.release.release()
    queued.queue.close(timeout=WAIT_S)


def update_scope() -> dict[str, Any]:
    """The ASGI scope of ``POST /v1/update`` with the token."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/update",
        "raw_path": b"/v1/update",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test"), (b"authorization", f"Bearer {TOKEN}".encode())],
        "client": ("127.0.0.1", 40000),
        "server": ("test", 80),
    }


async def post_update(app: FastAPI, hang_up: asyncio.Event) -> list[Message]:
    """One request; its client hangs up when ``hang_up`` is set. Returns what the app sent."""
    body_sent = False
    sent: list[Message] = []

    async def receive() -> Message:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await hang_up.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    await app(update_scope(), receive, send)
    return sent


def status_and_body(sent: list[Message]) -> tuple[int, Any]:
    """The status and the JSON body of an answer."""
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return int(status), json.loads(body)


def test_api_update_requests_while_run_waits_share_one_run_and_report(api: QueuedApi) -> None:
    """Three requests during a run: one more run, and all three answer its report."""

    async def scenario() -> list[list[Message]]:
        api.submitted = asyncio.Queue()
        never = asyncio.Event()
        calls = [asyncio.create_task(post_update(api.app, never)) for _ in range(3)]
        futures = [await asyncio.wait_for(api.submitted.get(), WAIT_S) for _ in calls]
        assert all(f is futures[0] for f in futures)
        api.runs.release.release()
        api.runs.release.release()
        return list(await asyncio.wait_for(asyncio.gather(*calls), WAIT_S))

    api.occupy_worker()
    answers = [status_and_body(sent) for sent in asyncio.run(scenario())]
    assert [status for status, _ in answers] == [200, 200, 200]
    assert {body["host"] for _, body in answers} == {"api-2"}
    assert api.runs.calls == ["schedule", "api"]


def test_api_update_client_hang_up_before_run_starts_cancels_it(api: QueuedApi) -> None:
    """The only requester of a waiting run hangs up: the run is dropped and never performed."""

    async def scenario() -> Future[Report]:
        api.submitted = asyncio.Queue()
        hang_up = asyncio.Event()
        call = asyncio.create_task(post_update(api.app, hang_up))
        future = await asyncio.wait_for(api.submitted.get(), WAIT_S)
        hang_up.set()
        await asyncio.wait_for(call, WAIT_S)
        return future

    api.occupy_worker()
    future = asyncio.run(scenario())
    assert future.cancelled()
    assert api.queue.pending == 0
    api.runs.release.release()
    assert api.queue.close(timeout=WAIT_S)
    assert api.runs.calls == ["schedule"]


def test_api_update_one_of_two_hangs_up_other_still_gets_run(api: QueuedApi) -> None:
    """Two requests share a waiting run; one hangs up, the other gets the run's report."""

    async def scenario() -> list[Message]:
        api.submitted = asyncio.Queue()
        hang_up, never = asyncio.Event(), asyncio.Event()
        leaving = asyncio.create_task(post_update(api.app, hang_up))
        staying = asyncio.create_task(post_update(api.app, never))
        for _ in range(2):
            await asyncio.wait_for(api.submitted.get(), WAIT_S)
        hang_up.set()
        await asyncio.wait_for(leaving, WAIT_S)
        assert api.queue.pending == 1
        api.runs.release.release()
        api.runs.release.release()
        return await asyncio.wait_for(staying, WAIT_S)

    api.occupy_worker()
    status, body = status_and_body(asyncio.run(scenario()))
    assert status == 200
    assert body["host"] == "api-2"


def test_api_update_queue_full_is_429_with_retry_after(stub: StubDaemon) -> None:
    """A request the queue refuses (too many different runs wait) is 429, Retry-After set."""

    def refuse(trigger: str, images: Sequence[str], force: bool = False) -> Future[Report]:
        raise QueueFullError("16 runs wait already; try again later")

    client = TestClient(create_app(stub.backend(submit=refuse)))
    response = client.post("/v1/update", headers=bearer(TOKEN))
    assert response.status_code == 429
    assert response.headers["retry-after"] == "60"
    assert "wait already" in response.json()["detail"]


def test_api_update_engine_busy_is_503_naming_holder(stub: StubDaemon) -> None:
    """A run skipped because another watchkeeper holds the engine is 503 with who holds it."""

    def busy(trigger: str, images: Sequence[str], force: bool = False) -> Future[Report]:
        future: Future[Report] = Future()
        future.set_exception(LockBusyError("local", 4242))
        return future

    client = TestClient(create_app(stub.backend(submit=busy)))
    response = client.post("/v1/update", headers=bearer(TOKEN))
    assert response.status_code == 503
    assert response.json()["detail"] == "another watchkeeper is busy on engine local (pid 4242)"


@pytest.fixture
def stub() -> StubDaemon:
    """A stub daemon."""
    return StubDaemon()
