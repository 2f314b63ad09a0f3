"""Parent side of a sync: commit what a worker made durable, log it, and queue it for Codex's ledger.

The data flows one way: watch → debounce → sync (engine.py, in a worker thread or process: reads,
folds, writes the rollout and hands back an Outcome) → record (here, in the process that owns the
ledger). Each session is committed as soon as the ledger is free once it completes, in one transaction
with the others that completed meanwhile (group commit: `record_all`); its rollout is already fsynced.
"""

from __future__ import annotations

from daemon import faults
from daemon.codex import store
from daemon.codex.mirror import MirrorQueue, SourceDigest
from daemon.engine import Outcome
from daemon.ledger import Ledger

_EVENTS: dict[str, tuple[str, str]] = {  # outcome kind → (log level, event name)
    "imported": ("info", "session.imported"),
    "adopted": ("info", "session.adopted"),
    "appended": ("info", "session.appended"),
    "rewritten": ("info", "session.rewritten"),
    "conflict": ("warning", "session.conflict"),
    "touched": ("debug", "session.unchanged"),
    "unchanged": ("debug", "session.unchanged"),
    "pending": ("debug", "session.skipped"),  # reason: no user message yet
    "skipped": ("warning", "session.skipped"),
    "tombstoned": ("info", "session.skipped"),  # reason: its thread was deleted in Codex
    "deferred": ("info", "session.deferred"),
    "failed": ("error", "source.error"),
}


#: Outcomes after which Codex's import ledger must learn the session's current bytes.
_MIRRORED = frozenset({"imported", "adopted", "appended", "rewritten", "conflict", "touched"})


def record(ledger: Ledger, out: Outcome, log: object, mirror: MirrorQueue | None = None) -> None:
    """Commit what the worker made durable (one transaction), log it, queue it for the mirror."""
    record_all(ledger, [out], log, mirror)


def record_all(ledger: Ledger, outs: list[Outcome], log: object, mirror: MirrorQueue | None = None) -> None:
    """`record` for sessions that completed together: one transaction, so one WAL sync, for all of them
    (each is committed as soon as the ledger is free, never held back for others), after one fsync of
    the title index their workers appended to. Nothing of the batch is committed if one write fails:
    their rollouts are durable, so the next run adopts them (raises store.StoreError or sqlite3.Error)."""
    for index in {out.index_unsynced for out in outs if out.index_unsynced and out.row is not None}:
        store.sync_file(index)  # the titles the rows record are durable first (one fsync for the batch)
    with ledger.transaction():
        rows = [_write(ledger, out) for out in outs]
    for out, wrote_row in zip(outs, rows):
        if wrote_row:
            faults.point("after_commit", out.path)
        _log(out, log)
        if mirror is not None:
            queue_for_mirror(mirror, out)


def commit_failed(out: Outcome, exc: Exception, ledger_path: object, retry: str) -> None:
    """Mark a session whose commit failed (`record_all` raised sqlite3.Error or store.StoreError): failed,
    with one line naming the file and the fix; `retry` says when it is tried again."""
    out.kind, out.row = "failed", None
    if isinstance(exc, store.StoreError):
        out.message = f"{out.path}: {exc}; {retry}"
    else:
        out.message = (f"{out.path}: cannot record in the ledger {ledger_path} ({exc}); free space in the state dir; "
                       f"{retry}")


def _write(ledger: Ledger, out: Outcome) -> bool:
    """One outcome's writes (inside the caller's transaction); whether they committed a row."""
    if out.kind == "skipped":
        ledger.record_failure(out.source, out.session_id, out.path, out.message or out.kind, out.stat, out.waiting_for)
    elif out.kind == "failed":
        ledger.record_failure(out.source, out.session_id, out.path, out.message or out.kind,
                              out.stat if out.settled else None)
    elif out.row is not None:
        faults.point("before_commit", out.path)  # the rollout is durable, its row not yet (tests/reliability)
        ledger.commit(out.row, out.superseded)
        return True
    return False


def _log(out: Outcome, log: object) -> None:
    level, event = _EVENTS[out.kind]
    row = out.row
    fields = {"source": out.source, "session": out.session_id, "path": out.path,
              "duration_ms": round(out.duration_ms, 1)}
    if row is not None and row.thread_id:
        fields["thread_id"] = row.thread_id
    if out.bytes_read:
        fields["bytes"] = out.bytes_read
    if out.new_turns:
        fields["turns"] = out.new_turns
    if out.malformed:
        fields["malformed_lines"] = out.malformed
    if out.message:
        fields["error" if out.kind == "failed" else "reason"] = out.message
    if out.superseded is not None:
        fields["previous_thread_id"] = out.superseded.thread_id
    getattr(log, level)(event, **fields)


def queue_for_mirror(mirror: MirrorQueue, out: Outcome) -> None:
    """Queue a committed session for Codex's import ledger (call in the thread that flushes the queue)."""
    row = out.row
    if row is not None and out.kind in _MIRRORED:
        known = None
        if out.sha256 is not None and out.stat is not None:  # the worker hashed it while it read it whole
            size, mtime_ns, inode = out.stat
            known = SourceDigest(out.sha256, size, mtime_ns), inode
        mirror.add(out.source, row.path, row.thread_id, row.title, out.kind in ("rewritten", "conflict"), known)
