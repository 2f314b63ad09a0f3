"""Watch agent session folders and hand changes to trio.

Owns: the watcher API (`watching`, `watch`, the three typed events), the delivery policy into the
caller's channel, and the two backends: on Linux daemon/inotify.py (one inotify fd read in the trio
thread, non-recursive watches only as deep as each root's `depth`, polling of the folders left
without a watch when `fs.inotify.max_user_watches` runs out, one `watch.polling` warning); elsewhere
the watchdog → trio bridge described below (FSEvents watches recursively; events deeper than a
root's depth are dropped by the filter). Must not: read or hash session files, debounce, or decide
what a path means (the Linux backend lists and stats folders, only to watch and poll them). Anything
we cannot report precisely becomes one `Rescan` marker, and the daemon answers it with a full reconcile.

Symlinks inside a root are never followed (a symlinked folder there is not watched); a root that is
itself a symlink (a dotfiles setup) is followed, and its events carry the root's own path.

Theory of operation
-------------------
Events.  `Changed(path)` for a wanted file created, modified or moved into place (the destination of a
move; its source becomes `Deleted` when that was wanted too); `Deleted(path)`; `Rescan(reason)` when
precise events were lost or a root came or went. Directory events are only used to track roots.

Roots that come and go.  For each root we keep a non-recursive "anchor" watch on the nearest existing
ancestor (its parent while the root exists: only the parent sees the root being moved away). When a
directory event on an anchor touches the chain of folders down to a root, or the root's own watch
reports the root deleted, a reconcile runs in a worker thread (never in watchdog's dispatcher thread,
which holds the observer lock while it calls us): it stats every root, schedules a recursive watch on
each root that is now a directory (or whose inode changed), drops watches whose folder is gone, moves
anchors, re-checks until the file system holds still, and then reports `Rescan("root appeared: …")`,
`Rescan("root gone: …")` or `Rescan("root replaced: …")`. The marker goes out after the new watch is
active, so a reconcile the daemon starts on it cannot miss a file written in between.

All watches use one event filter on purpose: one observer shares one kernel watch per directory, and
`inotify_add_watch` replaces its mask, so an anchor and a root watch on the same directory with
different filters would silently take events away from each other.

Queue overflow.  watchdog 7.1 does not turn the kernel's IN_Q_OVERFLOW into an event. Its reader thread
(`watchdog.observers.inotify_c.InotifyFD.handle_event`) logs a WARNING "Inotify queue overflowed;
filesystem events were lost" on the `watchdog.observers.inotify_c` logger, then calls
`on_queue_overflow()` on each watch group, which drops half-paired moves and re-adds the recursive
watches; handlers see nothing. So for the life of a watcher we attach a logging handler to that logger.
The record comes *before* watchdog rebuilds its watches, and events for the old watches are dropped
while it does, so a Rescan sent at once could be answered before the rebuild and miss a write made in
between (a real overflow test caught exactly that). Instead the record triggers a reconcile that
replaces every one of our watches (its unschedule waits on the watch group's lock, which watchdog holds
while rebuilding) and only then sends `Rescan("inotify queue overflow")`. Consequences: if
logging is configured above WARNING we lower that one logger to WARNING while watching (restored on
exit), so the overflow line also reaches the log; an overflow in another observer of this process also
reaches us (a spare rescan, harmless). tests/test_watch.py forces a real overflow, so a watchdog
upgrade that changes this fails a test instead of losing events. (macOS FSEvents "must scan subdirs"
is not surfaced by watchdog either; the daemon's periodic rescan covers it.)

Crossing into trio.  watchdog threads never wait for trio: they call `TrioToken.run_sync_soon`, and in
the trio thread each event is offered to the caller's bounded channel with `send_nowait`. When the
channel is full we stop offering, drop every event, and a small task sends one `Rescan` as soon as
there is room again, then resumes normal delivery. Events dropped are covered, because the reconcile
the daemon runs on that marker happens after they were dropped.

Known gaps (the periodic rescan covers them): a root's grandparent moved away is not noticed; a root
that is a symlink is watched as the link, not its target.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import structlog
import trio
from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
    FileSystemMovedEvent,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch


@dataclass(frozen=True, slots=True)
class Changed:
    """A wanted file was created, written or moved into place: sync it (after debouncing)."""

    path: Path


@dataclass(frozen=True, slots=True)
class Deleted:
    """A wanted file went away. The daemon only logs it: threads are never deleted for this."""

    path: Path


@dataclass(frozen=True, slots=True)
class Rescan:
    """Precise events were lost or a root came or went: reconcile everything."""

    reason: str


WatchEvent = Changed | Deleted | Rescan


DEFAULT_DEPTH = 8  # folders below a root, when the caller gives none (WatchSpec's default)
POLL_INTERVAL_S = 30.0  # unwatched folders (the inotify watch limit ran out) are listed this often


def is_jsonl(path: Path) -> bool:
    """The default filter: append-only JSONL session logs (Claude Code, Cursor)."""
    return path.suffix == ".jsonl"


# watchdog reports IN_Q_OVERFLOW only through this logger (see the module docstring).
_OVERFLOW_LOGGER = "watchdog.observers.inotify_c"

# One filter for every watch (see the module docstring). FileModifiedEvent also asks the kernel for
# IN_ATTRIB; watchdog turns those into FileAttribEvent, which this filter then drops.
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileDeletedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]

# A reconcile re-checks until the file system holds still; this bounds it against a folder that is
# created and deleted in a loop (the next event runs another reconcile anyway).
_MAX_RECONCILE_ROUNDS = 16


class _Delivery:
    """The trio side of the bridge: offers events to the caller's channel, with the overflow policy.

    `offer`, `kick` and `overflowed` may be called from any thread; the rest runs in the trio thread.
    """

    def __init__(self, send: trio.MemorySendChannel[WatchEvent], token: trio.lowlevel.TrioToken) -> None:
        self._send = send
        self._token = token
        self._dropped = 0  # > 0: the channel overflowed and a Rescan is owed
        self._owed = trio.Event()
        self._dirty = trio.Event()  # set: the roots need a reconcile
        self._rewatch = False  # True: that reconcile must replace every watch (after an overflow)

    def offer(self, event: WatchEvent) -> None:
        """Thread-safe and non-blocking: watchdog's threads must keep draining the kernel queue."""
        try:
            self._token.run_sync_soon(self.deliver, event)
        except trio.RunFinishedError:
            pass  # trio is gone; so is anyone who would read the event

    def kick(self) -> None:
        """Thread-safe: ask for a root reconcile (coalesced: many kicks, one reconcile)."""
        try:
            self._token.run_sync_soon(self._set_dirty)
        except trio.RunFinishedError:
            pass

    def _set_dirty(self) -> None:
        self._dirty.set()  # read self._dirty here, in the trio thread: wait_dirty replaces it

    def overflowed(self) -> None:
        """Thread-safe: the kernel dropped events; replace all watches, then send a Rescan."""
        try:
            self._token.run_sync_soon(self._set_rewatch)
        except trio.RunFinishedError:
            pass

    def _set_rewatch(self) -> None:
        self._rewatch = True
        self._dirty.set()

    def deliver(self, event: WatchEvent) -> None:
        if self._dropped:
            self._dropped += 1
            return
        try:
            self._send.send_nowait(event)
        except trio.WouldBlock:
            self._dropped = 1
            self._owed.set()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass  # the receiver is gone: we are shutting down

    async def pay_rescans(self) -> None:
        """Send the owed Rescan once the channel has room; until then every event is dropped."""
        while True:
            await self._owed.wait()
            self._owed = trio.Event()
            try:
                await self._send.send(Rescan(f"event channel full: {self._dropped}+ events dropped"))
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the receiver is gone: we are shutting down
            self._dropped = 0

    async def wait_dirty(self) -> bool:
        """Wait for a kick; return whether the watches must be replaced."""
        await self._dirty.wait()
        self._dirty = trio.Event()
        rewatch, self._rewatch = self._rewatch, False
        return rewatch


