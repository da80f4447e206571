"""Benchmark watchkeeper against the real engine and a local registry; prints a Markdown table.

Measures what an operator cares about, as the README reports it ("Speed"), each repeated
``--repeat`` times (median, and the range in brackets):

- nothing new, 50 containers on 10 images: containers checked per second, the run and the whole
  ``run --once`` process (wall and CPU time), registry requests per run (the registry's access
  log), peak RSS;
- nothing new, ``--scale`` containers (500) on ``--scale-images`` images (100): one ``run --once``
  process, start to exit;
- many engines: ``--engines`` (10) engines of 50 containers each against one such engine, nothing
  new; the engines are relays of the real engine, each with its own identity (bench_engines.py);
  at least ``ENGINE_PAIRS`` interleaved pairs whatever ``--repeat`` says (about 2 s a pair): the
  ratio sits near its bar and one slow run in three moves the median;
- updates: 25 of the 50 containers get a new image, every replacement gated by a 1 s stability
  window, at ``UPDATE_CONCURRENCY`` 1 and 8 (whole process); then once more at 8 while each of
  the 25 published busybox ``httpd`` is probed every 20 ms: downtime per container, the longest
  stretch of failed probes;
- the idle daemon with the HTTP API and SendGrid (a local sink) on, after 5 runs: RSS;
- with ``--peer``, ouroboros beside watchkeeper on the same containers, alternated: nothing
  new, registry requests, peak RSS and the update of 25, in a second table (bench_peer.py).

``--soak`` runs the daemon for ``--soak-runs`` runs instead (bench_soak.py); ``--simulate`` runs
the many-engine simulation with fake engines (bench_sim.py). Run it after ``scripts/setup``:
``.venv/bin/python scripts/benchmark.py``. The benchmark runs in the dev venv, but every
watchkeeper it measures runs from ``.venv-runtime``: this checkout installed with its runtime
dependencies only, as the image ships it (made on first use, again when pyproject.toml
changes; the dev venv's test tools would add ``rich``, which structlog loads when installed).
Everything it creates carries the test label and is removed at the end, also when a measure
fails.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import socket
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench_engines import Estate, lock_files
from bench_support import (
    HTTPD,
    RUN_ID,
    SLEEP,
    Daemon,
    Spec,
    Workspace,
    create_containers,
    markdown_table,
    median,
    ratio,
    remove_containers,
    run_watchkeeper,
    runtime_line,
    spread,
    stale_half,
    workspace,
)
from tests.sinks import SendGridSink
from tests.support.engine_objects import free_port

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
STABILITY = {"WATCHKEEPER_STABILITY_WINDOW": "1s"}


# -- nothing new ------------------------------------------------------------------------------


def distinct_free_ports(count: int) -> list[int]:
    """``count`` different free ports: ``free_port`` may hand out a port it gave before, and
    two containers publishing one port make the second start fail."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def bench_fresh(space: Workspace, names: Sequence[str], repeat: int) -> dict[str, Any]:
    """Nothing new: the run, the whole process, registry requests and peak RSS, ``repeat`` times."""
    runs, walls, cpus, requests, rss = [], [], [], [], []
    for _ in range(repeat):
        space.registry.clear_log()
        run = run_watchkeeper("run", "--once", "--json", *names, env={})
        counts = run.report["counts"]
        if counts["fresh"] != len(names):
            raise RuntimeError(f"expected {len(names)} fresh: {counts}")
        runs.append(run.report["duration_s"])
        walls.append(run.wall_s)
        cpus.append(run.cpu_s)
        requests.append(len(space.registry.requests()))
        rss.append(run.max_rss_mib)
    return {
        "containers": len(names),
        "run_s": runs,
        "wall_s": walls,
        "cpu_s": cpus,
        "requests": requests,
        "rss_mib": rss,
    }


ENGINE_PAIRS = 7


def engine_pairs(repeat: int) -> int:
    """Pairs of the many-engine measure: ``--repeat``, at least :data:`ENGINE_PAIRS`."""
    return max(repeat, ENGINE_PAIRS)


