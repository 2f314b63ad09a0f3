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


def test_a_rollout_of_more_pieces_than_one_write_takes_is_whole(tmp_path: Path) -> None:
    """More pieces than IOV_MAX (one pwritev), empty ones among them: every byte in order, and the tail
    hash returned (computed from the pieces, not read back) is the file's."""
    path = tmp_path / "rollout-many.jsonl"
    pieces = [b"" if i % 7 == 0 else f"line {i} ".encode() * (i % 5 + 1) + b"\n" for i in range(3 * store._IOV_MAX)]
    size, digest = store.write_atomic(path, pieces)
    assert path.read_bytes() == b"".join(pieces) and size == len(b"".join(pieces))
    assert digest == store.tail_hash(path, size)
