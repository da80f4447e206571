"""DOCKER_API_VERSION against Docker 29, whose minimum API is 1.44: a lower pin is ignored.

Docker 29 refuses clients below API 1.44 (Watchtower pinned 1.25 and stopped working); the
``GET /version`` answers come from ``data/inspect-api1.52.json`` and ``-api1.54.json``, written
by ``data/derive_inspect.py`` from the swagger ``SystemVersion`` shape and moby's
``defaultMinAPIVersion``. No engine is needed here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import structlog

from watchkeeper.containers import engine as engine_module

DATA = Path(__file__).parent / "data"


def version_answer(api_version: str) -> dict[str, Any]:
    """The recorded ``GET /version`` answer of the engine of one derived recording."""
    return dict(json.loads((DATA / f"inspect-api{api_version}.json").read_text())["version"])


class NegotiatedClient:
    """A docker-py client as negotiated with a Docker 29 engine: its newest API, its answer."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.api = type("Api", (), {"api_version": answer["ApiVersion"]})()
        self._answer = answer
        self.closed = False

    def version(self) -> dict[str, Any]:
        return self._answer

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize("recording", ["1.52", "1.54"])
def test_pinned_client_below_docker_29_minimum_ignored_and_logged(recording: str) -> None:
    """A pin of 1.41 on a Docker 29 engine (minimum 1.44) keeps the negotiated client and logs
    ``engine.api_version_ignored`` with the engine's range."""
    answer = version_answer(recording)
    assert answer["MinAPIVersion"] == "1.44"
    client = NegotiatedClient(answer)
    with structlog.testing.capture_logs() as logs:
        # The pinning rule alone: the URL is not reached on this path.
        kept = engine_module._pinned_client(client, "1.41", "unix:///nonexistent.sock", 5.0)  # noqa: SLF001
    assert kept is client
    assert not client.closed
    (event,) = [e for e in logs if e["event"] == "engine.api_version_ignored"]
    assert event["requested"] == "1.41"
    assert event["using"] == answer["ApiVersion"]
    assert event["reason"] == f"the engine speaks API 1.44 to {answer['ApiVersion']}"


class InfoAnswer:
    """An unversioned ``GET /info`` answer: the recorded body, and the engine's headers."""

    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers

    def json(self) -> dict[str, Any]:
        return {"ServerVersion": "29.0.0", "ID": "engine-id"}


class UnnegotiatedApi:
    """docker-py's low-level client before the negotiation: what ``_negotiated_info`` uses."""

    base_url = "http+docker://localhost"

    def __init__(self, headers: dict[str, str], version_answer: dict[str, Any]) -> None:
        self._version = "1.24"
        self._headers = headers
        self._version_answer = version_answer
        self.asked: list[str] = []

    @property
    def api_version(self) -> str:
        """docker-py's public view of ``_version``."""
        return self._version

    def _get(self, url: str) -> InfoAnswer:
        self.asked.append(url.removeprefix(self.base_url))
        return InfoAnswer(self._headers)

    def _raise_for_status(self, response: InfoAnswer) -> None:
        """A 200."""

    def _retrieve_server_version(self) -> str:
        self.asked.append("/version")
        return str(self._version_answer["ApiVersion"])


@pytest.mark.parametrize("recording", ["1.52", "1.54"])
def test_negotiated_from_info_header_or_version_when_the_header_is_missing(recording: str) -> None:
    """The connect's one ``/info`` sets the API version from its ``Api-Version`` header (a
    Docker 29 engine's newest, as ``GET /version`` says); an answer without the header, or with
    one that is no API version, falls back to ``GET /version``."""
    answer = version_answer(recording)
    api = UnnegotiatedApi({"Api-Version": answer["ApiVersion"]}, answer)
    info = engine_module._negotiated_info(api)  # noqa: SLF001
    assert (api.asked, api.api_version, info["ServerVersion"]) == (
        ["/info"],
        answer["ApiVersion"],
        "29.0.0",
    )
    for headers in ({}, {"Api-Version": "latest"}):
        api = UnnegotiatedApi(headers, answer)
        engine_module._negotiated_info(api)  # noqa: SLF001
        assert (api.asked, api.api_version) == (["/info", "/version"], answer["ApiVersion"])
