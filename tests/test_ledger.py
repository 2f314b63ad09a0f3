"""The SQLite ledger on a real file: migrations (also when several processes open a new ledger at
once), refusing a newer schema, and the round trip of a row."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.fold import FoldState
from daemon.ledger import SCHEMA_VERSION, Ledger, LedgerError, Row

OPEN = "import sys; from pathlib import Path; from daemon.ledger import Ledger; Ledger(Path(sys.argv[1])).close()"


def test_concurrent_first_opens_migrate_once(tmp_path: Path) -> None:
    for round_ in range(5):
        path = tmp_path / f"l{round_}.sqlite3"
        procs = [subprocess.Popen([sys.executable, "-c", OPEN, str(path)], stderr=subprocess.PIPE)
                 for _ in range(6)]
        errors = [p.communicate()[1].decode() for p in procs if p.wait() != 0]
        assert errors == []
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.close()


def test_newer_schema_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "l.sqlite3"
    Ledger(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(LedgerError, match="newer than this session-syncd .*upgrade session-syncd"):
        Ledger(path)


def test_row_round_trip_and_skips(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.sqlite3")
    try:
        row = Row(source="claude", path="/p/s.jsonl", session_id="s", size=10, mtime_ns=5, inode=7,
                  content_hash=b"h", consumed=9, prefix_hash=b"p", fold_state=FoldState(offset=9),
                  thread_id="t", rollout_path="/r", rollout_size=3)
        ledger.commit(row)
        assert ledger.get("claude", "s") == row
        assert ledger.stats() == {("claude", "s"): ((10, 5, 7), "/p/s.jsonl", None)}
        ledger.record_failure("cursor", "q", "/q.jsonl", "cwd gone", (1, 2, 3), "/gone")
        ledger.record_failure("cursor", "r", "/r.jsonl", "unreadable")
        assert ledger.skips() == {("cursor", "q"): ((1, 2, 3), "/gone", "cwd gone")}
        assert set(ledger.failures()) == {("cursor", "/q.jsonl"), ("cursor", "/r.jsonl")}
        assert (tmp_path / "l.sqlite3").stat().st_mode & 0o777 == 0o600
    finally:
        ledger.close()


def test_writes_inside_a_transaction_join_it(tmp_path: Path) -> None:
    """record.record_all commits sessions that completed together in one transaction: a write inside
    it joins it (no nested BEGIN), and a failure rolls back every row of the batch, not only the last."""
    ledger = Ledger(tmp_path / "l.sqlite3")
    try:
        def row(sid: str) -> Row:
            return Row(source="claude", path=f"/p/{sid}.jsonl", session_id=sid, size=1, mtime_ns=1, inode=1,
                       content_hash=b"h", consumed=1, prefix_hash=b"p", fold_state=FoldState(offset=1))

        with ledger.transaction():
            ledger.commit(row("a"))
            ledger.commit(row("b"))
            assert not Ledger(tmp_path / "l.sqlite3", migrate=False).stats()  # not visible before the end
        assert set(ledger.stats()) == {("claude", "a"), ("claude", "b")}
        with pytest.raises(RuntimeError):
            with ledger.transaction():
                ledger.commit(row("c"))
                ledger.record_failure("claude", "d", "/p/d.jsonl", "unreadable")
                raise RuntimeError("the batch's last write failed")
        assert set(ledger.stats()) == {("claude", "a"), ("claude", "b")} and not ledger.failures()
        ledger.commit(row("c"))  # and the ledger is usable after
        assert ("claude", "c") in ledger.stats()
    finally:
        ledger.close()