def bench_engines(
    space: Workspace, names: Sequence[str], engines: int, repeat: int
) -> dict[str, Any]:
    """``engines`` engines of ``names`` each against one, nothing new, interleaved runs."""
    estate = Estate(DEFAULT_SOCKET, engines)
    one: dict[str, list[float]] = {"wall_s": [], "run_s": []}
    many: dict[str, list[float]] = {"wall_s": [], "run_s": [], "requests": [], "locks": []}
    try:
        for _ in range(repeat):
            for count, figures in ((1, one), (engines, many)):
                space.registry.clear_log()
                env = {"WATCHKEEPER_DOCKER_HOSTS": estate.docker_hosts(count)}
                run = run_watchkeeper("run", "--once", "--json", *names, env=env)
                check_engines_run(run.report, count, len(names))
                figures["wall_s"].append(run.wall_s)
                figures["run_s"].append(run.report["duration_s"])
                if count == engines:
                    many["requests"].append(len(space.registry.requests()))
                    many["locks"].append(lock_files(run.state_dir))
    finally:
        estate.close()
    if set(many["locks"]) != {engines}:
        raise RuntimeError(f"the runs saw {many['locks']} engine identities, not {engines}")
    return {"engines": engines, "one": one, "many": many}


def check_engines_run(report: dict[str, Any], engines: int, per_engine: int) -> None:
    """Every engine ``ok`` and every container fresh, or the figure means nothing."""
    states = [engine["state"] for engine in report["engines"]]
    if states != ["ok"] * engines or report["counts"]["fresh"] != engines * per_engine:
        raise RuntimeError(f"engines {states}, counts {report['counts']}")


def bench_scale(space: Workspace, count: int, image_count: int, repeat: int) -> dict[str, Any]:
    """``count`` sleeping containers on ``image_count`` images, nothing new: whole process."""
    tags = space.push_images([f"scale{i}" for i in range(image_count)], SLEEP, marker="v0")
    names = [f"wk-bscale-{RUN_ID}-{i}" for i in range(count)]
    # No network: a bridge takes 1,024 ports at most, and the check never looks at one.
    specs = [
        Spec(n, tags[i % image_count], extra={"network_mode": "none"}) for i, n in enumerate(names)
    ]
    started = time.monotonic()
    try:
        create_containers(space.client, specs)
        created_s = time.monotonic() - started
        fresh = bench_fresh(space, names, repeat)
    finally:
        remove_containers(space.client, names)
    return {**fresh, "images": image_count, "created_s": created_s}


# -- updates and downtime ---------------------------------------------------------------------


def probe(port: int, stop: threading.Event, out: dict[int, float]) -> None:
    """Probe http://127.0.0.1:port every 20 ms; store the longest failing stretch in ``out``."""
    longest, down_since = 0.0, None
    while not stop.is_set():
        now = time.monotonic()
        if answers(port):
            if down_since is not None:
                longest, down_since = max(longest, now - down_since), None
        elif down_since is None:
            down_since = now
        time.sleep(0.02)
    if down_since is not None:
        longest = max(longest, time.monotonic() - down_since)
    out[port] = longest


