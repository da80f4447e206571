"""The Docker engine adapter: the only module that talks to docker-py.

Every call goes through :func:`_translated`, which turns ``docker.errors.*`` and
``requests`` exceptions into watchkeeper errors (``raise ... from exc``), so the use cases
never see third-party types. Every call has an explicit HTTP timeout: the client's default
(``timeout`` of :meth:`Engine.connect`) or one sized to the operation (stop, wait, pull).
The create body is sent raw (``create_container_from_config``) so nothing docker-py does
not know about is lost between the inspect of the old container and its replacement.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import docker
import docker.auth
import docker.constants
import docker.errors
import docker.tls
import docker.transport
import docker.types
import requests.exceptions
import structlog
import urllib3.exceptions

from watchkeeper.containers.events import EventHub, Subscription
from watchkeeper.containers.recreate import CreateSpec, parse_api_version, unplanned_image
from watchkeeper.containers.summary import needs_inspect, summary_view
from watchkeeper.errors import EngineError, EngineUnreachableError, PullError

# urllib3's own errors escape requests while a streamed body (pull progress) is read.
_TRANSLATED = (
    docker.errors.DockerException,
    requests.exceptions.RequestException,
    urllib3.exceptions.HTTPError,
)
# The engine a URL-less connect reaches when DOCKER_HOST is not set either.
DEFAULT_SOCKET_URL = "unix:///var/run/docker.sock"
# Connections docker-py keeps per engine (its default is 10). Groups swap side by side
# (UPDATE_CONCURRENCY, at most 64), pulls run beside them and the health gates share an event
# stream: a call that finds the pool full does not wait, urllib3 opens one more connection and
# discards it afterwards with a warning on stderr. Connections are opened only when needed.
_POOL_SIZE = 80
# The API version a client is made with until :func:`_negotiated_info` sets the engine's (no
# request is sent with it: docker-py's oldest, which it accepts without a request).
_UNNEGOTIATED = docker.constants.MINIMUM_DOCKER_API_VERSION
# What an ``Api-Version`` header must look like to be taken.
_API_VERSION = re.compile(r"1\.\d{1,3}")
# How long a container may take to go away after SIGKILL.
_KILL_WAIT_S = 15.0
# From this API version ``POST /containers/{id}/stop`` takes a ``signal``.
_STOP_SIGNAL_API = (1, 42)
# DOCKER_API_VERSION older than this is ignored: the recreate rules are tested from 1.41 on.
_OLDEST_PINNED_API = (1, 41)
# How old a ``docker info`` answer may be for :meth:`Engine.recent_info`.
_INFO_REUSE_S = 10.0
# The container events the health gate follows (``health_status`` matches every status).
_GATE_EVENTS = {
    "type": ["container"],
    "event": ["start", "restart", "die", "stop", "destroy", "health_status"],
}
# The event stream's read timeout: a quiet stream ends after it and is opened again, so a
# connection that died without a word (a remote engine's host gone) is noticed, not waited on.
_EVENTS_READ_TIMEOUT_S = 30.0

log = structlog.get_logger()


class NotFoundError(EngineError):
    """The container, image or network the call named does not exist (HTTP 404)."""


@dataclass(frozen=True)
class ExecResult:
    """What a command run inside a container did; ``exit_code`` None when it timed out."""

    exit_code: int | None
    output: str
    timed_out: bool = False


@contextmanager
def _translated(action: str, error: type[EngineError] = EngineError) -> Iterator[None]:
    """Re-raise docker-py/requests failures of ``action`` as ``error``.

    A 404 becomes NotFoundError unless a more specific ``error`` (PullError) was asked for.
    """
    try:
        yield
    except docker.errors.NotFound as exc:
        kind = NotFoundError if error is EngineError else error
        raise kind(f"{action}: {_explain(exc)}") from exc
    except _TRANSLATED as exc:
        raise error(f"{action}: {_explain(exc)}") from exc


def _explain(exc: BaseException) -> str:
    """The engine's own message when it sent one, else the exception's text."""
    explanation = getattr(exc, "explanation", None)
    if explanation:
        return str(explanation)
    return str(exc) or type(exc).__name__


def _status_code(exc: BaseException) -> int | None:
    """The HTTP status of a docker-py APIError, if any."""
    cause = exc.__cause__
    code = getattr(cause, "status_code", None)
    return code if isinstance(code, int) else None


class Engine:
    """One Docker engine, reached through docker-py with the API version negotiated."""

    def __init__(
        self,
        client: Any,
        *,
        base_url: str | None,
        timeout: float,
        name: str | None = None,
        info: dict[str, Any] | None = None,
    ) -> None:
        self._client = client
        self._api = client.api
        self._timeout = timeout
        self.api_version: str = str(self._api.api_version)
        self.url: str = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET_URL
        self._last_info: tuple[float, dict[str, Any]] | None = None
        if info is None:
            info = self.info()
        else:
            self._last_info = (time.monotonic(), info)
        self.host_label: str = name or _host_label(self.url, info)
        # The engine's release (``docker version``), for the report's ``engines``.
        self.version: str | None = str(info["ServerVersion"]) if info.get("ServerVersion") else None
        # The engine's own identity (``docker info`` ``ID``): two URLs of one engine share it.
        self._engine_id = str(info.get("ID") or self.host_label)
        # One event stream for every health gate of this engine, opened at the first gate.
        self._events = EventHub(self._open_events, name=f"events {self.host_label}")

    @classmethod
    def connect(
        cls,
        base_url: str | None,
        *,
        timeout: float = 60.0,
        api_version: str | None = None,
        name: str | None = None,
        tls: TlsFiles | None = None,
    ) -> Engine:
        """Connect to ``base_url`` (None: ``DOCKER_HOST`` or the local socket).

        One request: ``docker info``, asked without an API version (the engine answers it in its
        newest), whose ``Api-Version`` header negotiates the version as ``GET /version`` would
        (:func:`_negotiated_info`); no ``/_ping`` either, the answer proves the engine answers.

        With ``tls`` the engine is reached over HTTPS with those files, verifying the server
        against their CA: a certificate that does not verify is this engine's
        EngineUnreachableError, never a retry in plain TCP. The API version is negotiated;
        ``api_version`` (DOCKER_API_VERSION) is used instead only when the engine and
        watchkeeper both support it, else ``engine.api_version_ignored`` is logged: a stale pin
        must never stop the daemon from starting. ``name`` names the engine in reports (default:
        from the URL). Raises EngineUnreachableError when the engine does not answer.
        """
        url = base_url or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET_URL
        client = None
        try:
            client = _client(url, _UNNEGOTIATED, timeout, tls)  # no request yet
            info: dict[str, Any] | None = _negotiated_info(client.api)
            if api_version:
                pinned = _pinned_client(client, api_version.strip(), url, timeout, tls)
                info = None if pinned is not client else info  # asked again by the new client
                client = pinned
        except (*_TRANSLATED, OSError) as exc:  # OSError: a certificate file that cannot be read
            if client is not None:
                client.close()
            raise EngineUnreachableError(f"{url}: {_explain(exc)}") from exc
        try:
            return cls(client, base_url=url, timeout=timeout, name=name, info=info)
        except EngineError as exc:
            client.close()
            raise EngineUnreachableError(str(exc)) from exc

    @property
    def engine_id(self) -> str:
        """The engine's ``docker info`` ``ID`` (its host label when the engine gives none)."""
        return self._engine_id

    @property
    def api_client(self) -> Any:
        """docker-py's low-level client of this engine, for the Swarm service adapter
        (``swarm/services.py``), which shares this engine's connection and timeout."""
        return self._api

    def close(self) -> None:
        """Close the event stream and the HTTP connections; the engine itself is not touched."""
        self._events.close()
        self._client.close()

    def watch(self, container_id: str) -> Subscription:
        """The events of container ``container_id`` (a full ID) from now on; never raises.

        Every gate of this engine shares one ``/events`` stream, opened by the first call
        in a daemon thread (:class:`~watchkeeper.containers.events.EventHub`).
        """
        return self._events.subscribe(container_id)

    def _open_events(self) -> EngineEvents:
        """Open ``GET /events`` for the gate's container events. Raises EngineError.

        docker-py's ``events()`` reads without a timeout, so a dead connection would never
        end the stream; here the read times out after ``_EVENTS_READ_TIMEOUT_S`` of quiet.
        """
        params = {"filters": json.dumps(_GATE_EVENTS)}
        with _translated("open the event stream"):
            response = self._api._get(
                self._api._url("/events"),
                params=params,
                stream=True,
                timeout=(self._timeout, _EVENTS_READ_TIMEOUT_S),
            )
            try:
                self._api._raise_for_status(response)
            except _TRANSLATED:
                response.close()
                raise
            messages = self._api._stream_helper(response, decode=True)
        return EngineEvents(response, messages)

    def info(self) -> dict[str, Any]:
        """``docker info``, asked now (also whether the engine answers). Raises EngineError."""
        with _translated("info"):
            info = dict(self._api.info())
        self._last_info = (time.monotonic(), info)
        return info

    def recent_info(self, max_age_s: float = _INFO_REUSE_S) -> dict[str, Any]:
        """``docker info`` as answered at most ``max_age_s`` ago (at the connect, say), else
        asked now: for what changes rarely (insecure registries, the Swarm role), so that a
        ``run --once`` asks once, not once per reader. Raises EngineError."""
        last = self._last_info
        if last is not None and time.monotonic() - last[0] <= max_age_s:
            return dict(last[1])
        return self.info()

    def list_containers(self, *, all: bool) -> list[dict[str, Any]]:
        """Full inspect dicts of the containers (``all``: stopped ones too): one list, then one
        inspect per container. For what acts on containers (the dependency graph of an update);
        a check reads :meth:`list_views` instead.

        A container removed between the listing and its inspect is left out.
        Raises EngineError.
        """
        return self.inspected(self.list_summaries(all=all))

    def list_summaries(self, *, all: bool, name_part: str | None = None) -> list[dict[str, Any]]:
        """The engine's container list as it answers (``GET /containers/json``, one call);
        ``name_part``: only the containers with it in their name (the engine's ``name``
        filter matches part of a name, as ``docker ps --filter name=`` does). Raises EngineError.
        """
        filters = {"name": [name_part]} if name_part else None
        with _translated("list containers"):
            return [dict(s) for s in self._api.containers(all=all, filters=filters)]

    def list_views(
        self, *, all: bool, summaries: list[dict[str, Any]] | None = None
    ) -> list[dict[str, Any]]:
        """The containers as the list shows them: one call, a partial inspect dict each
        (:func:`~watchkeeper.containers.summary.summary_view`), a full inspect only for an entry
        the list cannot stand for. :meth:`completed` fills what a view lacks. ``summaries``:
        that list as already read (with the same ``all``), under the engine's lock held since.

        A container removed before its inspect is left out. Raises EngineError.
        """
        found = []
        listed = self.list_summaries(all=all) if summaries is None else summaries
        for summary in listed:
            view = summary_view(summary)
            if view is None:
                found += self.inspected([summary])
            else:
                found.append(view)
        return found

    def completed(self, containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``containers`` with each view whose configured reference the list did not show
        replaced by its full inspect; a container removed meanwhile is left out.
        Raises EngineError."""
        return [
            full
            for container in containers
            for full in (self.inspected([container]) if needs_inspect(container) else [container])
        ]

    def inspected(self, containers: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The full inspect of each container (by ``Id``), in order, leaving out those removed
        meanwhile. Raises EngineError.

        One at a time: a socket proxy in front of the engine may refuse a burst of new
        connections (a small listen backlog), and one refused inspect here fails the engine's
        run.
        """
        found = []
        for container in containers:
            try:
                found.append(self.inspect_container(str(container["Id"])))
            except NotFoundError:
                continue
        return found

    def inspect_container(self, id_or_name: str) -> dict[str, Any]:
        """The inspect dict of one container. Raises NotFoundError, EngineError."""
        with _translated(f"inspect container {id_or_name}"):
            return dict(self._api.inspect_container(id_or_name))

    def list_images(self) -> list[dict[str, Any]]:
        """The engine's image list as it answers (``GET /images/json``, one call): each image's
        ID, tags and ``RepoDigests``; build intermediates are left out. Raises EngineError."""
        with _translated("list images"):
            return [dict(image) for image in self._api.images()]

    def inspect_image(self, ref: str) -> dict[str, Any] | None:
        """The inspect dict of an image, None when it is not on this engine. Raises EngineError."""
        try:
            with _translated(f"inspect image {ref}"):
                return dict(self._api.inspect_image(ref))
        except NotFoundError:
            return None

    def pull_image(self, repository: str, tag: str, auth_config: dict[str, Any] | None) -> str:
        """Pull ``repository:tag`` and return the image ID the tag points at afterwards.

        The progress stream is read here because docker-py's ``images.pull`` ignores errors
        in it and returns the old image; any ``error``/``errorDetail`` entry fails the pull.
        The read timeout applies between two progress messages, so a stalled registry
        fails the pull instead of hanging it (docker-py's ``api.pull`` has no timeout).
        Raises PullError.
        """
        ref = f"{repository}:{tag}"
        with _translated(f"pull {ref}", PullError):
            response = self._api._post(
                self._api._url("/images/create"),
                params={"fromImage": repository, "tag": tag},
                headers=self._auth_headers(repository, auth_config),
                stream=True,
                timeout=self._timeout,
            )
            try:
                self._api._raise_for_status(response)
                for message in self._api._stream_helper(response, decode=True):
                    _raise_stream_error(ref, message)
            finally:
                response.close()
        image = self.inspect_image(ref)
        if image is None:
            raise PullError(f"pull {ref}: the engine has no image for the tag afterwards")
        return str(image["Id"])

    def _auth_headers(self, repository: str, auth_config: dict[str, Any] | None) -> dict[str, Any]:
        """``X-Registry-Auth`` from ``auth_config``, else from the Docker config (as docker-py)."""
        if auth_config is not None:
            return {"X-Registry-Auth": docker.auth.encode_header(auth_config)}
        registry, _ = docker.auth.resolve_repository_name(repository)
        header = docker.auth.get_config_header(self._api, registry)
        return {"X-Registry-Auth": header} if header else {}

    def remove_image(self, image_id: str) -> bool:
        """Remove an image by ID without force; False when the engine keeps it.

        409 (still used by a container, or tagged in several repositories) and 404 (gone
        already) answer False: force would untag and delete images other things rely on.
        Raises EngineError for anything else.
        """
        try:
            with _translated(f"remove image {image_id}"):
                self._api.remove_image(image_id, force=False, noprune=False)
        except NotFoundError:
            return False
        except EngineError as exc:
            if _status_code(exc) == 409:
                return False
            raise
        return True

    def rename(self, container_id: str, new_name: str) -> None:
        """Rename a container. Raises NotFoundError, EngineError (e.g. the name is taken)."""
        with _translated(f"rename {container_id} to {new_name}"):
            self._api.rename(container_id, new_name)

    def create_container(self, spec: CreateSpec) -> str:
        """Create a container from the raw body of ``spec``; return its ID. Raises EngineError.

        The engine resolves the body's image reference now: a container that got another
        image than ``spec.image_id`` is removed again and refused (:func:`unplanned_image`).
        """
        with _translated(f"create container {spec.name}"):
            created = self._api.create_container_from_config(spec.body, name=spec.name)
        container_id = str(created["Id"])
        refusal = unplanned_image(spec, str(self.inspect_container(container_id)["Image"]))
        if refusal is not None:
            with contextlib.suppress(EngineError):  # else left for the swap's undo, by name
                self.remove_container(container_id, force=True)
            raise EngineError(refusal)
        return container_id

    def connect_network(self, network: str, container_id: str, endpoint: dict[str, Any]) -> None:
        """Connect a container to a network with a raw endpoint config. Raises EngineError."""
        url = self._api._url("/networks/{0}/connect", network)
        body = {"Container": container_id, "EndpointConfig": endpoint}
        with _translated(f"connect {container_id} to network {network}"):
            self._api._raise_for_status(self._api._post_json(url, data=body))

    def start(self, container_id: str) -> None:
        """Start a container (no-op when it runs). Raises EngineError."""
        with _translated(f"start {container_id}"):
            self._api.start(container_id)

    def stop(self, container_id: str, *, signal: str | None, timeout_s: float) -> None:
        """Stop a container: ``signal`` (else its own StopSignal), SIGKILL after ``timeout_s``.

        From API 1.42 the engine's stop takes the signal; before, the label-given signal is
        sent with kill and followed by a bounded wait. A stopped container is a no-op.
        Raises EngineError.
        """
        grace = max(0, math.ceil(timeout_s))  # never shorten the grace period
        engine_takes_signal = parse_api_version(self.api_version) >= _STOP_SIGNAL_API
        if signal is None or grace == 0 or engine_takes_signal:  # t=0: SIGKILL at once
            self._engine_stop(container_id, grace, signal)
        else:
            self._stop_with_kill(container_id, signal, grace)

    def _engine_stop(self, container_id: str, grace: int, signal: str | None) -> None:
        """``POST /containers/{id}/stop`` with an explicit ``t``. Raises EngineError.

        docker-py's ``stop(timeout=None)`` sends no ``t`` yet sizes its HTTP timeout for 10 s;
        here the HTTP timeout is the client's plus the grace period.
        """
        params: dict[str, Any] = {"t": grace}
        if signal:
            params["signal"] = signal
        url = self._api._url("/containers/{0}/stop", container_id)
        with _translated(f"stop {container_id}"):
            response = self._api._post(url, params=params, timeout=self._timeout + grace)
            self._api._raise_for_status(response)  # 304 (not running) is fine

    def _stop_with_kill(self, container_id: str, signal: str, grace: int) -> None:
        """API < 1.42: kill with ``signal``, wait ``grace``, SIGKILL. Raises EngineError.

        A safety net follows: a container found running or restarting afterwards (a restart
        policy that brought it back; Engine 20.10 was seen not to) is stopped once more with
        the engine's own stop, which always cancels the policy.
        """
        if self._kill(container_id, signal) and not self._wait_stopped(container_id, grace):
            self._kill(container_id, "SIGKILL")
            self._wait_stopped(container_id, _KILL_WAIT_S)
        state = self.inspect_container(container_id).get("State") or {}
        if state.get("Running") or state.get("Restarting"):
            self._engine_stop(container_id, grace, None)

    def _kill(self, container_id: str, signal: str) -> bool:
        """Send ``signal``; False when the container is not running (409). Raises EngineError."""
        try:
            with _translated(f"kill {container_id} with {signal}"):
                self._api.kill(container_id, signal=signal)
        except EngineError as exc:
            if _status_code(exc) == 409:
                return False
            raise
        return True

    def _wait_stopped(self, container_id: str, seconds: float) -> bool:
        """Block until the container is not running; False when ``seconds`` pass first.

        Raises EngineError for failures other than the wait's own timeout.
        """
        try:
            self._api.wait(container_id, timeout=seconds, condition="not-running")
        except (requests.exceptions.Timeout, requests.exceptions.ConnectionError):
            # The engine holds the request until the container stops: a read timeout
            # means it still runs (docker-py may wrap it as ConnectionError).
            return not self.inspect_container(container_id)["State"]["Running"]
        except _TRANSLATED as exc:
            raise EngineError(f"wait for {container_id} to stop: {_explain(exc)}") from exc
        return True

    def remove_container(self, container_id: str, *, force: bool) -> None:
        """Remove a container, never its volumes (no ``v``). Raises NotFoundError, EngineError."""
        with _translated(f"remove container {container_id}"):
            self._api.remove_container(container_id, v=False, force=force)

    def container_logs(self, container_id: str, *, tail: int) -> list[str]:
        """The last ``tail`` lines a container wrote (stdout and stderr). Raises EngineError."""
        with _translated(f"logs of {container_id}"):
            raw = self._api.logs(container_id, stdout=True, stderr=True, tail=tail)
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)
        return text.splitlines()[-tail:] if tail > 0 else []

    def exec_command(
        self, container_id: str, command: list[str], *, timeout_s: float | None
    ) -> ExecResult:
        """Run ``command`` in a running container; wait at most ``timeout_s`` (None: no limit).

        The engine has no way to kill an exec: on timeout the command is left running in
        the container and ``timed_out`` is set. Raises EngineError (e.g. not running).
        """
        with _translated(f"exec in {container_id}"):
            exec_id = str(self._api.exec_create(container_id, command)["Id"])
        box: dict[str, Any] = {}
        reader = threading.Thread(
            target=self._read_exec, args=(exec_id, timeout_s, box), daemon=True
        )
        reader.start()
        reader.join(timeout_s)
        if reader.is_alive():
            return ExecResult(exit_code=None, output=str(box.get("output", "")), timed_out=True)
        if "error" in box:
            raise EngineError(f"exec in {container_id}: {_explain(box['error'])}") from box["error"]
        with _translated(f"inspect exec in {container_id}"):
            info = self._api.exec_inspect(exec_id)
        code = info.get("ExitCode")
        return ExecResult(exit_code=code if isinstance(code, int) else None, output=box["output"])

    def _read_exec(self, exec_id: str, timeout_s: float | None, box: dict[str, Any]) -> None:
        """Start an exec and read its whole output into ``box`` (run in a thread).

        docker-py's ``exec_start`` reads with the client's timeout, which would end a quiet
        hook longer than it; here the socket waits as long as the hook may run.
        """
        url = self._api._url("/exec/{0}/start", exec_id)
        read_timeout = None if timeout_s is None else timeout_s + self._timeout
        try:
            response = self._api._post_json(
                url,
                headers={"Connection": "Upgrade", "Upgrade": "tcp"},
                data={"Tty": False, "Detach": False},
                stream=True,
                timeout=read_timeout,
            )
            raw = self._api._read_from_socket(response, False, tty=False, demux=False)
            box["output"] = raw.decode("utf-8", errors="replace") if raw else ""
        except (*_TRANSLATED, OSError) as exc:  # the raw socket read raises plain OSErrors
            box["error"] = exc


