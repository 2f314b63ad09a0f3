"""The watcher's Linux backend: one inotify instance, read in the trio thread, watching only as deep as
each source needs, and polling the folders it could not watch.

Owns: the inotify watches (one non-recursive watch per folder down to each root's `depth`, plus an
anchor on the nearest existing ancestor of each root), turning kernel events into `Changed` /
`Deleted` / `Rescan`, and the light poll of folders left without a watch when the per-user watch limit
(`fs.inotify.max_user_watches`, ENOSPC) runs out. daemon/watch.py owns the API and the delivery policy.

Why not watchdog here: its non-recursive watches cost one emitter thread each (a folder per project is
hundreds of threads), and its recursive watches silently skip a sub-folder whose watch fails (ENOSPC
included), so a full watch table would lose events without a word. Here there are no threads: the
inotify fd is non-blocking and trio waits on it; only folder walks run in worker threads.

Depth.  A folder `level` folders below a root is watched when `level <= depth`; files directly in a
watched folder are reported. A folder created (or moved in) at a watched level gets its watch first,
then is listed, so a file written between the mkdir and the watch is still reported (as `Changed`
from the listing). Folders moved out lose their watches (their wd would otherwise keep the old path).

Polling.  A folder whose watch fails with ENOSPC is polled instead: every `poll_interval` seconds
(only while some folder is polled: quiet otherwise) each one is listed, its wanted files' stats
compared with the last listing, and `Changed`/`Deleted` sent for the differences; sub-folders that
appeared are watched (or polled); and a watch is tried again, so raising the limit ends the polling.
"""

from __future__ import annotations

import ctypes
import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import trio

IN_MODIFY = 0x2
IN_MOVED_FROM = 0x40
IN_MOVED_TO = 0x80
IN_CREATE = 0x100
IN_DELETE = 0x200
IN_DELETE_SELF = 0x400
IN_MOVE_SELF = 0x800
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000
IN_ONLYDIR = 0x01000000
IN_DONT_FOLLOW = 0x02000000
IN_EXCL_UNLINK = 0x04000000
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000

# One mask for every watch: inotify keeps one watch (and mask) per inode per instance.
MASK = (IN_MODIFY | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF
        | IN_ONLYDIR | IN_DONT_FOLLOW | IN_EXCL_UNLINK)
_EVENT = ctypes.sizeof(ctypes.c_int) + 3 * ctypes.sizeof(ctypes.c_uint32)
_MAX_ROUNDS = 16  # root reconcile: re-check until the disk holds still, bounded

_libc = ctypes.CDLL(None, use_errno=True)
_libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]


class Inotify:
    """The thin shell over the three syscalls (non-blocking, close-on-exec)."""

    def __init__(self) -> None:
        fd = _libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            err = ctypes.get_errno()
            raise OSError(err, f"inotify_init1: {os.strerror(err)} (fs.inotify.max_user_instances)")
        self.fd = fd

    def add(self, path: str, *, follow: bool = False) -> int:
        wd = _libc.inotify_add_watch(self.fd, os.fsencode(path), MASK & ~IN_DONT_FOLLOW if follow else MASK)
        if wd < 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), path)
        return wd

    def rm(self, wd: int) -> None:
        _libc.inotify_rm_watch(self.fd, wd)  # EINVAL when the kernel dropped it already: fine

    def read(self) -> list[tuple[int, int, int, bytes]]:
        out: list[tuple[int, int, int, bytes]] = []
        while True:
            try:
                buf = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            i = 0
            while i + _EVENT <= len(buf):
                wd, mask, cookie, length = int.from_bytes(buf[i:i + 4], "little", signed=True), \
                    int.from_bytes(buf[i + 4:i + 8], "little"), int.from_bytes(buf[i + 8:i + 12], "little"), \
                    int.from_bytes(buf[i + 12:i + 16], "little")
                out.append((wd, mask, cookie, buf[i + 16:i + 16 + length].rstrip(b"\0")))
                i += _EVENT + length

    def close(self) -> None:
        os.close(self.fd)


def dir_ident(path: str, *, follow: bool = False) -> tuple[int, int] | None:
    """(st_dev, st_ino) of a directory, None otherwise; a symlink is followed only with `follow` (a root
    the user named may be a link; nothing found inside a root is followed)."""
    try:
        st = os.stat(path) if follow else os.lstat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


@dataclass(frozen=True, slots=True)
class RootSpec:
    path: str
    depth: int


