"""The command line: argv and environment -> Settings -> a command; the only place that exits.

Exit codes (README, "Other commands"): 0 good; 1 an update failed or was rolled back
(``run --once``), a registry could not be asked (``check``), a channel failed (``notify``),
another watchkeeper kept an engine busy for LOCK_TIMEOUT (``run --once``: nothing touched);
2 bad configuration; 3 the Docker engine cannot be reached (for 2 and 3 nothing has been
touched); 128 + N when signal N stopped ``run --once`` (143 SIGTERM, 130 SIGINT).

The program (:func:`entry`) ends every command but the daemon with :func:`fast_exit`.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any, NoReturn

import structlog

from watchkeeper import __version__
from watchkeeper.errors import ConfigError, EngineUnreachableError
from watchkeeper.locks import LockBusyError
from watchkeeper.logs import configure_logging
from watchkeeper.settings import Settings, load_settings

log = structlog.get_logger()

COMMANDS = ("run", "check", "notify", "healthcheck")


def build_parser() -> argparse.ArgumentParser:
    """The parser: one sub-command each, every setting as ``--<name>`` on each of them."""
    settings_flags = argparse.ArgumentParser(add_help=False)
    group = settings_flags.add_argument_group("settings (also WATCHKEEPER_<NAME>; the flag wins)")
    for name, info in Settings.model_fields.items():
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest="setting_" + name,
            metavar="VALUE",
            nargs="?",
            const="true" if info.annotation is bool else None,
            help=info.description,
        )
    add_watchtower_flags(settings_flags)
    parser = argparse.ArgumentParser(
        prog="watchkeeper", description="Keeps Docker containers up to date with their images."
    )
    parser.add_argument("--version", action="version", version=f"watchkeeper {__version__}")
    sub = parser.add_subparsers(dest="command")
    run = sub.add_parser("run", parents=[settings_flags], help="the daemon, or one run")
    run.add_argument(
        "--once", "--run-once", "-R", action="store_true", help="one full run, then exit"
    )
    run.add_argument("--json", action="store_true", help="print the run's report on stdout")
    run.add_argument(
        "--force",
        action="store_true",
        help="with --once: update outside UPDATE_WINDOW and before MIN_IMAGE_AGE (never past a "
        "tag policy; MONITOR_ONLY still wins)",
    )
    run.add_argument("names", nargs="*", metavar="NAME", help="only these containers")
    check = sub.add_parser("check", parents=[settings_flags], help="dry run: what would change")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")
    check.add_argument("names", nargs="*", metavar="NAME")
    notify = sub.add_parser("notify", parents=[settings_flags], help="send one message")
    notify.add_argument("--subject", required=True)
    body = notify.add_mutually_exclusive_group(required=True)
    body.add_argument("--body")
    body.add_argument("--body-file")
    sub.add_parser("healthcheck", parents=[settings_flags], help="is the daemon alive?")
    return parser


def add_watchtower_flags(parser: argparse.ArgumentParser) -> None:
    """Watchtower's own spellings of flags, so that its ``command:`` lines keep working."""
    group = parser.add_argument_group("Watchtower's flags (aliases of the settings above)")
    group.add_argument("-i", "--interval", dest="setting_poll_interval", metavar="SECONDS")
    group.add_argument("-s", dest="setting_schedule", metavar="CRON")
    group.add_argument("-H", "--host", dest="setting_docker_hosts", metavar="URL")
    group.add_argument("-c", dest="setting_cleanup", action="store_const", const="true")
    group.add_argument(
        "--enable-lifecycle-hooks",
        dest="setting_lifecycle_hooks",
        action="store_const",
        const="true",
    )
    for flag in ("--debug", "--trace"):
        group.add_argument(flag, dest="setting_log_level", action="store_const", const="debug")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse argv; no sub-command means ``run``."""
    args = list(argv)
    if not args or (args[0] not in COMMANDS and args[0] not in ("-h", "--help", "--version")):
        args.insert(0, "run")
    return build_parser().parse_args(args)


def flags_of(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given as flags (field name -> raw value)."""
    prefix = "setting_"
    return {k[len(prefix) :]: v for k, v in vars(args).items() if k.startswith(prefix)}


