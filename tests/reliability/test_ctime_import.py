"""The one-shot `session-syncd import` sees a rewrite that keeps size, mtime and inode (issue 10).

Why: `import` and the daemon's reconcile sort sessions against the ledger by stat before anything is
read (daemon/discover.py `triage`), so an engine that would notice the rewrite by its ctime is never
asked. `cp -p` and rsync put the mtime back after writing, and `cp -p` onto an existing file keeps its
inode: only st_ctime_ns tells. Here the copy is made for real (`cp -p`), the real CLI runs as a
subprocess into a real ledger and Codex home, and the thread is read back by the real `codex
app-server`. A chmod moves the ctime too: it must cost one verification read, then nothing again.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from codex_app_server import CodexAppServer
from daemon import engine
from daemon.discover import Found, triage
from daemon.ledger import Ledger
from daemon.sources import Identity, Version
from support import Tree, ledger_rows, require_codex, run_import

SESSION = "7a2b3c4d-0000-4000-8000-0000000000c7"
SECRET = "sk-live-0123456789abcdef"
REDACTED = "-" * len(SECRET)


def _line(cwd: Path, kind: str, text: str, second: int) -> str:
    content = text if kind == "user" else [{"type": "text", "text": text}]
    return json.dumps({"type": kind, "cwd": str(cwd), "sessionId": SESSION,
                       "timestamp": f"2026-11-02T10:00:{second:02d}.000Z",
                       "message": {"role": kind, "content": content}}) + "\n"


def _source(tree: Tree) -> Path:
    """A Claude Code session of several blocks with a secret in its middle, imported once."""
    cwd = tree.root / "repos" / "a"
    cwd.mkdir(parents=True)
    src = tree.home / ".claude" / "projects" / "-a" / f"{SESSION}.jsonl"
    src.parent.mkdir(parents=True)
    text = "".join(_line(cwd, "user", f"question {n}" + (f" key {SECRET}" if n == 3 else ""), 2 * n)
                   + _line(cwd, "assistant", "z" * (engine.BLOCK - 400), 2 * n + 1) for n in range(6))
    src.write_text(text)
    first = run_import(tree)
    assert first["by_kind"] == {"imported": 1}, first
    return src


def _rollout(tree: Tree) -> bytes:
    (row,) = ledger_rows(tree)
    return Path(row["rollout_path"]).read_bytes()


def _reads_nothing(tree: Tree) -> None:
    again = run_import(tree)
    assert (again["by_kind"], again["bytes_read"], again["unchanged"]) == ({}, 0, 1), again


def test_a_cp_p_rewrite_is_read_by_import(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    src = _source(tree)
    assert SECRET.encode() in _rollout(tree)
    before = src.stat()
    copy = tmp_path / "edited.jsonl"
    copy.write_text(src.read_text().replace(SECRET, REDACTED))
    os.utime(copy, ns=(before.st_atime_ns, before.st_mtime_ns))
    subprocess.run(["cp", "-p", str(copy), str(src)], check=True)  # in place: the same inode
    after = src.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    assert after.st_ctime_ns != before.st_ctime_ns
    out = run_import(tree)
    assert out["by_kind"] == {"rewritten": 1}, out
    rollout = _rollout(tree)
    assert SECRET.encode() not in rollout and f"key {REDACTED}".encode() in rollout
    with CodexAppServer(tree.home, tree.codex_home, binary=require_codex(), timeout=60) as codex:
        (listed,) = codex.list_threads()
        users = [item["content"][0]["text"] for turn in codex.read_thread(listed["id"])["turns"]
                 for item in turn["items"] if item.get("type") == "userMessage"]
    assert users[3] == f"question 3 key {REDACTED}" and not any(SECRET in u for u in users), users
    _reads_nothing(tree)


def test_a_chmod_costs_one_verification_read_then_none(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    src = _source(tree)
    rollout = _rollout(tree)
    src.chmod(0o600)  # moves the ctime only
    out = run_import(tree)
    assert (out["by_kind"], out["bytes_read"]) == ({"unchanged": 1}, src.stat().st_size), out  # checked whole
    _reads_nothing(tree)  # the engine recorded the new ctime
    assert _rollout(tree) == rollout


def test_a_touch_is_read_once_then_not_again(tmp_path: Path) -> None:
    """A new mtime (and so a new ctime) reads the file whole once; the row must then hold that ctime
    too, or the next run would check the whole prefix a second time."""
    tree = Tree(tmp_path)
    src = _source(tree)
    st = src.stat()
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    out = run_import(tree)
    assert out["by_kind"] == {"touched": 1}, out
    _reads_nothing(tree)


def test_a_run_with_no_change_reads_nothing(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    _source(tree)
    _reads_nothing(tree)
    _reads_nothing(tree)


def test_stats_cuts_the_ctime_the_engine_recorded_out_of_the_fingerprint(tmp_path: Path) -> None:
    """Ledger.stats() reads the ctime in SQL (no fingerprint decoded in Python): it must agree with
    engine._fingerprint_ctime on what the engine writes, and give None where there is none."""
    src = tmp_path / "s.jsonl"
    src.write_bytes(b'{"a": 1}\n' * 10_000)
    fd = os.open(src, os.O_RDONLY)
    try:
        fingerprint = engine.prefix_fingerprint(fd, src.stat().st_size, ctime_ns=-1_234_567_890_123)
    finally:
        os.close(fd)
    assert engine._fingerprint_ctime(fingerprint) == -1_234_567_890_123
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    try:
        for sid, fp in (("log", fingerprint), ("snapshot", b""), ("old", b"\x01" * 32), ("short", fingerprint[:44])):
            ledger._db.execute(
                "INSERT INTO sessions (source, path, session_id, size, mtime_ns, inode, content_hash, consumed, "
                "prefix_hash, fold_state, first_imported_at, updated_at, synced_at) "
                "VALUES ('claude', ?, ?, 1, 2, 3, x'', 0, ?, x'', 0, 0, 0)", (f"/p/{sid}", sid, fp))
        stats = ledger.stats()
    finally:
        ledger.close()
    assert {k[1]: v[2] for k, v in stats.items()} == {"log": -1_234_567_890_123, "snapshot": None, "old": None,
                                                       "short": None}
    assert stats["claude", "log"][:2] == ((1, 2, 3), "/p/log")


@pytest.mark.parametrize(("recorded", "seen", "todo"), [
    (5, 5, False),  # the same ctime: unchanged, nothing read
    (5, 6, True),  # moved (cp -p, rsync, chmod): the engine checks the prefix
    (None, 6, False),  # a row without one (a snapshot, an older fingerprint): the stat decides
    (5, None, False),  # a source that does not carry one: the stat decides
])
def test_triage_sends_an_equal_stat_with_another_ctime_to_the_engine(recorded: int | None, seen: int | None,
                                                                     todo: bool) -> None:
    """The daemon's reconcile (daemon/main.py) sorts with this same triage and `Ledger.stats()`."""
    found = [Found(Identity("claude", "s", Path("/p/s.jsonl")), Version(10, 20, 30, seen))]
    out = triage(found, {("claude", "s"): ((10, 20, 30), "/p/s.jsonl", recorded)}, {})
    assert (len(out.todo), out.unchanged) == ((1, 0) if todo else (0, 1))
