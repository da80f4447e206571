"""What ``scripts/benchmark.py`` and its parts share: figures, processes, containers, the table.

Pure helpers (median, ratio, the Markdown table) are unit-tested in
``tests/unit/test_benchmark_helpers.py``; the rest drives real processes and engines and is
exercised by running the benchmark. Everything created carries the test label and is removed by
:class:`Workspace` even when a measure fails.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import docker  # noqa: E402 (after the sys.path line)
import docker.errors  # noqa: E402
from tests.support.engine_objects import (  # noqa: E402
    BUSYBOX_APPLETS,
    RUN_ID,
    TEST_LABEL,
    ImageFactory,
    Registry,
    remove_images_of,
    remove_test_objects,
    start_registry,
)

LABELS = {TEST_LABEL: RUN_ID}
SLEEP = 'CMD ["sleep", "3600"]'
HTTPD = 'CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]'
SECOND_ENGINE = "unix:///run/watchkeeper-test/docker26.sock"
# Log levels above warning: what the soak must never see.
SEVERE = frozenset({"error", "critical", "exception", "fatal"})


# -- pure helpers -----------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    """The median (the middle one of an odd count, the mean of the two middle ones else)."""
    if not values:
        raise ValueError("median of nothing")
    return float(statistics.median(values))


def ratio(value: float, reference: float) -> float:
    """``value / reference``; a reference of zero is an error, not infinity."""
    if reference <= 0:
        raise ValueError(f"reference {reference} is not positive")
    return value / reference


def spread(values: Sequence[float], unit: str = " s", digits: int = 2) -> str:
    """``median (min-max)`` of repeated measures, e.g. ``0.41 s (0.39-0.47)``."""
    mid = f"{median(values):.{digits}f}{unit}"
    if len(values) < 2:
        return mid
    return f"{mid} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub Markdown table; every row must have the header's width."""
    for row in rows:
        if len(row) != len(header):
            raise ValueError(f"row {row!r} has {len(row)} cells, header {len(header)}")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def parse_status(text: str) -> dict[str, float]:
    """``VmRSS``/``VmHWM`` (MiB) and ``Threads`` from the text of ``/proc/PID/status``."""
    wanted = {"VmRSS": "rss_mib", "VmHWM": "peak_rss_mib", "Threads": "threads"}
    found: dict[str, float] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in wanted:
            number = float(value.split()[0])
            found[wanted[key]] = number / 1024 if key.startswith("Vm") else number
    return found


def severe_lines(lines: Sequence[str]) -> list[str]:
    """The JSON log lines whose level is above warning (text lines count: a traceback)."""
    out = []
    for line in lines:
        try:
            level = str(json.loads(line).get("level", "")).lower()
        except (ValueError, AttributeError):
            level = "error" if line.strip() else ""
        if level in SEVERE:
            out.append(line)
    return out


# -- processes --------------------------------------------------------------------------------

# watchkeeper as it ships: the runtime dependencies only (pyproject.toml's ``dependencies``), no
# test tools. The dev venv has ``rich`` (pulled by schemathesis), which structlog imports when it
# is installed: 5 MiB and 0.1 s that the image never pays.
RUNTIME_VENV = ROOT / ".venv-runtime"
RUNTIME_STAMP = RUNTIME_VENV / "watchkeeper-build.json"


def tree_digest(*paths: Path) -> str:
    """sha256 over the names and contents of every file under ``paths`` (no ``__pycache__``)."""
    digest = hashlib.sha256()
    for root in paths:
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for path in files:
            if path.is_file() and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@functools.cache
def runtime_python() -> str:
    """The Python of ``.venv-runtime``, with watchkeeper installed from this checkout.

    Made on first use (``python -m venv``, ``pip install .``) and made again when
    pyproject.toml changes; when only ``src/`` changed, watchkeeper alone is installed again
    (``--no-deps``), so the figures are always of the code measured, as pip installs it
    (compiled, in site-packages), with what the image has and nothing more.
    """
    python = RUNTIME_VENV / "bin" / "python"
    wanted = {"pyproject": tree_digest(ROOT / "pyproject.toml"), "src": tree_digest(ROOT / "src")}
    stamp = json.loads(RUNTIME_STAMP.read_text()) if RUNTIME_STAMP.exists() else {}
    if stamp == wanted and python.exists():
        return str(python)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if stamp.get("pyproject") != wanted["pyproject"] or not python.exists():
        print(f"making {RUNTIME_VENV.name} (runtime dependencies only)...", file=sys.stderr)
        shutil.rmtree(RUNTIME_VENV, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(RUNTIME_VENV)], check=True)
        subprocess.run([*pip, str(ROOT)], check=True)
    else:
        print(f"installing this checkout into {RUNTIME_VENV.name}...", file=sys.stderr)
        subprocess.run([*pip, "--no-deps", "--force-reinstall", str(ROOT)], check=True)
    RUNTIME_STAMP.write_text(json.dumps(wanted))
    return str(python)