@dataclass(frozen=True)
class TlsFiles:
    """The CA, client certificate and key one engine is reached with (README, "Many hosts")."""

    ca: Path
    cert: Path
    key: Path


def _client(url: str, version: str, timeout: float, tls: TlsFiles | None) -> Any:
    """A docker-py client of ``url``; with ``tls``, HTTPS only, the server verified by the CA."""
    tls_config = None
    if tls is not None:
        for path in (tls.ca, tls.cert, tls.key):
            if not path.is_file():
                raise OSError(f"TLS file {path} does not exist")
        tls_config = docker.tls.TLSConfig(
            client_cert=(str(tls.cert), str(tls.key)), ca_cert=str(tls.ca), verify=True
        )
    client = docker.DockerClient(
        base_url=url, version=version, timeout=timeout, tls=tls_config, max_pool_size=_POOL_SIZE
    )
    client.api.trust_env = _trusts_environment(url)
    _one_pool_per_socket(client.api)
    return client


def _negotiated_info(api: Any) -> dict[str, Any]:
    """``docker info`` asked without an API version; ``api`` then speaks the engine's newest.

    An engine answers an unversioned request in its newest API version and names it in the
    ``Api-Version`` header of every answer: the version docker-py's own negotiation reads from
    ``GET /version`` (``ApiVersion``), one request fewer per engine and per reconnect. An
    answer without the header (an API emulation that omits it) falls back to docker-py's
    negotiation. Raises docker-py's or requests' errors (translated by the caller).
    """
    response = api._get(f"{api.base_url}/info")
    api._raise_for_status(response)
    info = dict(response.json())
    version = response.headers.get("Api-Version", "")
    api._version = version if _API_VERSION.fullmatch(version) else api._retrieve_server_version()
    return info


