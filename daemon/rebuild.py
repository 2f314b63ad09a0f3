"""`session-syncd ledger rebuild`: a new ledger re-derived from the Codex home, for a ledger that is
corrupt or lost.

Owns moving the old ledger aside (with its -wal/-shm files) and mapping our rollouts back to their
sources. Our rollouts say `originator: "session_syncd"` in their session_meta, and their thread ids are
deterministic (daemon/codex/ids.py): the low 80 bits hash the source identity and the generation, the
top 48 bits are the session's start. So each discovered source session is matched to its threads by
recomputing those 80 bits for generation 0, 1, … — no start time needed, which also recovers the start
reserved for a session whose records carry none.

For each matched session the source is read whole once, as the engine reads a new session. When the
thread holds exactly that rendering, the row is what a completed import would have committed: the next
import reads nothing, and a grown source is appended to the same thread. When it does not (the source
changed since, or cannot be read now), the row points at the thread but says nothing about the source,
so the next import rewrites that same thread — or, if Codex continued it, writes the next generation as
the engine always does. Earlier generations go to `superseded`. Nothing in the Codex home is written.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import msgspec

from daemon import engine
from daemon.codex import ids, store
from daemon.codex.lines import is_codex_metadata
from daemon.codex.render import closing
from daemon.codex.title import choose
from daemon.config import Config, Paths, child_sessions
from daemon.discover import discover
from daemon.fold import new_fold_state
from daemon.ledger import Ledger, Row, Superseded
from daemon.sources import SOURCES
from daemon.sources.base import Identity, shape_of

_ID_BITS = (1 << 80) - 1  # the part of a thread id that does not depend on the start time
_START_SHIFT = 80
GENERATION_GAP = 8  # generations probed past the last one found (a deleted rollout leaves a gap)
META_MAX = 1 << 20  # a session_meta line longer than this is not one of ours
_MARKER_LINE = b'"type":"event_msg","payload":{"type":"agent_message","message":"<EXTERNAL SESSION IMPORTED>"'


class RebuildSummary(msgspec.Struct, kw_only=True):
    moved_aside: list[str] = []  # where the old ledger files went
    rollouts: int = 0  # our rollouts found in the Codex home
    sessions: int = 0  # source sessions discovered
    current: int = 0  # rows whose thread holds the source as it is now (the next import reads nothing)
    behind: int = 0  # rows whose thread the next import rewrites (the source changed or is unreadable)
    superseded: int = 0  # earlier generations recorded
    orphans: int = 0  # our rollouts no discovered source maps to (kept; no row)
    errors: list[str] = []


class _MetaPayload(msgspec.Struct):
    id: str = ""
    originator: str = ""


class _MetaLine(msgspec.Struct):
    type: str
    payload: _MetaPayload


_decode_meta = msgspec.json.Decoder(_MetaLine).decode


@dataclass(frozen=True, slots=True)
class Ours:
    """One of our rollouts: its thread id, where it is, and the start time its id encodes."""

    thread_id: str
    path: Path
    start_ms: int


# -- pure --------------------------------------------------------------------------------------------


def id_bits(thread_id: str) -> int:
    """The start-independent part of a thread id (see daemon/codex/ids.py)."""
    return uuid.UUID(thread_id).int & _ID_BITS


def start_of(thread_id: str) -> int:
    return uuid.UUID(thread_id).int >> _START_SHIFT


def parse_meta(first_line: bytes) -> str | None:
    """The thread id of a rollout whose first line is our session_meta, else None."""
    try:
        meta = _decode_meta(first_line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    if meta.type != "session_meta" or meta.payload.originator != "session_syncd":
        return None
    try:
        uuid.UUID(meta.payload.id)
    except ValueError:
        return None
    return meta.payload.id


def closing_span(data: bytes) -> tuple[int, int] | None:
    """(start, end) of our three closing lines (marker, token_count, task_complete) in a rollout, the
    last such marker winning, as the engine finds them; None when there is none."""
    marker = data.rfind(_MARKER_LINE)
    if marker < 0:
        return None
    start = data.rfind(b"\n", 0, marker) + 1
    end = start
    for _ in range(3):
        end = data.find(b"\n", end) + 1
        if end == 0:
            return None
    return start, end


def generations(bits_of: Iterable[tuple[int, int]], index: Mapping[int, Ours]) -> dict[int, Ours]:
    """Generation → rollout for one session, given (generation, id bits) in generation order; stops
    GENERATION_GAP generations after the last one found."""
    found: dict[int, Ours] = {}
    last = -1
    for generation, bits in bits_of:
        if generation > last + GENERATION_GAP:
            break
        hit = index.get(bits)
        if hit is not None:
            found[generation] = hit
            last = generation
    return found


# -- shell -------------------------------------------------------------------------------------------


def index_rollouts(codex_home: Path, errors: list[str]) -> dict[int, Ours]:
    """Our rollouts under `sessions/`, by id bits."""
    out: dict[int, Ours] = {}
    for path in sorted((codex_home / "sessions").rglob("rollout-*.jsonl")):
        try:
            with path.open("rb") as f:
                first = f.readline(META_MAX)
        except OSError as exc:
            errors.append(f"cannot read {path}: {exc.strerror}; check its permissions (it was not adopted)")
            continue
        thread = parse_meta(first)
        if thread is not None:
            out[id_bits(thread)] = Ours(thread, path, start_of(thread))
    return out


def move_aside(ledger: Path, now: float) -> list[Path]:
    """Rename the ledger and its -wal/-shm files to `<ledger>.broken-<time>[-wal|-shm]` (never over
    an earlier one), so SQLite can still open the copy; return the new names."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    n = 0
    while True:
        base = ledger.with_name(f"{ledger.name}.broken-{stamp}" + (f".{n}" if n else ""))
        if not any(Path(str(base) + s).exists() for s in ("", "-wal", "-shm")):
            break
        n += 1
    moved = []
    for suffix in ("", "-wal", "-shm"):
        own = Path(str(ledger) + suffix)
        if own.exists():
            target = Path(str(base) + suffix)
            os.rename(own, target)
            moved.append(target)
    return moved


