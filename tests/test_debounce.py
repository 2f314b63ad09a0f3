"""Debounce: the pure core against a reference model (hypothesis), the trio driver under MockClock.

All times are multiples of 1/8 s, so float arithmetic is exact and deadlines can be compared with ==.
"""

from __future__ import annotations

import time

import pytest
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from daemon.debounce import Debouncer, debounce

TICK = 0.125
PATHS = ["a", "b", "c", "d"]


# --- the pure core ---------------------------------------------------------------------------------

timings = st.tuples(
    st.integers(min_value=0, max_value=16),  # quiet, in ticks
    st.integers(min_value=0, max_value=80),  # max_wait - quiet, in ticks
).map(lambda t: (t[0] * TICK, (t[0] + t[1]) * TICK))

events = st.lists(
    st.tuples(st.sampled_from(PATHS), st.integers(min_value=0, max_value=24)),  # (path, ticks since previous)
    max_size=120,
)


def _absolute(evts: list[tuple[str, int]]) -> list[tuple[str, float]]:
    now, out = 0, []
    for path, gap in evts:
        now += gap
        out.append((path, now * TICK))
    return out


def _run_at_deadlines(core: Debouncer[str], evts: list[tuple[str, float]]) -> list[tuple[str, str, float]]:
    """Drive the core like a perfect driver (wake exactly at each deadline, due before event) and
    return the interleaved log of ("event" | "emit", path, time)."""
    log: list[tuple[str, str, float]] = []

    def drain_until(t: float) -> None:
        while (d := core.next_deadline()) is not None and d <= t:
            got = core.due(d)
            assert got, "next_deadline promised a due path"
            log.extend(("emit", p, d) for p in got)
            assert len(core._heap) == len(core)  # memory: one heap entry per pending path

    for path, t in evts:
        drain_until(t)
        core.event(path, t)
        log.append(("event", path, t))
        assert len(core._heap) == len(core)
    drain_until(float("inf"))
    assert len(core) == 0 and core.next_deadline() is None
    return log


@settings(max_examples=400)
@given(timings, events)
def test_each_burst_emitted_once_exactly_at_its_deadline(timing: tuple[float, float], evts) -> None:
    quiet, max_wait = timing
    log = _run_at_deadlines(Debouncer(quiet, max_wait), _absolute(evts))

    for path in PATHS:
        burst: list[float] = []  # this path's events since its previous emission
        for kind, p, t in log:
            if p != path:
                continue
            if kind == "event":
                burst.append(t)
                continue
            assert burst, f"{path} emitted at {t} without a new event"  # exactly once per burst
            first, last = burst[0], burst[-1]
            assert t >= last  # never before the event it covers
            assert t == min(last + quiet, first + max_wait)  # quiet after the last, capped by max wait
            burst = []
        assert not burst, f"{path} has events that were never emitted"  # nothing lost


class _Model:
    """The obvious O(n) implementation the heap must agree with."""

    def __init__(self, quiet: float, max_wait: float) -> None:
        self.quiet, self.max_wait = quiet, max_wait
        self.bursts: dict[str, tuple[float, float]] = {}

    def deadline(self, path: str) -> float:
        first, last = self.bursts[path]
        return min(last + self.quiet, first + self.max_wait)

    def event(self, path: str, now: float) -> None:
        first, _ = self.bursts.get(path, (now, now))
        self.bursts[path] = (first, now)

    def due(self, now: float) -> set[str]:
        out = {p for p in self.bursts if self.deadline(p) <= now}
        for p in out:
            del self.bursts[p]
        return out


ops = st.lists(
    st.one_of(
        st.tuples(st.just("event"), st.sampled_from(PATHS), st.integers(0, 24)),
        st.tuples(st.just("due"), st.just(""), st.integers(0, 120)),  # a late or early wake-up
    ),
    max_size=150,
)


@settings(max_examples=400)
@given(timings, ops)
def test_core_matches_model_at_arbitrary_wakeups(timing: tuple[float, float], script) -> None:
    quiet, max_wait = timing
    core: Debouncer[str] = Debouncer(quiet, max_wait)
    model = _Model(quiet, max_wait)
    now = 0.0
    for op, path, gap in script:
        now += gap * TICK
        if op == "event":
            # Drivers call due() before event(); keep the model in the same order.
            assert set(core.due(now)) == model.due(now)
            core.event(path, now)
            model.event(path, now)
        else:
            deadlines = {p: model.deadline(p) for p in model.bursts}
            got = core.due(now)
            assert len(got) == len(set(got))  # a path appears once
            assert set(got) == model.due(now)
            assert [deadlines[p] for p in got] == sorted(deadlines[p] for p in got)  # earliest first
        expected_next = min((model.deadline(p) for p in model.bursts), default=None)
        assert core.next_deadline() == expected_next
        assert len(core) == len(model.bursts) == len(core._heap)