def _one_pool_per_socket(api: Any) -> None:
    """Give every request of a Unix-socket engine the same connection pool.

    docker-py's socket adapter keys its pools by the request's whole URL, path included, so
    each distinct path (every image or container inspected) got a pool of ``_POOL_SIZE`` slots
    and a new connection of its own, and past 25 paths the oldest pool was closed: an engine
    check of 10 images opened 13 connections. Keyed by the socket (the client's base URL), the
    connections are reused and the pool is the one per engine ``_POOL_SIZE`` is sized for. A
    ``tcp://`` engine already has one pool per host (requests' own adapter).
    """
    adapter = api.get_adapter(api.base_url)
    if not isinstance(adapter, docker.transport.UnixHTTPAdapter):
        return
    keyed_by_url = adapter.get_connection
    base_url = str(api.base_url)

    def by_socket(url: str, proxies: Any = None) -> Any:
        return keyed_by_url(base_url, proxies)

    adapter.get_connection = by_socket


def _trusts_environment(url: str) -> bool:
    """Whether requests should read the environment (proxies, ``.netrc``) for ``url``.

    Not for a local socket: no proxy or ``.netrc`` entry applies to one, and the lookups cost
    every engine request a scan of the environment and of the home folder. A ``tcp://`` engine
    keeps them: it may sit behind an HTTP(S) proxy named by ``HTTPS_PROXY``/``NO_PROXY``, or
    behind one that wants ``.netrc`` credentials, as the docker CLI's users expect.
    """
    return urlparse(url).scheme not in ("unix", "npipe")