class _OverflowTap(logging.Handler):
    """Turns watchdog's "queue overflowed" log record into a callback (the only signal it gives)."""

    def __init__(self, on_overflow: Callable[[], None]) -> None:
        super().__init__(level=logging.WARNING)
        self._on_overflow = on_overflow

    def emit(self, record: logging.LogRecord) -> None:
        if "overflow" in str(record.msg).lower():
            self._on_overflow()


@dataclass(frozen=True, slots=True)
class _Scheduled:
    watch: ObservedWatch
    ident: tuple[int, int]  # (st_dev, st_ino) of the folder when it was scheduled


def _dir_ident(path: Path) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a directory, None if `path` is not one: tells a replaced folder apart."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


def _on_chain(path: str, roots: tuple[str, ...]) -> bool:
    """Is `path` a root or one of the folders leading down to one?"""
    return any(root == path or root.startswith(path.rstrip(os.sep) + os.sep) for root in roots)


class _RootHandler(FileSystemEventHandler):
    """Recursive watch on a root: file events become Changed/Deleted; the root's own deletion kicks."""

    def __init__(self, root: str, wanted: Callable[[Path], bool], delivery: _Delivery) -> None:
        self._root = root
        self._wanted = wanted
        self._delivery = delivery

    def dispatch(self, event: FileSystemEvent) -> None:
        # Runs in watchdog's dispatcher thread; an exception here would kill it and end all watching.
        try:
            self._dispatch(event)
        except Exception as exc:  # noqa: BLE001 - report and keep watching
            self._delivery.offer(Rescan(f"watch handler error: {exc!r}"))

    def _dispatch(self, event: FileSystemEvent) -> None:
        src = os.fsdecode(event.src_path)
        if event.is_directory:
            if src == self._root and isinstance(event, DirDeletedEvent):
                self._delivery.kick()
            return
        if isinstance(event, FileSystemMovedEvent):
            dest = Path(os.fsdecode(event.dest_path))
            if self._wanted(dest):
                self._delivery.offer(Changed(dest))
            if self._wanted(Path(src)):
                self._delivery.offer(Deleted(Path(src)))
        elif isinstance(event, FileDeletedEvent):
            if self._wanted(Path(src)):
                self._delivery.offer(Deleted(Path(src)))
        elif isinstance(event, (FileCreatedEvent, FileModifiedEvent)) and self._wanted(Path(src)):
            self._delivery.offer(Changed(Path(src)))


