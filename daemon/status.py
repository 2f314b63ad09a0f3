"""`session-syncd status`: is the daemon running, and how far behind is each source.

Owns: the status report (a msgspec Struct, which is also the `--json` format) and its text rendering.
`build` is a pure function of plain values (what discovery saw, the ledger's rows and failures, the
daemon's lock and live status, the time); `main` is the thin shell that gathers them. Must not write
anything: status on a machine that never imported creates no ledger and no state dir.

Per source, every discovered session is in exactly one of three states:
  failing  its last attempt failed (a ledger row with `last_error`, or a `failures` entry);
  synced   the ledger row's stat (size, mtime, inode) equals the file's current stat;
  pending  anything else: no row yet, or the file changed since (lag = now − oldest pending mtime).
`deferred` counts the sessions the running daemon is holding back (from its live status); they are
also pending or failing.
"""

from __future__ import annotations

import sqlite3
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

import msgspec

from daemon import pidlock
from daemon.config import Config, Paths
from daemon.pidlock import DaemonInfo, LiveStatus

MAX_FAILURES_LISTED = 20  # per source in the report; the text view shows fewer


class Seen(msgspec.Struct, frozen=True):
    """A discovered session file and its current stat."""

    source: str
    path: str
    size: int
    mtime_ns: int
    inode: int


class Entry(msgspec.Struct, frozen=True, kw_only=True):
    """The part of a ledger row status needs (no fold state)."""

    source: str
    path: str
    size: int
    mtime_ns: int
    inode: int
    synced_at: float
    updated_at: float
    last_error: str | None = None
    error_count: int = 0
    rollout_path: str | None = None
    tombstoned_at: float | None = None  # its thread was deleted in Codex


class Failure(msgspec.Struct, kw_only=True):
    path: str
    error: str
    count: int
    at: float | None = None  # when it failed last (known for sessions that never synced)


class SourceStatus(msgspec.Struct, kw_only=True):
    source: str
    sessions: int = 0
    synced: int = 0
    pending: int = 0
    failing: int = 0
    deferred: int = 0
    archived: int = 0  # threads the user archived in Codex (still kept in sync, in archived_sessions/)
    deleted: int = 0  # threads the user deleted in Codex (not imported again until `import --restore`)
    last_sync_at: float | None = None  # newest synced_at/updated_at among its ledger rows
    lag_s: float = 0.0  # now − mtime of the oldest pending session; 0 when nothing is pending
    last_error: str | None = None
    failures: list[Failure] = []  # newest first, at most MAX_FAILURES_LISTED


class DaemonStatus(msgspec.Struct, kw_only=True):
    running: bool
    pid: int | None = None
    started_at: float | None = None
    uptime_s: float | None = None
    manager: str | None = None
    version: str | None = None
    # From the live status file, when the running daemon has written one:
    live_at: float | None = None
    in_flight: int | None = None
    queued: int | None = None
    last_rescan_at: float | None = None
    watching: list[str] = []
    import_pid: int | None = None  # a one-shot `import` holds the lock instead of a daemon


class Report(msgspec.Struct, kw_only=True):
    generated_at: float
    daemon: DaemonStatus
    sources: list[SourceStatus]
    ledger: str
    ledger_exists: bool
    state_dir: str
    codex_home: str
    warnings: list[str] = []


# -- pure core -------------------------------------------------------------------------------------


def daemon_status(info: DaemonInfo | None, live: LiveStatus | None, now: float) -> DaemonStatus:
    if info is None or info.role != "daemon":
        return DaemonStatus(running=False, import_pid=info.pid if info is not None else None)
    out = DaemonStatus(running=True, pid=info.pid or None, started_at=info.started_at or None,
                       uptime_s=max(0.0, now - info.started_at) if info.started_at else None,
                       manager=info.manager, version=info.version)
    if live is not None and live.pid == info.pid:
        out.live_at, out.in_flight, out.queued = live.updated_at, live.in_flight, live.queued
        out.last_rescan_at, out.watching = live.last_rescan_at, list(live.watching)
    return out


