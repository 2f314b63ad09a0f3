"""daemon.logquery: `session-syncd logs` over real rotated files, and --follow as a real process."""

from __future__ import annotations

import io
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import msgspec
import pytest
import structlog

from daemon import log
from daemon.config import Paths
from daemon.logquery import LogHead, Query, decode_line, event_matches, main, matches, parse_since

REPO = Path(__file__).resolve().parent.parent
NOW = datetime.now(timezone.utc).replace(microsecond=0)


def ts(ago: timedelta) -> str:
    t = NOW - ago
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def line(ago: timedelta, level: str, event: str, **fields: object) -> str:
    return msgspec.json.encode({"timestamp": ts(ago), "level": level, "event": event, **fields}).decode()


H, M = timedelta(hours=1), timedelta(minutes=1)

# Chronological: .2 is oldest, then .1, then the live file.
OLDEST = [
    line(30 * H, "info", "daemon.started", pid=10),
    line(29 * H, "info", "session.imported", session="sess-A", thread_id="thr-A", path="/home/u/.claude/projects/p/a.jsonl", source="claude", bytes=100),
    line(28 * H, "debug", "session.unchanged", session="sess-B", path="/home/u/.claude/projects/q/b.jsonl"),
]
MIDDLE = [
    line(3 * H, "error", "source.error", session="sess-B", path="/home/u/.claude/projects/q/b.jsonl", error="bad json at line 3"),
    "this is not json {",
    line(2 * H, "info", "session.appended", session="sess-A", thread_id="thr-A", path="/home/u/.claude/projects/p/a.jsonl", bytes=40),
    "[1, 2, 3]",
]
CURRENT = [
    line(30 * M, "warning", "session.conflict", thread_id="thr-A"),
    line(20 * M, "info", "session.imported", session="sess-C", thread_id="thr-C", path="/home/u/.cursor/chats/c.json", source="cursor", bytes=7),
    line(5 * M, "info", "rescan.done", duration_ms=12.5, sessions=3),
    line(1 * M, "info", "session.appended", session="sess-A", thread_id="thr-A", path="/home/u/.claude/projects/p/a.jsonl", bytes=5),
]
ALL = OLDEST + MIDDLE + CURRENT
RECORDS = [ln for ln in ALL if ln.startswith("{")]


@pytest.fixture
def paths(tmp_path: Path) -> Paths:
    p = Paths(home=tmp_path, codex_home=tmp_path / ".codex", state_dir=tmp_path / "state")
    p.log_dir.mkdir(parents=True)
    return p


@pytest.fixture
def written(paths: Paths) -> Paths:
    d = paths.log_dir
    (d / "session-syncd.jsonl.2").write_text("\n".join(OLDEST) + "\n")
    (d / "session-syncd.jsonl.1").write_text("\n".join(MIDDLE) + "\n")
    (d / "session-syncd.jsonl").write_text("\n".join(CURRENT) + "\n")
    return paths


def run(paths: Paths, *argv: str) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), paths, stdout=out, stderr=err)
    return code, out.getvalue().splitlines(), err.getvalue()


def only(pred) -> list[str]:  # type: ignore[no-untyped-def]
    return [ln for ln in RECORDS if pred(msgspec.json.decode(ln))]


# ---- the command over files -------------------------------------------------------------------


def test_session_json_returns_exactly_that_sessions_events_in_order(written: Paths) -> None:
    code, out, err = run(written, "--session", "sess-A", "--json")
    assert code == 0
    assert out == only(lambda r: r.get("session") == "sess-A")
    assert len(out) == 3
    assert "skipped 2 line(s)" in err


def test_session_matches_thread_id_too(written: Paths) -> None:
    _, out, _ = run(written, "--session", "thr-A", "--json")
    assert out == only(lambda r: r.get("thread_id") == "thr-A")
    assert any('"session.conflict"' in ln for ln in out)  # has no `session` field, only thread_id


def test_no_filters_reads_rotated_files_oldest_first(written: Paths) -> None:
    code, out, err = run(written, "--json")
    assert (code, out) == (0, RECORDS)
    assert "skipped 2" in err


def test_level_is_a_minimum(written: Paths) -> None:
    _, out, _ = run(written, "--level", "warning", "--json")
    assert out == only(lambda r: r["level"] in ("warning", "error"))
    _, out, _ = run(written, "--level", "debug", "--json")
    assert out == RECORDS


def test_event_exact_and_prefix(written: Paths) -> None:
    _, exact, _ = run(written, "--event", "session.imported", "--json")
    assert exact == only(lambda r: r["event"] == "session.imported")
    _, prefix, _ = run(written, "--event", "session.*", "--json")
    assert prefix == only(lambda r: r["event"].startswith("session."))
    _, both, _ = run(written, "--event", "rescan.*", "--event", "daemon.started", "--json")
    assert both == only(lambda r: r["event"] in ("rescan.done", "daemon.started"))
    _, none, err = run(written, "--event", "session", "--json")
    assert none == [] and "matches no known event" in err