def rebuild(cfg: Config, paths: Paths, env: Mapping[str, str]) -> RebuildSummary:
    """Write a new ledger from the Codex home beside the old one, then move the old one aside and the
    new one into place (a crash meanwhile leaves the old ledger where it was). The caller holds the
    pid lock, so no daemon or import writes either."""
    summary = RebuildSummary(moved_aside=[], errors=[])
    now = time.time()
    index = index_rollouts(paths.codex_home, summary.errors)
    summary.rollouts = len(index)
    # Every session, whatever the import selection: an unselected session's thread still needs its row.
    found, warnings = discover(msgspec.structs.replace(cfg, max_age_days=None, max_sessions=None), env)
    summary.errors.extend(warnings)
    summary.sessions = len(found)
    fresh = paths.ledger.with_name(paths.ledger.name + ".rebuilding")
    for suffix in ("", "-wal", "-shm"):  # left by a rebuild that was killed
        Path(str(fresh) + suffix).unlink(missing_ok=True)
    ledger = Ledger(fresh)
    claimed: set[int] = set()
    try:
        for f in found:
            ident = f.ident
            gens = generations(_bits(ident), index)
            if not gens:
                continue
            claimed.update(id_bits(o.thread_id) for o in gens.values())
            for row, superseded in _rows(cfg, paths, ident, gens, now, summary):
                ledger.commit(row, superseded)
            ledger.reserve_start(ident.kind, ident.session_id, gens[max(gens)].start_ms)
    finally:
        ledger.close()  # the last connection: SQLite checkpoints and removes the -wal/-shm files
    summary.moved_aside = [str(p) for p in move_aside(paths.ledger, now)]
    for suffix in ("-wal", "-shm", ""):
        if Path(str(fresh) + suffix).exists():
            os.rename(str(fresh) + suffix, str(paths.ledger) + suffix)
    summary.orphans = len(set(index) - claimed)
    return summary


def _bits(ident: Identity) -> Iterator[tuple[int, int]]:
    generation = 0
    while True:
        yield generation, id_bits(ids.thread_id(ident.kind, ident.session_id, str(ident.path), generation, 0))
        generation += 1


def _rows(cfg: Config, paths: Paths, ident: Identity, gens: dict[int, Ours], now: float,
          summary: RebuildSummary) -> Iterator[tuple[Row, Superseded | None]]:
    """The session's row (once per earlier generation, each time with its `Superseded`)."""

    order = sorted(gens)
    top = order[-1]
    row = _row(cfg, paths, ident, top, gens[top], now, summary)
    if row is None:
        return
    earlier = order[:-1]
    if not earlier:
        yield row, None
    for i, generation in enumerate(earlier):
        summary.superseded += 1
        old = gens[generation]
        yield row, Superseded(thread_id=old.thread_id, source=ident.kind, path=str(ident.path),
                              generation=generation, rollout_path=str(old.path),
                              next_thread=gens[order[i + 1]].thread_id,
                              reason="recovered by ledger rebuild", at=now)


