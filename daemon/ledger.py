"""The ledger: which source version became which Codex thread. SQLite in WAL mode, one row per session.

Owns: the schema and its migrations, and the per-session commit. Invariant: a row is written only
after the rollout it describes is durable (the engine fsyncs first), one transaction per session, so a
crash at any moment leaves every committed row true. A crash before the commit is repaired by the next
run: thread ids and rollout paths are deterministic, so the rewrite lands on the same file.

Durability, power loss included: WAL with `synchronous=FULL`. In WAL mode SQLite's levels mean:
OFF never fsyncs (an OS crash can corrupt the file); NORMAL fsyncs the WAL only at checkpoints, so the
database stays consistent but the last transactions committed before a power cut (not a process crash:
those are in the OS's cache) can be rolled back; FULL fsyncs the WAL at every commit, so a committed
transaction survives a power cut. A lost *commit* alone would be repaired (the rollout is at its
deterministic path and is recognised as ours), but two of our rows protect a write that follows them
and must not vanish after it: a reserved start (`reserve_start`: the thread id and rollout path of a
session whose records carry no time; lost, the retry would pick a new start from the file's newer
mtime — a second thread) and a write intent (`set_intent`: lost, our own interrupted append would look
like Codex's — a conflict copy). Hence FULL for every connection; it costs one WAL fsync per
transaction (README, "What it guarantees", has the measurement). The state folder's new entries are
fsynced too (daemon/durable.py).

Not thread-safe by itself: each thread opens its own `Ledger` (SQLite connections are cheap), or the
caller serialises access.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import msgspec

from daemon.durable import make_dirs_durable

if TYPE_CHECKING:
    from daemon.fold import FoldState

SCHEMA_VERSION = 3
_MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE sessions (
        source            TEXT NOT NULL,     -- plug-in kind: claude, cursor, ...
        path              TEXT NOT NULL,     -- absolute source path
        session_id        TEXT NOT NULL,
        size              INTEGER NOT NULL,  -- stat of the version we consumed
        mtime_ns          INTEGER NOT NULL,
        inode             INTEGER NOT NULL,
        content_hash      BLOB NOT NULL,     -- blake3 of the source at its last full read, chained
                                             --   with each append: blake3(previous ‖ bytes added)
        consumed          INTEGER NOT NULL,  -- bytes of complete lines folded
        prefix_hash       BLOB NOT NULL,     -- fingerprint of source[:consumed] (engine.prefix_fingerprint)
        fold_state        BLOB NOT NULL,     -- msgpack FoldState, to resume on append
        thread_id         TEXT,              -- NULL until the session has a user turn
        generation        INTEGER NOT NULL DEFAULT 0,
        rollout_path      TEXT,
        rollout_size      INTEGER,           -- what we last wrote: a different size or tail means
        rollout_tail_hash BLOB,              --   someone else (Codex) wrote to the thread
        rollout_body_end  INTEGER,           -- where our closing lines start
        rollout_body_hash BLOB,              -- tail hash of the rollout's first body_end bytes
        pending_size      INTEGER,           -- write intent: the rollout as it will be after the write
        pending_tail_hash BLOB,              --   in flight (recognised as ours after a crash)
        title             TEXT,
        first_imported_at REAL NOT NULL,
        updated_at        REAL NOT NULL,     -- last time the thread changed
        synced_at         REAL NOT NULL,     -- last time this row was confirmed current
        last_error        TEXT,              -- NULL when the last attempt succeeded
        error_count       INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (source, path)
    );
    CREATE UNIQUE INDEX sessions_thread ON sessions(thread_id) WHERE thread_id IS NOT NULL;
    CREATE TABLE superseded (                -- earlier generations left alone after a conflict
        thread_id    TEXT PRIMARY KEY,
        source       TEXT NOT NULL,
        path         TEXT NOT NULL,
        generation   INTEGER NOT NULL,
        rollout_path TEXT NOT NULL,
        next_thread  TEXT NOT NULL,
        reason       TEXT NOT NULL,
        at           REAL NOT NULL
    );
    CREATE TABLE starts (                    -- start times reserved for sessions whose records carry none
        source   TEXT NOT NULL,
        path     TEXT NOT NULL,
        start_ms INTEGER NOT NULL,
        PRIMARY KEY (source, path)
    );
    CREATE TABLE failures (                  -- sources that failed or were skipped before any row existed
        source      TEXT NOT NULL,
        path        TEXT NOT NULL,
        error       TEXT NOT NULL,
        count       INTEGER NOT NULL,
        at          REAL NOT NULL,
        size        INTEGER,                 -- for a skip: the stat it was decided on (NULL: a failure,
        mtime_ns    INTEGER,                 --   retried every time) ...
        inode       INTEGER,
        waiting_for TEXT,                    -- ... and a folder whose appearance lifts it (a missing cwd)
        PRIMARY KEY (source, path)
    );
    """,
    # 2: a session is (source, session_id), the agent's own id, not its path: a moved file, a copied home
    # folder, a legacy and a new copy of one session are one session and one thread. `path` stays a column
    # (where the session was last read). Sessions of one id under two paths keep the most recently synced.
    2: """
    CREATE TABLE sessions_v2 (
        source TEXT NOT NULL, path TEXT NOT NULL, session_id TEXT NOT NULL, size INTEGER NOT NULL,
        mtime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, content_hash BLOB NOT NULL, consumed INTEGER NOT NULL,
        prefix_hash BLOB NOT NULL, fold_state BLOB NOT NULL, thread_id TEXT, generation INTEGER NOT NULL DEFAULT 0,
        rollout_path TEXT, rollout_size INTEGER, rollout_tail_hash BLOB, rollout_body_end INTEGER,
        rollout_body_hash BLOB, pending_size INTEGER, pending_tail_hash BLOB, title TEXT,
        first_imported_at REAL NOT NULL, updated_at REAL NOT NULL, synced_at REAL NOT NULL, last_error TEXT,
        error_count INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (source, session_id)
    );
    INSERT OR IGNORE INTO sessions_v2 SELECT source, path, session_id, size, mtime_ns, inode, content_hash, consumed,
        prefix_hash, fold_state, thread_id, generation, rollout_path, rollout_size, rollout_tail_hash,
        rollout_body_end, rollout_body_hash, pending_size, pending_tail_hash, title, first_imported_at, updated_at,
        synced_at, last_error, error_count FROM sessions ORDER BY synced_at DESC;
    DROP TABLE sessions;
    ALTER TABLE sessions_v2 RENAME TO sessions;
    CREATE UNIQUE INDEX sessions_thread ON sessions(thread_id) WHERE thread_id IS NOT NULL;
    CREATE TABLE starts_v2 (source TEXT NOT NULL, session_id TEXT NOT NULL, start_ms INTEGER NOT NULL,
        PRIMARY KEY (source, session_id));
    INSERT OR IGNORE INTO starts_v2 SELECT source, path_stem(path), start_ms FROM starts;
    DROP TABLE starts;
    ALTER TABLE starts_v2 RENAME TO starts;
    CREATE TABLE failures_v2 (source TEXT NOT NULL, session_id TEXT NOT NULL, path TEXT NOT NULL,
        error TEXT NOT NULL, count INTEGER NOT NULL, at REAL NOT NULL, size INTEGER, mtime_ns INTEGER, inode INTEGER,
        waiting_for TEXT, PRIMARY KEY (source, session_id));
    INSERT OR IGNORE INTO failures_v2 SELECT source, path_stem(path), path, error, count, at, size, mtime_ns, inode,
        waiting_for FROM failures ORDER BY at DESC;
    DROP TABLE failures;
    ALTER TABLE failures_v2 RENAME TO failures
    """,
    # 3: a session whose thread the user deleted in Codex is tombstoned: not imported again until
    # `session-syncd import --restore`.
    3: """
    ALTER TABLE sessions ADD COLUMN tombstoned_at REAL
    """,
}