def answers(port: int) -> bool:
    """One plain HTTP/1.0 GET: True when the server answers 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as conn:
            conn.sendall(b"GET / HTTP/1.0\r\n\r\n")
            return conn.recv(32).startswith((b"HTTP/1.0 200", b"HTTP/1.1 200"))
    except OSError:
        return False


def update_round(
    space: Workspace,
    names: Sequence[str],
    stale_tags: Sequence[str],
    marker: str,
    concurrency: int,
    ports: Sequence[int] = (),
) -> dict[str, Any]:
    """Push new images to ``stale_tags``, run once; ``ports`` probed meanwhile (downtime)."""
    for tag in stale_tags:
        space.factory.build_and_push(tag, HTTPD, marker=marker)
    stop = threading.Event()
    downtime: dict[int, float] = {}
    probers = [threading.Thread(target=probe, args=(p, stop, downtime)) for p in ports]
    for prober in probers:
        prober.start()
    env = {**STABILITY, "WATCHKEEPER_UPDATE_CONCURRENCY": str(concurrency)}
    try:
        run = run_watchkeeper("run", "--once", "--json", *names, env=env)
        time.sleep(0.5 if ports else 0)
    finally:
        stop.set()
        for prober in probers:
            prober.join()
    updated = [row for row in run.report["containers"] if row["state"] == "updated"]
    if len(updated) != len(stale_tags) * len(names) // 10:
        raise RuntimeError(f"{len(updated)} updated: {run.report['counts']}")
    return {
        "wall_s": run.wall_s,
        "run_s": run.report["duration_s"],
        "updated": len(updated),
        "downtime_s": list(downtime.values()),
        "rss_mib": run.max_rss_mib,
    }


def bench_updates(
    space: Workspace,
    names: Sequence[str],
    tags: Sequence[str],
    ports: dict[str, int],
    repeat: int,
) -> dict[str, Any]:
    """25 of 50 containers updated at UPDATE_CONCURRENCY 1 and 8, then 8 with probes."""
    stale_tags = stale_half(tags)
    stale_ports = [ports[n] for i, n in enumerate(names) if i % len(tags) < len(stale_tags)]
    rounds: dict[str, list[dict[str, Any]]] = {"1": [], "8": [], "probed": []}
    version = 0
    for _ in range(repeat):
        for key, concurrency in (("1", 1), ("8", 8)):
            version += 1
            rounds[key].append(update_round(space, names, stale_tags, f"v{version}", concurrency))
    version += 1
    rounds["probed"].append(update_round(space, names, stale_tags, f"v{version}", 8, stale_ports))
    return rounds


def bench_beside_peer(
    space: Workspace, names: Sequence[str], tags: Sequence[str], repeat: int
) -> dict[str, Any]:
    """ouroboros and watchkeeper alternated on the same containers (bench_peer.py)."""
    import bench_peer

    return bench_peer.side_by_side(
        space,
        names,
        tags,
        repeat,
        lambda: bench_fresh(space, names, 1),
        lambda stale_tags, marker: update_round(space, names, stale_tags, marker, 8),
    )


# -- the idle daemon --------------------------------------------------------------------------


def bench_idle_daemon(names: Sequence[str], runs: int = 5) -> dict[str, Any]:
    """The daemon with API and SendGrid (local sink) on, every 2 s: RSS after ``runs`` runs."""
    sink, port, token = SendGridSink(), free_port(), uuid.uuid4().hex
    env = {
        "WATCHKEEPER_POLL_INTERVAL": "2s",
        "WATCHKEEPER_HTTP_API_TOKEN": token,
        "WATCHKEEPER_HTTP_API_LISTEN": f"127.0.0.1:{port}",
        "WATCHKEEPER_SENDGRID_API_KEY": sink.api_key,
        "WATCHKEEPER_SENDGRID_API_HOST": sink.url,
        "WATCHKEEPER_EMAIL_FROM": "watchkeeper@example.com",
        "WATCHKEEPER_EMAIL_TO": "ops@example.com",
    }
    daemon = Daemon(["run", *names], env)
    try:
        daemon.wait_runs(runs, timeout=120)
        time.sleep(1.0)  # between runs: idle
        stats = daemon.stats()
    finally:
        daemon.stop()
        sink.stop()
    return {"runs": runs, **stats, "severe": len(daemon.severe)}


# -- the table --------------------------------------------------------------------------------


def machine_line() -> str:
    """Date, machine, Python and the commit measured, for the README."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if "model name" in line),
        platform.machine(),
    )
    return (
        f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores "
        f"({cpu}), Python {platform.python_version()}, commit {git_head()}"
    )


def engine_line(space: Workspace) -> str:
    """:func:`machine_line` and the engine measured."""
    version = space.client.version()
    return f"{machine_line()}, Engine {version['Version']} (API {version['ApiVersion']})"


