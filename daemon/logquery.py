"""`session-syncd logs`: read, filter and follow the daemon's JSON log.

Owns: the query side of the log format written by `daemon.log` (which owns the format itself).
The filtering is a pure function over decoded records (`Query`, `matches`, `select`), so it is
testable without files; reading the rotated files in order and following the live file across
rotations is a thin shell around it (`read_log`, `follow_log`, `main`).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Annotated, Any, TextIO

import msgspec

from daemon.config import Paths
from daemon.log import EVENTS, LEVELS, LOG_FILE_NAME, format_fields, log_file, log_files

_RANK = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "exception": 40, "critical": 50}
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*(s|m|h|d|w)")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_HEAD_KEYS = ("timestamp", "level", "event")


class LogHead(msgspec.Struct):
    """The fields a query looks at; the rest of the line is kept raw and only decoded to print."""

    timestamp: Annotated[datetime, msgspec.Meta(tz=True)]
    level: str
    event: str
    session: Any = None
    thread_id: Any = None
    path: Any = None


class Record(msgspec.Struct, frozen=True):
    head: LogHead
    raw: bytes


class Query(msgspec.Struct, frozen=True):
    """What to show. Empty means everything. `events` entries are exact names or `prefix.*`."""

    min_level: str | None = None
    events: tuple[str, ...] = ()
    session: str | None = None
    path: str | None = None
    since: datetime | None = None


_head_decoder = msgspec.json.Decoder(LogHead)
_dict_decoder = msgspec.json.Decoder(dict[str, Any])


def decode_line(raw: bytes) -> Record | None:
    """A log line as a Record, or None if it isn't a JSON object with timestamp/level/event."""
    try:
        return Record(_head_decoder.decode(raw), raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def event_matches(pattern: str, event: str) -> bool:
    if pattern.endswith(".*"):
        return event.startswith(pattern[:-1])
    return event == pattern


def matches(head: LogHead, q: Query) -> bool:
    """The pure filter. A level this tool doesn't know is always shown rather than hidden."""
    if q.min_level is not None and _RANK.get(head.level, 1000) < _RANK[q.min_level]:
        return False
    if q.events and not any(event_matches(p, head.event) for p in q.events):
        return False
    if q.session is not None and q.session not in (_as_str(head.session), _as_str(head.thread_id)):
        return False
    if q.path is not None and (head.path is None or q.path not in _as_str(head.path)):
        return False
    if q.since is not None and head.timestamp < q.since:
        return False
    return True


def select(records: Iterable[Record], q: Query) -> Iterator[Record]:
    return (r for r in records if matches(r.head, q))


def _as_str(value: Any) -> str | None:
    return None if value is None else value if isinstance(value, str) else str(value)


def parse_since(text: str, now: datetime) -> datetime:
    """`10m`, `2h`, `1d`, `1w` (before `now`) or an ISO date/time; naive times are local time."""
    text = text.strip()
    if m := _RELATIVE.fullmatch(text):
        return now - timedelta(seconds=float(m.group(1)) * _UNITS[m.group(2)])
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {text!r}: use an ISO time like 2026-11-30T08:00 or a span like 10m, 2h, 1d"
        ) from None
    return when if when.tzinfo is not None else when.astimezone()


