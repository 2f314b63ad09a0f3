"""store.write_atomic: one temp file per thread, locked, so stale temp files are reused without listing
the folder and two writers never share one. Real files and real flock."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

import pytest

from daemon.codex import store


def test_a_temp_file_left_by_a_killed_writer_is_reused_and_gone(tmp_path: Path) -> None:
    path = tmp_path / "sessions" / "rollout-x.jsonl"
    path.parent.mkdir(parents=True)
    stale = path.with_name(f".{path.name}.tmp")
    stale.write_bytes(b"half a rollout from a writer killed mid-write" * 100)
    size, digest = store.write_atomic(path, [b"line 1\n", b"line 2\n"])
    assert path.read_bytes() == b"line 1\nline 2\n" and size == 14
    assert digest == store.tail_hash(path, size)
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]
    assert (path.stat().st_mode & 0o777) == 0o600


def test_a_writer_holding_the_temp_file_makes_the_next_one_busy(tmp_path: Path) -> None:
    path = tmp_path / "rollout-y.jsonl"
    path.write_bytes(b"the thread as it is\n")
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with pytest.raises(store.Busy, match="another process is writing"):
            store.write_atomic(path, [b"new\n"])
        assert path.read_bytes() == b"the thread as it is\n"  # untouched
        assert tmp.exists()  # the other writer's temp file is not ours to remove
    finally:
        os.close(fd)
    store.write_atomic(path, [b"new\n"])
    assert path.read_bytes() == b"new\n" and not tmp.exists()


def test_replacing_keeps_nothing_of_a_longer_old_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "rollout-z.jsonl"
    for body in (b"x" * 10_000 + b"\n", b"short\n"):
        store.write_atomic(path, [body])
        assert path.read_bytes() == body
