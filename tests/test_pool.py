"""daemon/pool.py: which executor a sync gets, and what its worker processes are set up with (real pools)."""

from __future__ import annotations

import concurrent.futures as cf
import gc
import os

from daemon.pool import PROCESS_POOL_MIN_BYTES, WORKER_GC_THRESHOLD, make_executor


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
