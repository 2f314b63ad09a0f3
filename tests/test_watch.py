"""The watcher on real inotify, real temp folders, no mocks: the Linux backend (daemon/inotify.py) by
default, the watchdog bridge (the macOS backend) where a test says `backend="watchdog"`.

These are correctness tests: every wait is bounded by a generous `trio.fail_after`, and no test
asserts a latency. Ordering is what we rely on instead: events for one watcher reach the channel in
the order the kernel reported them, so "the first event after X" is a sound check that nothing
unwanted came before it. The watch limit (ENOSPC) is tested in tests/reliability/test_inotify_limits.py.
"""

from __future__ import annotations

import mmap
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio
import trio.testing
from watchdog.utils import BaseThread

from capability import missing

from daemon.watch import Changed, Deleted, Rescan, WatchEvent, _Delivery, watch, watching

pytestmark = [
    pytest.mark.skipif(sys.platform != "linux", reason="exercises inotify"),
    # watchdog 7.1 races itself when `mkdir -p` lands inside a recursive watch (it adds the same
    # sub-folder twice and warns); harmless, and not ours to fix.
    pytest.mark.filterwarnings("ignore:Callback with id:RuntimeWarning"),
]

BOUND = 20.0  # seconds; generous on purpose, never a latency assertion


def run(test: Callable[[], Awaitable[None]]) -> None:
    trio.run(test)
    left = [t for t in threading.enumerate() if isinstance(t, BaseThread)]
    assert not left, f"watchdog threads left running: {left}"


async def until(receive: trio.MemoryReceiveChannel[WatchEvent], want: WatchEvent) -> list[WatchEvent]:
    """Receive until `want` arrives; return everything received before it."""
    seen: list[WatchEvent] = []
    with trio.fail_after(BOUND):
        while (event := await receive.receive()) != want:
            seen.append(event)
    return seen


def write(path: Path, text: str = '{"type":"user"}\n', mode: str = "a") -> None:
    with open(path, mode) as f:
        f.write(text)


