"""daemon.log: the JSON file format, thread safety, file modes, console modes. Real files only."""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
import structlog
import trio

from daemon import log

ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """configure() is process-wide; leave no handler pointing into a deleted temp dir."""
    yield
    log.reset()


def read_lines(path: Path) -> list[dict]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return [msgspec.json.decode(line) for line in text.splitlines()]


def test_events_are_json_lines_with_documented_fields(tmp_path: Path) -> None:
    path = log.configure(tmp_path / "logs", "info", console="none", env={})
    assert path == tmp_path / "logs" / "session-syncd.jsonl"
    logger = structlog.get_logger("session_syncd")
    logger.info("session.imported", session="s-1", path=Path("/src/a b.jsonl"), source="claude",
                thread_id="t-1", bytes=123, duration_ms=4.5)
    logger.warning("source.error", session="s-2", error=ValueError("bad line 3"))
    logger.debug("session.unchanged", session="s-3")  # below "info": must not appear

    first, second = read_lines(path)
    assert list(first)[:3] == ["timestamp", "level", "event"]
    assert first == {
        "timestamp": first["timestamp"], "level": "info", "event": "session.imported",
        "session": "s-1", "path": "/src/a b.jsonl", "source": "claude", "thread_id": "t-1",
        "bytes": 123, "duration_ms": 4.5,
    }
    assert ISO_MS_Z.fullmatch(first["timestamp"])
    when = datetime.fromisoformat(first["timestamp"])
    assert when.tzinfo is not None and abs(datetime.now(timezone.utc) - when) < timedelta(minutes=5)
    assert (second["level"], second["event"], second["error"]) == ("warning", "source.error", "ValueError: bad line 3")


def test_debug_level_keeps_debug_events(tmp_path: Path) -> None:
    path = log.configure(tmp_path, "debug", console="none", env={})
    structlog.get_logger("session_syncd").debug("session.unchanged", session="s")
    assert [r["event"] for r in read_lines(path)] == ["session.unchanged"]


def test_exception_traceback_is_one_json_field(tmp_path: Path) -> None:
    path = log.configure(tmp_path, "info", console="none", env={})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        structlog.get_logger("session_syncd").exception("source.error", path="/x")
    (rec,) = read_lines(path)
    assert rec["level"] == "error"
    assert "Traceback" in rec["exception"] and "RuntimeError: boom" in rec["exception"]


def test_other_libraries_stdlib_records_land_in_the_file(tmp_path: Path) -> None:
    path = log.configure(tmp_path, "info", console="none", env={})
    logging.getLogger("watchdog.observers").warning("inotify %s", "overflow")
    (rec,) = read_lines(path)
    assert (rec["level"], rec["event"], rec["logger"]) == ("warning", "inotify overflow", "watchdog.observers")
    assert ISO_MS_Z.fullmatch(rec["timestamp"])


def test_threads_never_interleave_lines(tmp_path: Path) -> None:
    path = log.configure(tmp_path, "info", console="none", env={})
    logger = structlog.get_logger("session_syncd")
    n_threads, per_thread = 8, 300
    payload = "x" * 3000  # long lines make torn writes likely if emit weren't serialised
    barrier = threading.Barrier(n_threads)

    def work(t: int) -> None:
        barrier.wait()
        for i in range(per_thread):
            logger.info("session.appended", session=f"t{t}", seq=i, payload=payload)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    logger.info("daemon.ready")
    for th in threads:
        th.join()

    records = read_lines(path)  # every line must decode on its own
    assert len(records) == n_threads * per_thread + 1
    for t in range(n_threads):
        seqs = [r["seq"] for r in records if r.get("session") == f"t{t}"]
        assert seqs == list(range(per_thread))  # per-thread order preserved, nothing lost
    assert all(r.get("payload", payload) == payload and ISO_MS_Z.fullmatch(r["timestamp"]) for r in records)


