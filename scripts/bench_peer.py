"""ouroboros beside watchkeeper, for ``scripts/benchmark.py --peer``.

The speed issue set its targets against ouroboros, the Python tool users would otherwise pick:
no-change run at most 0.3x its wall time, at most its peak RSS, the update of 25 containers at
most 0.5x its wall time. Those ratios mean something only when both run on the same machine,
engine, registry and containers in one sitting, so this measures them that way, alternating
the two (ouroboros first in each pair):

- nothing new, the 50 containers: the whole process, start to exit, its peak RSS
  (:class:`bench_support.PeakWatcher`) and the registry requests it made (the access log);
- watchkeeper's floor: a process that only imports the libraries the project requires on
  every command (docker-py, pydantic-settings, structlog) and exits, its wall time and peak
  RSS set against ouroboros' whole no-change run: what is left of each target for
  watchkeeper's own code once those are loaded;
- the update of 25 of them: new images pushed to 5 of the 10 tags, then one run. ouroboros
  pulls, stops, removes, creates and starts each container one after another and checks
  nothing; watchkeeper swaps 8 at a time (its default) and gates every replacement with a 1 s
  stability window. After each ouroboros run the benchmark checks that the 25 run their tag's
  new image, so that an update it skipped cannot pass for speed.

ouroboros runs from ``.venv-ouroboros`` (made on first use from PyPI: ``ouroboros-cli`` 1.4.2,
the last release, of 2019, with ``apprise<0.9``: it calls Apprise's ``servers``, which 0.9
removed) as ``ouroboros --run-once --cleanup --monitor NAMES``: only the benchmark's
containers, old images removed afterwards as watchkeeper does.
"""

from __future__ import annotations

import functools
import subprocess
import sys
from collections.abc import Callable, Sequence
from typing import Any

from bench_support import (
    HTTPD,
    ROOT,
    Measured,
    Workspace,
    median,
    plain_env,
    ratio,
    run_measured,
    runtime_python,
    spread,
    stale_half,
)

PEER_VENV = ROOT / ".venv-ouroboros"
PEER_REQUIREMENTS = ("ouroboros-cli==1.4.2", "apprise<0.9")
PEER_NAME = "ouroboros 1.4.2"
# What every watchkeeper command imports before it does anything: the libraries the project
# requires (settings, engine client, logging), not the approved ones it loads on demand.
FLOOR_IMPORTS = "import docker, pydantic_settings, structlog"