def build(*, kinds: Iterable[str], seen: Iterable[Seen], entries: Iterable[Entry],
          failures: Mapping[tuple[str, str], tuple[str, int, float]], info: DaemonInfo | None,
          live: LiveStatus | None, now: float, paths: Paths, ledger_exists: bool = True,
          warnings: Iterable[str] = ()) -> Report:
    """The whole report from plain data; `kinds` are the enabled sources (listed even when empty)."""
    rows = {(e.source, e.path): e for e in entries}
    by_kind: dict[str, SourceStatus] = {k: SourceStatus(source=k, failures=[]) for k in kinds}
    for e in rows.values():
        s = by_kind.setdefault(e.source, SourceStatus(source=e.source, failures=[]))
        if e.tombstoned_at is not None:
            s.deleted += 1
        elif e.rollout_path is not None and Path(e.rollout_path).parent.name == "archived_sessions":
            s.archived += 1
        newest = max(e.synced_at, e.updated_at)
        if s.last_sync_at is None or newest > s.last_sync_at:
            s.last_sync_at = newest
    oldest_pending: dict[str, int] = {}
    source_of: dict[str, str] = {}
    for f in seen:
        s = by_kind.setdefault(f.source, SourceStatus(source=f.source, failures=[]))
        source_of[f.path] = f.source
        s.sessions += 1
        row = rows.get((f.source, f.path))
        failure = failures.get((f.source, f.path))
        if row is not None and row.last_error:
            s.failing += 1
            s.failures.append(Failure(path=f.path, error=row.last_error, count=row.error_count))
        elif row is None and failure is not None:
            error, count, at = failure
            s.failing += 1
            s.failures.append(Failure(path=f.path, error=error, count=count, at=at))
        elif row is not None and (row.size, row.mtime_ns, row.inode) == (f.size, f.mtime_ns, f.inode):
            s.synced += 1
        else:
            s.pending += 1
            oldest_pending[f.source] = min(oldest_pending.get(f.source, f.mtime_ns), f.mtime_ns)
    for kind, mtime_ns in oldest_pending.items():
        by_kind[kind].lag_s = max(0.0, now - mtime_ns / 1e9)
    if info is not None and live is not None and live.pid == info.pid:
        for d in live.deferred:
            kind = source_of.get(d.path) or next((k for k, p in rows if p == d.path), None)
            if kind is not None:
                by_kind[kind].deferred += 1
    for s in by_kind.values():
        # Timestamped (never-synced) failures newest first, then rows by attempts.
        s.failures.sort(key=lambda x: (x.at is None, -(x.at or 0.0), -x.count, x.path))
        s.last_error = s.failures[0].error if s.failures else None
        del s.failures[MAX_FAILURES_LISTED:]
    return Report(generated_at=now, daemon=daemon_status(info, live, now),
                  sources=sorted(by_kind.values(), key=lambda s: s.source), ledger=str(paths.ledger),
                  ledger_exists=ledger_exists, state_dir=str(paths.state_dir), codex_home=str(paths.codex_home),
                  warnings=list(warnings))