def test_trio_to_thread_workers(tmp_path: Path) -> None:
    path = log.configure(tmp_path, "info", console="none", env={})
    logger = structlog.get_logger("session_syncd")

    def import_one(i: int) -> None:
        for j in range(50):
            logger.info("session.imported", session=f"s{i}", thread_id=f"t{i}-{j}", bytes=j)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            for i in range(6):
                nursery.start_soon(trio.to_thread.run_sync, import_one, i)
            logger.info("rescan.started")

    trio.run(run)
    records = read_lines(path)
    assert len(records) == 6 * 50 + 1
    assert {r["event"] for r in records} == {"session.imported", "rescan.started"}


def test_file_is_0600_and_dir_0700_even_with_a_loose_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = log.configure(tmp_path / "state" / "logs", "info", console="none", env={})
    finally:
        os.umask(old)
    structlog.get_logger("session_syncd").info("daemon.started")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_existing_world_readable_file_is_tightened(tmp_path: Path) -> None:
    (tmp_path / "session-syncd.jsonl").write_text("")
    os.chmod(tmp_path / "session-syncd.jsonl", 0o644)
    path = log.configure(tmp_path, "info", console="none", env={})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_rotation_keeps_whole_lines_and_private_files(tmp_path: Path) -> None:
    path = log.configure(tmp_path, "info", console="none", env={}, max_bytes=2000, backup_count=3)
    logger = structlog.get_logger("session_syncd")
    for i in range(60):
        logger.info("session.appended", session="s", seq=i)
    files = log.log_files(tmp_path)
    assert [f.name for f in files] == [
        "session-syncd.jsonl.3", "session-syncd.jsonl.2", "session-syncd.jsonl.1", "session-syncd.jsonl"]
    seqs = [r["seq"] for f in files for r in read_lines(f)]
    assert seqs == list(range(seqs[0], 60))  # oldest dropped, the rest contiguous and in order
    assert all(f.stat().st_size <= 2000 for f in files)
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
    assert path.exists()


def test_reconfigure_moves_output_and_leaves_one_handler(tmp_path: Path) -> None:
    first = log.configure(tmp_path / "a", "info", console="none", env={})
    second = log.configure(tmp_path / "b", "info", console="none", env={})
    structlog.get_logger("session_syncd").info("daemon.reload")
    assert first.read_text() == ""
    assert [r["event"] for r in read_lines(second)] == ["daemon.reload"]


def test_set_level_changes_filtering_in_place(tmp_path: Path) -> None:
    path = log.configure(tmp_path, "warning", console="none", env={})
    logger = structlog.get_logger("session_syncd")
    logger.info("daemon.started")
    log.set_level("info")
    logger.info("daemon.reload")
    assert [r["event"] for r in read_lines(path)] == ["daemon.reload"]


# ---- console ----------------------------------------------------------------------------------


def test_console_mode_plain_for_pipes_and_files(tmp_path: Path) -> None:
    r, w = os.pipe()
    with os.fdopen(r) as rf, os.fdopen(w, "w") as wf:
        assert log.console_mode(wf, {}) == "plain"
        assert log.console_mode(rf, {"HOME": "/x"}) == "plain"
    assert log.console_mode(io.StringIO(), {}) == "plain"


def test_console_mode_journald_from_environment(tmp_path: Path) -> None:
    with open(tmp_path / "f", "w") as f:
        assert log.console_mode(f, {"INVOCATION_ID": "abc"}) == "journald"
        assert log.console_mode(f, {"JOURNAL_STREAM": "1:2"}) == "journald"
        st = os.fstat(f.fileno())
        assert log.console_mode(f, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}) == "journald"


def test_console_mode_tty_and_journal_stream_identity() -> None:
    master, slave = os.openpty()
    try:
        with os.fdopen(slave, "w", closefd=False) as tty:
            assert log.console_mode(tty, {}) == "tty"
            # A terminal started from a systemd service inherits these; a human is still watching.
            assert log.console_mode(tty, {"INVOCATION_ID": "abc", "JOURNAL_STREAM": "1:2"}) == "tty"
            st = os.fstat(slave)
            assert log.console_mode(tty, {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}) == "journald"
    finally:
        os.close(master)
        os.close(slave)