@dataclass
class Tree:
    """Which folders are watched or polled; every method runs with the caller's lock held, either in
    the trio thread (event handling) or in one worker thread at a time (walks)."""

    ino: Inotify
    roots: tuple[RootSpec, ...]
    wanted: Callable[[Path], bool]
    wd_path: dict[int, str] = field(default_factory=dict)
    path_wd: dict[str, int] = field(default_factory=dict)
    polled: dict[str, dict[str, tuple[int, int, int]] | None] = field(default_factory=dict)  # None: not listed yet
    root_ident: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    anchors: set[str] = field(default_factory=set)
    limit_hit: bool = False  # set on the first ENOSPC (the caller logs it once)

    # -- pure questions about paths -------------------------------------------------------------

    def level(self, folder: str) -> int | None:
        """How deep `folder` is below the root that wants it the deepest; None when no root wants it."""
        best: int | None = None
        for r in self.roots:
            if folder == r.path:
                lv = 0
            elif folder.startswith(r.path + os.sep):
                lv = folder[len(r.path) + 1:].count(os.sep) + 1
            else:
                continue
            if lv <= r.depth and (best is None or lv < best):
                best = lv
        return best

    def deeper(self, folder: str) -> bool:
        """May sub-folders of `folder` be watched (some root wants folders below it)?"""
        return any(folder == r.path and r.depth > 0 or folder.startswith(r.path + os.sep)
                   and folder[len(r.path) + 1:].count(os.sep) + 1 < r.depth for r in self.roots)

    def on_chain(self, path: str) -> bool:
        """Is `path` a root or a folder leading down to one?"""
        return any(r.path == path or r.path.startswith(path.rstrip(os.sep) + os.sep) for r in self.roots)

    # -- watches --------------------------------------------------------------------------------

    def _watch(self, folder: str) -> bool:
        """Watch `folder` (or poll it on ENOSPC); False if it is not a folder any more."""
        if folder in self.path_wd:
            return True
        try:
            wd = self.ino.add(folder, follow=any(r.path == folder for r in self.roots))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                self.limit_hit = True
                self.polled.setdefault(folder, None)
                return True
            return False  # gone, not a folder, unreadable: the next event or rescan sees it again
        old = self.wd_path.get(wd)
        if old is not None and old != folder:
            self.path_wd.pop(old, None)  # the same folder under a new name (moved): the new one wins
        self.wd_path[wd] = folder
        self.path_wd[folder] = wd
        self.polled.pop(folder, None)
        return True

    def forget(self, folder: str) -> None:
        """Stop watching `folder` and everything below it (gone or moved away)."""
        prefix = folder + os.sep
        for path in [p for p in self.path_wd if p == folder or p.startswith(prefix)]:
            if path in self.anchors:
                continue
            wd = self.path_wd.pop(path)
            self.wd_path.pop(wd, None)
            self.ino.rm(wd)
        for path in [p for p in self.polled if p == folder or p.startswith(prefix)]:
            del self.polled[path]

    def add_tree(self, folder: str, report: list[Path] | None) -> None:
        """Watch `folder` and its sub-folders down to the depth wanted; with `report`, list the wanted
        files found (a folder that appeared after its parent's watch: its files may predate our watch)."""
        stack = [folder]
        while stack:
            current = stack.pop()
            if self.level(current) is None or not self._watch(current):
                continue
            listing: dict[str, tuple[int, int, int]] = {}
            try:
                with os.scandir(current) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False):
                            if self.deeper(current):
                                stack.append(entry.path)
                        elif self.wanted(Path(entry.path)) and entry.is_file(follow_symlinks=False):
                            if report is not None:
                                report.append(Path(entry.path))
                            if current in self.polled:
                                st = entry.stat(follow_symlinks=False)
                                listing[entry.name] = (st.st_size, st.st_mtime_ns, st.st_ino)
            except OSError:
                continue
            if current in self.polled:
                self.polled[current] = listing

    def reconcile_roots(self, *, rewatch: bool = False) -> list[str]:
        """Bring the root and anchor watches in line with the disk; the Rescan reasons for roots that came,
        went or were replaced. `rewatch` (after a queue overflow) re-walks every root."""
        reasons: list[str] = []
        before = dict(self.root_ident)
        for _ in range(_MAX_ROUNDS):
            moved = False
            for r in self.roots:
                ident = dir_ident(r.path, follow=True)
                if ident != self.root_ident.get(r.path):
                    moved = True
                    self.forget(r.path)
                    self.root_ident[r.path] = ident
                    if ident is not None:
                        self.add_tree(r.path, None)
                elif rewatch and ident is not None:
                    self.add_tree(r.path, None)  # after an overflow: watch the folders whose events were lost
            want: set[str] = set()
            for r in self.roots:
                start = os.path.dirname(r.path) if self.root_ident.get(r.path) else r.path
                for folder in (start, *(str(p) for p in Path(start).parents)):
                    if dir_ident(folder) is not None:
                        want.add(folder)
                        break
            for old in self.anchors - want:
                self.anchors.discard(old)
                if self.level(old) is None and old in self.path_wd:
                    wd = self.path_wd.pop(old)
                    self.wd_path.pop(wd, None)
                    self.ino.rm(wd)
            for folder in want - self.anchors:
                try:
                    wd = self.ino.add(folder)
                except OSError as exc:
                    self.limit_hit = self.limit_hit or exc.errno == errno.ENOSPC
                    continue  # the periodic rescan covers a root we cannot anchor
                self.wd_path[wd] = folder
                self.path_wd[folder] = wd
                self.anchors.add(folder)
            rewatch = False
            if not moved and all(dir_ident(r.path, follow=True) == self.root_ident.get(r.path) for r in self.roots):
                break
        for r in self.roots:
            old, new = before.get(r.path), self.root_ident.get(r.path)
            if old is None and new is not None:
                reasons.append(f"root appeared: {r.path}")
            elif old is not None and new is None:
                reasons.append(f"root gone: {r.path}")
            elif old is not None and new is not None and old != new:
                reasons.append(f"root replaced: {r.path}")
        return reasons

    # -- events ---------------------------------------------------------------------------------

    def handle(self, events: list[tuple[int, int, int, bytes]], out: list[object],
               new_dirs: list[str]) -> tuple[bool, bool]:
        """Kernel events → `out` (Changed/Deleted), folders to add in `new_dirs`; returns (overflowed,
        roots need a reconcile)."""
        from daemon.watch import Changed, Deleted

        overflow = roots_dirty = False
        moved_from: dict[int, Path] = {}  # a file move is reported as watchdog did: destination first
        for wd, mask, cookie, raw in events:
            if mask & IN_Q_OVERFLOW:
                overflow = True
                continue
            folder = self.wd_path.get(wd)
            if folder is None:
                continue
            if mask & IN_IGNORED:
                if self.path_wd.get(folder) == wd:
                    del self.path_wd[folder]
                del self.wd_path[wd]
                self.anchors.discard(folder)
                roots_dirty = roots_dirty or self.on_chain(folder)
                continue
            if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                roots_dirty = roots_dirty or self.on_chain(folder)
                continue
            path = os.path.join(folder, os.fsdecode(raw))
            if mask & IN_ISDIR:
                if self.on_chain(path):
                    roots_dirty = True
                elif mask & (IN_CREATE | IN_MOVED_TO):
                    if self.level(path) is not None:
                        new_dirs.append(path)
                elif mask & (IN_DELETE | IN_MOVED_FROM):
                    self.forget(path)
                continue
            if self.level(folder) is None or not self.wanted(Path(path)):
                continue  # an anchor's own files, or a file no source wants
            if mask & (IN_CREATE | IN_MODIFY | IN_MOVED_TO):
                out.append(Changed(Path(path)))
                if mask & IN_MOVED_TO and cookie in moved_from:
                    out.append(Deleted(moved_from.pop(cookie)))
            elif mask & IN_MOVED_FROM:
                moved_from[cookie] = Path(path)
            elif mask & IN_DELETE:
                out.append(Deleted(Path(path)))
        out.extend(Deleted(p) for p in moved_from.values())  # moved out of sight
        return overflow, roots_dirty

    def poll(self, out: list[object]) -> None:
        """One light pass over the polled folders (a worker thread): differences become events. Each
        one first tries for a watch again (the limit may have been raised, or watches freed)."""
        from daemon.watch import Changed, Deleted

        for folder, before in list(self.polled.items()):
            if folder not in self.polled:
                continue  # dropped meanwhile
            del self.polled[folder]
            if not self._watch(folder):
                continue  # gone: its parent's watch or listing sees it if it comes back
            now: dict[str, tuple[int, int, int]] = {}
            subdirs: list[str] = []
            try:
                with os.scandir(folder) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False):
                            if self.deeper(folder):
                                subdirs.append(entry.path)
                        elif self.wanted(Path(entry.path)) and entry.is_file(follow_symlinks=False):
                            st = entry.stat(follow_symlinks=False)
                            now[entry.name] = (st.st_size, st.st_mtime_ns, st.st_ino)
            except OSError:
                self.polled.pop(folder, None)
                continue
            old = before or {}
            out.extend(Changed(Path(folder, name)) for name, key in now.items() if old.get(name) != key)
            out.extend(Deleted(Path(folder, name)) for name in old.keys() - now.keys())
            if folder in self.polled:
                self.polled[folder] = now
            for sub in subdirs:
                if sub not in self.path_wd and sub not in self.polled and self.level(sub) is not None:
                    found: list[Path] = []
                    self.add_tree(sub, found)
                    out.extend(Changed(p) for p in found)