def git_head() -> str:
    """The commit measured (with ``+dirty`` when the working tree differs from it)."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no", "src"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return head + ("+dirty src" if dirty else "")


def table(results: dict[str, Any]) -> str:
    """The README's table from the measured figures (a failed measure: its error)."""
    rows = [[f"{name}: FAILED", error] for name, error in results["errors"].items()]
    if "fresh" not in results:
        return markdown_table(["measure", "value"], rows)
    fresh = results["fresh"]
    n = fresh["containers"]
    per_s = [n / r for r in fresh["run_s"]]
    rows += [
        [
            f"containers checked per second ({n} containers, 10 images, nothing new; the run)",
            spread(per_s, "", 0),
        ],
        [
            f"one `run --once` with nothing new ({n} containers): the run / whole process",
            f"{spread(fresh['run_s'])} / {spread(fresh['wall_s'])}",
        ],
        [
            "the same whole process: CPU time, user + sys (load stretches it far less than wall)",
            spread(fresh["cpu_s"]),
        ],
        [
            "registry requests per run with nothing new (`GET /v2/` + one `HEAD` per image)",
            spread(fresh["requests"], "", 0),
        ],
    ]
    if "scale" in results:
        scale = results["scale"]
        rows += [
            [
                f"one `run --once` with nothing new, {scale['containers']} containers on "
                f"{scale['images']} images: whole process, start to exit (the run)",
                f"{spread(scale['wall_s'])} ({spread(scale['run_s'])})",
            ],
            [
                f"registry requests, {scale['containers']} containers / {scale['images']} images",
                spread(scale["requests"], "", 0),
            ],
        ]
    if "engines" in results:
        rows += engine_rows(results["engines"])
    if "updates" in results:
        rows += update_rows(results["updates"], n)
    rows.append(
        [
            f"peak RSS of `run --once` ({n} containers, nothing new, no channel)",
            spread(fresh["rss_mib"], " MiB", 1),
        ]
    )
    if "idle" in results:
        idle = results["idle"]
        rows.append(
            [
                f"idle daemon, HTTP API and SendGrid on, after {idle['runs']} runs every 2 s: "
                "RSS now / peak",
                f"{idle['rss_mib']:.1f} MiB / {idle['peak_rss_mib']:.1f} MiB",
            ]
        )
    text = markdown_table(["measure", "value"], rows)
    if "peer" in results:
        import bench_peer

        text += "\n\n" + markdown_table(
            bench_peer.PEER_HEADER, bench_peer.peer_rows(results["peer"])
        )
    return text


def engine_rows(engines: dict[str, Any]) -> list[list[str]]:
    """Ten engines against one: whole process and run, their ratio, registry requests."""
    one, many, count = engines["one"], engines["many"], engines["engines"]
    wall_ratio = ratio(median(many["wall_s"]), median(one["wall_s"]))
    run_ratio = ratio(median(many["run_s"]), median(one["run_s"]))
    return [
        [
            f"{count} engines x 50 containers, nothing new: whole process / the run "
            f"(1 engine: {spread(one['wall_s'])} / {spread(one['run_s'])})",
            f"{spread(many['wall_s'])} / {spread(many['run_s'])}",
        ],
        [
            f"{count} engines against 1: ratio of whole process / of the run (bar: <= 1.5x)",
            f"{wall_ratio:.2f}x / {run_ratio:.2f}x",
        ],
        [
            f"registry requests per run, {count} engines x 10 images",
            spread(many["requests"], "", 0),
        ],
    ]


def update_rows(rounds: dict[str, list[dict[str, Any]]], n: int) -> list[list[str]]:
    """Update wall times at both concurrencies and the downtime per container."""
    probed = rounds["probed"][0]
    downtime = probed["downtime_s"]
    rows = []
    for key in ("1", "8"):
        walls = [r["wall_s"] for r in rounds[key]]
        stale = rounds[key][0]["updated"]
        rows.append(
            [
                f"update of {stale} of {n} containers, each gated (1 s stability window), "
                f"`UPDATE_CONCURRENCY={key}`: whole process",
                spread(walls),
            ]
        )
    rows.append(
        [
            f"downtime per container, median / max of {len(downtime)} (`UPDATE_CONCURRENCY=8`, "
            "published busybox `httpd`, probed every 20 ms)",
            f"{median(downtime):.2f} s / {max(downtime):.2f} s",
        ]
    )
    return rows