def test_path_substring(written: Paths) -> None:
    _, out, _ = run(written, "--path", ".cursor/", "--json")
    assert out == only(lambda r: ".cursor/" in r.get("path", ""))
    assert len(out) == 1


def test_since_relative_and_absolute(written: Paths) -> None:
    _, out, _ = run(written, "--since", "1h", "--json")
    assert out == CURRENT
    _, out, _ = run(written, "--since", "4h", "--json")
    assert out == [MIDDLE[0], MIDDLE[2], *CURRENT]
    _, out, _ = run(written, "--since", (NOW - 10 * M).isoformat(), "--json")
    assert out == CURRENT[2:]
    code, _, err = run(written, "--since", "yesterday")
    assert code == 2 and "--since" in err


def test_filters_combine(written: Paths) -> None:
    _, out, _ = run(written, "--session", "sess-A", "--since", "1d", "--event", "session.appended", "--json")
    assert out == [MIDDLE[2], CURRENT[3]]


def test_last_n(written: Paths) -> None:
    _, out, _ = run(written, "--event", "session.*", "-n", "2", "--json")
    assert out == CURRENT[1:2] + CURRENT[3:]


def test_pretty_output(written: Paths) -> None:
    _, out, _ = run(written, "--session", "sess-C", "--utc")
    t = NOW - 20 * M
    assert out == [
        f"{t:%Y-%m-%d %H:%M:%S}.000Z info    session.imported session=sess-C thread_id=thr-C "
        "path=/home/u/.cursor/chats/c.json source=cursor bytes=7"
    ]


def test_pretty_output_shows_traceback_indented(paths: Paths) -> None:
    rec = line(M, "error", "source.error", path="/a b", exception="Traceback (most recent call last):\nValueError: x")
    (paths.log_dir / "session-syncd.jsonl").write_text(rec + "\n")
    _, out, _ = run(paths, "--utc")
    assert out[0].endswith('error   source.error path="/a b"')
    assert out[1:] == ["    Traceback (most recent call last):", "    ValueError: x"]


def test_missing_log_is_not_an_error(paths: Paths) -> None:
    code, out, err = run(paths)
    assert (code, out) == (0, [])
    assert "no log yet" in err


def test_half_written_last_line_is_not_counted_as_garbage(paths: Paths) -> None:
    (paths.log_dir / "session-syncd.jsonl").write_text(CURRENT[0] + "\n" + CURRENT[1][:20])
    code, out, err = run(paths, "--json")
    assert (code, out, err) == (0, [CURRENT[0]], "")


def test_bad_usage_returns_2(paths: Paths) -> None:
    assert run(paths, "--level", "loud")[0] == 2
    assert run(paths, "--bogus")[0] == 2


def test_reads_what_daemon_log_writes(paths: Paths) -> None:
    """The two halves of the format agree: configure() + structlog in, `logs` out."""
    log.configure(paths.log_dir, "info", console="none", env={}, max_bytes=600, backup_count=9)
    try:
        logger = structlog.get_logger("session_syncd")
        for i in range(10):
            logger.info("session.imported", session=f"s{i % 3}", thread_id=f"t{i}", path=Path(f"/src/{i}.jsonl"))
    finally:
        log.reset()
    assert len(log.log_files(paths.log_dir)) > 1  # rotation really happened
    code, out, err = run(paths, "--session", "s1", "--json")
    assert code == 0 and err == ""
    assert [msgspec.json.decode(ln)["thread_id"] for ln in out] == ["t1", "t4", "t7"]


# ---- the pure core ----------------------------------------------------------------------------


def head(level: str = "info", event: str = "session.imported", **kw: object) -> LogHead:
    return LogHead(timestamp=NOW, level=level, event=event, **kw)  # type: ignore[arg-type]


def test_parse_since() -> None:
    assert parse_since("10m", NOW) == NOW - 10 * M
    assert parse_since("2h", NOW) == NOW - 2 * H
    assert parse_since("1.5d", NOW) == NOW - timedelta(hours=36)
    assert parse_since("2026-11-30T08:00:00Z", NOW) == datetime(2026, 11, 30, 8, tzinfo=timezone.utc)
    naive = parse_since("2026-11-30T08:00", NOW)
    assert naive.tzinfo is not None and naive == datetime(2026, 11, 30, 8).astimezone()
    with pytest.raises(ValueError):
        parse_since("10 minutes", NOW)


def test_event_patterns() -> None:
    assert event_matches("session.*", "session.imported")
    assert not event_matches("session.*", "sessionx.imported")
    assert not event_matches("session.imported", "session.imported_again")


