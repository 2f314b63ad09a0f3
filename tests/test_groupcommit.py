"""The daemon's group commit: outcomes that complete during a commit share the next one; none waits
for others when the ledger is idle; a failure reaches every outcome of its batch; a holder cancelled
before its commit began leaves the others to the next holder."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from daemon.engine import Outcome
from daemon.groupcommit import GroupCommit


def _out(i: int) -> Outcome:
    return Outcome(kind="imported", source="claude", path=f"/p/{i}.jsonl", session_id=str(i))


class Ledger:
    """A commit that takes until `release` is set, recording each batch."""

    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[list[str]] = []
        self.release = trio.Event()
        self.fail = fail

    async def commit_all(self, outs: list[Outcome]) -> None:
        await self.release.wait()
        self.batches.append([o.session_id for o in outs])
        if self.fail is not None:
            raise self.fail


def test_completions_during_a_commit_share_the_next_one() -> None:
    trio.run(_test_completions_during_a_commit_share_the_next_one)


async def _test_completions_during_a_commit_share_the_next_one() -> None:
    ledger = Ledger()
    group = GroupCommit(ledger.commit_all)
    done: list[str] = []

    async def one(i: int) -> None:
        await group.commit(_out(i))
        done.append(str(i))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(one, 0)
        await trio.testing.wait_all_tasks_blocked()  # 0 is committing
        for i in range(1, 5):
            nursery.start_soon(one, i)
        await trio.testing.wait_all_tasks_blocked()
        ledger.release.set()
    assert [sorted(b) for b in ledger.batches] == [["0"], ["1", "2", "3", "4"]]  # trio starts tasks in any order
    assert sorted(done) == ["0", "1", "2", "3", "4"] and group.commits == 2


def test_an_idle_ledger_commits_at_once_alone() -> None:
    trio.run(_test_an_idle_ledger_commits_at_once_alone)


async def _test_an_idle_ledger_commits_at_once_alone() -> None:
    ledger = Ledger()
    ledger.release.set()
    group = GroupCommit(ledger.commit_all)
    for i in range(3):
        await group.commit(_out(i))
    assert ledger.batches == [["0"], ["1"], ["2"]]


def test_a_failed_commit_reaches_every_outcome_of_its_batch() -> None:
    trio.run(_test_a_failed_commit_reaches_every_outcome_of_its_batch)


async def _test_a_failed_commit_reaches_every_outcome_of_its_batch() -> None:
    ledger = Ledger(fail=OSError("disk full"))
    group = GroupCommit(ledger.commit_all)
    errors: list[str] = []

    async def one(i: int) -> None:
        with pytest.raises(OSError) as caught:
            await group.commit(_out(i))
        errors.append(f"{i}: {caught.value}")

    async with trio.open_nursery() as nursery:
        for i in range(3):
            nursery.start_soon(one, i)
        await trio.testing.wait_all_tasks_blocked()
        ledger.release.set()
    assert sorted(errors) == ["0: disk full", "1: disk full", "2: disk full"]


def test_a_holder_cancelled_before_its_commit_leaves_the_others_to_the_next() -> None:
    trio.run(_test_a_holder_cancelled_before_its_commit_leaves_the_others_to_the_next)


async def _test_a_holder_cancelled_before_its_commit_leaves_the_others_to_the_next() -> None:
    started = trio.Event()

    class Slow(Ledger):
        async def commit_all(self, outs: list[Outcome]) -> None:
            started.set()
            await super().commit_all(outs)

    ledger = Slow()
    group = GroupCommit(ledger.commit_all)
    async with trio.open_nursery() as nursery:
        holder = trio.CancelScope()

        async def first() -> None:
            with holder:
                await group.commit(_out(0))

        nursery.start_soon(first)
        await started.wait()
        nursery.start_soon(group.commit, _out(1))
        await trio.testing.wait_all_tasks_blocked()
        holder.cancel()  # still waiting inside commit_all (as for the ledger's limiter): nothing committed
        await trio.testing.wait_all_tasks_blocked()
        ledger.release.set()
    assert ledger.batches == [["1"]]
