"""Structured logging: one JSON line per event to a rotated file, plus an optional console view.

Owns: the on-disk log format (`session-syncd.jsonl` in the log dir, see `FIELDS`), the canonical
event names (`EVENTS`), and how the console looks (coloured on a TTY, `<prio>level event k=v`
without timestamps under systemd/journald, `timestamp level event k=v` elsewhere, or nothing).
Everything else logs with ``log = structlog.get_logger("session_syncd")`` and
``log.info("session.imported", path=..., thread_id=..., bytes=..., duration_ms=...)``.
`daemon.logfile` holds what the file format shares and writes the same lines without structlog, for
one-shot commands that only log to the file (`import`): structlog costs more to import than they run.

Design: structlog in front of stdlib `logging`. The file needs `RotatingFileHandler`, which is a
stdlib handler; every stdlib handler serialises `emit` (format + one write + flush) under its
own lock, so events from `trio.to_thread` workers never interleave partial lines, and each line
is on disk before the call returns (`logs --follow` and crash forensics see it immediately).
Writes happen synchronously in the caller: a page-cache append costs microseconds, far less
than the bookkeeping a queue thread would add, and nothing is lost on a crash. Going through
stdlib also puts library records (watchdog, ...) into the same file as JSON.

The only process-wide state is what `logging` and `structlog.configure` hold by design (the
root logger's handlers and structlog's processor chain); `configure` replaces exactly the
handlers it installed before, and `reset` removes them, so tests can reconfigure freely.
"""

from __future__ import annotations

import difflib
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, TextIO

import msgspec
import structlog

from daemon.logfile import BACKUP_COUNT, LEVELS, LOG_FILE_NAME, MAX_BYTES, open_private, prepare_dir, timestamp
from daemon.logfile import to_str as _to_str

LOGGER_NAME = "session_syncd"

ConsoleMode = Literal["tty", "journald", "plain", "none"]
CONSOLE_MODES: tuple[ConsoleMode, ...] = ("tty", "journald", "plain", "none")

EVENTS: Mapping[str, str] = MappingProxyType({
    "session.imported": "a source session was imported as a new Codex thread",
    "session.adopted": "a session Codex's own importer had imported was linked to Codex's thread (no second one)",
    "session.appended": "new turns of an already imported session were appended to its thread",
    "session.rewritten": "a session changed other than by appending, so its thread was rebuilt",
    "session.unchanged": "(debug) a session was checked and had nothing new",
    "session.skipped": "a session was deliberately not imported (`reason` says why)",
    "session.conflict": "the Codex side of a thread changed under us, so it was left alone",
    "session.deferred": "a session looked mid-write or locked; it will be retried later",
    "source.error": "reading or parsing a source session failed (`error` says why)",
    "source.deleted": "a source session file disappeared; its thread is kept",
    "rescan.started": "a full rescan of the source roots began",
    "rescan.done": "a full rescan finished (counts, `duration_ms`)",
    "daemon.started": "the daemon process started (version, config, pid)",
    "daemon.ready": "initial scan done and watchers running; the service manager was told",
    "daemon.reload": "the configuration was re-read (SIGHUP or service reload)",
    "daemon.stopping": "shutdown was requested; finishing in-flight work",
    "daemon.stopped": "the daemon exited cleanly",
    "watch.overflow": "the file watcher dropped events; a rescan follows",
    "watch.root_appeared": "a source root that did not exist appeared and is now watched",
    "watch.polling": "the inotify watch limit ran out; unwatched folders are polled (`doctor` says the fix)",
    "import.done": "a one-shot `session-syncd import` finished (counts, `duration_ms`)",
    "notify.failed": "a message to the service manager (sd_notify) could not be sent; logged once",
    "pool.replaced": "a worker process died (its sessions failed and are retried); a new pool took over",
})

FIELDS: Mapping[str, str] = MappingProxyType({
    "timestamp": "RFC 3339 UTC with milliseconds and `Z`, e.g. 2026-11-30T08:16:25.123Z (always first)",
    "level": "debug | info | warning | error | critical (always second)",
    "event": "event name from EVENTS, or a library's message (always third)",
    "session": "the source agent's session id",
    "path": "the source session file",
    "source": "agent kind, e.g. claude, cursor",
    "thread_id": "the Codex thread id",
    "bytes": "bytes read or written",
    "duration_ms": "how long the step took, in milliseconds",
    "error": "one-line error message",
    "exception": "formatted traceback, when one was logged",
    "logger": "stdlib logger name, only on records from other libraries",
})

_SYSLOG_PRIORITY = {"debug": 7, "info": 6, "warning": 4, "error": 3, "critical": 2}
_BARE_VALUE = re.compile(r"[^\s\"'=\\]+")


class UnknownEventError(AssertionError):
    """An event name not in EVENTS; raised only where names are being checked (tests)."""


