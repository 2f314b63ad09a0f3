"""`session-syncd run`: the long-running trio daemon that keeps every watched session in sync.

Process shape (one nursery per config generation; SIGHUP starts the next generation):

    watch ──events──▶ route ──paths──▶ debounce ──due──▶ workers ×N ──▶ engine.sync_session (thread/process)
      ▲                 │ Rescan                                         └──▶ ledger commit, per session
      │                 ▼
    roots           reconcile (startup, overflow, root came/went, every rescan_interval)

Everything that blocks (stat walks, reads, folds, writes, SQLite) runs in worker threads under a
`CapacityLimiter`, or in a process pool for a large initial backlog. A path is never synced by two
workers at once: a path that becomes due while in flight is synced again right after. A session being
synced when SIGTERM arrives finishes (shielded) within `shutdown_timeout_s`, or is abandoned before
its ledger commit — the next start repairs it (deterministic ids + write intents).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import functools
import logging
import math
import os
import signal
import sqlite3
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog
import trio

from daemon import log as logsetup
from daemon import pidlock
from daemon.config import Config, ConfigError, Paths, effective_workers, load, resolve_paths
from daemon.debounce import debounce
from daemon.discover import Root, discover, roots, triage
from daemon.engine import Job, Outcome, sync_session
from daemon.codex import homelock, store
from daemon.private import check_codex_home
from daemon.codex.mirror import CODEX_KINDS, MirrorQueue, codex_imports
from daemon.groupcommit import GroupCommit
from daemon.record import commit_failed, queue_for_mirror, record_all
from daemon.pool import PROCESS_POOL_MIN_BYTES, make_executor
from daemon.ledger import Ledger, LedgerError
from daemon.sources import Identity
from daemon.watch import Changed, Deleted, WatchEvent, watch
from service.notify import Notifier, watchdog_loop

MIRROR_DELAY_S = 1.0  # commits reach Codex's import ledger within about this long (batched)
RETRY_DELAYS = (2.0, 5.0, 15.0, 60.0, 300.0)  # deferred (Codex has the thread open) or failed syncs


@dataclass
class Shared:
    """What outlives a config generation (SIGHUP): per-path exclusivity and the counters we publish."""

    busy: set[str] = field(default_factory=set)  # paths being synced right now
    again: set[str] = field(default_factory=set)  # paths that became due while busy: sync once more
    retrying: set[str] = field(default_factory=set)  # paths with a retry scheduled (at most one each)
    failing: set[str] = field(default_factory=set)  # paths whose last attempt failed
    deferred: dict[str, str] = field(default_factory=dict)  # path → reason (Codex has the thread open)
    synced: int = 0
    in_flight: int = 0
    last_rescan_at: float = 0.0
    dirty: trio.Event = field(default_factory=trio.Event)  # set when anything above changed


class Backlog:
    """Sessions a reconcile found out of date, waiting for a worker, in the order found (biggest first).

    Why a list and not the workers' channel: a reconcile must finish (and, at startup, tell systemd
    READY) as soon as it has *queued* the work; sending each session into a channel sized for the
    workers would wait for the workers to take nearly all of it, and a large first backlog would
    outlast the service manager's start timeout. A session queued twice keeps its first place.
    """

    def __init__(self) -> None:
        self._items: dict[str, Identity] = {}
        self._added = trio.Event()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, idents: list[Identity]) -> None:
        for ident in idents:
            self._items.setdefault(str(ident.path), ident)
        self._added.set()

    async def feed(self, due: trio.MemorySendChannel[Identity]) -> None:
        """Hand the sessions to the workers one by one, as they take them; runs until cancelled."""
        while True:
            while self._items:
                key = next(iter(self._items))
                await due.send(self._items.pop(key))
            self._added = trio.Event()
            await self._added.wait()


class Daemon:
    """One config generation's worth of state; rebuilt on SIGHUP."""

    def __init__(self, cfg: Config, paths: Paths, env: Mapping[str, str], notifier: Notifier,
                 ledger: Ledger, shared: Shared) -> None:
        self.cfg, self.paths, self.env = cfg, paths, env
        self.notifier, self.ledger, self.shared = notifier, ledger, shared
        self.log = structlog.get_logger(logsetup.LOGGER_NAME)
        self.roots: list[Root] = roots(cfg, env)
        self.watch_specs = frozenset(r.source.watch for r in self.roots)
        self.workers = effective_workers(cfg)
        self.limiter = trio.CapacityLimiter(self.workers)
        self.db = trio.CapacityLimiter(1)  # one SQLite connection: serialise its use
        self.group = GroupCommit(lambda outs: self._db(record_all, self.ledger, outs, self.log))
        self.attempts: dict[str, int] = {}
        self.pool: cf.Executor | None = None
        self.scope = trio.CancelScope()  # cancelled by begin_shutdown, even before run() enters it
        self.shields: set[trio.CancelScope] = set()
        self.shutdown_deadline = math.inf
        self.backlog = Backlog()  # fed to the workers by Backlog.feed (started in run)
        # Codex's import ledger: what we committed goes there shortly after (mirror_loop), and a session
        # new to us that Codex's own importer imported is adopted (imported_by_codex).
        self.folders: dict[str, str] = {}  # codex_ledger.canonical's memo, shared with the mirror (as in import)
        self.mirror = (MirrorQueue(paths.codex_home, interval_s=MIRROR_DELAY_S, folders=self.folders)
                       if cfg.codex_ledger_mirror else None)
        self.mirror_due = trio.Event()
        self._codex_imports: tuple[tuple[int, int, int], dict[str, tuple[str, str]]] | None = None

    # -- ledger access (off the trio thread, one at a time) --------------------------------------

    async def _db(self, fn, *args):
        return await trio.to_thread.run_sync(fn, *args, limiter=self.db)

    # -- identify -------------------------------------------------------------------------------

    def identify(self, path: Path) -> Identity | None:
        for root in self.roots:
            if path.is_relative_to(root.path):
                ident = root.source.identify(root.path, path)
                if ident is not None:
                    return ident
        return None

    # -- the work -------------------------------------------------------------------------------

    async def sync_path(self, ident: Identity) -> Outcome:
        key = str(ident.path)
        row = await self._db(self.ledger.get, ident.kind, ident.session_id)
        codex_import = None
        if row is None and ident.kind in CODEX_KINDS:
            codex_import = await trio.to_thread.run_sync(self.imported_by_codex, ident.path)
        job = Job.of(ident, row, self.cfg, self.paths, codex_import)
        self.shared.in_flight += 1
        try:
            pool = self.pool
            if pool is not None:
                try:
                    fut = pool.submit(sync_session, job)
                    out = await trio.to_thread.run_sync(fut.result, limiter=self.limiter, abandon_on_cancel=True)
                except cf.BrokenExecutor:  # a worker process died (OOM killer, SIGKILL…)
                    self._replace_pool(pool)
                    out = Outcome(kind="failed", source=ident.kind, path=key, session_id=ident.session_id,
                                  message=f"{key}: its worker process died; will retry")
            else:
                out = await trio.to_thread.run_sync(sync_session, job, limiter=self.limiter, abandon_on_cancel=True)
            try:
                await self.group.commit(out)
                if self.mirror is not None:
                    queue_for_mirror(self.mirror, out)
                    if len(self.mirror):
                        self.mirror_due.set()
            except (sqlite3.Error, store.StoreError) as exc:  # the thread is durable; the retry adopts it
                commit_failed(out, exc, self.paths.ledger, "will retry")
                self.log.error("source.error", path=out.path, error=out.message)
        finally:
            self.shared.in_flight -= 1
            self.changed()
        return out

    def imported_by_codex(self, path: Path) -> tuple[str, str] | None:
        """(thread id, sha256) when Codex's own importer imported this session (runs in a worker thread;
        Codex's ledger is re-read only when its file changed)."""
        from daemon.codex import codex_ledger

        try:
            st = os.stat(codex_ledger.ledger_path(self.paths.codex_home))
        except OSError:
            return None
        key = (st.st_size, st.st_mtime_ns, st.st_ino)
        cached = self._codex_imports
        if cached is None or cached[0] != key:
            try:
                cached = self._codex_imports = (key, codex_imports(self.paths.codex_home))
            except codex_ledger.CodexLedgerError as exc:
                self.log.warning("source.error", error=str(exc))
                return None
        return cached[1].get(codex_ledger.canonical(path, self.folders))

    async def mirror_loop(self) -> None:
        """Tell Codex's import ledger what we committed, batched: one write per MIRROR_DELAY_S at most.
        At start, whatever a crash or an earlier mirror-less run left out is queued first."""
        mirror = self.mirror
        if mirror is None:
            return
        for problem in await self._db(lambda: mirror.queue_missing(self.ledger.threads())):
            self.log.warning("source.error", error=problem)
        try:
            while True:
                if not len(mirror):
                    await self.mirror_due.wait()
                    self.mirror_due = trio.Event()
                await trio.sleep(mirror.interval_s)
                for problem in await trio.to_thread.run_sync(mirror.write, mirror.take()):
                    self.log.warning("source.error", error=problem)
        finally:  # stopping: write what is queued (bounded), the next start catches up on the rest
            with trio.CancelScope(shield=True), trio.move_on_after(MIRROR_DELAY_S * 5):
                if len(mirror):
                    await trio.to_thread.run_sync(mirror.write, mirror.take())

    def _replace_pool(self, broken: cf.Executor) -> None:
        """Every session in flight on a pool whose worker died fails with BrokenExecutor at once; the
        first to get here replaces the pool (the others find it replaced already) and the daemon goes on."""
        broken.shutdown(wait=False, cancel_futures=True)
        if self.pool is broken:
            self.pool = make_executor(self.workers, "process", PROCESS_POOL_MIN_BYTES)
            self.log.warning("pool.replaced", reason="a worker process died")

    async def worker(self, due: trio.MemoryReceiveChannel[Identity], retry: trio.MemorySendChannel[Path],
                     nursery: trio.Nursery) -> None:
        async with due:
            shared = self.shared
            async for ident in due:
                key = str(ident.path)
                if key in shared.busy:
                    shared.again.add(key)
                    continue
                shared.busy.add(key)
                try:
                    while True:
                        with trio.CancelScope(shield=True) as scope:
                            scope.deadline = self.shutdown_deadline
                            self.shields.add(scope)
                            try:
                                out = await self.sync_path(ident)
                            finally:
                                self.shields.discard(scope)
                        if scope.cancelled_caught:
                            return
                        self._after(out, key, retry, nursery)
                        if key not in shared.again:
                            break
                        shared.again.discard(key)
                finally:
                    shared.busy.discard(key)

    def _after(self, out: Outcome, key: str, retry: trio.MemorySendChannel[Path], nursery: trio.Nursery) -> None:
        c = self.shared
        if out.kind == "failed" and out.settled:  # this version of the file fails: wait for it to change
            self.attempts.pop(key, None)
            c.failing.add(key)
        elif out.kind in ("deferred", "failed"):
            n = self.attempts.get(key, 0)
            self.attempts[key] = n + 1
            if out.kind == "deferred":
                c.deferred[key] = out.message or "deferred"
            else:
                c.failing.add(key)
            if key not in c.retrying:  # one scheduled retry per path, however often it is deferred
                c.retrying.add(key)
                nursery.start_soon(self._retry_later, key, RETRY_DELAYS[min(n, len(RETRY_DELAYS) - 1)], retry)
        else:
            self.attempts.pop(key, None)
            c.deferred.pop(key, None)
            c.failing.discard(key)
            if out.kind != "unchanged":
                c.synced += 1

    async def _retry_later(self, key: str, delay: float, retry: trio.MemorySendChannel[Path]) -> None:
        try:
            await trio.sleep(delay)
        finally:
            self.shared.retrying.discard(key)
        try:
            retry.send_nowait(Path(key))
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            pass  # queue full or shutting down: the next rescan picks it up

    async def reconcile(self, due: trio.MemorySendChannel[Identity], reason: str) -> None:
        """Compare every discovered session with the ledger by stat and queue the ones that differ (on
        the backlog: this returns once they are queued, not synced; `due` is where the backlog goes)."""
        began = time.perf_counter()
        self.log.info("rescan.started", reason=reason)
        found, problems = await trio.to_thread.run_sync(discover, self.cfg, self.env)
        for problem in problems:
            self.log.warning("source.error", error=problem)
        todo = (await self._db(lambda: triage(found, self.ledger.stats(), self.ledger.skips()))).todo
        total = sum(f.version.size for f in todo)
        if self.pool is None and total >= PROCESS_POOL_MIN_BYTES and self.workers > 1:
            self.pool = make_executor(self.workers, "process", total)  # a big backlog: use both cores
        self.backlog.add([f.ident for f in todo])
        self.shared.last_rescan_at = time.time()
        self.changed()
        self.log.info("rescan.done", sessions=len(found), queued=len(todo), bytes=total, reason=reason,
                      duration_ms=round((time.perf_counter() - began) * 1000, 1))

    async def route(self, events: trio.MemoryReceiveChannel[WatchEvent], paths: trio.MemorySendChannel[Path],
                    rescans: trio.MemorySendChannel[str]) -> None:
        async with events:
            async for ev in events:
                if isinstance(ev, Changed):
                    await paths.send(ev.path)
                elif isinstance(ev, Deleted):
                    if self.identify(ev.path) is not None:
                        self.log.info("source.deleted", path=str(ev.path))
                else:
                    event = "watch.overflow" if "overflow" in ev.reason else (
                        "watch.root_appeared" if "appeared" in ev.reason else "rescan.started")
                    if event != "rescan.started":
                        self.log.warning(event, reason=ev.reason)
                    try:
                        rescans.send_nowait(ev.reason)
                    except trio.WouldBlock:
                        pass  # a rescan is already queued; it will see this change too

    def wanted(self, path: Path) -> bool:
        """The watcher's filter (runs in a watchdog thread): a file some source's WatchSpec asks for."""
        name = path.name
        return any(spec.wants(name) for spec in self.watch_specs)

    def touches_many(self, path: Path) -> bool:
        """A file whose change may touch many sessions at once (a database and its WAL)."""
        return any(path.is_relative_to(r.path) and path.name in r.source.watch.rescan_names for r in self.roots)

    async def resolve(self, paths: trio.MemoryReceiveChannel[Path], due: trio.MemorySendChannel[Identity],
                      rescans: trio.MemorySendChannel[str]) -> None:
        """Debounced paths → identities of our sessions (other files under the roots are ignored); a
        debounced change to a shared store queues one reconcile, which re-reads only what changed."""
        async with paths:
            async for path in paths:
                ident = self.identify(path)
                if ident is not None:
                    await due.send(ident)
                elif self.touches_many(path):
                    try:
                        rescans.send_nowait(f"changed: {path}")
                    except trio.WouldBlock:
                        pass  # a reconcile is already queued; it will see this change too

    async def rescanner(self, rescans: trio.MemoryReceiveChannel[str], due: trio.MemorySendChannel[Identity]) -> None:
        async with rescans:
            while True:
                reason = "periodic"
                with trio.move_on_after(self.cfg.rescan_interval_s):
                    reason = await rescans.receive()
                await self.reconcile(due, reason)

    def changed(self) -> None:
        self.shared.dirty.set()

    async def status_loop(self, due: trio.MemorySendChannel[Identity]) -> None:
        """Publish counters (sd_notify STATUS=, the live status file) when they change, at most every
        2 s; with nothing happening it sleeps on an event (quiet when idle)."""
        c = self.shared
        while True:
            await c.dirty.wait()
            c.dirty = trio.Event()
            queued = len(self.backlog) + due.statistics().current_buffer_used
            text = (f"{c.synced} synced, {queued} queued, {c.in_flight} in flight, {len(c.deferred)} deferred, "
                    f"{len(c.failing)} failing")
            self.notifier.status(text)
            live = pidlock.LiveStatus(
                pid=os.getpid(), updated_at=time.time(), in_flight=c.in_flight, queued=queued,
                deferred=[pidlock.Deferred(path=p, reason=r) for p, r in c.deferred.items()],
                last_rescan_at=c.last_rescan_at or None)
            await trio.to_thread.run_sync(self._publish, live)
            await trio.sleep(2)

    def _publish(self, live: pidlock.LiveStatus) -> None:
        live.watching = [str(r.path) for r in self.roots if r.path.is_dir()]
        pidlock.write_live(self.paths.state_dir, live)

    async def serve_generation(self) -> None:
        """Run until begin_shutdown; tell the service manager once the first reconcile has queued the
        backlog (not synced it: a large first backlog must not outlast the start timeout)."""
        with self.scope:
            async with trio.open_nursery() as n:
                await n.start(self.run)
                queued = len(self.backlog)
                self.notifier.ready(status=f"ready: {self.shared.synced} synced, {queued} queued")
                self.log.info("daemon.ready", watching=[str(r.path) for r in self.roots], workers=self.workers,
                              queued=queued)

    async def run(self, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        cap = max(64, self.workers * 4)
        ev_send, ev_recv = trio.open_memory_channel[WatchEvent](4096)
        path_send, path_recv = trio.open_memory_channel[Path](cap)
        due_path_send, due_path_recv = trio.open_memory_channel[Path](cap)
        due_send, due_recv = trio.open_memory_channel[Identity](self.workers)
        rescan_send, rescan_recv = trio.open_memory_channel[str](1)
        try:
            async with trio.open_nursery() as nursery:
                depths: dict[Path, int] = {}
                for r in self.roots:  # each root watched only as deep as its source needs
                    depths[r.path] = max(depths.get(r.path, 0), r.source.watch.depth)
                await nursery.start(functools.partial(watch, wanted=self.wanted, depths=depths,
                                                      poll_interval=self.cfg.poll_interval_s),
                                    [r.path for r in self.roots], ev_send)
                for _ in range(self.workers):
                    nursery.start_soon(self.worker, due_recv.clone(), path_send.clone(), nursery)
                nursery.start_soon(self.backlog.feed, due_send)
                await self.reconcile(due_send, "startup")
                task_status.started()
                nursery.start_soon(self.route, ev_recv, path_send, rescan_send)
                nursery.start_soon(debounce, path_recv, due_path_send, self.cfg.quiet_ms / 1000,
                                   self.cfg.max_wait_ms / 1000)
                nursery.start_soon(self.resolve, due_path_recv, due_send.clone(), rescan_send.clone())
                nursery.start_soon(self.rescanner, rescan_recv, due_send)
                nursery.start_soon(self.status_loop, due_send)
                nursery.start_soon(self.mirror_loop)
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=False, cancel_futures=True)
                # Work still running past the shutdown deadline was abandoned: stop its processes now
                # instead of letting interpreter exit wait for them. Safe: rollouts are replaced by
                # rename or appended after our body, and engine._owner adopts an interrupted write.
                for proc in list((getattr(self.pool, "_processes", None) or {}).values()):
                    proc.terminate()

    def begin_shutdown(self, timeout: float) -> None:
        """Cancel everything but in-flight sessions; give those `timeout` seconds to finish."""
        self.shutdown_deadline = trio.current_time() + timeout
        for scope in list(self.shields):
            scope.deadline = min(scope.deadline, self.shutdown_deadline)
        self.scope.cancel()