def test_journald_console_has_priority_and_no_timestamp(tmp_path: Path) -> None:
    stream = io.StringIO()
    log.configure(tmp_path, "info", console="journald", env={"INVOCATION_ID": "x"}, stream=stream)
    logger = structlog.get_logger("session_syncd")
    logger.info("session.imported", path="/a b/c.jsonl", thread_id="t1", bytes=12)
    logger.error("source.error", error="bad json")
    assert stream.getvalue().splitlines() == [
        '<6>info session.imported path="/a b/c.jsonl" thread_id=t1 bytes=12',
        '<3>error source.error error="bad json"',
    ]
    assert not re.search(r"\d\d:\d\d:\d\d", stream.getvalue())


def test_plain_console_has_timestamp(tmp_path: Path) -> None:
    stream = io.StringIO()
    log.configure(tmp_path, "info", console="plain", env={}, stream=stream)
    structlog.get_logger("session_syncd").info("daemon.ready", sources=2)
    ts, rest = stream.getvalue().rstrip("\n").split(" ", 1)
    assert ISO_MS_Z.fullmatch(ts) and rest == "info daemon.ready sources=2"


def test_tty_console_is_human_readable(tmp_path: Path) -> None:
    stream = io.StringIO()
    log.configure(tmp_path, "info", console="tty", env={"NO_COLOR": "1"}, stream=stream)
    structlog.get_logger("session_syncd").info("session.imported", path=Path("/src/a.jsonl"))
    out = stream.getvalue()
    assert "session.imported" in out and "path=/src/a.jsonl" in out and "{" not in out
    assert "\x1b[" not in out  # NO_COLOR honoured


def test_console_none_prints_nothing_but_file_still_written(tmp_path: Path) -> None:
    stream = io.StringIO()
    path = log.configure(tmp_path, "info", console="none", env={}, stream=stream)
    structlog.get_logger("session_syncd").info("import.done", imported=3)
    assert stream.getvalue() == ""
    assert [r["event"] for r in read_lines(path)] == ["import.done"]


def test_bad_level_and_mode_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="log level"):
        log.configure(tmp_path, "verbose", console="none", env={})
    with pytest.raises(ValueError, match="console"):
        log.configure(tmp_path, "info", console="fancy", env={})  # type: ignore[arg-type]


# ---- event names ------------------------------------------------------------------------------


def test_events_cover_the_documented_names() -> None:
    expected = {
        "session.imported", "session.appended", "session.rewritten", "session.unchanged",
        "session.skipped", "session.conflict", "session.deferred", "source.error", "source.deleted",
        "rescan.started", "rescan.done", "daemon.started", "daemon.ready", "daemon.reload",
        "daemon.stopping", "daemon.stopped", "watch.overflow", "watch.root_appeared", "watch.polling", "import.done",
        "notify.failed", "pool.replaced", "session.adopted",
    }
    assert set(log.EVENTS) == expected
    assert all(desc and "\n" not in desc for desc in log.EVENTS.values())


def test_assert_known_event_suggests_a_fix() -> None:
    log.assert_known_event("session.imported")
    with pytest.raises(AssertionError, match="did you mean session.imported"):
        log.assert_known_event("session.import")
    assert log.unknown_events(["daemon.ready", "daemon.readyy"]) == ["daemon.readyy"]


def test_strict_events_rejects_unknown_names_at_the_call(tmp_path: Path) -> None:
    path = log.configure(tmp_path, "info", console="none", env={}, strict_events=True)
    logger = structlog.get_logger("session_syncd")
    logger.info("daemon.started")
    with pytest.raises(log.UnknownEventError):
        logger.info("daemon.strated")
    assert [r["event"] for r in read_lines(path)] == ["daemon.started"]
