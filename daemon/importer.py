"""`session-syncd import`: one pass over every session, in parallel, a ledger commit as each completes.

Shell around `engine.sync_session`: discovery, the stat fast path (sessions whose stat matches the
ledger are not even sent to a worker), a bounded worker pool, progress on a TTY, and the summary.
Workers are processes when there is enough to read to pay for their start-up (the fold is CPU-bound
Python and the GIL would cap threads at one core; see bench/), threads otherwise.
"""

from __future__ import annotations

import itertools
import sqlite3
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, TextIO

import msgspec

from daemon.config import Config, Paths, effective_workers
from daemon.discover import discover, triage
from daemon.ledger import Ledger
from daemon.private import check_codex_home

if TYPE_CHECKING:  # imported where used: an import with nothing to sync needs neither (start-up time)
    from daemon.codex.mirror import MirrorQueue
    from daemon.engine import Job, Outcome


#: How often a running import tells Codex's import ledger what it committed (each write rewrites that file).
MIRROR_INTERVAL_S = 5.0


class Summary(msgspec.Struct, kw_only=True):
    imported: int = 0  # new threads, appended and rewritten threads, conflict copies
    unchanged: int = 0
    skipped: int = 0
    failed: int = 0
    deferred: int = 0
    sessions: int = 0
    bytes_read: int = 0
    malformed_lines: int = 0  # skipped and counted, never fatal
    duration_s: float = 0.0
    by_kind: dict[str, int] = {}
    errors: list[str] = []


def _run_in_threads(workers: int, jobs: list[Job], window: int) -> Iterator[list[Outcome]]:
    """Yield outcomes as they complete (those that completed together in one list, so that they are
    committed in one transaction), with at most `window` jobs submitted at once."""
    import concurrent.futures as cf

    from daemon.engine import sync_session
    from daemon.pool import make_executor

    executor = make_executor(workers, "thread", 0)
    try:
        it = iter(jobs)
        pending = {executor.submit(sync_session, job) for job in itertools.islice(it, window)}
        while pending:
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for job in itertools.islice(it, len(done)):
                pending.add(executor.submit(sync_session, job))
            yield [fut.result() for fut in done]
    finally:  # left early (Ctrl-C): what has not started never starts
        executor.shutdown(wait=True, cancel_futures=True)


def _worker_died(job: Job) -> Outcome:
    """The outcome of a session whose worker process died twice while syncing it (run_in_processes)."""
    from daemon.engine import Outcome

    ident = job.ident
    return Outcome(kind="failed", source=ident.kind, path=str(ident.path), session_id=ident.session_id,
                   message=f"{ident.path}: its worker process died; run import again to retry it")


def _run_jobs(workers: int, mode: str, total_bytes: int, jobs: list[Job]) -> Iterator[list[Outcome]]:
    """Outcomes in batches of those that completed together: in worker processes when there is enough to
    read to pay for them (a worker that dies is replaced and its sessions tried once more), else threads."""
    from daemon.engine import sync_session
    from daemon.pool import run_in_processes, use_processes

    if use_processes(workers, mode, total_bytes):
        return run_in_processes(sync_session, jobs, workers, lost=_worker_died)
    return _run_in_threads(workers, jobs, window=workers * 2)


class Progress:
    """A one-line progress bar on stderr when it is a TTY; silent otherwise."""

    def __init__(self, stream: TextIO, sessions: int, total_bytes: int) -> None:
        self.enabled = stream.isatty() and sessions > 0
        self.stream, self.sessions, self.total = stream, sessions, max(total_bytes, 1)
        self.done = self.bytes = 0
        self.last = 0.0

    def advance(self, nbytes: int) -> None:
        self.done += 1
        self.bytes += nbytes
        now = time.monotonic()
        if self.enabled and (now - self.last > 0.1 or self.done == self.sessions):
            self.last = now
            frac = min(self.bytes / self.total, 1.0)
            bar = "#" * int(frac * 30)
            self.stream.write(f"\r[{bar:<30}] {self.done}/{self.sessions} sessions "
                              f"{self.bytes / 2**20:.1f}/{self.total / 2**20:.1f} MiB")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()


