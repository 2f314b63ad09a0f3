"""A session is (agent, the agent's own session id), not a path: a moved or copied session is one thread.

Real `session-syncd import` subprocesses on temp trees; the v1 → v2 ledger migration on a real SQLite file
written with the v1 schema as it shipped.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from daemon.ledger import _MIGRATIONS, Ledger
from daemon_support import Session
from support import Tree, ledger_rows, run_import


def _user_texts(rollout: Path) -> list[str]:
    return [json.loads(line)["payload"]["message"] for line in rollout.read_text().splitlines()
            if '"type":"user_message"' in line]


def _session(tree: Tree, project: str = "-work-p") -> Session:
    s = Session(tree.home / ".claude" / "projects", tree.root / "repos" / "p", project=project,
                session_id="6b1d2c3e-0000-4000-8000-000000000001")
    s.write_turns(("first question", "first answer"))
    return s


def test_a_moved_project_folder_is_the_same_thread(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    s = _session(tree)
    assert run_import(tree)["imported"] == 1
    (rollout,) = tree.rollouts()
    moved = s.path.parent.with_name("-work-p-renamed")
    s.path.parent.rename(moved)
    s.path = moved / s.path.name
    again = run_import(tree)
    assert again["imported"] == 0 and again["failed"] == 0, again
    (row,) = ledger_rows(tree)
    assert row["path"] == str(s.path)  # the row follows the session to its new place
    s.append(b"".join(s.turn_lines("after the move", "still one thread")))
    third = run_import(tree)
    assert third["by_kind"] == {"appended": 1}, third
    assert tree.rollouts() == [rollout]
    assert _user_texts(rollout) == ["first question", "after the move"]


def test_two_copies_of_one_session_make_one_thread(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    s = _session(tree)
    copy = s.path.parent.with_name("-work-copy") / s.path.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(s.path.read_bytes())
    summary = run_import(tree)
    assert summary["imported"] == 1 and summary["sessions"] == 1, summary
    assert len(tree.rollouts()) == 1 and len(ledger_rows(tree)) == 1
    assert run_import(tree)["imported"] == 0


def test_a_v1_ledger_is_migrated_to_session_keys(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for statement in _MIGRATIONS[1].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version=1")
    cols = ("source, path, session_id, size, mtime_ns, inode, content_hash, consumed, prefix_hash, fold_state, "
            "thread_id, first_imported_at, updated_at, synced_at")
    db.execute(f"INSERT INTO sessions ({cols}) VALUES ('claude', '/p/a/s1.jsonl', 's1', 1, 2, 3, x'00', 0, x'00', "
               "x'80', 't1', 1.0, 1.0, 1.0)")
    db.execute("INSERT INTO starts (source, path, start_ms) VALUES ('cursor', '/c/t/x9.jsonl', 42)")
    db.execute("INSERT INTO failures (source, path, error, count, at) VALUES ('claude', '/p/b/s2.jsonl', 'e', 1, 5.0)")
    db.close()
    ledger = Ledger(path)
    try:
        row = ledger.get("claude", "s1")
        assert row is not None and row.thread_id == "t1" and row.path == "/p/a/s1.jsonl"
        assert ledger.reserve_start("cursor", "x9", 99) == 42  # the reservation survived under its id
        assert ledger.failures() == {("claude", "/p/b/s2.jsonl"): ("e", 1, 5.0)}
        assert ledger.stats() == {("claude", "s1"): ((1, 2, 3), "/p/a/s1.jsonl", None)}
    finally:
        ledger.close()
