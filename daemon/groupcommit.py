"""Group commit for the daemon: sessions that complete while a commit is running share the next one.

Each commit pays a WAL sync (the ledger runs `synchronous=FULL`) and, when a title changed, a sync of
Codex's title index (record.record_all). One at a time, a large backlog (the first start on a long
history) would drain at one commit per pair of syncs; committed together, a burst of completions pays
them once. Nobody waits for others: a session whose sync completes while the ledger is idle is
committed at once, alone; the ones that complete during that commit go together in the next.

Shell code around record.record_all: the commit itself runs off the trio thread, under the daemon's
one-at-a-time ledger limiter.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from daemon.engine import Outcome


class GroupCommit:
    def __init__(self, commit_all: Callable[[list[Outcome]], Awaitable[None]]) -> None:
        """`commit_all(outcomes)`: commit these in one transaction (raises on failure, nothing committed)."""
        self._commit_all = commit_all
        self._lock = trio.Lock()
        self._waiting: list[tuple[Outcome, list[BaseException | None]]] = []
        self.commits = 0  # transactions made (for tests and status)

    async def commit(self, out: Outcome) -> None:
        """Return once `out` is committed, with every outcome that was waiting at the same time; raise
        what the commit raised (sqlite3.Error, store.StoreError) when it failed."""
        result: list[BaseException | None] = []
        self._waiting.append((out, result))
        async with self._lock:  # whoever holds the lock commits all that waits, its own included
            if not result:
                batch, self._waiting = self._waiting, []
                try:
                    await self._commit_all([o for o, _ in batch])
                except Exception as exc:  # noqa: BLE001 — handed to every waiter: each one decides
                    for _, slot in batch:
                        slot.append(exc)
                except BaseException:  # cancelled before the commit began: the next holder commits the rest
                    self._waiting[:0] = [item for item in batch if item[1] is not result]
                    raise
                else:
                    for _, slot in batch:
                        slot.append(None)
                self.commits += 1
        if result[0] is not None:
            raise result[0]