class LedgerError(Exception):
    """The ledger cannot be opened or migrated; the message names the file and the fix."""


class Row(msgspec.Struct, kw_only=True):
    source: str
    path: str
    session_id: str
    size: int
    mtime_ns: int
    inode: int
    content_hash: bytes
    consumed: int
    prefix_hash: bytes
    fold_state: FoldState
    thread_id: str | None = None
    generation: int = 0
    rollout_path: str | None = None
    rollout_size: int | None = None
    rollout_tail_hash: bytes | None = None
    rollout_body_end: int | None = None
    rollout_body_hash: bytes | None = None
    pending_size: int | None = None
    pending_tail_hash: bytes | None = None
    title: str | None = None
    first_imported_at: float = 0.0
    updated_at: float = 0.0
    synced_at: float = 0.0
    last_error: str | None = None
    error_count: int = 0
    tombstoned_at: float | None = None  # the user deleted its thread in Codex: leave it alone


class Superseded(msgspec.Struct, kw_only=True):
    thread_id: str
    source: str
    path: str
    generation: int
    rollout_path: str
    next_thread: str
    reason: str
    at: float


_FIELDS = tuple(Row.__struct_fields__)
# The ctime inside a log's `prefix_hash` (engine.prefix_fingerprint: a version byte x'02', the 32-byte ends
# digest, then ctime_ns as 8 bytes little-endian signed; 45 bytes of head), cut out by SQLite: the fast
# path reads no fingerprint whole. A row without it (a snapshot's b"", an older fingerprint) gives NULL.
_STATS = ("SELECT source, session_id, path, size, mtime_ns, inode, CASE WHEN substr(prefix_hash, 1, 1) = x'02' "
          "AND length(prefix_hash) >= 45 THEN substr(prefix_hash, 34, 8) END FROM sessions")
