"""SIGTERM/SIGINT set the stop flag at once, whichever thread the kernel hands the signal to and
whatever the main thread holds when it comes (``daemon.ShutdownSignals``).

Each case is a real child process (``python -c``): signals and the interpreter's wakeup pipe are
process-wide, and a case that went wrong would hang or kill the process it runs in.
"""

from __future__ import annotations

import subprocess
import sys

PRELUDE = (
    "import os, signal, threading\n"
    "from watchkeeper.daemon import shutdown_signals\n"
    "stop = threading.Event()\n"
)


def run_child(code: str) -> str:
    """``python -c PRELUDE+CODE``; its stdout (a child that hangs fails the test after 30 s)."""
    child = subprocess.run(
        [sys.executable, "-c", PRELUDE + code],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert child.returncode == 0, child.stderr
    return child.stdout.strip()


def test_a_signal_taken_by_another_thread_wakes_the_sleeping_main_thread() -> None:
    """The signal lands in a worker thread while the main thread sleeps in ``stop.wait``.

    The Python-level handler would run only when the main thread next runs Python, that is
    after its wait; the wakeup pipe's watcher sets the flag at once, so the wait returns True.
    """
    out = run_child(
        "ready, release = threading.Event(), threading.Event()\n"
        "def worker():\n"
        "    ready.set()\n"
        "    release.wait(30)\n"
        "t = threading.Thread(target=worker)\n"
        "t.start()\n"
        "ready.wait()\n"
        "with shutdown_signals(stop) as s:\n"
        "    signal.pthread_kill(t.ident, signal.SIGTERM)\n"
        "    woke = stop.wait(10)\n"
        "    release.set()\n"
        "    t.join()\n"
        "print(woke, s.name, s.exit_code)\n"
    )
    assert out == "True SIGTERM 143"


def test_a_signal_while_the_main_thread_holds_the_flags_lock_does_not_deadlock() -> None:
    """The main thread holds the ``Event``'s own lock (as inside ``Event.wait``) when SIGINT
    comes: a handler that set the flag itself would wait for that lock for ever."""
    out = run_child(
        "with shutdown_signals(stop) as s:\n"
        "    with stop._cond:\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        for _ in range(100000):\n"
        "            pass\n"
        "    woke = stop.wait(10)\n"
        "print(woke, s.name, s.exit_code)\n"
    )
    assert out == "True SIGINT 130"


def test_leaving_gives_back_the_handlers_and_the_wakeup_pipe_and_ends_the_watcher() -> None:
    """After the block: no watcher thread, no wakeup pipe, Ctrl-C raises KeyboardInterrupt."""
    out = run_child(
        "with shutdown_signals(stop):\n"
        "    inside = threading.active_count()\n"
        "after = threading.active_count()\n"
        "fd = signal.set_wakeup_fd(-1)\n"
        "try:\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    for _ in range(100000):\n"
        "        pass\n"
        "    interrupted = False\n"
        "except KeyboardInterrupt:\n"
        "    interrupted = True\n"
        "print(inside, after, fd, interrupted, stop.is_set())\n"
    )
    assert out == "2 1 -1 True False"
