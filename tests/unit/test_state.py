"""The state file: atomic writes without leftovers, read errors vs parse errors, two writers."""

from __future__ import annotations

import errno
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.locks import FileLock
from watchkeeper.state import STATE_FILE, STATE_LOCK, StateStore

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def test_state_store_failed_write_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails (disk full at fsync) removes its temporary file; memory keeps it."""

    def disk_full(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    store = StateStore(tmp_path)
    monkeypatch.setattr(os, "fsync", disk_full)
    store.put("failed", "local|app:1", D1)
    store.put("failed", "local|app:2", D2)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != STATE_LOCK) == []
    assert store.is_failed("local|app:1", D1)


def test_state_store_unreadable_file_kept_as_is_and_store_works_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EACCES/EIO on read: the file is neither moved aside nor overwritten; memory still works."""
    path = tmp_path / STATE_FILE
    original = json.dumps({"failed": {"local|app:1": D1}, "notified": {}})
    path.write_text(original)
    real_read_bytes, real_read_text = Path.read_bytes, Path.read_text

    def unreadable(self: Path, *args: Any, **kwargs: Any) -> Any:
        if self == path:
            raise OSError(errno.EIO, "Input/output error")
        return (real_read_text if args or kwargs else real_read_bytes)(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_bytes", unreadable)
    monkeypatch.setattr(Path, "read_text", unreadable)
    store = StateStore(tmp_path)
    store.put("failed", "local|app:2", D2)
    monkeypatch.undo()

    assert store.is_failed("local|app:2", D2)
    assert path.read_text() == original
    assert not path.with_suffix(".corrupt").exists()


def test_state_store_two_processes_keep_each_others_entries(tmp_path: Path) -> None:
    """Two stores on one STATE_DIR (daemon and run --once) never drop what the other wrote."""
    daemon = StateStore(tmp_path)
    once = StateStore(tmp_path)
    daemon.put("failed", "local|web:1", D1)
    once.put("notified", "local|api:1", D2)
    daemon.forget("failed", "nothing-there")
    daemon.put("failed", "local|db:1", D2)
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["failed"] == {"local|web:1": D1, "local|db:1": D2}
    assert saved["notified"] == {"local|api:1": D2}


def test_state_store_write_waits_while_another_process_writes(tmp_path: Path) -> None:
    """A write waits while another process holds the state lock, then goes through."""
    store = StateStore(tmp_path)
    other = FileLock(tmp_path / STATE_LOCK)
    assert other.try_acquire()
    writer = threading.Thread(target=store.put, args=("failed", "k", D1))
    writer.start()
    writer.join(0.3)
    assert writer.is_alive()
    assert not (tmp_path / STATE_FILE).exists()
    other.release()
    writer.join(5)
    assert json.loads((tmp_path / STATE_FILE).read_text())["failed"] == {"k": D1}
