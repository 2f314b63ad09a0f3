"""Where sessions are synced: worker processes or threads, and how they start.

The fold is CPU-bound Python, so threads are held to one core by the GIL; processes use them all but
cost a start-up. A pool of processes is used when there is enough to read to pay for it (see bench/).
`import` feeds its processes through one pipe each (`run_in_processes`); the daemon, which submits from
trio threads one session at a time, keeps concurrent.futures' pool (`make_executor`).
"""

from __future__ import annotations

import contextlib
import functools
import gc
import multiprocessing
import os
import pickle
import select
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # imported where used: `import` with worker processes never needs it (~14 ms with logging)
    import concurrent.futures as cf

PROCESS_POOL_MIN_BYTES = 16 << 20  # below this, worker processes cost more than they save

J = TypeVar("J")
R = TypeVar("R")


def use_processes(workers: int, mode: str, total_bytes: int) -> bool:
    """Processes when they pay (mode "auto": enough bytes and more than one worker) or are asked for."""
    return mode == "process" or (mode == "auto" and workers > 1 and total_bytes >= PROCESS_POOL_MIN_BYTES)


def _context() -> Any:
    """How worker processes start. fork starts a worker in ~10 ms, forkserver in ~170 ms (it boots an
    interpreter and imports the engine first), which is a quarter of a whole import. fork is only safe
    while this process has a single thread, as the one-shot `import` does; a threaded caller (the daemon)
    gets forkserver."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods and threading.active_count() == 1:
        method = "fork"
    else:
        method = "forkserver" if "forkserver" in methods else "spawn"
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(["daemon.engine", "ctypes"])
    return ctx


def make_executor(workers: int, mode: str, total_bytes: int) -> cf.Executor:
    """A process pool when it pays (`use_processes`), else threads."""
    import concurrent.futures as cf

    if use_processes(workers, mode, total_bytes):
        return cf.ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=start_worker)
    return cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sync")


#: A job whose pickle is larger than this is sent only to an idle worker, never queued behind a running
#: one: a worker blocked sending a large result to a parent blocked sending it a large job would deadlock.
SEND_AHEAD_MAX_BYTES = 64 << 10


class _Worker:
    """One worker process and the parent's end of its pipe, with the jobs sent to it (oldest first:
    results come back in that order). A forked worker also inherits the parent's ends of the other
    workers' pipes; fork is used on Linux only, where the worker dies with its parent (start_worker)."""

    def __init__(self, ctx: Any, fn: Callable[[Any], Any]) -> None:
        conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, fn), daemon=True)
        self.proc.start()
        child.close()
        self.conn: Connection = conn
        self.held: deque[Any] = deque()
        self._pipe = select.poll()  # `conn.poll()` builds and fills a selector per call (~20 µs)
        self._pipe.register(conn.fileno(), select.POLLIN)

    def readable(self) -> bool:
        """Whether a result (or the end of the pipe) is there to read now: the connection buffers nothing,
        so its pipe being readable is a whole message waiting."""
        return bool(self._pipe.poll(0))

    def stop(self, wait_s: float) -> None:
        """Ask it to exit (after the job it is running), wait up to `wait_s`, then kill it."""
        try:
            self.conn.send(None)
        except OSError:
            pass
        self.conn.close()
        self.proc.join(wait_s)
        if self.proc.exitcode is None:
            self.proc.kill()
            self.proc.join()


def _serve(conn: Connection, fn: Callable[[Any], Any]) -> None:
    """A worker process: fn(job) for each job it is sent, each result sent back, until None or EOF."""
    start_worker()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops us
    while True:
        try:
            job = conn.recv()
        except EOFError:
            return
        if job is None:
            return
        conn.send(fn(job))


