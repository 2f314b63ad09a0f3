"""Per-path debounce: a quiet period, capped by a max wait.

Theory of operation
-------------------
Agents rewrite a session file many times a second while a turn streams. We want one sync per *burst*
of writes, but a session that never goes quiet must still be synced while it grows. So a burst for a
path starts at its first event and ends at

    deadline = min(last_event + quiet, first_event + max_wait)

and the path is emitted once at that deadline. Events for a path that is already pending only move
`last_event`; any kind of event (create, modify, move-to) is the same to us, because the consumer reads
the file's current state, not the event. An event arriving exactly at a burst's deadline belongs to the
next burst: the driver asks for due paths before it records the event.

This file owns the timing rules and nothing else. Two layers, h11-style:

* `Debouncer`: the pure core. No clock, no I/O, no trio: callers pass `now` in. Memory is O(pending
  paths): a dict of (first, last) per pending path and a heap with exactly one entry per pending path.
  A new event for a pending path does not touch the heap; a heap entry whose time has become stale is
  re-pushed at the true deadline when it reaches the top (each event causes at most one such re-push).
* `debounce`: the trio driver. It sleeps until the next deadline or the next event; with nothing pending
  it just waits on its channel (no polling when idle). It awaits `send`, so a slow consumer slows us and,
  through our bounded input channel, the watcher (which then falls back to a rescan marker).

It must not know what a path *is* (any hashable works), look at the file system, or log.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

import trio

P = TypeVar("P", bound=Hashable)

DEFAULT_QUIET = 0.75
DEFAULT_MAX_WAIT = 10.0


@dataclass(slots=True)
class _Burst:
    """One pending path: when its burst started and when it last saw an event."""

    first: float
    last: float


class Debouncer(Generic[P]):
    """Coalesces events per path; `due(now)` pops each path once per burst at its deadline.

    Times are floats on any monotonic clock and must not go backwards between calls.
    """

    def __init__(self, quiet: float = DEFAULT_QUIET, max_wait: float = DEFAULT_MAX_WAIT) -> None:
        if not quiet >= 0:
            raise ValueError(f"quiet must be >= 0, got {quiet!r}")
        if not max_wait >= quiet:
            raise ValueError(f"max_wait must be >= quiet, got max_wait={max_wait!r} quiet={quiet!r}")
        self.quiet = quiet
        self.max_wait = max_wait
        self._bursts: dict[P, _Burst] = {}
        # (scheduled time, tie-breaker, path): exactly one entry per pending path. The scheduled time
        # is a lower bound of the path's real deadline (a later event can only push the deadline out).
        self._heap: list[tuple[float, int, P]] = []
        self._seq = itertools.count()

    def __len__(self) -> int:
        """Number of pending paths."""
        return len(self._bursts)

    def __contains__(self, path: object) -> bool:
        return path in self._bursts

    def _deadline(self, burst: _Burst) -> float:
        return min(burst.last + self.quiet, burst.first + self.max_wait)

    def event(self, path: P, now: float) -> None:
        """Record an event for `path` at `now`: starts a burst, or extends the pending one.

        Call `due(now)` first, so a burst whose deadline is exactly `now` is emitted before this event
        starts the next one (the driver does).
        """
        burst = self._bursts.get(path)
        if burst is None:
            burst = _Burst(first=now, last=now)
            self._bursts[path] = burst
            heapq.heappush(self._heap, (self._deadline(burst), next(self._seq), path))
        elif now > burst.last:
            burst.last = now

    def _settle_top(self) -> None:
        """Make the heap's top entry exact, re-pushing entries that later events made stale."""
        heap = self._heap
        while heap:
            scheduled, _, path = heap[0]
            deadline = self._deadline(self._bursts[path])
            if deadline == scheduled:
                return
            heapq.heapreplace(heap, (deadline, next(self._seq), path))

    def next_deadline(self) -> float | None:
        """The earliest time at which `due` will return something, or None if nothing is pending."""
        self._settle_top()
        return self._heap[0][0] if self._heap else None

    def due(self, now: float) -> list[P]:
        """Pop and return every path whose burst has ended by `now`, earliest deadline first."""
        out: list[P] = []
        heap = self._heap
        while True:
            self._settle_top()
            if not heap or heap[0][0] > now:
                return out
            _, _, path = heapq.heappop(heap)
            del self._bursts[path]
            out.append(path)


async def debounce(
    receive_paths: trio.MemoryReceiveChannel[P],
    send_due: trio.MemorySendChannel[P],
    quiet: float = DEFAULT_QUIET,
    max_wait: float = DEFAULT_MAX_WAIT,
) -> None:
    """Read paths, send each one once per burst. Runs until the input closes and every pending path
    has been sent (at its deadline, not early), then closes both channels; or until cancelled."""
    core: Debouncer[P] = Debouncer(quiet, max_wait)
    input_open = True
    async with receive_paths, send_due:
        while input_open or core:
            deadline = core.next_deadline()
            received: list[P] = []  # zero or one path; a list keeps the type exact without a sentinel
            with trio.move_on_at(math.inf if deadline is None else deadline):
                if input_open:
                    try:
                        received.append(await receive_paths.receive())
                    except trio.EndOfChannel:
                        input_open = False
                else:
                    await trio.sleep_forever()
            # Due paths first: an event landing exactly on a deadline starts the next burst.
            for path in core.due(trio.current_time()):
                await send_due.send(path)
            for path in received:
                core.event(path, trio.current_time())