def assert_known_event(name: str) -> None:
    """Fail with a did-you-mean hint unless `name` is a canonical event (for use in tests)."""
    if name not in EVENTS:
        close = difflib.get_close_matches(name, EVENTS, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownEventError(f"unknown log event {name!r}{hint} (add it to daemon.log.EVENTS)")


def log_file(log_dir: Path) -> Path:
    return log_dir / LOG_FILE_NAME


def log_files(log_dir: Path) -> list[Path]:
    """Existing log files, oldest first: `.N` ... `.1`, then the current one."""
    base = log_file(log_dir)
    rotated: list[tuple[int, Path]] = []
    try:
        for entry in log_dir.iterdir():
            suffix = entry.name[len(LOG_FILE_NAME) + 1:]
            if entry.name.startswith(LOG_FILE_NAME + ".") and suffix.isdigit():
                rotated.append((int(suffix), entry))
    except FileNotFoundError:
        return []
    files = [p for _, p in sorted(rotated, reverse=True)]
    if base.exists():
        files.append(base)
    return files


def console_mode(stream: TextIO, env: Mapping[str, str]) -> ConsoleMode:
    """Pick how the console should look for `stream` (normally stderr).

    journald if JOURNAL_STREAM names this very stream (systemd's documented check), else
    coloured if it is a terminal, else journald if the environment says we run under systemd
    (JOURNAL_STREAM / INVOCATION_ID), else plain. The TTY test comes before the bare
    environment test because those variables leak into shells started from systemd-launched
    terminals, where a human is watching.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        fd = -1
    if fd >= 0 and (journal := env.get("JOURNAL_STREAM")):
        try:
            st = os.fstat(fd)
            if journal == f"{st.st_dev}:{st.st_ino}":
                return "journald"
        except OSError:
            pass
    if fd >= 0 and os.isatty(fd):
        return "tty"
    if env.get("JOURNAL_STREAM") or env.get("INVOCATION_ID"):
        return "journald"
    return "plain"


def format_value(value: Any) -> str:
    """Render a field for `key=value` text: bare when unambiguous, JSON-quoted otherwise."""
    if isinstance(value, bool) or value is None:
        return msgspec.json.encode(value).decode()
    if isinstance(value, (int, float)):
        return str(value)
    text = value if isinstance(value, str) else _to_str(value)
    if text and _BARE_VALUE.fullmatch(text):
        return text
    return msgspec.json.encode(text).decode()


def format_fields(fields: Mapping[str, Any]) -> str:
    return " ".join(f"{k}={format_value(v)}" for k, v in fields.items())


def _timestamp(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict["timestamp"] = timestamp()
    return event_dict


def _require_known_event(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    assert_known_event(event_dict.get("event", ""))
    return event_dict


def _head_first(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """timestamp, level, event lead every line so humans and `grep` find them in one place."""
    head = {
        "timestamp": event_dict.pop("timestamp", ""),
        "level": event_dict.pop("level", "info"),
        "event": event_dict.pop("event", ""),
    }
    head.update(event_dict)
    return head


def _json_renderer() -> structlog.types.Processor:
    encoder = msgspec.json.Encoder(enc_hook=_to_str)

    def render(_: Any, __: str, event_dict: dict[str, Any]) -> str:
        return encoder.encode(event_dict).decode()

    return render


def _text_renderer(*, with_timestamp: bool, priority_prefix: bool) -> structlog.types.Processor:
    """`[timestamp ]level event k=v`; the journald flavour prefixes `<N>` so journald records the
    priority (`journalctl -p err` works) and strips it from the message; no timestamp there,
    journald stamps every line itself."""

    def render(_: Any, __: str, event_dict: dict[str, Any]) -> str:
        ts = event_dict.pop("timestamp", "")
        level = event_dict.pop("level", "info")
        event = event_dict.pop("event", "")
        tb = event_dict.pop("exception", None)
        parts = [ts] if with_timestamp and ts else []
        parts += [level, str(event)]
        if event_dict:
            parts.append(format_fields(event_dict))
        lines = [" ".join(parts)]
        if tb:
            lines += ["  " + line for line in str(tb).rstrip("\n").splitlines()]
        if priority_prefix:
            prefix = f"<{_SYSLOG_PRIORITY.get(level, 6)}>"
            lines = [prefix + line for line in lines]
        return "\n".join(lines)

    return render


def _local_time(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """On a terminal, local wall-clock time is what people compare against."""
    ts = event_dict.get("timestamp")
    if isinstance(ts, str) and ts.endswith("Z"):
        try:
            dt = datetime.fromisoformat(ts).astimezone()
            event_dict["timestamp"] = dt.strftime("%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"
        except ValueError:
            pass
    return event_dict


def _plain_values(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """ConsoleRenderer shows repr(); on a terminal `/a/b` reads better than `PosixPath('/a/b')`."""
    for key, value in event_dict.items():
        if key != "exc_info" and not isinstance(value, (str, int, float, bool, type(None))):
            event_dict[key] = _to_str(value)
    return event_dict


class _OurHandler:
    """Marker: handlers `configure` installed, so a reconfigure replaces only those."""


class _PrivateRotatingFileHandler(_OurHandler, logging.handlers.RotatingFileHandler):
    """RotatingFileHandler whose files are created 0600: logs name the user's files and sessions."""

    def _open(self) -> TextIO:
        fd = open_private(self.baseFilename)
        try:
            return open(fd, "a", encoding=self.encoding, errors=self.errors)
        except BaseException:
            os.close(fd)
            raise

    def emit(self, record: logging.LogRecord) -> None:
        """Format once and write once (stdlib's shouldRollover formats every record twice and
        stats the file twice); the size check uses the real end of file, so it stays right
        even if the file was truncated or appended to by someone else."""
        try:
            line = self.format(record) + "\n"
            if self.stream is None:
                self.stream = self._open()
            if self.maxBytes > 0 and self.stream.seek(0, os.SEEK_END) + len(line) >= self.maxBytes:
                self.doRollover()
                if self.stream is None:
                    self.stream = self._open()
            self.stream.write(line)
            self.stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


class _ConsoleHandler(_OurHandler, logging.StreamHandler):  # type: ignore[type-arg]
    pass


def _our_handlers(root: logging.Logger) -> list[logging.Handler]:
    return [h for h in root.handlers if isinstance(h, _OurHandler)]


def reset() -> None:
    """Remove and close the handlers `configure` installed and restore structlog's defaults."""
    root = logging.getLogger()
    for handler in _our_handlers(root):
        root.removeHandler(handler)
        handler.close()
    structlog.reset_defaults()


def configure(
    log_dir: Path,
    level: str,
    *,
    console: ConsoleMode,
    env: Mapping[str, str],
    stream: TextIO | None = None,
    strict_events: bool = False,
    max_bytes: int = MAX_BYTES,
    backup_count: int = BACKUP_COUNT,
) -> Path:
    """Send every log event to `<log_dir>/session-syncd.jsonl` (and the console per `console`).

    Process-wide by design (structlog and `logging` are): call once at start-up, again on
    reload. `stream` defaults to stderr. `strict_events` makes logging an event name missing
    from EVENTS raise UnknownEventError, for test suites. Returns the log file path.
    """
    level = level.lower()
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    if console not in CONSOLE_MODES:
        raise ValueError(f"console must be one of {', '.join(CONSOLE_MODES)}, not {console!r}")

    prepare_dir(log_dir)

    foreign_pre_chain: list[structlog.types.Processor] = [
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        _timestamp,
    ]
    file_handler = _PrivateRotatingFileHandler(
        log_file(log_dir), maxBytes=max_bytes, backupCount=backup_count, encoding="utf-8"
    )
    file_handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=foreign_pre_chain,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            _head_first,
            _json_renderer(),
        ],
    ))
    handlers: list[logging.Handler] = [file_handler]

    if console != "none":
        if console == "tty":
            no_color = bool(env.get("NO_COLOR")) or env.get("TERM") == "dumb"
            console_processors: list[structlog.types.Processor] = [
                _local_time, _plain_values, structlog.dev.ConsoleRenderer(colors=not no_color)]
        else:
            console_processors = [
                structlog.processors.format_exc_info,
                _text_renderer(with_timestamp=console == "plain", priority_prefix=console == "journald"),
            ]
        console_handler = _ConsoleHandler(stream if stream is not None else sys.stderr)
        console_handler.setFormatter(structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=foreign_pre_chain,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *console_processors],
        ))
        handlers.append(console_handler)

    root = logging.getLogger()
    for old in _our_handlers(root):
        root.removeHandler(old)
        old.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level.upper())

    processors: list[structlog.types.Processor] = [
        structlog.stdlib.filter_by_level,
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        _timestamp,
    ]
    if strict_events:
        processors.append(_require_known_event)
    processors.append(structlog.stdlib.ProcessorFormatter.wrap_for_formatter)
    structlog.configure(
        processors=processors,
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: a module-level logger first used before configure() (or in an earlier
        # test) would otherwise keep a stale chain forever; the per-call cost is ~1 µs.
        cache_logger_on_first_use=False,
    )
    return log_file(log_dir)


def set_level(level: str) -> None:
    """Change the level in place (e.g. on daemon.reload) without reopening files."""
    if level.lower() not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, not {level!r}")
    logging.getLogger().setLevel(level.upper())


def unknown_events(names: Iterable[str]) -> list[str]:
    """The names not in EVENTS, e.g. for a test that scans a log for stray event names."""
    return [n for n in names if n not in EVENTS]
