"""Messages → Codex rollout lines: a pure, resumable fold with the exact turn rules of Codex's importer.

Theory of operation
-------------------
A rollout is `session_meta` + *body* + *closing*. The body is a pure function of the messages seen so
far and only ever grows: a user message closes the open turn (`task_complete` without `completed_at`)
and opens the next (`task_started`, `user_message`, user `response_item`); an assistant message adds an
`agent_message` + assistant `response_item` (dropped before the first user message). The closing lines
(the `<EXTERNAL SESSION IMPORTED>` marker, the token estimate and the last turn's `task_complete` with
`completed_at`) depend only on `ThreadState`, so appending new messages later means: cut the closing
lines, fold the new messages from the stored state, write new closing lines. Folding a transcript in any
number of pieces therefore gives the same bytes as folding it at once (tested with hypothesis).

Line timestamps are the source's own times (never the wall clock) so that output is deterministic.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from daemon.codex import lines as L
from daemon.codex.text import utf8_len
from daemon.codex.title import TitleState
from daemon.codex.notes import message_text
from daemon.transcript import Message, only_tool_results

MARKER = "<EXTERNAL SESSION IMPORTED>"
TURN_PREFIX = "external-import-turn-"


class ThreadState(msgspec.Struct, kw_only=True):
    """Everything the renderer needs to continue a thread; persisted in the ledger."""

    turns: int = 0
    open_started: int | None = None  # started_at (s) of the open turn
    text_bytes: int = 0  # UTF-8 bytes of every rendered message in a turn so far
    token_bytes: int = 0  # ... up to and including the last assistant message (Codex's estimate)
    last_ts_ms: int | None = None  # timestamp of the last message, any role (None if it had none)
    clock_ms: int = 0  # timestamp stamped on the last line written (source time, monotone)
    fallback_title: str | None = None  # the title the user messages give so far (title.py)
    titles: TitleState = TitleState()  # its candidates; frozen, so shared safely
    saw_user: bool = False


def _secs(ms: int | None) -> int | None:
    return None if ms is None else ms // 1000


def _agent(text: str) -> L.AgentMessage:
    return L.AgentMessage(message=text, phase=None, memory_citation=None)


def render(state: ThreadState, messages: Iterable[Message]) -> tuple[bytes, ThreadState]:
    """Fold messages into body lines. `state` is not modified; the new state is returned.

    The hot loop of every import: what changes with every message lives in locals until the end, a
    message's two text lines go into `out` as pieces (one join at the end, not one per line), and a
    timestamp repeated from the message before is not formatted again."""
    s = msgspec.structs.replace(state)
    out: list[bytes] = []
    event_at, encode_json, user_lines, agent_lines = L.event_at, L.encode_json, L.USER_LINES, L.AGENT_LINES
    stamp_of = L.Stamper()
    turns, clock_ms, last_ts_ms = s.turns, s.clock_ms, s.last_ts_ms
    text_bytes, token_bytes = s.text_bytes, s.token_bytes
    stamped_ms, stamp = -1, b""
    for m in messages:
        text = message_text(m.parts)
        if text is None:
            continue  # nothing in it is shown (only reasoning, blank text)
        last_ts_ms = ts_ms = m.ts_ms
        if ts_ms is not None and ts_ms > clock_ms:
            clock_ms = ts_ms
        if clock_ms != stamped_ms:
            stamped_ms, stamp = clock_ms, stamp_of(clock_ms)
        if m.role == "user" and not only_tool_results(m.parts):
            if turns:
                out.append(event_at(stamp, L.TaskComplete(
                    turn_id=f"{TURN_PREFIX}{turns}", last_agent_message=None, started_at=s.open_started)))
            turns += 1
            s.open_started = _secs(ts_ms)
            text_bytes += utf8_len(text)
            s.saw_user = True
            if not s.titles.settled(s.fallback_title):
                s.titles = s.titles.observe(text)
                s.fallback_title = s.titles.best()
            out.append(event_at(stamp, L.TaskStarted(
                turn_id=f"{TURN_PREFIX}{turns}", started_at=s.open_started, model_context_window=None,
                collaboration_mode_kind="default")))
            out += user_lines.pieces(stamp, encode_json(text))
        elif turns:
            text_bytes += utf8_len(text)
            token_bytes = text_bytes
            out += agent_lines.pieces(stamp, encode_json(text))
    s.turns, s.clock_ms, s.last_ts_ms = turns, clock_ms, last_ts_ms
    s.text_bytes, s.token_bytes = text_bytes, token_bytes
    return b"".join(out), s


def closing(state: ThreadState) -> bytes:
    """The lines that end an imported thread; empty when there is no turn yet."""
    if not state.turns:
        return b""
    stamp = L.Stamper()(state.clock_ms)  # the three lines share it: formatted once
    tokens = -(-state.token_bytes // 4)
    usage = L.TokenUsage(total_tokens=tokens)
    return b"".join((
        L.event_at(stamp, _agent(MARKER)),
        L.event_at(stamp, L.TokenCount(info=L.TokenInfo(usage, usage, None), rate_limits=None)),
        L.event_at(stamp, L.TaskComplete(
            turn_id=f"{TURN_PREFIX}{state.turns}", last_agent_message=None, started_at=state.open_started,
            completed_at=_secs(state.last_ts_ms))),
    ))