async def serve(cfg: Config, paths: Paths, env: Mapping[str, str], overrides: argparse.Namespace | None) -> int:
    """Run config generations until SIGTERM/SIGINT; SIGHUP swaps in a freshly loaded config."""
    log = structlog.get_logger(logsetup.LOGGER_NAME)
    notifier = Notifier.from_env(env)
    ledger = Ledger(paths.ledger)
    shared = Shared()
    log.info("daemon.started", pid=os.getpid(), codex_home=str(paths.codex_home), state_dir=str(paths.state_dir))
    try:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGHUP) as signals:
            async with trio.open_nursery() as top:
                top.start_soon(watchdog_loop, notifier)
                while True:
                    daemon = Daemon(cfg, paths, env, notifier, ledger, shared)
                    async with trio.open_nursery() as generation:
                        generation.start_soon(daemon.serve_generation)
                        while True:
                            sig = await signals.__anext__()
                            if sig != signal.SIGHUP:
                                break
                            notifier.reloading()
                            try:
                                new_cfg, new_paths = _reload(env, overrides)
                            except ConfigError as exc:
                                log.error("daemon.reload", error=str(exc), outcome="kept the running config")
                                notifier.ready()
                                continue
                            if new_paths != paths:  # the open ledger, lock and logs belong to the old ones
                                log.error("daemon.reload", error="codex_home or state_dir changed; restart "
                                          "session-syncd to apply that (the rest is applied now)")
                                new_paths = paths
                            log.info("daemon.reload", outcome="applied")
                            logsetup.set_level(new_cfg.log_level)
                            break
                        stopping = sig != signal.SIGHUP
                        if stopping:
                            notifier.stopping()
                            log.info("daemon.stopping", signal=signal.Signals(sig).name)
                            top.start_soon(_second_interrupt, signals)
                        # On exit, in-flight syncs get shutdown_timeout_s, then are abandoned (the next
                        # start repairs them). On reload they finish: the next generation must not
                        # start a second writer on a path whose first one is still running.
                        daemon.begin_shutdown(cfg.shutdown_timeout_s if stopping else math.inf)
                    if stopping:
                        break
                    cfg, paths = new_cfg, new_paths
                top.cancel_scope.cancel()
    finally:
        ledger.close()
    log.info("daemon.stopped")
    return 0