class EngineEvents:
    """An open ``/events`` response: decoded messages, errors translated.

    A read timeout (nothing happened for a while) or a close from another thread ends the
    iteration; anything else (a broken connection, an undecodable message) raises
    EngineError, so the reader thread reopens the stream instead of dying.
    """

    def __init__(self, response: Any, messages: Iterator[Any]) -> None:
        self._response = response
        self._messages = messages
        self._closed = False

    def __iter__(self) -> Iterator[Any]:
        while True:
            try:
                message = next(self._messages)
            except StopIteration:
                return
            except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
                return
            except Exception as exc:  # http.client fails in many ways on a socket shut under it
                if self._closed:
                    return
                raise EngineError(f"read the event stream: {_explain(exc)}") from exc
            yield message

    def close(self) -> None:
        """Shut the socket down, which wakes a reader blocked on it; idempotent."""
        self._closed = True
        # A response already closed has no socket left to find: nothing to shut then.
        with contextlib.suppress(Exception):
            docker.types.CancellableStream(self._messages, self._response).close()
        with contextlib.suppress(Exception):
            self._response.close()


def _pinned_client(
    client: Any, wanted: str, url: str, timeout: float, tls: TlsFiles | None = None
) -> Any:
    """A client speaking API ``wanted`` when the engine and watchkeeper support it.

    Otherwise logs ``engine.api_version_ignored`` and returns ``client`` (negotiated).
    """
    server = client.version()
    newest = str(server.get("ApiVersion") or client.api.api_version)
    oldest = str(server.get("MinAPIVersion") or newest)
    version = parse_api_version(wanted)
    reason = None
    if not re.fullmatch(r"1\.\d{1,3}", wanted):
        reason = "not a Docker API version such as 1.41"
    elif not parse_api_version(oldest) <= version <= parse_api_version(newest):
        reason = f"the engine speaks API {oldest} to {newest}"
    elif version < _OLDEST_PINNED_API:
        reason = "watchkeeper needs API 1.41 or newer to carry every setting over"
    if reason is not None:
        log.warning(
            "engine.api_version_ignored",
            requested=wanted,
            using=str(client.api.api_version),
            reason=reason,
        )
        return client
    pinned = _client(url, wanted, timeout, tls)
    client.close()
    return pinned


def _raise_stream_error(ref: str, message: Any) -> None:
    """Raise PullError when a pull progress message reports an error."""
    if not isinstance(message, dict):
        return
    detail = message.get("errorDetail")
    error = message.get("error")
    if error or detail:
        text = error or (detail.get("message") if isinstance(detail, dict) else detail)
        raise PullError(f"pull {ref}: {text}")


def _host_label(base_url: str | None, info: dict[str, Any]) -> str:
    """A human name for the engine: host[:port] of a tcp/ssh URL, else its own host name.

    Two local sockets on one machine would share the host name, so a socket path other
    than the default one is used as is.
    """
    if base_url:
        parsed = urlparse(base_url)
        if parsed.scheme in ("tcp", "http", "https", "ssh") and parsed.netloc:
            return parsed.netloc.rpartition("@")[2]
        if parsed.path and parsed.path != "/var/run/docker.sock":
            return parsed.path
    return str(info.get("Name") or "local")