def _row(cfg: Config, paths: Paths, ident: Identity, generation: int, ours: Ours, now: float,
         summary: RebuildSummary) -> Row | None:
    try:
        data = ours.path.read_bytes()
        written = ours.path.stat().st_mtime
    except OSError as exc:
        summary.errors.append(f"cannot read {ours.path}: {exc.strerror}; check its permissions (it was not adopted)")
        return None
    span = closing_span(data)
    if span is None:
        summary.errors.append(f"{ours.path} has no closing lines of ours; the next import treats it as Codex's")
        return None
    meta_end = data.find(b"\n") + 1
    base = dict(source=ident.kind, path=str(ident.path), session_id=ident.session_id, thread_id=ours.thread_id,
                generation=generation, rollout_path=str(ours.path), first_imported_at=written,
                updated_at=written, synced_at=now)
    read = None
    job = engine.Job(ident, None, paths.codex_home, paths.ledger, cfg.max_line_mb << 20,
                     child_sessions=child_sessions(cfg, ident.kind))
    out = engine.Outcome(kind="failed", source=ident.kind, path=str(ident.path), session_id=ident.session_id)
    try:
        snapshot = shape_of(SOURCES[ident.kind], ident) == "snapshot"
        read = (engine._read_snapshot if snapshot else engine._read_log)(job, out)
    except Exception as exc:  # noqa: BLE001 — unreadable now: the row still claims the thread
        summary.errors.append(f"cannot read {ident.path} ({type(exc).__name__}: {exc}); its thread "
                              f"{ours.thread_id} is rewritten by the next import once it can be read")
    if read is not None:
        state = read.state
        body, close = b"".join(read.parts), closing(state.thread)
        ours_end = meta_end + len(body) + len(close)
        rest = data[ours_end:]
        if close and data[meta_end:meta_end + len(body)] == body and data[meta_end + len(body):ours_end] == close:
            # The thread holds this reading: the row a completed import commits. Codex's settings lines
            # after ours are covered by the recorded size; conversation after them is Codex's (the
            # recorded size stops at our closing lines, so the next change makes a new generation).
            size = len(data) if not rest or is_codex_metadata(rest) else ours_end
            if state.source.start_ms is None:
                state.source.start_ms = ours.start_ms
            s = state.source
            summary.current += 1
            return Row(**base, size=read.stat[0], mtime_ns=read.stat[1], inode=read.stat[2],
                       content_hash=read.content_hash, consumed=state.offset, prefix_hash=read.prefix_hash,
                       fold_state=state, rollout_size=size, rollout_tail_hash=store.tail_hash(ours.path, size),
                       rollout_body_end=meta_end + len(body),
                       rollout_body_hash=store.tail_hash(ours.path, meta_end + len(body)),
                       title=choose(s.custom_title, s.ai_title, state.thread.fallback_title, state.thread.saw_user))
    # Behind: a row that matches no stat, no content and no prefix, so the next import reads the source
    # whole and rewrites this thread. With only Codex's settings lines after ours, the recorded size is
    # the file's and the empty fold's closing is empty, so the engine sees our own interrupted write
    # and rewrites in place; with conversation after ours, the size stops at our closing lines and the
    # engine sees Codex's and writes the next generation.
    fresh = new_fold_state(ident.kind)
    fresh.source.start_ms = ours.start_ms
    body_end, ours_end = span
    rest = data[ours_end:]
    size = len(data) if not rest or is_codex_metadata(rest) else ours_end
    summary.behind += 1
    return Row(**base, size=-1, mtime_ns=-1, inode=-1, content_hash=b"", consumed=0, prefix_hash=b"",
               fold_state=fresh, rollout_size=size, rollout_tail_hash=store.tail_hash(ours.path, size),
               rollout_body_end=body_end, rollout_body_hash=store.tail_hash(ours.path, body_end))


def summary_line(s: RebuildSummary) -> str:
    aside = f"moved the old ledger to {s.moved_aside[0]}; " if s.moved_aside else "no ledger to move aside; "
    return (aside + f"{s.current + s.behind} session(s) re-adopted from {s.rollouts} thread(s) in the Codex home "
            f"({s.current} current, {s.behind} to rewrite on the next import, {s.superseded} earlier "
            f"generation(s), {s.orphans} without a source); run `session-syncd import` or start the daemon")


__all__ = ["RebuildSummary", "rebuild", "summary_line", "closing_span", "parse_meta", "id_bits", "generations"]