async def _second_interrupt(signals) -> None:
    async for sig in signals:
        if sig == signal.SIGINT:
            os._exit(130)  # at once; the ledger stays consistent (uncommitted work is redone at next start)


def _reload(env: Mapping[str, str], overrides: argparse.Namespace | None) -> tuple[Config, Paths]:
    """The config file again, with the same command-line flags on top."""
    from daemon.cli import load_config

    if overrides is not None:
        return load_config(overrides, env)
    cfg, _ = load(None, env)
    return cfg, resolve_paths(cfg, env)


def _after_imports(acquire, busy: type[Exception], env: Mapping[str, str], waiting_for: str):
    """Take a lock with `acquire()`; a one-shot import (or ledger rebuild) holding it is waited for — the
    service must not fail, and be given up on by its manager, because the user ran an import at login —
    anything else holding it (another daemon) is raised."""
    waiting = False
    while True:
        try:
            return acquire()
        except busy as exc:
            if exc.role not in ("import", "rebuild"):
                raise
            if not waiting:
                waiting = True
                what = f"{waiting_for} (pid {exc.pid or '?'})"
                print(f"session-syncd: waiting for {what} to finish", file=sys.stderr)
                Notifier.from_env(env).status(f"waiting for {what} to finish")
            time.sleep(1.0)


