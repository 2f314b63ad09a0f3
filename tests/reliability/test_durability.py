"""Edits the fast path cannot see, and what makes a commit survive a power cut (issue 10).

Why: an append reads only the new bytes, trusting that what it folded before is still there. Two kinds
of change slip past a check of the stat and the prefix's ends: a same-length edit deep inside the
folded part of a file that then grew (a redacted secret while the session goes on), and a rewrite that
puts mtime and size back (`cp -p`, rsync). Here both are made for real (os.pwrite in place, os.utime
back) on a session of several blocks, synced by the real engine into a real ledger and Codex home: the
edit must reach the thread within a bounded number of appends, each of which still reads only its new
bytes; the rewrite must be seen by its ctime. And the ledger must be in the mode whose commits survive
power loss, for the connections the workers open too.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from daemon import engine
from daemon.durable import make_dirs_durable
from daemon.engine import Job, Outcome, sync_session
from daemon.ledger import Ledger
from daemon.record import record
from daemon.sources import SOURCES


class Quiet:
    def __getattr__(self, _name: str):
        return lambda *a, **k: None


SECRET = b"sk-live-0123456789abcdef"


def _line(kind: str, text: str, cwd: Path, i: int) -> bytes:
    content = text if kind == "user" else [{"type": "text", "text": text}]
    return json.dumps({"type": kind, "cwd": str(cwd), "timestamp": f"2026-11-01T10:{i // 60:02d}:{i % 60:02d}.000Z",
                       "message": {"role": kind, "content": content}}).encode() + b"\n"


class Env:
    """One Claude Code session of ~8 blocks, its ledger and Codex home, synced by the real engine."""

    def __init__(self, tmp: Path) -> None:
        self.cwd = tmp / "repo"
        self.cwd.mkdir()
        self.root = tmp / "projects"
        self.src = self.root / "-repo" / "s1.jsonl"
        self.src.parent.mkdir(parents=True)
        self.i = 0
        data = b""
        for n in range(8):  # the secret sits in the fourth turn, far from both ends
            words = f"user {n} " + ("key " + SECRET.decode() if n == 3 else "")
            data += self._turn(words, "z" * (engine.BLOCK - 400))
        self.src.write_bytes(data)
        self.codex = tmp / "codex"
        self.ledger = Ledger(tmp / "ledger.sqlite3")

    def _turn(self, user: str, answer: str) -> bytes:
        self.i += 2
        return _line("user", user, self.cwd, self.i) + _line("assistant", answer, self.cwd, self.i + 1)

    def grow(self, text: str) -> int:
        data = self._turn(text, "ok")
        with self.src.open("ab") as f:
            f.write(data)
        return len(data)

    def sync(self) -> Outcome:
        ident = SOURCES["claude"].identify(self.root, self.src)
        out = sync_session(Job(ident, self.ledger.get("claude", ident.session_id), self.codex, self.ledger.path))
        record(self.ledger, out, Quiet())
        return out

    def thread(self) -> bytes:
        row = self.ledger.get("claude", "s1")
        assert row is not None and row.rollout_path is not None
        return Path(row.rollout_path).read_bytes()


@pytest.fixture
def env(tmp_path: Path):
    e = Env(tmp_path)
    yield e
    e.ledger.close()


def test_an_edit_inside_the_folded_part_reaches_the_thread_while_appends_stay_cheap(env: Env) -> None:
    assert env.sync().kind == "imported"
    assert SECRET in env.thread()
    blocks = -(-env.src.stat().st_size // engine.BLOCK)
    assert blocks >= 8
    for n in range(blocks + 2):  # plain growth is never mistaken for an edit
        added = env.grow(f"plain {n}")
        out = env.sync()
        assert (out.kind, out.bytes_read) == ("appended", added)
    data = env.src.read_bytes()
    at = data.index(SECRET)
    assert engine.WINDOW < at < len(data) - engine.WINDOW  # invisible to the ends of the prefix
    fd = os.open(env.src, os.O_WRONLY)
    try:
        os.pwrite(fd, b"x" * len(SECRET), at)  # redacted in place, same length
    finally:
        os.close(fd)
    appends = 0
    while True:  # the session goes on; within a bounded number of appends the redaction is found
        appends += 1
        added = env.grow(f"after the redaction {appends}")
        out = env.sync()
        if out.kind != "appended":
            break
        assert out.bytes_read == added  # until then each append still reads only its new bytes
        assert appends <= blocks, "the edit was never found"
    assert out.kind == "rewritten", out
    thread = env.thread()
    assert SECRET not in thread and b"key " + b"x" * len(SECRET) in thread
    assert b"after the redaction 1" in thread and b"plain 0" in thread
    assert env.sync().kind == "unchanged"


def test_a_rewrite_that_keeps_mtime_size_and_inode_is_seen_by_its_ctime(env: Env, tmp_path: Path) -> None:
    assert env.sync().kind == "imported"
    before = env.src.stat()
    redacted = env.src.read_bytes().replace(SECRET, b"-" * len(SECRET))
    copy = tmp_path / "edited.jsonl"
    copy.write_bytes(redacted)
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    subprocess.run(["cp", "-p", str(copy), str(env.src)], check=True)  # in place: same inode
    after = env.src.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    out = env.sync()
    assert out.kind == "rewritten", out
    assert SECRET not in env.thread()
    assert env.sync().kind == "unchanged"


def test_a_chmod_reads_the_prefix_once_and_changes_nothing(env: Env) -> None:
    assert env.sync().kind == "imported"
    thread = env.thread()
    env.src.chmod(0o600)  # moves the ctime only
    out = env.sync()
    assert (out.kind, out.bytes_read) == ("unchanged", env.src.stat().st_size)  # checked whole, once
    again = env.sync()
    assert (again.kind, again.bytes_read) == ("unchanged", 0)
    assert env.thread() == thread


def test_every_ledger_connection_commits_durably(tmp_path: Path) -> None:
    """synchronous=FULL (2) in WAL mode: each commit fsyncs the WAL, so a committed row — a reserved
    start, a write intent — survives a power cut; the engine's own short connections too."""
    path = tmp_path / "state" / "deeper" / "ledger.sqlite3"
    for ledger in (Ledger(path), Ledger(path, migrate=False)):
        try:
            assert ledger._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert ledger._db.execute("PRAGMA synchronous").fetchone()[0] == 2
        finally:
            ledger.close()
    assert (path.parent.stat().st_mode & 0o777, (tmp_path / "state").stat().st_mode & 0o777) == (0o700, 0o700)


def test_make_dirs_durable_creates_every_missing_folder_private(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c"
    make_dirs_durable(target)
    assert target.is_dir()
    assert [(tmp_path / p).stat().st_mode & 0o777 for p in ("a", "a/b", "a/b/c")] == [0o700] * 3
    make_dirs_durable(target)  # existing: nothing to do
    shutil.rmtree(tmp_path / "a")
