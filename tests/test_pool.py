"""daemon/pool.py: which executor a sync gets, and what its worker processes are set up with (real pools)."""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gc
import multiprocessing
import os
import signal
import threading
from pathlib import Path

import pytest

from daemon.pool import (PROCESS_POOL_MIN_BYTES, SEND_AHEAD_MAX_BYTES, WORKER_GC_THRESHOLD, make_executor,
                         rare_collections, run_in_processes)


def _worker_facts() -> tuple[int, int, int]:
    return os.getpid(), gc.get_threshold()[0], gc.get_freeze_count()


def test_small_work_gets_threads_and_large_work_processes() -> None:
    with make_executor(2, "auto", PROCESS_POOL_MIN_BYTES - 1) as ex:
        assert isinstance(ex, cf.ThreadPoolExecutor)
    with make_executor(1, "auto", PROCESS_POOL_MIN_BYTES) as ex:  # one worker: a process would only cost
        assert isinstance(ex, cf.ThreadPoolExecutor)
    with make_executor(2, "auto", PROCESS_POOL_MIN_BYTES) as ex:
        assert isinstance(ex, cf.ProcessPoolExecutor)


def test_a_worker_process_collects_garbage_rarely_and_never_walks_what_it_inherited() -> None:
    assert gc.get_threshold()[0] != WORKER_GC_THRESHOLD  # this process is left as it was
    with make_executor(2, "process", 0) as ex:
        pid, threshold, frozen = ex.submit(_worker_facts).result(timeout=60)
    assert pid != os.getpid()
    assert threshold == WORKER_GC_THRESHOLD
    assert frozen > 0  # the parent's objects (modules, the registry) are out of the worker's collections
    assert gc.get_threshold()[0] != WORKER_GC_THRESHOLD


def test_while_import_feeds_its_workers_its_own_collections_are_rare_and_skip_what_it_holds() -> None:
    """Inside: the objects that existed are frozen out of collections and young ones are collected
    rarely; after (even when the run fails): the thresholds are as they were and nothing is frozen.
    (Python 3.12 starts with a few hundred objects of its own frozen; the unfreeze returns those too.)"""
    before = gc.get_threshold()
    assert before[0] != WORKER_GC_THRESHOLD
    held = [[] for _ in range(3)]  # lists: objects the collector tracks (a bare object() it never walks)
    assert all(any(o is h for o in gc.get_objects()) for h in held)
    with pytest.raises(RuntimeError), rare_collections():
        assert gc.get_threshold() == (WORKER_GC_THRESHOLD, *before[1:])
        assert not any(o is h for o in gc.get_objects() for h in held)  # frozen: out of every generation
        raise RuntimeError("a run that fails")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    assert all(any(o is h for o in gc.get_objects()) for h in held)  # walked again


# -- run_in_processes: the pool `import` feeds through one pipe per worker ---------------------------

def _facts(_: int) -> tuple[int, int, int]:
    return _worker_facts()


def _square(job: int) -> tuple[int, int]:
    return job, job * job


def _die_once(job: tuple[int, str]) -> int:
    """Job (n, marker): the first worker to take job 3 kills itself mid-job, as the OOM killer would."""
    n, marker = job
    if n == 3:
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            os.kill(os.getpid(), signal.SIGKILL)
        except FileExistsError:
            pass
    return n


def _die_always(job: int) -> int:
    if job == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return job


def _echo(job: bytes) -> bytes:
    return job


def _lost(job: object) -> str:
    return f"lost {job!r}"


def _flatten(batches: object) -> list:
    return [r for batch in batches for r in batch]


def test_every_job_comes_back_once_from_worker_processes_set_up_like_the_pool() -> None:
    results = _flatten(run_in_processes(_square, list(range(40)), 3, _lost))
    assert sorted(results) == [(n, n * n) for n in range(40)]
    (pid, threshold, frozen), = _flatten(run_in_processes(_facts, [0], 2, _lost))
    assert pid != os.getpid() and threshold == WORKER_GC_THRESHOLD and frozen > 0
    assert multiprocessing.active_children() == []  # every worker was stopped and reaped