@functools.cache
def peer_command() -> list[str]:
    """``ouroboros`` from ``.venv-ouroboros``, made on first use."""
    program = PEER_VENV / "bin" / "ouroboros"
    if not program.exists():
        print(f"making {PEER_VENV.name} ({', '.join(PEER_REQUIREMENTS)})...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        pip = [str(PEER_VENV / "bin" / "python"), "-m", "pip", "install", "--quiet"]
        subprocess.run([*pip, "--disable-pip-version-check", *PEER_REQUIREMENTS], check=True)
    return [str(program)]


def run_peer(names: Sequence[str]) -> Measured:
    """One ``ouroboros --run-once`` over ``names``; an exit code or a logged error raises."""
    argv = [*peer_command(), "--run-once", "--cleanup", "--log-level", "info", "--monitor"]
    run = run_measured([*argv, *names], plain_env())
    lines = (run.out + run.err).splitlines()
    errors = [line for line in lines if " : ERROR : " in line and not cleanup_noise(line)]
    if run.returncode != 0 or errors or any("Traceback" in line for line in lines):
        raise RuntimeError(f"ouroboros exited {run.returncode}: {(errors or lines)[-3:]}")
    return run


def run_floor() -> Measured:
    """A process of watchkeeper's Python that imports :data:`FLOOR_IMPORTS` and exits."""
    run = run_measured([runtime_python(), "-c", FLOOR_IMPORTS], plain_env())
    if run.returncode != 0:
        raise RuntimeError(f"the floor process exited {run.returncode}: {run.err[-300:]}")
    return run


def cleanup_noise(line: str) -> bool:
    """An error ouroboros logs and goes on from, about its image cleanup: an untagged image on
    the engine (the benchmark's builds leave them), or an old image it tried to remove right
    after one container while the next ones still ran it (5 containers share each image)."""
    return "has no tags" in line or "Could not delete old image" in line


def push_elsewhere(space: Workspace, tags: Sequence[str], marker: str) -> None:
    """Push a new image to each tag as a CI machine would: the benchmark builds it on this
    engine, which moves the local tag too, so the tag is put back on the image the containers
    run. ouroboros ignores a container whose image has no tag left; it must find the new image
    by pulling, as on a real host."""
    for tag in tags:
        running = space.client.api.inspect_image(tag)["Id"]
        space.factory.build_and_push(tag, HTTPD, marker=marker)
        repository, _, name = tag.rpartition(":")
        space.client.api.tag(running, repository, name)


def check_peer_updated(
    space: Workspace, names: Sequence[str], tags: Sequence[str], stale_tags: Sequence[str]
) -> None:
    """Each container of a stale tag runs that tag's image as the engine has it now (the one
    ouroboros just pulled); container ``i`` runs ``tags[i % len(tags)]`` (the benchmark's)."""
    images = {tag: space.client.api.inspect_image(tag)["Id"] for tag in stale_tags}
    for index, name in enumerate(names):
        tag = tags[index % len(tags)]
        if tag not in images:
            continue
        running = space.client.api.inspect_container(name)["Image"]
        if running != images[tag]:
            raise RuntimeError(f"ouroboros left {name} on {running[:19]}, not on {tag}'s new image")


def side_by_side(
    space: Workspace,
    names: Sequence[str],
    tags: Sequence[str],
    repeat: int,
    watchkeeper_fresh: Callable[[], dict[str, Any]],
    watchkeeper_update: Callable[[Sequence[str], str], dict[str, Any]],
) -> dict[str, Any]:
    """``repeat`` interleaved pairs of each measure; ``watchkeeper_fresh()`` is one
    ``benchmark.bench_fresh`` run (nothing new), ``watchkeeper_update(stale_tags, marker)``
    pushes and runs watchkeeper's update round (``benchmark.update_round`` at
    ``UPDATE_CONCURRENCY=8``)."""
    stale_tags = stale_half(tags)
    figures: dict[str, dict[str, list[float]]] = {
        "peer": {"fresh_s": [], "fresh_rss": [], "requests": [], "update_s": []},
        "watchkeeper": {"fresh_s": [], "fresh_rss": [], "requests": [], "update_s": []},
        "floor": {"fresh_s": [], "fresh_rss": []},
    }
    peer, own = figures["peer"], figures["watchkeeper"]
    for round_no in range(repeat):
        space.registry.clear_log()
        run = run_peer(names)
        peer["requests"].append(len(space.registry.requests()))
        peer["fresh_s"].append(run.wall_s)
        peer["fresh_rss"].append(run.max_rss_mib)
        mine = watchkeeper_fresh()
        own["requests"] += mine["requests"]
        own["fresh_s"] += mine["wall_s"]
        own["fresh_rss"] += mine["rss_mib"]
        floor = run_floor()
        figures["floor"]["fresh_s"].append(floor.wall_s)
        figures["floor"]["fresh_rss"].append(floor.max_rss_mib)
        push_elsewhere(space, stale_tags, f"peer{round_no}")
        peer["update_s"].append(run_peer(names).wall_s)
        check_peer_updated(space, names, tags, stale_tags)
        own["update_s"].append(watchkeeper_update(stale_tags, f"own{round_no}")["wall_s"])
    return figures


def peer_rows(figures: dict[str, Any]) -> list[list[str]]:
    """The side-by-side table: each measure, both figures, their ratio, the issue's target;
    the floor's rows (when measured) set watchkeeper's floor against ouroboros' whole run."""
    peer = figures["peer"]

    def row(
        label: str, key: str, unit: str, digits: int, target: str, side: str = "watchkeeper"
    ) -> list[str]:
        own = figures[side]
        share = ratio(median(own[key]), median(peer[key]))
        return [
            label,
            spread(peer[key], unit, digits),
            spread(own[key], unit, digits),
            f"{share:.2f}x",
            target,
        ]

    floor = []
    if figures.get("floor", {}).get("fresh_s"):
        floor = [
            row(FLOOR_LABEL + "whole process", "fresh_s", " s", 2, "(floor)", side="floor"),
            row(FLOOR_LABEL + "peak RSS", "fresh_rss", " MiB", 1, "(floor)", side="floor"),
        ]
    return [
        row("nothing new, 50 containers: whole process", "fresh_s", " s", 2, "<= 0.3x"),
        row("registry requests, nothing new", "requests", "", 0, "<= 11"),
        row(
            "update of 25 of the 50 (watchkeeper: 8 at a time, each gated 1 s): whole process",
            "update_s",
            " s",
            2,
            "<= 0.5x",
        ),
        row("peak RSS, nothing new", "fresh_rss", " MiB", 1, "<= 1x"),
        *floor,
    ]


FLOOR_LABEL = (
    "floor, against ouroboros' nothing new: watchkeeper's Python importing docker-py, "
    "pydantic-settings and structlog, nothing run: "
)


PEER_HEADER = [
    "measure (interleaved)",
    PEER_NAME,
    "watchkeeper",
    "watchkeeper / ouroboros",
    "target",
]