def test_matches_is_pure_and_conservative() -> None:
    assert matches(head(level="notice"), Query(min_level="error"))  # unknown level: shown
    assert not matches(head(level="info"), Query(min_level="warning"))
    assert not matches(head(), Query(path="x"))  # no path field: no match
    assert matches(head(session=42), Query(session="42"))
    assert not matches(head(), Query(since=NOW + M))


def test_decode_line_requires_the_head_fields() -> None:
    assert decode_line(b'{"timestamp":"2026-11-30T08:00:00.000Z","level":"info","event":"x"}') is not None
    assert decode_line(b'{"level":"info","event":"x"}') is None
    assert decode_line(b'{"timestamp":"2026-11-30T08:00:00","level":"info","event":"x"}') is None  # no zone
    assert decode_line(b"garbage") is None


# ---- --follow as a real process ---------------------------------------------------------------


class Follower:
    """`logs --follow` in a subprocess, with its stdout lines arriving on a queue."""

    def __init__(self, paths: Paths, *argv: str) -> None:
        # Ctrl-C as a terminal delivers it: a suite started in the background by a shell without job
        # control (`cmd &` in a script, some CI runners) hands its children SIGINT ignored, and Python
        # then keeps it ignored, so the follower would never see the SIGINT `stop` sends.
        code = ("import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
                "from pathlib import Path; from daemon.config import Paths; "
                "from daemon.logquery import main; s = Path(sys.argv[1]); "
                "sys.exit(main(sys.argv[2:], Paths(home=s, codex_home=s, state_dir=s)))")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(paths.state_dir), "--follow", *argv],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        assert self.proc.stdout is not None
        stdout = self.proc.stdout
        threading.Thread(target=lambda: [self.lines.put(ln.rstrip("\n")) for ln in stdout], daemon=True).start()

    def expect(self, n: int) -> list[str]:
        """The next n lines; the generous timeout only turns a hang into a failure."""
        got = []
        for _ in range(n):
            try:
                got.append(self.lines.get(timeout=30))
            except queue.Empty:
                pytest.fail(f"follower printed only {got!r}; stderr: {self.stop()[1]}")
        return got

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            _, err = self.proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        return self.proc.returncode, err


@pytest.fixture
def follower_factory() -> Iterator:  # type: ignore[type-arg]
    started: list[Follower] = []

    def start(paths: Paths, *argv: str) -> Follower:
        f = Follower(paths, *argv)
        started.append(f)
        return f

    yield start
    for f in started:
        if f.proc.poll() is None:
            f.proc.kill()
            f.proc.communicate()


def append(path: Path, *lines: str) -> None:
    with open(path, "a") as f:
        f.write("".join(ln + "\n" for ln in lines))


def test_follow_picks_up_appends_and_survives_rotation(written: Paths, follower_factory) -> None:  # type: ignore[no-untyped-def]
    d = written.log_dir
    current = d / "session-syncd.jsonl"
    f = follower_factory(written, "--session", "sess-A", "--json")
    history = only(lambda r: r.get("session") == "sess-A")
    assert f.expect(len(history)) == history  # backlog first: the follower is now running

    new1 = line(timedelta(0), "info", "session.appended", session="sess-A", bytes=1)
    other = line(timedelta(0), "info", "session.appended", session="sess-Z", bytes=1)
    append(current, other, new1)
    assert f.expect(1) == [new1]

    # Rotate as RotatingFileHandler does: a last line into the old file, rename, new file.
    before_rename = line(timedelta(0), "info", "session.appended", session="sess-A", bytes=2)
    append(current, before_rename)
    os.rename(d / "session-syncd.jsonl.1", d / "session-syncd.jsonl.3")
    os.rename(current, d / "session-syncd.jsonl.1")
    after = line(timedelta(0), "info", "session.rewritten", session="sess-A", thread_id="thr-A2")
    append(current, "garbage after rotation", after)
    assert f.expect(2) == [before_rename, after]

    sentinel = line(timedelta(0), "info", "daemon.stopping", session="sess-A")
    append(current, sentinel)
    assert f.expect(1) == [sentinel]  # nothing printed twice before it
    code, err = f.stop()
    assert code == 0
    assert "skipped 3 line(s)" in err  # two in the middle file, one after rotation
    assert f.lines.empty()


def test_follow_waits_for_a_log_that_does_not_exist_yet(paths: Paths, follower_factory) -> None:  # type: ignore[no-untyped-def]
    f = follower_factory(paths, "--json")
    first = line(timedelta(0), "info", "daemon.started", pid=1)
    append(paths.log_dir / "session-syncd.jsonl", first)
    assert f.expect(1) == [first]
    assert f.stop()[0] == 0