def test_due_returns_earliest_deadline_first() -> None:
    core: Debouncer[str] = Debouncer(quiet=1.0, max_wait=10.0)
    core.event("late", 0.0)
    core.event("early", 0.5)
    core.event("late", 1.0)  # pushes "late" to 2.0, "early" stays at 1.5
    assert core.due(5.0) == ["early", "late"]


def test_rejects_inconsistent_timings() -> None:
    with pytest.raises(ValueError):
        Debouncer(quiet=-1.0)
    with pytest.raises(ValueError):
        Debouncer(quiet=2.0, max_wait=1.0)


# --- the trio driver -------------------------------------------------------------------------------


def _run(async_fn) -> None:
    trio.run(async_fn, clock=trio.testing.MockClock(autojump_threshold=0))


def test_driver_steady_writer_is_synced_every_max_wait() -> None:
    """An event every 0.5 s for 60 s: never quiet, so the path is emitted exactly every 10 s."""
    emitted: list[float] = []

    async def main() -> None:
        send_paths, receive_paths = trio.open_memory_channel[str](0)
        send_due, receive_due = trio.open_memory_channel[str](0)

        async def writer() -> None:
            async with send_paths:
                for k in range(121):  # t = 0.0, 0.5, ..., 60.0
                    await trio.sleep_until(k * 0.5)
                    await send_paths.send("session.jsonl")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(debounce, receive_paths, send_due, 0.75, 10.0)
            nursery.start_soon(writer)
            async for path in receive_due:
                assert path == "session.jsonl"
                emitted.append(trio.current_time())

    wall = time.monotonic()
    _run(main)
    # Bursts start at 0, 10, 20, ...: the event at 10.0 lands on the deadline and starts the next burst.
    # The last event (60.0) starts a burst that ends quietly 0.75 s later, after the input closed.
    assert emitted == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 60.75]
    assert time.monotonic() - wall < 10  # "instant": virtual time, no real sleeping


def test_driver_emits_on_time_into_a_listening_consumer() -> None:
    got: list[tuple[str, float]] = []

    async def main() -> None:
        send_paths, receive_paths = trio.open_memory_channel[str](0)
        send_due, receive_due = trio.open_memory_channel[str](0)

        async def consumer() -> None:
            async for path in receive_due:
                got.append((path, trio.current_time()))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(debounce, receive_paths, send_due, 0.75, 10.0)
            nursery.start_soon(consumer)
            for _ in range(5):  # a burst at t=0: coalesced
                await send_paths.send("a")
            await trio.sleep(0.25)
            await send_paths.send("b")  # t=0.25
            await trio.sleep(0.25)
            await send_paths.send("a")  # t=0.5 extends a's quiet period to 1.25
            await trio.sleep(5.5)
            await send_paths.send("a")  # t=6.0: a new burst
            await send_paths.aclose()  # pending paths are still emitted at their deadlines

    _run(main)
    assert got == [("b", 1.0), ("a", 1.25), ("a", 6.75)]


def test_driver_idle_has_no_timer() -> None:
    """Quiet when idle: with nothing pending the driver waits on its channel, with no deadline set."""

    async def main() -> None:
        send_paths, receive_paths = trio.open_memory_channel[str](0)
        send_due, receive_due = trio.open_memory_channel[str](1)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(debounce, receive_paths, send_due, 0.75, 10.0)
            await trio.testing.wait_all_tasks_blocked()
            assert trio.lowlevel.current_statistics().seconds_to_next_deadline == float("inf")
            await send_paths.send("a")
            assert await receive_due.receive() == "a"
            await trio.testing.wait_all_tasks_blocked()
            assert trio.lowlevel.current_statistics().seconds_to_next_deadline == float("inf")
            nursery.cancel_scope.cancel()

    trio.run(main)  # real clock: the driver must not need time to pass to go idle


def test_driver_back_pressure_blocks_input_while_consumer_is_slow() -> None:
    async def main() -> None:
        send_paths, receive_paths = trio.open_memory_channel[str](0)
        send_due, receive_due = trio.open_memory_channel[str](0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(debounce, receive_paths, send_due, 0.75, 10.0)
            await send_paths.send("a")
            await trio.sleep(1)  # a is due now, but nobody receives
            with trio.move_on_after(5) as scope:
                await send_paths.send("b")
            assert scope.cancelled_caught  # the driver is blocked in send, not reading
            assert await receive_due.receive() == "a"
            nursery.cancel_scope.cancel()

    _run(main)