# -- main -------------------------------------------------------------------------------------


def measure(space: Workspace, args: argparse.Namespace) -> dict[str, Any]:
    """Every measure of the default run; the containers they share are made once."""
    tags = space.push_images([f"bench{i}" for i in range(args.images)], HTTPD, marker="v0")
    names = [f"wk-bench-{RUN_ID}-{i}" for i in range(args.containers)]
    ports = dict(zip(names, distinct_free_ports(len(names)), strict=True))
    create_containers(
        space.client, [Spec(n, tags[i % args.images], ports[n]) for i, n in enumerate(names)]
    )
    time.sleep(1)
    results: dict[str, Any] = {"errors": {}}
    measures: list[tuple[str, Callable[[], dict[str, Any]]]] = [
        ("fresh", lambda: bench_fresh(space, names, args.repeat)),
        ("engines", lambda: bench_engines(space, names, args.engines, engine_pairs(args.repeat))),
        ("idle", lambda: bench_idle_daemon(names)),
        ("updates", lambda: bench_updates(space, names, tags, ports, args.repeat)),
        ("scale", lambda: bench_scale(space, args.scale, args.scale_images, args.repeat)),
        ("peer", lambda: bench_beside_peer(space, names, tags, args.repeat)),
    ]
    skipped = {
        "engines": args.engines < 2,
        "updates": args.no_updates,
        "scale": not args.scale,
        "peer": not args.peer,
    }
    for name, work in measures:
        if not skipped.get(name):
            guarded(results, name, work)
    return results


def guarded(results: dict[str, Any], name: str, work: Callable[[], dict[str, Any]]) -> None:
    """Run one measure into ``results[name]``; a failure is kept in ``results["errors"]`` so
    that the others are still measured and printed."""
    started = time.monotonic()
    print(f"measuring {name}...", file=sys.stderr, flush=True)
    try:
        results[name] = work()
    except Exception as exc:  # noqa: BLE001 (reported in the output, the run goes on)
        results["errors"][name] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    print(f"{name}: {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--containers", type=int, default=50)
    parser.add_argument("--images", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure (median)")
    parser.add_argument("--scale", type=int, default=0, help="also N containers (e.g. 500)")
    parser.add_argument("--scale-images", type=int, default=100)
    parser.add_argument("--engines", type=int, default=10, help="many engines (0: skip)")
    parser.add_argument("--no-updates", action="store_true", help="skip the update rounds")
    parser.add_argument(
        "--peer", action="store_true", help="also ouroboros beside watchkeeper (bench_peer.py)"
    )
    parser.add_argument("--soak", action="store_true", help="the daemon soak instead")
    parser.add_argument("--soak-runs", type=int, default=1000)
    parser.add_argument("--simulate", action="store_true", help="the fake-engine simulation")
    parser.add_argument(
        "--sim-grid",
        default="100:1,8,32,128;1000:8,32,128",
        help="ENGINES:HOST_CONCURRENCY,... points separated by ;",
    )
    parser.add_argument(
        "--sim-latency-scale",
        type=float,
        default=1.0,
        help="factor on the 5-50 ms fake engine latency",
    )
    parser.add_argument("--sim-point", help=argparse.SUPPRESS)  # one point, in a subprocess
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the chosen benchmark and print its Markdown table."""
    args = parse_args(argv)
    if args.sim_point or args.simulate:
        import bench_sim

        if args.simulate:
            print(machine_line())
        return bench_sim.main(args)
    command = " ".join(["scripts/benchmark.py", *(argv or sys.argv[1:])])
    failed = False
    runtime = runtime_line()  # makes .venv-runtime first if it has to
    with workspace() as space:
        header = engine_line(space)
        if args.soak:
            import bench_soak

            text = bench_soak.soak_table(bench_soak.soak(space, args.soak_runs))
        else:
            results = measure(space, args)
            text, failed = table(results), bool(results["errors"])
    print(f"{header}\n`{command}`\n{runtime}\n\n{text}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