class _AnchorHandler(FileSystemEventHandler):
    """Non-recursive watch on a root's nearest existing ancestor: only the chain down to a root counts."""

    def __init__(self, roots: tuple[str, ...], delivery: _Delivery) -> None:
        self._roots = roots
        self._delivery = delivery

    def dispatch(self, event: FileSystemEvent) -> None:
        if not event.is_directory:
            return
        paths = [os.fsdecode(event.src_path)]
        if isinstance(event, FileSystemMovedEvent):
            paths.append(os.fsdecode(event.dest_path))
        if any(_on_chain(p, self._roots) for p in paths if p):
            self._delivery.kick()


class _Roots:
    """Keeps the observer's watches matching the roots on disk. Only ever used by one thread at a time
    (the reconcile task runs it in a worker thread, one call after another)."""

    def __init__(
        self,
        observer: BaseObserver,
        roots: tuple[str, ...],
        wanted: Callable[[Path], bool],
        delivery: _Delivery,
    ) -> None:
        self._observer = observer
        self._roots = roots
        self._wanted = wanted
        self._delivery = delivery
        self._anchor_handler = _AnchorHandler(roots, delivery)
        self._scheduled: dict[tuple[str, bool], _Scheduled] = {}  # (folder, recursive) -> watch

    def _desired(self) -> dict[tuple[str, bool], tuple[int, int]]:
        want: dict[tuple[str, bool], tuple[int, int]] = {}
        for root in self._roots:
            path = Path(root)
            ident = _dir_ident(path)
            if ident is not None:
                want[(root, True)] = ident
                path = path.parent  # the anchor that sees the root moved away
            for folder in (path, *path.parents):
                if (anchor := _dir_ident(folder)) is not None:
                    want[(str(folder), False)] = anchor
                    break
        return want

    def _schedule(self, folder: str, recursive: bool) -> ObservedWatch:
        handler = _RootHandler(folder, self._wanted, self._delivery) if recursive else self._anchor_handler
        return self._observer.schedule(handler, folder, recursive=recursive, event_filter=_EVENT_FILTER)

    def _unschedule(self, key: tuple[str, bool]) -> None:
        scheduled = self._scheduled.pop(key)
        try:
            self._observer.unschedule(scheduled.watch)
        except KeyError:
            pass  # the observer is stopping and already dropped it

    def reconcile(self, *, strict: bool = False, rewatch: bool = False) -> list[str]:
        """Bring the watches in line with the disk; return the Rescan reasons for roots that changed.

        `strict` (the first call) raises when a root that exists cannot be watched, e.g. the inotify
        watch limit; later calls report it as a Rescan reason and retry on the next event.
        `rewatch` drops every watch first and schedules fresh ones (after a queue overflow).
        """
        before = {root: self._scheduled.get((root, True)) for root in self._roots}
        errors: list[str] = []
        if rewatch:
            for key in list(self._scheduled):
                self._unschedule(key)
        for _ in range(_MAX_RECONCILE_ROUNDS):
            want = self._desired()
            for key in [k for k, s in self._scheduled.items() if want.get(k) != s.ident]:
                self._unschedule(key)  # gone, or a different folder now sits at that path
            for key, ident in want.items():
                if key in self._scheduled:
                    continue
                try:
                    watch = self._schedule(*key)
                except (FileNotFoundError, NotADirectoryError):
                    continue  # vanished meanwhile: the next round sees it
                except OSError as exc:
                    if strict:
                        hint = " (raise fs.inotify.max_user_watches)" if exc.errno == errno.ENOSPC else ""
                        message = f"cannot watch {key[0]}: {exc.strerror or exc}{hint}"
                        raise OSError(exc.errno, message) from exc
                    errors.append(f"cannot watch {key[0]}: {exc}")
                    continue
                self._scheduled[key] = _Scheduled(watch, ident)
            # Stable when a fresh look at the disk agrees with what is now watched.
            if self._desired() == {k: s.ident for k, s in self._scheduled.items()}:
                break
        reasons: list[str] = []
        for root in self._roots:
            old, new = before[root], self._scheduled.get((root, True))
            if old is None and new is not None:
                reasons.append(f"root appeared: {root}")
            elif old is not None and new is None:
                reasons.append(f"root gone: {root}")
            elif old is not None and new is not None and old != new:
                reasons.append(f"root replaced: {root}")
        return reasons + errors