def runtime_line() -> str:
    """What the benchmark's processes run, for its output and the README."""
    version = subprocess.run(
        [runtime_python(), "-c", "import platform; print(platform.python_version())"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return (
        f"watchkeeper run from {RUNTIME_VENV.name} (Python {version}): this checkout installed "
        "with its runtime dependencies only, as the image ships it (no test tools, no rich)"
    )


def stale_half(tags: Sequence[str]) -> list[str]:
    """The tags an update round pushes a new image to: the first half (5 of 10, 25 of 50
    containers, since container ``i`` runs ``tags[i % len(tags)]``)."""
    return list(tags[: len(tags) // 2])


def plain_env() -> dict[str, str]:
    """``PATH`` and ``HOME`` of this process, nothing else: what every measured process gets."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/root")}


def base_env(state_dir: str | None = None) -> dict[str, str]:
    """The environment of a measured watchkeeper: JSON logs, its own state directory."""
    return {
        **plain_env(),
        "WATCHKEEPER_LOG_FORMAT": "json",
        "WATCHKEEPER_STATE_DIR": state_dir or tempfile.mkdtemp(prefix="wk-bench-"),
    }


@dataclass
class ProcessRun:
    """One ``watchkeeper`` process: its report (last stdout line), wall time, peak RSS, logs,
    and its CPU time (user + sys: what a loaded machine stretches least)."""

    report: dict[str, Any]
    wall_s: float
    max_rss_mib: float
    log_lines: list[str]
    state_dir: str
    cpu_s: float = 0.0


class PeakWatcher:
    """The peak RSS of a child process's own program, read from ``/proc/PID/status``.

    Not ``wait4``'s ``ru_maxrss``: the kernel keeps there the high-water mark of the memory the
    child had before ``exec`` too, which is this (large) benchmark process's, so every child
    would seem to need at least what the benchmark holds. ``VmHWM`` is the peak of the
    program's own memory; it only grows, so reading it every 5 ms until the exit misses at
    most the last 5 ms.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        path = Path(f"/proc/{self.pid}/status")
        while not self._stop.is_set():
            try:
                peak = parse_status(path.read_text()).get("peak_rss_mib", 0.0)
            except OSError:
                return
            self.peak_mib = max(self.peak_mib, peak)
            self._stop.wait(0.005)

    def stop(self) -> float:
        """Stop reading; the peak seen, in MiB."""
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak_mib


@dataclass
class Measured:
    """One finished process: exit code, output, wall time, peak RSS (MiB), CPU time."""

    returncode: int
    out: str
    err: str
    wall_s: float
    max_rss_mib: float
    cpu_s: float


def run_measured(argv: Sequence[str], env: dict[str, str], timeout: float = 600) -> Measured:
    """Run ``argv`` to its exit: wall time from the start, peak RSS by :class:`PeakWatcher`,
    CPU time (user + sys) from ``wait4``; the watchers of watchkeeper and of its peer alike."""
    with tempfile.TemporaryFile("w+") as errors:
        started = time.monotonic()
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=errors, text=True)
        watcher = PeakWatcher(proc.pid)
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            assert proc.stdout is not None
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        wall = time.monotonic() - started
        peak = watcher.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        errors.seek(0)
        err = errors.read()
    return Measured(proc.returncode, out, err, wall, peak, cpu_s=usage.ru_utime + usage.ru_stime)


def run_watchkeeper(*args: str, env: dict[str, str], timeout: float = 600) -> ProcessRun:
    """Run ``watchkeeper ARGS`` (from :func:`runtime_python`) to its exit (:func:`run_measured`)."""
    full_env = {**base_env(), **env}
    python = runtime_python()  # made or brought up to date before the clock starts
    run = run_measured([python, "-m", "watchkeeper", *args], full_env, timeout)
    log_lines = run.err.splitlines()
    lines = run.out.strip().splitlines()
    if not lines:
        raise RuntimeError(f"watchkeeper {args} printed no report: {log_lines[-5:]}")
    return ProcessRun(
        json.loads(lines[-1]),
        run.wall_s,
        run.max_rss_mib,
        log_lines,
        full_env["WATCHKEEPER_STATE_DIR"],
        cpu_s=run.cpu_s,
    )


def proc_stats(pid: int) -> dict[str, float]:
    """RSS now and at peak (MiB), threads and open file descriptors of a live process."""
    stats = parse_status(Path(f"/proc/{pid}/status").read_text())
    stats["fds"] = float(len(os.listdir(f"/proc/{pid}/fd")))
    return stats


class Daemon:
    """``watchkeeper`` (the daemon, from :func:`runtime_python`) as a child process; its JSON
    log read in a thread.

    Counts ``run.finished`` lines so that a measure can wait for the Nth run, and keeps every
    line above warning.
    """

    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        self.env = {**base_env(), **env}
        self.proc = subprocess.Popen(
            [runtime_python(), "-m", "watchkeeper", *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.runs = 0
        self.levels: Counter[str] = Counter()
        self.severe: list[str] = []
        self.events: Counter[str] = Counter()
        self.tail: deque[str] = deque(maxlen=20)
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._changed:
                self._count(line)
                self._changed.notify_all()

    def _count(self, line: str) -> None:
        try:
            entry = json.loads(line)
            level, event = str(entry.get("level", "")).lower(), str(entry.get("event", ""))
        except (ValueError, AttributeError):
            level, event = ("error" if line.strip() else ""), ""
        self.tail.append(line.rstrip())
        self.levels[level] += 1
        self.events[event] += 1
        if level in SEVERE:
            self.severe.append(line.rstrip())
        if event == "run.finished":
            self.runs += 1

    def wait_runs(self, count: int, timeout: float) -> None:
        """Block until ``count`` runs finished. Raises RuntimeError on timeout or exit."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.runs < count:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited ({self.proc.returncode}): {self.severe}")
                left = deadline - time.monotonic()
                if left <= 0:
                    last = "\n".join(self.tail)
                    raise RuntimeError(f"{self.runs} of {count} runs within {timeout} s:\n{last}")
                self._changed.wait(min(left, 1.0))

    def stats(self) -> dict[str, float]:
        return proc_stats(self.pid)

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 30 s; return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout=5)
        return int(self.proc.returncode)


# -- engines, images, containers --------------------------------------------------------------


class Workspace:
    """A registry, a busybox root to build from, and the engine's client; all removed at the end.

    Containers are removed by the test label on every engine the workspace was told about
    (:meth:`client_of`), images under the registry's host likewise.
    """

    def __init__(self) -> None:
        self.client = docker.from_env(timeout=300)
        self.work = Path(tempfile.mkdtemp(prefix="wk-bench-"))
        root = self.work / "r"
        (root / "bin").mkdir(parents=True)
        (root / "www").mkdir()
        (root / "www" / "index.html").write_text("ok\n")
        (root / "bin" / "busybox").write_bytes(Path("/bin/busybox").read_bytes())
        (root / "bin" / "busybox").chmod(0o755)
        for applet in BUSYBOX_APPLETS:
            (root / "bin" / applet).symlink_to("busybox")
        self.registry: Registry = start_registry(self.work / "registry")
        self.factory = ImageFactory(self.client, root)
        self.others: dict[str, docker.DockerClient] = {}

    def client_of(self, url: str) -> docker.DockerClient:
        """A client of another engine, cleaned up with the workspace."""
        if url not in self.others:
            self.others[url] = docker.DockerClient(base_url=url, timeout=300)
        return self.others[url]

    def close(self) -> None:
        """Remove every labelled container and every image of the registry; stop it."""
        for client in [self.client, *self.others.values()]:
            with contextlib.suppress(docker.errors.APIError, OSError):
                remove_test_objects(client)
        self.registry.stop()
        for client in [self.client, *self.others.values()]:
            with contextlib.suppress(docker.errors.APIError, OSError):
                remove_images_of(client, self.registry.host)

    def push_images(self, names: Sequence[str], cmd: str, marker: str) -> list[str]:
        """Build and push ``REGISTRY/NAME:1`` for every name (in a few threads); the tags."""
        tags = [f"{self.registry.host}/{name}:1" for name in names]
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda t: self.factory.build_and_push(t, cmd, marker=marker), tags))
        return tags


@dataclass
class Spec:
    """One container to create: name, image, and for a web server its published port."""

    name: str
    image: str
    port: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def create_containers(client: docker.DockerClient, specs: Sequence[Spec], workers: int = 8) -> None:
    """Create and start every container in ``workers`` threads, each with the test label."""

    def one(spec: Spec) -> None:
        options: dict[str, Any] = {"name": spec.name, "detach": True, "labels": LABELS}
        if spec.port is not None:
            # init: as PID 1 httpd would ignore SIGTERM and every stop would wait its timeout.
            options.update(init=True, ports={"8080/tcp": ("127.0.0.1", spec.port)})
        client.containers.run(spec.image, **options, **spec.extra)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, specs))


def remove_containers(client: docker.DockerClient, names: Sequence[str], workers: int = 8) -> None:
    """Remove the named containers (and whatever replaced them under the name), in threads."""

    def one(name: str) -> None:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(name, force=True)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(one, names))


@contextlib.contextmanager
def workspace() -> Iterator[Workspace]:
    """A :class:`Workspace`, closed whatever happens."""
    space = Workspace()
    try:
        yield space
    finally:
        space.close()