def _acquire_after_imports(paths: Paths, env: Mapping[str, str]) -> pidlock.PidLock:
    """The state dir's lock (one session-syncd per ledger)."""
    return _after_imports(lambda: pidlock.acquire(paths.state_dir, env), pidlock.AlreadyRunning, env, "the import")


def _home_after_imports(paths: Paths, env: Mapping[str, str]) -> homelock.HomeLock:
    """The Codex home's writer lock (one writer per Codex home, whatever the state dir)."""
    return _after_imports(lambda: homelock.acquire(paths.codex_home, "daemon", paths.state_dir), homelock.HomeBusy,
                          env, "the import into the same Codex home")


def run_daemon(cfg: Config, paths: Paths, env: Mapping[str, str], args: argparse.Namespace | None = None) -> int:
    console = logsetup.console_mode(sys.stderr, env)
    if pidlock.detect_manager(env) == "launchd":
        console = "none"  # launchd: stderr goes to an unrotated file; the JSON log has it all
    logsetup.configure(paths.log_dir, cfg.log_level, console=console, env=env)
    logging.getLogger("watchdog").setLevel(max(logging.INFO, logging.getLogger().level))  # its per-event debug
    # watchdog 7 warns when `mkdir -p` inside a watched tree makes it add one folder twice; harmless.
    warnings.filterwarnings("ignore", message="Callback with id", category=RuntimeWarning)
    problem = check_codex_home(paths.codex_home)
    if problem:
        print(f"session-syncd: {problem}", file=sys.stderr)
        return 1
    try:
        with _acquire_after_imports(paths, env), _home_after_imports(paths, env):
            return trio.run(serve, cfg, paths, env, args)
    except (pidlock.AlreadyRunning, homelock.HomeBusy) as exc:
        print(f"session-syncd: {exc}", file=sys.stderr)
        return 1
    except LedgerError as exc:
        print(f"session-syncd: {exc}", file=sys.stderr)
        return 1