def duration(seconds: float) -> str:
    """A short human duration: 42s, 3m 05s, 2h 03m, 4d 07h."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"


def render(r: Report, failures_shown: int = 3) -> str:
    """The compact text view."""
    d = r.daemon
    lines = []
    if d.running:
        head = f"daemon: running, pid {d.pid or '?'}"
        if d.uptime_s is not None:
            head += f", up {duration(d.uptime_s)}"
        head += f", {d.manager}, version {d.version}"
        if d.in_flight is not None:
            head += f"; {d.in_flight} in flight, {d.queued} queued, watching {len(d.watching)} folder(s)"
        lines.append(head)
    else:
        lines.append("daemon: not running; start it with `session-syncd service install` "
                     "(or `session-syncd run` in the foreground)")
        if d.import_pid:
            lines.append(f"import: running, pid {d.import_pid}")
    lines.append(f"ledger: {r.ledger}" + ("" if r.ledger_exists else " (none yet: nothing imported)"))
    header = ("source", "sessions", "synced", "pending", "failing", "deferred", "last sync", "lag")
    table = [header]
    for s in r.sources:
        last = "never" if s.last_sync_at is None else f"{duration(r.generated_at - s.last_sync_at)} ago"
        lag = duration(s.lag_s) if s.pending else "-"
        table.append((s.source, str(s.sessions), str(s.synced), str(s.pending), str(s.failing), str(s.deferred),
                      last, lag))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        cells = [row[0].ljust(widths[0]), *(c.rjust(w) for c, w in zip(row[1:6], widths[1:6])),
                 row[6].ljust(widths[6]), row[7]]
        lines.append("  ".join(cells).rstrip())
    for s in r.sources:
        if s.archived or s.deleted:
            lines.append(f"{s.source}: {s.archived} archived in Codex (kept in sync), {s.deleted} deleted in Codex "
                         "(left alone; `session-syncd import --restore ID|all` brings them back)")
    for s in r.sources:
        for f in s.failures[:failures_shown]:
            tries = f" ({f.count} attempts)" if f.count > 1 else ""
            lines.append(f"failing {s.source}: {f.error}{tries}")
        if s.failing > failures_shown:
            lines.append(f"failing {s.source}: … and {s.failing - failures_shown} more "
                         "(`session-syncd status --json`, `session-syncd logs --level error`)")
    lines.extend(f"warning: {w}" for w in r.warnings)
    return "\n".join(lines) + "\n"


# -- shell -----------------------------------------------------------------------------------------


def _entries(ledger_path: Path) -> tuple[list[Entry], dict[tuple[str, str], tuple[str, int, float]]]:
    """Rows and never-synced failures, through `Ledger` (raises LedgerError)."""
    from daemon.ledger import Ledger

    ledger = Ledger(ledger_path)
    try:
        entries = [Entry(**r) for r in ledger.overview()]
        return entries, ledger.failures()
    finally:
        ledger.close()


def collect(cfg: Config, paths: Paths, env: Mapping[str, str], now: float | None = None) -> Report:
    """Gather discovery, ledger and daemon state, and build the report (raises LedgerError)."""
    from daemon.discover import discover, roots

    found, warnings = discover(cfg, env)
    seen = [Seen(f.ident.kind, str(f.ident.path), *f.version.key()) for f in found]
    exists = paths.ledger.exists()
    entries, failures = _entries(paths.ledger) if exists else ([], {})
    info = pidlock.read(paths.state_dir)
    live = pidlock.read_live(paths.state_dir) if info is not None else None
    # The agents this machine has (a root that exists, or one the user named; others appear once they have
    # rows); with none at all, every enabled agent, so the report says what is looked for.
    enabled = roots(cfg, env)
    kinds = dict.fromkeys(r.kind for r in enabled if r.explicit or r.path.is_dir()) or \
        dict.fromkeys(r.kind for r in enabled)
    return build(kinds=kinds, seen=seen, entries=entries, failures=failures, info=info, live=live,
                 now=time.time() if now is None else now, paths=paths, ledger_exists=exists, warnings=warnings)


def main(cfg: Config, paths: Paths, env: Mapping[str, str], *, as_json: bool = False,
         out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Print the report; 0 (status is informational), 1 only when the ledger cannot be read."""
    from daemon.ledger import LedgerError

    out, err = out or sys.stdout, err or sys.stderr
    try:
        report = collect(cfg, paths, env)
    except LedgerError as exc:
        err.write(f"session-syncd status: {exc}\n")
        return 1
    except sqlite3.DatabaseError as exc:  # opened, but a page is damaged
        err.write(f"session-syncd status: ledger {paths.ledger} cannot be read ({exc}); "
                  "run `session-syncd doctor` for the fix\n")
        return 1
    out.write(msgspec.json.encode(report).decode() + "\n" if as_json else render(report))
    return 0


__all__ = ["DaemonStatus", "Entry", "Failure", "Report", "Seen", "SourceStatus", "build", "collect", "main",
           "render"]