def test_a_dead_worker_is_replaced_and_what_it_held_is_tried_once_more(tmp_path: Path) -> None:
    marker = str(tmp_path / "fired")
    results = _flatten(run_in_processes(_die_once, [(n, marker) for n in range(12)], 2, _lost))
    assert Path(marker).exists()  # a worker really died holding job 3
    assert sorted(results) == list(range(12))


def test_a_job_that_kills_every_worker_is_lost_and_the_others_complete() -> None:
    results = _flatten(run_in_processes(_die_always, list(range(8)), 2, _lost))
    assert sorted(r for r in results if isinstance(r, int)) == [0, 1, 3, 4, 5, 6, 7]
    assert [r for r in results if isinstance(r, str)] == ["lost 2"]
    assert multiprocessing.active_children() == []


def _die_when_idle(job: tuple[int, str]) -> int:
    """Job 0 returns at once and has its worker killed soon after, while it waits for a next job that
    never comes (the queue is empty by then); the other jobs run until after that death."""
    n, marker = job
    if n == 0:
        pid = os.getpid()
        threading.Thread(target=lambda: (threading.Event().wait(0.3), os.kill(pid, signal.SIGKILL)),
                         daemon=True).start()
    else:
        while not Path(marker).exists():
            threading.Event().wait(0.05)
    return n


@pytest.mark.parametrize("threaded", [False, True], ids=["as started", "threaded caller (forkserver)"])
def test_a_worker_that_dies_idle_is_buried_and_the_others_finish(tmp_path: Path, threaded: bool) -> None:
    """An idle worker's pipe is readable only once it died: the run notices it, keeps the busy ones
    going and ends with every result, nothing lost and nothing run twice. A caller with a second thread
    (the daemon) gets forkserver workers, which the forkserver reaps: that path is forced once."""
    marker = tmp_path / "idle-death-seen"
    jobs = [(0, str(marker)), (1, str(marker))]
    with contextlib.ExitStack() as stack:
        if threaded:
            done = threading.Event()
            threading.Thread(target=done.wait, daemon=True).start()
            stack.callback(done.set)
        batches = stack.enter_context(contextlib.closing(run_in_processes(_die_when_idle, jobs, 2, _lost)))
        first = next(batches)  # a failure below must not leave its workers to the next test: closing
        assert first == [0]
        children = multiprocessing.active_children()
        if threaded:
            assert {type(p).__name__ for p in children} == {"ForkServerProcess"}
        pids = [p.pid for p in children]
        for _ in range(200):  # up to 10 s
            if not all(map(_alive, pids)):
                break
            threading.Event().wait(0.05)
        assert not all(map(_alive, pids)), "the idle worker was not killed"
        marker.touch()  # the idle worker is dead now: let job 1 finish
        assert _flatten([first, *batches]) == [0, 1]
    assert multiprocessing.active_children() == []


def _alive(pid: int) -> bool:
    """Whether `pid` runs: not a zombie (a forked worker waits as one until the run reaps it) and not gone
    (a forkserver's worker is reaped by the forkserver: its /proc entry can vanish between open and read)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def test_large_jobs_and_results_never_deadlock_the_pipes() -> None:
    """A job bigger than a pipe's buffer is never sent ahead of a running one: the worker would block
    sending its large result while the parent blocks sending it the next large job."""
    jobs = [bytes([n]) * (SEND_AHEAD_MAX_BYTES * 16) for n in range(6)]
    out: list = []
    runner = threading.Thread(target=lambda: out.extend(_flatten(run_in_processes(_echo, jobs, 2, _lost))),
                              daemon=True)
    runner.start()
    runner.join(120)
    assert not runner.is_alive(), "the pool deadlocked on large jobs and results"
    assert sorted(out) == sorted(jobs)


def test_leaving_early_stops_the_workers_at_once() -> None:
    batches = run_in_processes(_square, list(range(100)), 2, _lost)
    next(batches)
    batches.close()
    assert multiprocessing.active_children() == []