_encode_state = msgspec.msgpack.Encoder().encode


def _to_row(values: tuple) -> Row:
    from daemon.fold import state_decoder  # the fold and renderer: only a command that reads fold states needs them

    d = dict(zip(_FIELDS, values))
    d["fold_state"] = state_decoder(d["source"])(d["fold_state"])
    return Row(**d)


class Ledger:
    def __init__(self, path: Path, *, migrate: bool = True) -> None:
        """`migrate=False` for the engine's short writes from worker threads and processes: the ledger
        was opened (and migrated) by the parent, and a worker must not fail on someone else's lock."""
        self.path = path
        self._in_tx = False
        try:
            make_dirs_durable(path.parent)
            self._db = sqlite3.connect(path, isolation_level=None, timeout=30.0, check_same_thread=False)
            self._wal()
            self._db.execute("PRAGMA synchronous=FULL")  # a committed row survives power loss (docstring)
            self._db.execute("PRAGMA foreign_keys=ON")
            if migrate:
                # v1 keyed sessions by path; for its two agents (Claude Code, Cursor) the id is the file stem
                self._db.create_function("path_stem", 1, lambda p: PurePath(p).stem, deterministic=True)
                self._migrate()
        except sqlite3.OperationalError as exc:
            raise LedgerError(f"ledger {path} is busy or cannot be written ({exc}); another process holds it "
                              "or the disk is full: try again, or free space in the state dir") from None
        except sqlite3.DatabaseError as exc:
            raise LedgerError(
                f"ledger {path} is unusable ({exc}); stop the daemon and run `session-syncd ledger rebuild` (it "
                "moves the file aside and rebuilds it from the Codex home, onto the same threads)") from None
        except OSError as exc:
            raise LedgerError(f"cannot create the ledger at {path}: {exc.strerror}; check the state dir") from None
        for own in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
            if own.exists():
                own.chmod(0o600)

    def _wal(self) -> None:
        """Switch to WAL. On a brand-new file another process may be switching it at the same moment,
        and that answers "locked" at once (SQLite's busy timeout does not cover it): retry a while."""
        deadline = time.monotonic() + 30.0
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _migrate(self) -> None:
        """Bring the schema up to date in one transaction (all of it or none: one sync, where a version per
        transaction cost a new ledger three). The version is read inside the write transaction, so two
        processes opening a new ledger at once cannot both migrate it."""
        with self.transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise LedgerError(f"ledger {self.path} has schema {version}, newer than this session-syncd "
                                  f"({SCHEMA_VERSION}); upgrade session-syncd")
            while version < SCHEMA_VERSION:
                version += 1
                for statement in _MIGRATIONS[version].split(";"):
                    if statement.strip():
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={version}")

    def transaction(self) -> "_Tx":
        """One transaction; writes inside an open one join it (`record.record_all`: sessions that
        completed together are committed together, one WAL sync for all of them)."""
        return _Tx(self)

    def close(self) -> None:
        self._db.close()

    # -- reads -----------------------------------------------------------------------------------

    def get(self, source: str, session_id: str) -> Row | None:
        cur = self._db.execute(
            f"SELECT {', '.join(_FIELDS)} FROM sessions WHERE source=? AND session_id=?", (source, session_id))
        values = cur.fetchone()
        return _to_row(values) if values else None

    def rows(self) -> Iterator[Row]:
        for values in self._db.execute(f"SELECT {', '.join(_FIELDS)} FROM sessions ORDER BY source, path"):
            yield _to_row(values)

    def overview(self) -> Iterator[dict[str, object]]:
        """Every row without its fold state (cheap for `status` on a large ledger)."""
        cols = ("source", "path", "size", "mtime_ns", "inode", "synced_at", "updated_at", "last_error",
                "error_count", "rollout_path", "tombstoned_at")
        for values in self._db.execute(f"SELECT {', '.join(cols)} FROM sessions ORDER BY source, path"):
            yield dict(zip(cols, values))

    def threads(self) -> list[tuple[str, str, str, str | None]]:
        """(source, path, thread id, title) of every session with a live thread (for the mirror)."""
        return self._db.execute("SELECT source, path, thread_id, title FROM sessions WHERE thread_id IS NOT NULL "
                                "AND tombstoned_at IS NULL").fetchall()

    def stats(self) -> dict[tuple[str, str], tuple[tuple[int, int, int], str, int | None]]:
        """(source, session_id) → ((size, mtime_ns, inode), path, ctime_ns): all the fast path needs, without
        fold states. ctime_ns is the one a log's fingerprint was taken at (None for snapshots and older rows):
        an equal stat with another ctime is a `cp -p` / rsync rewrite, or a chmod, for the engine to check."""
        return {(s, k): ((size, mtime, ino), p, None if c is None else int.from_bytes(c, "little", signed=True))
                for s, k, p, size, mtime, ino, c in self._db.execute(_STATS)}

    def skips(self) -> dict[tuple[str, str], tuple[tuple[int, int, int], str | None, str]]:
        """(source, session_id) → (version it was skipped at, folder it waits for, reason) for settled skips."""
        return {(s, k): ((size, mtime, ino), waiting, e) for s, k, size, mtime, ino, waiting, e in self._db.execute(
            "SELECT source, session_id, size, mtime_ns, inode, waiting_for, error FROM failures "
            "WHERE size IS NOT NULL")}

    def failures(self) -> dict[tuple[str, str], tuple[str, int, float]]:
        return {(s, p): (e, c, a) for s, p, e, c, a in
                self._db.execute("SELECT source, path, error, count, at FROM failures")}

    # -- writes: each is one transaction ---------------------------------------------------------

    def commit(self, row: Row, superseded: Superseded | None = None) -> None:
        """Record a session's new state; call only once its rollout is durable."""
        values = [getattr(row, f) for f in _FIELDS]
        values[_FIELDS.index("fold_state")] = _encode_state(row.fold_state)
        with self.transaction():
            if superseded is not None:
                self._db.execute(
                    f"INSERT OR REPLACE INTO superseded ({', '.join(Superseded.__struct_fields__)}) "
                    f"VALUES ({', '.join('?' * len(Superseded.__struct_fields__))})",
                    [getattr(superseded, f) for f in Superseded.__struct_fields__])
            self._db.execute(
                f"INSERT OR REPLACE INTO sessions ({', '.join(_FIELDS)}) VALUES ({', '.join('?' * len(_FIELDS))})",
                values)
            self._db.execute("DELETE FROM failures WHERE source=? AND session_id=?", (row.source, row.session_id))

    def restore(self, source: str | None = None, session_id: str | None = None) -> int:
        """Lift tombstones (all, or one session's): the next sync imports the session again as the next
        generation of its thread. Returns how many sessions were restored."""
        where, args = "tombstoned_at IS NOT NULL", []
        if session_id is not None:
            where += " AND session_id=?"
            args.append(session_id)
        if source is not None:
            where += " AND source=?"
            args.append(source)
        with self.transaction():
            cur = self._db.execute(
                "UPDATE sessions SET tombstoned_at=NULL, thread_id=NULL, rollout_path=NULL, rollout_size=NULL, "
                "rollout_tail_hash=NULL, rollout_body_end=NULL, rollout_body_hash=NULL, pending_size=NULL, "
                "pending_tail_hash=NULL, title=NULL, generation=generation+1, size=-1, consumed=0, "
                f"prefix_hash=x'' WHERE {where}", args)
            return cur.rowcount

    def reserve_start(self, source: str, session_id: str, proposed_ms: int) -> int:
        """The start time reserved for this session: `proposed_ms` the first time, the same value after."""
        with self.transaction():
            self._db.execute("INSERT OR IGNORE INTO starts (source, session_id, start_ms) VALUES (?, ?, ?)",
                             (source, session_id, proposed_ms))
            return self._db.execute("SELECT start_ms FROM starts WHERE source=? AND session_id=?",
                                    (source, session_id)).fetchone()[0]

    def set_intent(self, source: str, session_id: str, size: int, tail_hash: bytes) -> None:
        """Before changing an existing rollout: say what it will look like, so that after a crash
        between the write and `commit` the next run knows the changed file is ours, not Codex's."""
        with self.transaction():
            self._db.execute(
                "UPDATE sessions SET pending_size=?, pending_tail_hash=? WHERE source=? AND session_id=?",
                (size, tail_hash, source, session_id))

    def record_failure(self, source: str, session_id: str, path: str, error: str,
                       skipped_at: tuple[int, int, int] | None = None, waiting_for: str | None = None) -> None:
        """A failed or skipped attempt: on the row if there is one, else in `failures`; never touches the
        thread. A skip (`skipped_at` = the stat it saw) is not retried until the stat changes or the
        `waiting_for` folder appears; a failure is retried every time."""
        now = time.time()
        size, mtime_ns, inode = skipped_at or (None, None, None)
        with self.transaction():
            cur = self._db.execute(
                "UPDATE sessions SET last_error=?, error_count=error_count+1 WHERE source=? AND session_id=?",
                (error, source, session_id))
            if cur.rowcount == 0 or skipped_at is not None:  # a skip is settled even beside a row
                self._db.execute(
                    "INSERT INTO failures (source, session_id, path, error, count, at, size, mtime_ns, inode, "
                    "waiting_for) VALUES (?, ?, ?, ?, 1, ?, ?, ?, ?, ?) ON CONFLICT(source, session_id) DO UPDATE "
                    "SET path=excluded.path, error=excluded.error, count=count+1, at=excluded.at, "
                    "size=excluded.size, mtime_ns=excluded.mtime_ns, inode=excluded.inode, "
                    "waiting_for=excluded.waiting_for",
                    (source, session_id, path, error, now, size, mtime_ns, inode, waiting_for))


class _Tx:
    """`BEGIN IMMEDIATE` … `COMMIT`, or `ROLLBACK` on error. Nested, the inner one joins the outer."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._outer = False

    def __enter__(self) -> None:
        if not self._ledger._in_tx:
            self._ledger._db.execute("BEGIN IMMEDIATE")
            self._ledger._in_tx = self._outer = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._outer:
            self._ledger._in_tx = False
            self._ledger._db.execute("ROLLBACK" if exc_type else "COMMIT")