def run_import(cfg: Config, paths: Paths, env: Mapping[str, str], log: Callable[[], object], *,
               executor_mode: str = "auto", stream: TextIO = sys.stderr) -> Summary:
    began = time.perf_counter()
    summary = Summary(by_kind={}, errors=[])
    if cfg.codex_compatible:  # Codex's selection (per agent, its defaults for unset limits)
        from daemon.codex.compat import discover as discover_like_codex

        found, warnings = discover_like_codex(cfg, env)
    else:
        found, warnings = discover(cfg, env)
    summary.errors.extend(warnings)
    summary.sessions = len(found)
    problem = check_codex_home(paths.codex_home)
    if problem:
        summary.errors.append(problem)
        summary.failed = len(found) or 1
        summary.duration_s = time.perf_counter() - began
        return summary
    ledger = Ledger(paths.ledger)
    try:
        known = ledger.stats()
        sorted_out = triage(found, known, ledger.skips())
        todo = sorted_out.todo
        summary.unchanged += sorted_out.unchanged
        summary.skipped += len(sorted_out.skipped)
        summary.errors.extend(sorted_out.skipped)
        if todo:  # the engine and the pool only when there is something to sync (start-up time)
            from daemon.codex.store import StoreError
            from daemon.engine import Job
            from daemon.record import commit_failed, record_all
        # stats() lists every row, so a session it does not know has none: no query per new session
        keys = [(f.ident.kind, f.ident.session_id) for f in todo]
        folders: dict[str, str] = {}  # codex_ledger.canonical's memo, shared with the mirror
        imported_by_codex = _codex_imports(paths, [f for f, key in zip(todo, keys) if key not in known], summary,
                                           folders)
        jobs = [Job.of(f.ident, ledger.get(*key) if key in known else None, cfg, paths,
                       imported_by_codex.get(str(f.ident.path))) for f, key in zip(todo, keys)]
        total = sum(f.version.size for f in todo)
        progress = Progress(stream, len(jobs), total)
        workers = max(1, min(effective_workers(cfg, total / len(jobs) if jobs else None), len(jobs)))
        if jobs:
            mirror = None
            if cfg.codex_ledger_mirror:
                from daemon.codex.mirror import MirrorQueue

                mirror = MirrorQueue(paths.codex_home, interval_s=MIRROR_INTERVAL_S, folders=folders)
                summary.errors.extend(mirror.queue_missing(ledger.threads()))
            from daemon.pool import rare_collections

            with rare_collections():  # the jobs and rows held from here on live until the run ends
                for batch in _run_jobs(workers, executor_mode, total, jobs):
                    try:
                        record_all(ledger, batch, log(), mirror)
                    except (sqlite3.Error, StoreError) as exc:  # the threads are durable; the next run adopts them
                        for out in batch:
                            commit_failed(out, exc, paths.ledger, "run import again")
                    for out in batch:
                        _count(summary, out)
                        progress.advance(out.bytes_read)
                        if mirror is not None and out.kind == "imported" and out.row is not None and out.sha256 is None:
                            _prehash(mirror, out)
                    if mirror is not None and mirror.due():
                        summary.errors.extend(mirror.write(mirror.take()))
            if mirror is not None:
                summary.errors.extend(mirror.write(mirror.take()))
        progress.close()
    finally:
        ledger.close()
    summary.duration_s = time.perf_counter() - began
    return summary


def _prehash(mirror: MirrorQueue, out: Outcome) -> None:
    """Hash a newly imported source for Codex's import ledger now, while the workers fold the others (the
    flush at the end then only checks its tail): otherwise every source is hashed after the last one is
    imported, one after the other. A problem is left to the flush, which reports it."""
    from daemon.codex.mirror import CODEX_KINDS

    if out.source in CODEX_KINDS and mirror.tracker is not None:
        try:
            mirror.tracker.digest(mirror.canonical(out.path))
        except OSError:
            pass


def _codex_imports(paths: Paths, new: list, summary: Summary, folders: dict[str, str]) -> dict[str, tuple[str, str]]:
    """For sessions new to us that Codex's own importer already imported: path → (its thread, its sha256),
    so the engine adopts Codex's thread instead of making a second one."""
    if not new:  # nothing new (a no-op run): not even the mirror module (start-up time)
        return {}
    from daemon.codex.mirror import CODEX_KINDS

    candidates = [f for f in new if f.ident.kind in CODEX_KINDS]
    if not candidates:
        return {}
    from daemon.codex import codex_ledger
    from daemon.codex.mirror import codex_imports

    try:
        known = codex_imports(paths.codex_home)
    except codex_ledger.CodexLedgerError as exc:
        summary.errors.append(str(exc))
        return {}
    if not known:  # Codex imported nothing (yet): no path to canonicalize (10,000 sessions: ~80 ms)
        return {}
    out = {}
    for f in candidates:
        found = known.get(codex_ledger.canonical(f.ident.path, folders))
        if found is not None:
            out[str(f.ident.path)] = found
    return out


def _count(summary: Summary, out: Outcome) -> None:
    summary.by_kind[out.kind] = summary.by_kind.get(out.kind, 0) + 1
    summary.bytes_read += out.bytes_read
    summary.malformed_lines += out.malformed
    if out.kind in ("imported", "appended", "rewritten", "conflict"):
        summary.imported += 1
    elif out.kind in ("unchanged", "touched", "pending", "adopted"):
        summary.unchanged += 1
    elif out.kind in ("skipped", "tombstoned"):
        summary.skipped += 1
    elif out.kind == "deferred":
        summary.deferred += 1
    else:
        summary.failed += 1
    if out.kind in ("skipped", "tombstoned", "failed", "conflict") and out.message:
        summary.errors.append(out.message)


def summary_line(s: Summary) -> str:
    extra = f" / deferred {s.deferred}" if s.deferred else ""
    if s.malformed_lines:
        extra += f" ({s.malformed_lines} malformed lines skipped)"
    return (f"imported {s.imported} / unchanged {s.unchanged} / skipped {s.skipped} / failed {s.failed}{extra}"
            f" — {s.sessions} sessions, {s.bytes_read / 2**20:.1f} MiB read in {s.duration_s:.2f} s")


__all__ = ["Summary", "run_import", "summary_line"]
