"""daemon.logfile.FileLog writes the very lines (and rotates the very files) daemon.log's file handler does.

Both writers run on real files; only the timestamps may differ between them.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from daemon import log
from daemon.logfile import LOG_FILE_NAME, FileLog

EVENTS = [
    ("info", "import.done", {"imported": 3, "bytes": 12, "duration_ms": 1.5}),
    ("debug", "session.unchanged", {"path": "/x/a.jsonl"}),  # below the level: neither writes it
    ("warning", "session.skipped", {"path": Path("/x/ü b.jsonl"), "reason": "cwd gone", "n": None, "ok": True}),
    ("error", "source.error", {"error": ValueError("bad line"), "source": "claude", "nested": {"a": [1, 2]}}),
] * 4


@pytest.fixture
def _reset_logging() -> Iterator[None]:
    yield
    log.reset()


def _files(log_dir: Path) -> dict[str, list[dict]]:
    out = {}
    for path in sorted(log_dir.iterdir()):
        lines = [json.loads(x) for x in path.read_text().splitlines()]
        for line in lines:
            assert list(line)[:3] == ["timestamp", "level", "event"]
            line.pop("timestamp")
        out[path.name] = lines
    return out


@pytest.mark.usefixtures("_reset_logging")
@pytest.mark.parametrize("max_bytes", [0, 400])
def test_same_lines_and_rotation_as_the_structlog_writer(tmp_path: Path, max_bytes: int) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    log.configure(theirs, "info", console="none", env={}, max_bytes=max_bytes, backup_count=2)
    reference = structlog.get_logger(log.LOGGER_NAME)
    writer = FileLog(ours, "info", max_bytes=max_bytes, backup_count=2)
    for level, event, fields in EVENTS:
        getattr(reference, level)(event, **fields)
        getattr(writer, level)(event, **fields)
    writer.close()
    log.reset()
    got, want = _files(ours), _files(theirs)
    assert got == want
    if max_bytes == 0:
        assert len(want[LOG_FILE_NAME]) == 12  # the three events at or above info, four times
    names = set(want)
    assert names == ({LOG_FILE_NAME} if max_bytes == 0 else {LOG_FILE_NAME, LOG_FILE_NAME + ".1",
                                                             LOG_FILE_NAME + ".2"})
    assert all(e["event"] != "session.unchanged" for lines in got.values() for e in lines)


def test_files_and_folder_are_private(tmp_path: Path) -> None:
    log_dir = tmp_path / "state" / "logs"
    writer = FileLog(log_dir, "debug")
    writer.debug("session.unchanged", path="/x")
    writer.close()
    assert stat.S_IMODE(log_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((log_dir / LOG_FILE_NAME).stat().st_mode) == 0o600
    assert [e["event"] for e in map(json.loads, (log_dir / LOG_FILE_NAME).read_text().splitlines())] == [
        "session.unchanged"]


def test_bad_level_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="log level must be one of"):
        FileLog(tmp_path, "verbose")