def render_pretty(record: Record, *, utc: bool = False) -> str:
    """`time level event key=value ...`, with a traceback (if any) indented below."""
    ts = record.head.timestamp if utc else record.head.timestamp.astimezone()
    stamp = ts.strftime("%Y-%m-%d %H:%M:%S.") + f"{ts.microsecond // 1000:03d}" + ("Z" if utc else "")
    try:
        fields = _dict_decoder.decode(record.raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        fields = {}
    for key in _HEAD_KEYS:
        fields.pop(key, None)
    tb = fields.pop("exception", None)
    line = f"{stamp} {record.head.level:<7} {record.head.event}"
    if fields:
        line += " " + format_fields(fields)
    if isinstance(tb, str) and tb:
        line += "\n" + "\n".join("    " + t for t in tb.rstrip("\n").splitlines())
    return line


# ---- the shell: files -------------------------------------------------------------------------


class _Lines:
    """Splits a byte stream into complete lines, counting lines that aren't log records."""

    def __init__(self, emit: Callable[[Record], None]) -> None:
        self.emit = emit
        self.partial = b""
        self.skipped = 0

    def feed(self, data: bytes) -> None:
        data = self.partial + data
        *complete, self.partial = data.split(b"\n")
        for raw in complete:
            self._line(raw)

    def end_of_file(self, *, still_written: bool) -> None:
        """An unterminated last line of the live file may be mid-write: leave it alone then."""
        if self.partial and not still_written:
            self._line(self.partial)
            self.partial = b""

    def _line(self, raw: bytes) -> None:
        raw = raw.rstrip(b"\r")
        if not raw.strip():
            return
        record = decode_line(raw)
        if record is None:
            self.skipped += 1
        else:
            self.emit(record)


def _open_all(log_dir: Path) -> list[tuple[Path, IO[bytes]]]:
    """Open every file before reading any, so a rotation mid-read can't make us skip one."""
    opened = []
    for path in log_files(log_dir):
        try:
            opened.append((path, open(path, "rb")))
        except FileNotFoundError:
            continue
    return opened


def read_log(log_dir: Path, lines: _Lines) -> IO[bytes] | None:
    """Feed all existing lines, oldest first; return the live file left open at its end."""
    live: IO[bytes] | None = None
    base = log_file(log_dir)
    opened = _open_all(log_dir)
    try:
        for path, fh in opened:
            while chunk := fh.read(1 << 20):
                lines.feed(chunk)
            if path == base:
                live = fh
            else:
                lines.end_of_file(still_written=False)
    finally:
        for _, fh in opened:
            if fh is not live:
                fh.close()
    return live


def follow_log(
    log_dir: Path, lines: _Lines, live: IO[bytes] | None, *, poll_s: float = 0.25,
    flush: Callable[[], None] = lambda: None,
) -> None:
    """`tail -F`: read what is appended; when the file is rotated, finish the old one, pick up
    any file rotated past us in between, then continue with the new one. Runs until interrupted;
    takes ownership of `live` and closes whatever file it has open when it stops."""
    base = log_file(log_dir)
    current = [live]  # the one open file, reachable from `finally` whichever branch opened it
    try:
        while True:
            fh = current[0]
            if fh is not None and (chunk := fh.read(1 << 20)):
                lines.feed(chunk)
                flush()
                continue
            try:
                st = os.stat(base)
            except FileNotFoundError:
                time.sleep(poll_s)
                continue
            if fh is None:
                current[0] = open(base, "rb")
                continue
            own = os.fstat(fh.fileno())
            if (st.st_dev, st.st_ino) != (own.st_dev, own.st_ino):
                while chunk := fh.read(1 << 20):  # lines written just before the rename
                    lines.feed(chunk)
                lines.end_of_file(still_written=False)
                current[0] = None
                fh.close()
                for path in _rotated_since(log_dir, own):
                    with open(path, "rb") as older:
                        while chunk := older.read(1 << 20):
                            lines.feed(chunk)
                    lines.end_of_file(still_written=False)
                flush()
                continue
            if st.st_size < fh.tell():  # truncated in place: start over
                fh.seek(0)
                lines.partial = b""
                continue
            time.sleep(poll_s)
    finally:
        if current[0] is not None:
            current[0].close()


def _rotated_since(log_dir: Path, old: os.stat_result) -> list[Path]:
    """Files rotated after ours when more than one rotation happened between two polls."""
    newer = []
    for n in range(1, 1000):
        path = log_dir / f"{LOG_FILE_NAME}.{n}"
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return []
        if (st.st_dev, st.st_ino) == (old.st_dev, old.st_ino):
            return list(reversed(newer))
        newer.append(path)
    return []


# ---- the command ------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="session-syncd logs",
        description="Show the daemon's log, oldest first, across rotated files.",
    )
    p.add_argument("--level", choices=[*LEVELS, "warn"], help="minimum level to show")
    p.add_argument("--event", action="append", default=[], metavar="NAME",
                   help="event name, or a prefix like session.* (repeatable)")
    p.add_argument("--session", metavar="ID", help="source session id or Codex thread id")
    p.add_argument("--path", metavar="SUBSTR", help="source path contains SUBSTR")
    p.add_argument("--since", metavar="WHEN", help="ISO time (local if no zone) or 10m, 2h, 1d")
    p.add_argument("-n", "--lines", type=int, metavar="N", help="only the last N matching events")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events until Ctrl-C")
    p.add_argument("--json", action="store_true", help="print the raw JSON lines")
    p.add_argument("--utc", action="store_true", help="show times in UTC instead of local time")
    return p


def main(argv: list[str], paths: Paths, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    """Exit status: 0 (also when nothing matched or on Ctrl-C while following), 2 for bad usage."""
    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        since = parse_since(args.since, datetime.now(timezone.utc)) if args.since else None
    except ValueError as exc:
        print(f"session-syncd logs: {exc}", file=err)
        return 2
    if args.lines is not None and args.lines < 0:
        print("session-syncd logs: --lines must be >= 0", file=err)
        return 2
    for pattern in args.event:
        if not any(event_matches(pattern, name) for name in EVENTS):
            print(f"session-syncd logs: note: {pattern!r} matches no known event", file=err)
    query = Query(
        min_level="warning" if args.level == "warn" else args.level,
        events=tuple(args.event), session=args.session, path=args.path, since=since,
    )

    def show(record: Record) -> None:
        out.write((record.raw.decode("utf-8", "replace") if args.json else render_pretty(record, utc=args.utc)) + "\n")

    log_dir = paths.log_dir
    backlog: deque[Record] | None = deque(maxlen=args.lines) if args.lines is not None else None

    def collect(record: Record) -> None:
        if matches(record.head, query):
            if backlog is not None:
                backlog.append(record)
            else:
                show(record)

    lines = _Lines(collect)
    live: IO[bytes] | None = None
    try:
        live = read_log(log_dir, lines)
        lines.end_of_file(still_written=True)
        for record in backlog or ():
            show(record)
        out.flush()
        if args.follow:
            lines.emit = lambda r: show(r) if matches(r.head, query) else None
            follow_log(log_dir, lines, live, flush=out.flush)
        elif live is None and not log_files(log_dir):
            print(f"session-syncd logs: no log yet at {log_file(log_dir)}", file=err)
    except KeyboardInterrupt:
        pass
    except BrokenPipeError:
        _silence_stdout(out)
        return 0
    finally:
        if live is not None and not live.closed:
            live.close()
    if lines.skipped:
        print(f"session-syncd logs: skipped {lines.skipped} line(s) that were not valid JSON log records",
              file=err)
    return 0


def _silence_stdout(out: TextIO) -> None:
    """After `| head` closed the pipe, point stdout at /dev/null so exit doesn't raise again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
