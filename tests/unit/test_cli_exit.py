"""How a one-shot command ends (``cli.fast_exit``): its code kept, its exit handlers run, its
output flushed, a reader that went away no reason to change the code, and a thread that the
normal exit would wait for still waited for.

Each case is a real child process (``python -c``), since what is tested is how a process ends.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def run_child(code: str, stdout: int = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    """``python -c CODE``: its exit code, stderr, and stdout (captured unless a file is given).

    stdout is block-buffered, as without PYTHONUNBUFFERED: what was printed waits for the exit's
    flush.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("code", [0, 1, 2, 3, 130, 143])
def test_fast_exit_keeps_the_code_and_flushes_what_was_printed(code: int) -> None:
    """Each exit code of the commands (README, "Quick start") comes out as given, output first."""
    child = run_child(
        "import sys\n"
        "from watchkeeper.cli import fast_exit\n"
        "print('report ' * 2000)\n"  # more than one write: the buffer must be flushed
        "print('to stderr', file=sys.stderr)\n"
        f"fast_exit({code})\n"
    )

    assert child.returncode == code
    assert child.stdout == "report " * 2000 + "\n"
    assert child.stderr == "to stderr\n"


def test_fast_exit_runs_the_exit_handlers_first() -> None:
    """``atexit`` handlers (the notification drain, logging's flush) still run, in order."""
    child = run_child(
        "import atexit\n"
        "from watchkeeper.cli import fast_exit\n"
        "atexit.register(print, 'registered first, runs last')\n"
        "atexit.register(print, 'registered last, runs first')\n"
        "fast_exit(1)\n"
    )

    assert child.returncode == 1
    assert child.stdout.splitlines() == [
        "registered last, runs first",
        "registered first, runs last",
    ]


def test_fast_exit_keeps_the_code_when_stdout_cannot_be_flushed() -> None:
    """stdout into a pipe whose reader has gone: the flush fails, the code stays the command's."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        child = run_child(
            "from watchkeeper.cli import fast_exit\nprint('lost')\nfast_exit(3)\n", stdout=writer
        )
    finally:
        os.close(writer)

    assert child.returncode == 3
    assert child.stderr == ""


def test_fast_exit_waits_like_the_normal_exit_for_a_thread_that_is_not_a_daemon(
    tmp_path: Path,
) -> None:
    """A non-daemon thread still working is never cut short: the normal exit waits for it."""
    done = tmp_path / "done"
    child = run_child(
        "import threading, time\n"
        "from pathlib import Path\n"
        "from watchkeeper.cli import fast_exit\n"
        "def work():\n"
        "    time.sleep(0.5)\n"
        f"    Path({str(done)!r}).write_text('finished')\n"
        "threading.Thread(target=work).start()\n"
        "fast_exit(3)\n"
    )

    assert child.returncode == 3
    assert done.read_text() == "finished"


def test_print_result_survives_a_reader_that_has_gone() -> None:
    """``check | head -1``: the result cannot be written; no traceback, and the exit code is
    the command's (3 here), not Python's 120 for a failed flush."""
    reader, writer = os.pipe()
    os.close(reader)
    try:
        child = run_child(
            "from watchkeeper.cli import fast_exit\n"
            "from watchkeeper.commands import print_result\n"
            "print_result('row\\n' * 50000)\n"
            "print('more')\n"
            "fast_exit(3)\n",
            stdout=writer,
        )
    finally:
        os.close(writer)

    assert child.returncode == 3
    assert child.stderr == ""
