"""The sub-commands behind ``cli``: run (daemon or once), check, notify, healthcheck.

Each returns its exit code; ``cli`` maps the errors that escape (configuration, unreachable
engine) to 2 and 3.

Each command imports what it uses inside itself (README, "Speed"): ``healthcheck`` reads a file
or asks ``/healthz`` without loading docker-py or the registry client, ``notify`` never loads
the engine's side, and the run's wiring (``daemon.py``) loads FastAPI, uvicorn and APScheduler
only for the daemon that uses them.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from watchkeeper.api.listen import parse_listen
from watchkeeper.errors import ConfigError, EngineError, EngineUnreachableError
from watchkeeper.heartbeat import HEARTBEAT_EVERY_S, heartbeat_age
from watchkeeper.locks import LockBusyError
from watchkeeper.settings import Settings

if TYPE_CHECKING:
    from watchkeeper.actions.check import Watched
    from watchkeeper.actions.services import WatchedService
    from watchkeeper.containers.endpoints import EngineHandle
    from watchkeeper.registry.digest import RegistryClient

log = structlog.get_logger()


def run_once_command(
    settings: Settings, names: Sequence[str], *, as_json: bool, force: bool = False
) -> int:
    """One full run; exit 1 when an update failed or was rolled back.

    ``force`` updates outside UPDATE_WINDOW and before MIN_IMAGE_AGE (never past a tag policy).

    SIGTERM/SIGINT let the swap in progress finish or roll back and start no other, then the
    command exits 128 + the signal (143, 130). The engine locks are held from the startup
    recovery to the end of the run. Raises LockBusyError when another watchkeeper kept an
    engine busy for LOCK_TIMEOUT (nothing touched).
    """
    from watchkeeper.actions.run import recover_engines
    from watchkeeper.daemon import Runner, build_services, shutdown_signals

    services = build_services(settings)
    with shutdown_signals(services.stop) as signals:
        runner = Runner(services, names)
        # Every engine that answers is repaired before the run starts; its lock stays held.
        recover_engines(services, names, hold=True)
        try:
            report = runner.perform_run("once", force=force)
        except LockBusyError:
            if signals.received is None:
                raise
            report = None
        finally:
            services.locks.release_held()
        if report is not None and as_json:
            print_result(json.dumps(report.to_dict()))
        if signals.received is not None:
            log.info("shutdown", reason="signal", signal=signals.name)
            return signals.exit_code
    assert report is not None
    return 1 if report.has_failures else 0


def daemon(settings: Settings, names: Sequence[str]) -> int:
    """The long-running daemon; 0 after a clean stop, 1 when it left a run unfinished."""
    from watchkeeper.daemon import Runner, build_services, serve, shutdown_signals

    services = build_services(settings)
    with shutdown_signals(services.stop):
        runner = Runner(services, names)
        try:
            runner.recover()
        except LockBusyError as exc:
            log.warning("recovery.deferred", reason=str(exc), pid=exc.holder)
        return serve(runner)


def check(settings: Settings, names: Sequence[str], *, as_json: bool) -> int:
    """Dry run: every watched container's verdict, engines in parallel (HOST_CONCURRENCY).

    Exit 1 when a registry or an engine failed (an engine that does not answer is one row
    in ``error``); EngineUnreachableError (exit 3) only when no engine answers.
    """
    from concurrent.futures import ThreadPoolExecutor

    from watchkeeper.daemon import connect

    handles, _, registry = connect(settings)
    workers = min(settings.host_concurrency, len(handles))
    with registry.shared_run(), ThreadPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(lambda h: _check_engine(h, registry, settings, names), handles))
    rows = [row for part in parts for row in part]
    print_result(json.dumps(rows) if as_json else format_table(rows))
    return 1 if any(row["verdict"] == "error" for row in rows) else 0


def print_result(text: str) -> None:
    """Print the command's result on stdout, now; a reader that has gone is no error of ours.

    ``watchkeeper check | head -1`` closes the pipe after one line: the rest has nowhere to
    go, so stdout is pointed at /dev/null (later writes and the exit's flush then succeed) and
    the command's exit code still says how the check or the run went.
    """
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _check_engine(
    handle: EngineHandle, registry: RegistryClient, settings: Settings, names: Sequence[str]
) -> list[dict[str, str | None]]:
    """The ``check`` rows of one engine; one ``error`` row when it cannot be listed."""
    from watchkeeper.actions.check import check_containers, select_on_engine
    from watchkeeper.actions.run import connect_engine
    from watchkeeper.actions.services import check_only
    from watchkeeper.actions.versions import apply_update_rules

    try:
        engine = connect_engine(handle)
        selected, _ = select_on_engine(engine, settings, names)
        # A Swarm manager's services (README, "Swarm"), in the same columns.
        services = check_only(engine, registry, settings, names)
    except (EngineUnreachableError, EngineError) as exc:
        handle.drop()
        return [{**dict.fromkeys(TABLE_COLUMNS), "engine": handle.name, "verdict": "error",
                 "error": str(exc)}]  # fmt: skip
    watched = check_containers(engine, registry, selected, settings)
    apply_update_rules(watched, registry, settings)
    return [check_row(w, handle.name) for w in watched] + [
        check_row(s, handle.name, kind="service") for s in services
    ]


def check_row(
    item: Watched | WatchedService, engine: str | None = None, kind: str = "container"
) -> dict[str, str | None]:
    """One line of ``check`` output: a container's, or a service's (``kind="service"``: its
    name in the ``container`` column)."""
    return {
        "engine": engine,
        "kind": kind,
        "container": item.name,
        "image": item.image_ref,
        "local_digest": item.local_digest,
        "remote_digest": item.remote_digest,
        "verdict": str(item.verdict),
        "error": item.error or item.skip_reason or item.wait_reason or item.rules_note,
        # The update rules (README, "Versions, maturity and windows").
        "policy": item.policy,
        "current_tag": item.current_tag,
        "candidate_tag": item.candidate_tag,
        "waiting": item.waiting,
    }


TABLE_COLUMNS = {
    "engine": "ENGINE",
    "container": "CONTAINER",
    "image": "IMAGE",
    "local_digest": "LOCAL DIGEST",
    "remote_digest": "REGISTRY DIGEST",
    "verdict": "VERDICT",
    "policy": "POLICY",
    "candidate_tag": "CANDIDATE",
    "error": "NOTE",
}


def format_table(rows: list[dict[str, str | None]]) -> str:
    """A plain aligned table; digests shortened so a line fits a terminal."""
    keys = list(TABLE_COLUMNS)
    headers = list(TABLE_COLUMNS.values())
    cells = [[_short(row[k]) for k in keys] for row in rows]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(line.rstrip() for line in lines)


def _short(value: str | None) -> str:
    if value is None:
        return "-"
    if value.startswith("sha256:"):
        return value[:19]
    return value


def notify(settings: Settings, subject: str, body: str | None, body_file: str | None) -> int:
    """Send one message through every configured channel now; 0 sent, 1 a channel failed.

    ``--body-file -`` reads the body from stdin. The subject gets NOTIFICATION_TITLE_TAG like
    every subject; NOTIFY_ON does not apply (the caller asked for this message).

    Raises:
        ConfigError: no channel is configured, or the body file cannot be read.
    """
    from watchkeeper.notify.channels import build_notifiers
    from watchkeeper.notify.render import render_plain
    from watchkeeper.notify.service import Notifications

    if body_file is not None:
        body = read_body_file(body_file)
    notifiers = build_notifiers(settings)
    if not notifiers:
        raise ConfigError(
            "WATCHKEEPER_SENDGRID_API_KEY",
            "no notification channel is configured: set it (with EMAIL_FROM and EMAIL_TO), "
            "WATCHKEEPER_SMTP_HOST or WATCHKEEPER_NOTIFICATION_URLS",
        )
    message = render_plain(subject, body or "", title_tag=settings.notification_title_tag)
    return 0 if Notifications(settings, notifiers).send_now(message) else 1


def read_body_file(path: str) -> str:
    """The body of ``watchkeeper notify``: a file's text, or stdin for ``-``.

    Raises:
        ConfigError: naming ``--body-file`` when it cannot be read.
    """
    if path == "-":
        return sys.stdin.read()
    try:
        return Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise ConfigError("--body-file", f"cannot read {path!r}: {reason}") from exc


def healthcheck(settings: Settings) -> int:
    """0 when the daemon in this container is alive, else 1.

    With the API on it asks the API's ``/healthz``; without, the heartbeat must be < 30 s old.
    """
    if settings.http_api_token is not None:
        return 0 if api_alive(settings.http_api_listen) else 1
    age = heartbeat_age(settings.state_dir)
    return 0 if age is not None and age < 3 * HEARTBEAT_EVERY_S else 1


def api_alive(listen: str, timeout: float = 5.0) -> bool:
    """True when ``GET /healthz`` on the API address (wildcards mean loopback) answers 200.

    The standard library's client, not httpx: the image's HEALTHCHECK runs this every 30 s
    within 10 s, and one GET needs no HTTP stack loaded for it.
    """
    host, port = parse_listen(listen)
    host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()