def _normalize(roots: Iterable[str | os.PathLike[str]]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(os.path.abspath(os.fspath(root)) for root in roots))


def _stop(observer: BaseObserver, timeout: float) -> None:
    observer.stop()  # unschedules every watch and joins its emitter thread, then the inotify reader
    if observer.is_alive():
        observer.join(timeout)


def _specs(root_paths: tuple[str, ...], depths: Mapping[str | os.PathLike[str], int] | None) -> dict[str, int]:
    given = {os.path.abspath(os.fspath(k)): v for k, v in (depths or {}).items()}
    return {root: given.get(root, DEFAULT_DEPTH) for root in root_paths}


def _within_depth(depth_of: dict[str, int], wanted: Callable[[Path], bool]) -> Callable[[Path], bool]:
    """The watchdog backend's filter: `wanted`, and no deeper below some root than that root asks."""
    def check(path: Path) -> bool:
        if not wanted(path):
            return False
        folder = os.fspath(path.parent)
        for root, depth in depth_of.items():
            if folder == root or folder.startswith(root + os.sep):
                if (0 if folder == root else folder[len(root) + 1:].count(os.sep) + 1) <= depth:
                    return True
        return False
    return check


@asynccontextmanager
async def watching(
    roots: Iterable[str | os.PathLike[str]],
    send: trio.MemorySendChannel[WatchEvent],
    *,
    wanted: Callable[[Path], bool] = is_jsonl,
    depths: Mapping[str | os.PathLike[str], int] | None = None,
    poll_interval: float = POLL_INTERVAL_S,
    stop_timeout: float = 5.0,
    backend: str = "auto",
) -> AsyncIterator[None]:
    """Watch `roots` (which need not exist yet) and send `WatchEvent`s to `send` while inside.

    Watches are active when the body starts, so a scan the caller starts then cannot miss a change.
    `wanted(path)` selects the files that matter (keep it cheap and pure). `depths` maps a root to how
    many folders below it its files may be (default `DEFAULT_DEPTH`). `send` is not closed here (see
    `watch` for the task form that owns it). `backend` "watchdog" forces the portable backend (tests).
    """
    root_paths = _normalize(roots)
    depth_of = _specs(root_paths, depths)
    if backend == "inotify" or backend == "auto" and sys.platform.startswith("linux"):
        async with _watching_inotify(depth_of, send, wanted, poll_interval):
            yield
    else:
        async with _watching_watchdog(root_paths, send, _within_depth(depth_of, wanted), stop_timeout):
            yield