def entry() -> NoReturn:
    """The ``watchkeeper`` program (console script, ``python -m watchkeeper``): the command of
    ``sys.argv``, then its exit: the daemon's the interpreter's own, every other command's
    :func:`fast_exit`."""
    args = parse_args(sys.argv[1:])
    code = run_command(args)
    if is_daemon(args):
        raise SystemExit(code)
    fast_exit(code)


def is_daemon(args: argparse.Namespace) -> bool:
    """Whether the command is the long-running daemon (``run`` without ``--once``)."""
    return args.command == "run" and not args.once


def fast_exit(code: int) -> NoReturn:
    """End a one-shot command with ``code`` now: exit handlers, flushed output, ``os._exit``.

    Why: once ``run --once``, ``check``, ``notify`` or ``healthcheck`` is done, the interpreter's
    own shutdown (every module, object and connection pool freed one by one) takes 80 to 130 ms,
    a fifth of a ``run --once`` with nothing new (README, "Speed"); the kernel frees it all at
    once. Nothing is cut short: the command's ``with`` blocks have released the engine locks and
    written the state, and its report is printed. The ``atexit`` handlers still run here
    (the notification drain, logging's flush), then stdout and stderr are flushed. A thread that
    the normal exit would wait for (not a daemon thread) means the normal exit, with the same
    code. Output that cannot be flushed (``watchkeeper check | head -1``: the reader has gone)
    never changes the exit code.
    """
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        raise SystemExit(code)
    # The registered exit functions, as the interpreter's own exit would run them.
    atexit._run_exitfuncs()  # noqa: SLF001 - there is no public way to run the handlers now
    for stream in (sys.stdout, sys.stderr):
        # A closed pipe or stream: nothing more can be said there, and the code is still right.
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    """The command of ``argv`` (default ``sys.argv``); returns its exit code, exits nothing."""
    return run_command(parse_args(sys.argv[1:] if argv is None else argv))


def run_command(args: argparse.Namespace) -> int:
    """Load the settings, configure logging and run the command; returns the exit code."""
    try:
        settings = load_settings(flags_of(args))
    except ConfigError as exc:
        print(f"watchkeeper: configuration error: {exc}", file=sys.stderr)
        return 2
    configure_logging(
        settings.log_format,
        settings.log_level,
        settings.secrets(),
        stream=sys.stderr if stdout_is_result(args) else sys.stdout,
    )
    try:
        return dispatch_command(args, settings)
    except ConfigError as exc:
        print(f"watchkeeper: configuration error: {exc}", file=sys.stderr)
        return 2
    except EngineUnreachableError as exc:
        log.error("engine.unreachable", error=str(exc))
        print(f"watchkeeper: cannot reach the Docker engine: {exc}", file=sys.stderr)
        return 3
    except LockBusyError as exc:
        print(f"watchkeeper: {exc}; nothing was touched", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        # Only before the signal handlers are in place (connecting): nothing was touched.
        return 130


def stdout_is_result(args: argparse.Namespace) -> bool:
    """Whether the command prints its result on stdout (``check``, any ``--json``).

    Its log lines then go to stderr, so that ``watchkeeper check | grep stale`` reads the table
    alone and ``--json`` output stays parseable.
    """
    return args.command == "check" or bool(getattr(args, "json", False))


def dispatch_command(args: argparse.Namespace, settings: Settings) -> int:
    """Run the chosen command; returns its exit code."""
    from watchkeeper import commands

    if args.command == "check":
        return commands.check(settings, args.names, as_json=args.json)
    if args.command == "notify":
        return commands.notify(settings, args.subject, args.body, args.body_file)
    if args.command == "healthcheck":
        return commands.healthcheck(settings)
    if args.once:
        return commands.run_once_command(settings, args.names, as_json=args.json, force=args.force)
    if args.force:
        raise ConfigError("--force", "goes with --once (the API takes ?force=true)")
    return commands.daemon(settings, args.names)