def test_create_and_append_jsonl_arrive_as_changed(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    (root / "proj").mkdir(parents=True)
    old = root / "proj" / "old.jsonl"
    write(old)

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        async with watching([root], send):
            write(old)  # append to a file that existed before the watch
            assert await until(receive, Changed(old)) == []
            new = root / "proj2" / "new.jsonl"
            new.parent.mkdir()  # a sub-folder made after the watch started is watched too
            write(new)
            await until(receive, Changed(new))

    run(main)


def test_non_matching_files_and_folders_are_ignored(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        async with watching([root], send):
            write(root / "notes.txt")
            (root / "sub").mkdir()
            (root / "sub" / "notes.md").write_text("x")
            (root / "sub" / "notes.md").unlink()
            write(root / "s.jsonl")
            assert await until(receive, Changed(root / "s.jsonl")) == []

    run(main)


def test_custom_filter_and_moves(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    is_json = lambda p: p.suffix == ".json"  # noqa: E731 - a whole-file JSON format, written atomically

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        async with watching([root], send, wanted=is_json):
            tmp = root / ".session.json.tmp"
            write(tmp, "{}", "w")
            tmp.rename(root / "session.json")  # atomic replace: only the destination matters
            assert await until(receive, Changed(root / "session.json")) == []
            (root / "session.json").rename(root / "renamed.json")
            assert await until(receive, Changed(root / "renamed.json")) == []
            (root / "renamed.json").unlink()
            assert await until(receive, Deleted(root / "renamed.json")) == [Deleted(root / "session.json")]
            write(root / "x.jsonl")  # not wanted by this filter
            write(root / "y.json", "{}", "w")
            assert await until(receive, Changed(root / "y.json")) == []

    run(main)


def test_root_created_later_then_file_inside(tmp_path: Path) -> None:
    root = tmp_path / "home" / ".claude" / "projects"

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        async with watching([root], send):
            root.mkdir(parents=True)  # mkdir -p the whole chain at once
            assert await until(receive, Rescan(f"root appeared: {root}")) == []
            session = root / "-work-repo" / "abc.jsonl"
            session.parent.mkdir()
            write(session)
            await until(receive, Changed(session))

    run(main)


def test_root_chain_created_one_folder_at_a_time(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "c"

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        async with watching([root], send):
            for folder in (tmp_path / "a", tmp_path / "a" / "b"):
                folder.mkdir()
                await trio.sleep(0.05)  # let the anchor move down (correct without it, just less covered)
            root.mkdir()
            assert await until(receive, Rescan(f"root appeared: {root}")) == []
            write(root / "s.jsonl")
            await until(receive, Changed(root / "s.jsonl"))

    run(main)


def test_root_removed_then_recreated(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    (root / "p").mkdir(parents=True)
    write(root / "p" / "s.jsonl")

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        async with watching([root], send):
            (root / "p" / "s.jsonl").unlink()
            (root / "p").rmdir()
            root.rmdir()
            seen = await until(receive, Rescan(f"root gone: {root}"))
            assert seen == [Deleted(root / "p" / "s.jsonl")]
            root.mkdir()  # the watch fell back to the parent, so it sees the root come back
            await until(receive, Rescan(f"root appeared: {root}"))
            write(root / "t.jsonl")
            await until(receive, Changed(root / "t.jsonl"))

    run(main)


def test_root_moved_away_and_replaced(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    root.mkdir()

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        async with watching([root], send):
            root.rename(tmp_path / "projects.bak")  # only the parent sees this
            await until(receive, Rescan(f"root gone: {root}"))
            root.mkdir()
            await until(receive, Rescan(f"root appeared: {root}"))
            write(tmp_path / "projects.bak" / "old.jsonl")  # no longer watched
            write(root / "new.jsonl")
            assert await until(receive, Changed(root / "new.jsonl")) == []

            # Swap in a new folder faster than we look: the inode tells it apart.
            root.rename(tmp_path / "projects.bak2")
            (tmp_path / "projects.new").mkdir()
            (tmp_path / "projects.new").rename(root)
            back = {Rescan(f"root replaced: {root}"), Rescan(f"root appeared: {root}")}  # either, by timing
            with trio.fail_after(BOUND):
                while await receive.receive() not in back:
                    pass
            write(root / "newer.jsonl")
            await until(receive, Changed(root / "newer.jsonl"))

    run(main)


def test_two_roots_one_missing(tmp_path: Path) -> None:
    claude = tmp_path / ".claude" / "projects"
    cursor = tmp_path / ".cursor" / "projects"
    claude.mkdir(parents=True)

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        async with watching([claude, cursor], send):
            transcript = cursor / "repo" / "agent-transcripts" / "t1" / "x.jsonl"
            cursor.mkdir(parents=True)
            assert await until(receive, Rescan(f"root appeared: {cursor}")) == []
            transcript.parent.mkdir(parents=True)
            write(transcript)
            await until(receive, Changed(transcript))
            write(claude / "c.jsonl")
            await until(receive, Changed(claude / "c.jsonl"))

    run(main)


def test_task_form_reports_started_and_closes_its_channel(tmp_path: Path) -> None:
    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        async with trio.open_nursery() as nursery:
            await nursery.start(watch, [tmp_path], send)
            write(tmp_path / "s.jsonl")  # the watch is active once start() returned
            await until(receive, Changed(tmp_path / "s.jsonl"))
            nursery.cancel_scope.cancel()
        with pytest.raises(trio.EndOfChannel):
            while True:
                receive.receive_nowait()

    run(main)


def _inotify_watches() -> int:
    """Watches this process holds, as the kernel lists them (/proc/self/fdinfo of inotify fds)."""
    total = 0
    for fd in Path("/proc/self/fd").iterdir():
        try:
            if Path(f"/proc/self/fd/{fd.name}").readlink().name == "anon_inode:inotify":
                total += Path(f"/proc/self/fdinfo/{fd.name}").read_text().count("inotify wd:")
        except OSError:
            pass
    return total


def test_no_threads_and_the_inotify_fd_is_closed_on_exit(tmp_path: Path) -> None:
    async def main() -> None:
        send, _receive = trio.open_memory_channel[WatchEvent](100)
        before = _inotify_watches()
        threads = set(threading.enumerate())
        async with watching([tmp_path, tmp_path / "missing" / "root"], send):
            assert _inotify_watches() > before
            assert not [t for t in threading.enumerate() if isinstance(t, BaseThread)]
        assert _inotify_watches() == before
        assert set(threading.enumerate()) <= threads | {t for t in threading.enumerate() if "trio" in t.name}

    run(main)


def test_watchdog_backend_threads_are_joined_on_exit(tmp_path: Path) -> None:
    async def main() -> None:
        send, _receive = trio.open_memory_channel[WatchEvent](100)
        async with watching([tmp_path, tmp_path / "missing" / "root"], send, backend="watchdog"):
            assert any(isinstance(t, BaseThread) for t in threading.enumerate())
        assert not [t for t in threading.enumerate() if isinstance(t, BaseThread)]

    run(main)


@pytest.mark.parametrize("backend", ["inotify", "watchdog"])
def test_only_as_deep_as_the_root_asks(tmp_path: Path, backend: str) -> None:
    """depth 1 (Claude Code: <root>/<project>/<id>.jsonl): a file deeper is not reported, and with
    inotify the folders below depth 1 cost no watch (the kernel's own count says so)."""
    root = tmp_path / "projects"
    deep = root / "proj" / "sess" / "subagents"
    deep.mkdir(parents=True)
    for i in range(20):
        (root / "proj" / f"tool-results-{i}").mkdir()

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        before = _inotify_watches()
        async with watching([root], send, depths={root: 1}, backend=backend):
            if backend == "inotify":
                assert _inotify_watches() - before == 3  # projects, proj, and the anchor on its parent
            write(deep / "agent.jsonl")  # below depth: not reported
            (root / "proj" / "sess" / "later").mkdir()
            write(root / "proj" / "sess" / "later" / "x.jsonl")
            newproj = root / "proj2"
            newproj.mkdir()  # a project folder made later is watched (depth 1)
            write(newproj / "s.jsonl")
            assert await until(receive, Changed(newproj / "s.jsonl")) == []
            write(root / "proj" / "s.jsonl")
            # Nothing from below depth 1 came in between (watchdog may repeat the new file's Changed).
            assert set(await until(receive, Changed(root / "proj" / "s.jsonl"))) <= {Changed(newproj / "s.jsonl")}

    run(main)


def test_folder_made_and_filled_at_once_is_reported(tmp_path: Path) -> None:
    """A folder and its file written before the watch on the folder can exist: the listing reports it."""
    root = tmp_path / "projects"
    root.mkdir()

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        async with watching([root], send, depths={root: 2}):
            tmp = tmp_path / "staging"
            (tmp / "inner").mkdir(parents=True)
            write(tmp / "a.jsonl")
            write(tmp / "inner" / "b.jsonl")
            tmp.rename(root / "proj")  # moved in whole: no event is ever raised inside it
            seen = {await receive.receive() for _ in range(2)}
            assert seen == {Changed(root / "proj" / "a.jsonl"), Changed(root / "proj" / "inner" / "b.jsonl")}
            write(root / "proj" / "inner" / "b.jsonl")  # and it is watched from now on
            await until(receive, Changed(root / "proj" / "inner" / "b.jsonl"))

    run(main)


def test_full_channel_drops_events_and_owes_one_rescan() -> None:
    """The overflow policy, on the real trio side of the bridge, fed from a real thread."""

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](1)
        delivery = _Delivery(send, trio.lowlevel.current_trio_token())
        async with trio.open_nursery() as nursery:
            nursery.start_soon(delivery.pay_rescans)

            def flood() -> None:
                for i in range(50):
                    delivery.offer(Changed(Path(f"/s{i}.jsonl")))

            await trio.to_thread.run_sync(flood)
            await trio.testing.wait_all_tasks_blocked()
            assert await receive.receive() == Changed(Path("/s0.jsonl"))
            marker = await receive.receive()
            assert isinstance(marker, Rescan) and marker.reason.startswith("event channel full")
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(trio.WouldBlock):
                receive.receive_nowait()  # everything else was dropped, nothing owed
            delivery.offer(Changed(Path("/after.jsonl")))  # and delivery resumes
            assert await receive.receive() == Changed(Path("/after.jsonl"))
            nursery.cancel_scope.cancel()

    trio.run(main)


@pytest.mark.slow
def test_real_inotify_queue_overflow_becomes_rescan(tmp_path: Path) -> None:
    """Overflow the kernel queue for real: a child process creates more files than
    fs.inotify.max_queued_events while this process holds the GIL, so watchdog's reader cannot drain.
    Pins how watchdog surfaces IN_Q_OVERFLOW (a log record), so an upgrade that changes it fails here."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 200_000:
        missing(f"fs.inotify.max_queued_events = {limit}: too many files to create")
    count = limit + 4096
    root = tmp_path / "root"
    root.mkdir()
    flag_file = tmp_path / "done"
    flag_file.write_bytes(b"\0")
    child = f"""
import mmap, os
for i in range({count}):
    os.mknod(os.path.join({str(root)!r}, f"{{i}}.txt"))
with open({str(flag_file)!r}, "r+b") as f, mmap.mmap(f.fileno(), 1) as m:
    m[0] = 1
"""

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](1000)
        async with watching([root], send):
            with open(flag_file, "r+b") as f, mmap.mmap(f.fileno(), 1) as done:
                proc = subprocess.Popen([sys.executable, "-c", child])
                interval = sys.getswitchinterval()
                sys.setswitchinterval(1000)  # keep the GIL: no syscalls below until the child is done
                give_up = time.monotonic() + 120  # (time.monotonic does not release the GIL)
                try:
                    while done[0] == 0 and time.monotonic() < give_up:
                        pass
                finally:
                    sys.setswitchinterval(interval)
                assert await trio.to_thread.run_sync(proc.wait) == 0
            await until(receive, Rescan("inotify queue overflow"))
            write(root / "after.jsonl")  # watching still works after watchdog rebuilt its watches
            await until(receive, Changed(root / "after.jsonl"))

    run(main)


def test_a_root_that_is_a_symlink_is_watched_through_it(tmp_path: Path) -> None:
    """~/.claude/projects may be a link (dotfiles); what is inside a root is never followed."""
    real = tmp_path / "real-projects"
    (real / "proj").mkdir(parents=True)
    root = tmp_path / "projects"
    root.symlink_to(real, target_is_directory=True)

    async def main() -> None:
        send, receive = trio.open_memory_channel[WatchEvent](100)
        async with watching([root], send, depths={root: 1}):
            write(real / "proj" / "s.jsonl")
            assert await until(receive, Changed(root / "proj" / "s.jsonl")) == []

    run(main)