@asynccontextmanager
async def _watching_inotify(depth_of: dict[str, int], send: trio.MemorySendChannel[WatchEvent],
                            wanted: Callable[[Path], bool], poll_interval: float) -> AsyncIterator[None]:
    from daemon.inotify import Inotify, RootSpec, Tree

    delivery = _Delivery(send, trio.lowlevel.current_trio_token())
    ino = Inotify()
    tree = Tree(ino, tuple(RootSpec(r, d) for r, d in depth_of.items()), wanted)
    lock = trio.Lock()  # one task at a time changes the watches (reader or poller)
    polling = trio.Event()  # set once some folder is polled
    warned = False

    def degraded() -> None:
        nonlocal warned
        if tree.polled and not polling.is_set():
            polling.set()
        if tree.limit_hit and not warned:
            warned = True
            structlog.get_logger("session_syncd").warning(
                "watch.polling", folders=len(tree.polled), interval_s=poll_interval,
                error=(f"the inotify watch limit (fs.inotify.max_user_watches) is reached: {len(tree.polled)} "
                       f"folder(s) are polled every {poll_interval:g} s instead; raise it: sudo sysctl "
                       "fs.inotify.max_user_watches=524288 (see `session-syncd doctor`)"))

    async def reader() -> None:
        while True:
            await trio.lowlevel.wait_readable(ino.fd)
            async with lock:
                events = ino.read()
                out: list[WatchEvent] = []
                new_dirs: list[str] = []
                overflow, roots_dirty = tree.handle(events, out, new_dirs)  # type: ignore[arg-type]
                for ev in out:
                    delivery.deliver(ev)
                if new_dirs:
                    found: list[Path] = []
                    await trio.to_thread.run_sync(lambda: [tree.add_tree(d, found) for d in new_dirs])
                    for path in found:
                        delivery.deliver(Changed(path))
                if overflow or roots_dirty:
                    reasons = await trio.to_thread.run_sync(functools.partial(tree.reconcile_roots,
                                                                              rewatch=overflow))
                    if overflow:
                        reasons.insert(0, "inotify queue overflow")
                    for reason in reasons:
                        delivery.deliver(Rescan(reason))  # only now: the new watches are active
                degraded()

    async def poller() -> None:
        await polling.wait()
        while True:
            await trio.sleep(poll_interval)
            async with lock:
                if not tree.polled:
                    continue
                out: list[WatchEvent] = []
                await trio.to_thread.run_sync(tree.poll, out)
                for ev in out:
                    delivery.deliver(ev)

    try:
        await trio.to_thread.run_sync(tree.reconcile_roots)
        degraded()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(delivery.pay_rescans)
            nursery.start_soon(reader)
            nursery.start_soon(poller)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
    finally:
        trio.lowlevel.notify_closing(ino.fd)
        ino.close()


@asynccontextmanager
async def _watching_watchdog(root_paths: tuple[str, ...], send: trio.MemorySendChannel[WatchEvent],
                             wanted: Callable[[Path], bool], stop_timeout: float) -> AsyncIterator[None]:
    """The watchdog backend (macOS and other non-Linux systems): recursive watches, see the docstring."""
    delivery = _Delivery(send, trio.lowlevel.current_trio_token())
    observer = Observer()  # on Linux this already starts the inotify reader thread
    tracker = _Roots(observer, root_paths, wanted, delivery)
    tap = _OverflowTap(delivery.overflowed)
    overflow_logger = logging.getLogger(_OVERFLOW_LOGGER)
    saved_level = overflow_logger.level
    if not overflow_logger.isEnabledFor(logging.WARNING):  # e.g. log_level = "error": keep the signal
        overflow_logger.setLevel(logging.WARNING)
    overflow_logger.addHandler(tap)
    try:
        observer.start()
        await trio.to_thread.run_sync(functools.partial(tracker.reconcile, strict=True))

        async def reconcile_on_kick() -> None:
            while True:
                rewatch = await delivery.wait_dirty()
                reasons = await trio.to_thread.run_sync(functools.partial(tracker.reconcile, rewatch=rewatch))
                if rewatch:
                    reasons.insert(0, "inotify queue overflow")
                for reason in reasons:
                    delivery.deliver(Rescan(reason))  # only now: the new watches are active

        async with trio.open_nursery() as nursery:
            nursery.start_soon(delivery.pay_rescans)
            nursery.start_soon(reconcile_on_kick)
            try:
                yield
            finally:
                nursery.cancel_scope.cancel()
    finally:
        overflow_logger.removeHandler(tap)
        overflow_logger.setLevel(saved_level)
        with trio.CancelScope(shield=True), trio.move_on_after(stop_timeout):
            await trio.to_thread.run_sync(_stop, observer, stop_timeout, abandon_on_cancel=True)


async def watch(
    roots: Iterable[str | os.PathLike[str]],
    send: trio.MemorySendChannel[WatchEvent],
    *,
    wanted: Callable[[Path], bool] = is_jsonl,
    depths: Mapping[str | os.PathLike[str], int] | None = None,
    poll_interval: float = POLL_INTERVAL_S,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The task form for the daemon's nursery: `await nursery.start(watch, roots, send)` returns once
    the watches are active. Runs until cancelled, then closes `send`."""
    async with send, watching(roots, send, wanted=wanted, depths=depths, poll_interval=poll_interval):
        task_status.started()
        await trio.sleep_forever()