def run_in_processes(fn: Callable[[J], R], jobs: list[J], workers: int, lost: Callable[[J], R],
                     per_worker: int = 3) -> Iterator[list[R]]:
    """fn(job) for every job in `workers` processes; yields the results as they arrive (those that
    arrived together in one list, so that they are committed in one transaction).

    Each worker has its own pipe and up to `per_worker` jobs sent to it (one running, the others waiting,
    so it does not idle while the parent sits in a commit's fsyncs: 2,000 and 10,000 sessions, alternating
    runs, medians 4-5 % faster with three than with two); only one once fewer jobs are left than workers,
    so the last ones do not queue behind a long one (jobs come largest first). A job costs a pickle and a
    write each way; concurrent.futures' process pool (a manager thread, a call-queue feeder thread,
    futures, a wakeup pipe) cost ~0.3 ms of CPU per job more (README, "Performance").

    A worker that dies (OOM killer, SIGKILL) is replaced; each job it held is tried once more, alone on
    its worker, and a job whose worker dies again yields `lost(job)` instead of a result."""
    ctx = _context()
    if ctx.get_start_method() == "fork":
        _prctl()  # loaded once here, inherited by every fork: ctypes costs each worker ~9 ms to import
    queue: deque[J] = deque(jobs)
    retried: set[int] = set()  # jobs already tried again after a death (by id)
    # One poll set for the whole run (multiprocessing's `wait` builds and fills a selector per call:
    # ~30 µs, about once per session): the parent's end of every worker's pipe, by its fd.
    poller = select.poll()
    by_fd: dict[int, _Worker] = {}
    pool: list[_Worker] = []
    batch: list[R] = []

    def hire() -> None:
        w = _Worker(ctx, fn)
        fd = w.conn.fileno()
        poller.register(fd, select.POLLIN)
        by_fd[fd] = w
        pool.append(w)

    def bury(w: _Worker) -> None:
        """`w` died: what it held goes back to the front of the queue once, then to `lost`."""
        for job in reversed(w.held):
            if id(job) in retried:
                batch.append(lost(job))
            else:
                retried.add(id(job))
                queue.appendleft(job)
        fd = w.conn.fileno()
        poller.unregister(fd)
        del by_fd[fd]
        w.conn.close()
        w.proc.join()
        pool.remove(w)
        if queue:
            hire()

    for _ in range(min(workers, len(queue))):
        hire()

    finished = False
    try:
        while True:
            ahead = per_worker if len(queue) >= len(pool) else 1
            for w in sorted(pool, key=lambda w: len(w.held)):  # idle workers first
                while queue and len(w.held) < ahead:
                    # A job tried again runs alone (nothing queued behind it, nor it behind another), so
                    # a second death is its own: the job queued behind it is not lost with it.
                    if w.held and (id(queue[0]) in retried or id(w.held[0]) in retried):
                        break
                    data = pickle.dumps(queue[0], pickle.HIGHEST_PROTOCOL)
                    if w.held and len(data) > SEND_AHEAD_MAX_BYTES:
                        break
                    w.held.append(queue.popleft())
                    try:
                        w.conn.send_bytes(data)
                    except OSError:  # it died: the job counts as held, so no job outlives two deaths
                        bury(w)
                        break
            busy = any(w.held for w in pool)
            if not busy and not batch and not queue:
                finished = True
                return
            # Readable: a result, or the end of a dead worker's pipe (an idle worker sends nothing, so its
            # pipe is readable only when it died). Nothing held anywhere (every send failed): no wait.
            for fd, _events in poller.poll(None if busy and not batch else 0):
                w = by_fd[fd]
                if not w.held:
                    bury(w)
                    continue
                try:
                    batch.append(w.conn.recv())  # readable: a result, or the end of a dead worker's pipe
                    w.held.popleft()
                    while w.held and w.readable():
                        batch.append(w.conn.recv())
                        w.held.popleft()
                except (EOFError, OSError):
                    bury(w)
            if batch:
                yield batch
                batch = []
    finally:
        for w in pool:
            w.stop(5.0 if finished else 0.0)


WORKER_GC_THRESHOLD = 20_000  # allocations between young collections (Python's default: 700)


def start_worker() -> None:
    """Worker initializer: tie the worker's life to its parent's, and make its garbage collector cheap. A
    fold allocates a few objects per source line and frees them at once (no cycles), so the collector
    mostly walks live objects for nothing; what the worker inherited from its parent is frozen out of its
    walks. Measured on the 50-session import (2026-12-02, medians of alternating runs): CPU 1.28-1.34 →
    1.25-1.28 s."""
    _collect_rarely()
    die_with_parent()


def _collect_rarely() -> tuple[int, int, int]:
    """Freeze what exists out of the collector's walks, collect young objects every WORKER_GC_THRESHOLD
    allocations; returns the thresholds it replaced."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(WORKER_GC_THRESHOLD, *threshold[1:])
    return threshold


@contextlib.contextmanager
def rare_collections() -> Iterator[None]:
    """While `import` feeds its workers: what exists now (the jobs, the ledger's rows, the modules) is out
    of the collector's walks and young objects are collected every WORKER_GC_THRESHOLD allocations, as in
    a worker; both undone after. Otherwise the parent of a 10,000-session import spent ~0.18 s collecting,
    two full collections of ~60 ms each among it, while its idle workers waited for their next job."""
    threshold = _collect_rarely()
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@functools.cache
def _prctl() -> Callable[..., int]:
    """libc's prctl (Linux), through ctypes, loaded once per process."""
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl


def die_with_parent() -> None:
    """A worker must not outlive the process that started it (killed with SIGKILL,
    its workers would otherwise wait on their queue forever, holding its files)."""
    if sys.platform.startswith("linux"):
        _prctl()(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() == 1:  # the parent died before prctl took effect
            os._exit(1)
