"""The resumable session fold: source bytes → Codex rollout body, with no I/O.

Theory of operation
-------------------
`fold(source, state, data, ctx)` takes the bytes of a session file from `state.offset` to its current
end and consumes every *complete* line: one ending in `\\n`, or a final line without one that parses as a
whole JSON object (real Claude files often end so, and nothing longer can start with a complete object).
Any other tail is left for the next call: `state.offset` stops before it, like h11's NEED_DATA. Each
complete line goes through the source plug-in's `parse_line` (→ neutral Message or nothing) and the
messages through the Codex renderer (→ body lines). The state is a plain msgspec value: the engine stores
it in the ledger and later resumes with only the bytes that were appended.

Never raises for content: a line the plug-in cannot parse (malformed, nested past the recursion limit,
a shape its code did not expect) is skipped and counted in `state.source.malformed`, and the fold goes
on with the next line. A line longer than `max_line` bytes is skipped and counted in `state.long_lines`
without being held whole: when its end has not arrived yet the fold consumes what there is and sets
`state.skipping`, and the next call drops bytes up to the next newline.

Folding a file in any split of its bytes gives byte-identical output to folding it at once
(tests/test_fold.py checks this with hypothesis).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Generic, TypeVar

import msgspec

from daemon.codex.render import ThreadState, closing, render
from daemon.sources.base import ParseContext, Source, SourceState
from daemon.transcript import Message

_WS = b" \t\r\n"
_WS_BYTES = frozenset(_WS)
_raw = msgspec.json.Decoder(msgspec.Raw).decode


MAX_LINE = 64 << 20  # default line limit (config `max_line_mb`): Codex reads any length, memory does not


S = TypeVar("S", bound=SourceState)


class FoldState(msgspec.Struct, Generic[S], kw_only=True):
    """Where a session's fold stands; persisted in the ledger (msgpack), typed by the plug-in's state."""

    offset: int = 0  # log shape: bytes of the source consumed so far
    source: S = msgspec.field(default_factory=SourceState)  # the plug-in's state_type
    thread: ThreadState = msgspec.field(default_factory=ThreadState)
    long_lines: int = 0  # lines skipped because they were longer than the line limit
    skipping: bool = False  # inside a line over the limit whose end has not been read yet
    messages: int = 0  # snapshot shape: messages rendered into the thread ...
    digest: bytes = b""  # ... and their chained digest (message_digest)


def new_fold_state(kind: str) -> FoldState:
    """A fresh fold for a session of this source, with the plug-in's own state type."""
    from daemon.sources import SOURCES  # here: `status` reads the ledger without loading every plug-in

    return FoldState(source=SOURCES[kind].state_type())


@functools.cache
def state_decoder(kind: str) -> Callable[[bytes], FoldState]:
    """msgpack → FoldState with the plug-in's state type (built once per kind; the registry is fixed)."""
    from daemon.sources import SOURCES

    source = SOURCES.get(kind)
    state_type = source.state_type if source is not None else SourceState
    return msgspec.msgpack.Decoder(FoldState[state_type]).decode


_encode_message = msgspec.json.Encoder().encode  # JSON, not msgpack: a tool input may hold an int past 64 bits


def message_digest(messages: list[Message]) -> bytes:
    """A chained digest of messages (blake3 over each one's JSON encoding, in order): equal digests of
    the first n messages mean a snapshot still starts with what we wrote."""
    import blake3  # here, not at the top: `status` imports the ledger, which imports this module

    hasher = blake3.blake3()
    for m in messages:
        encoded = _encode_message(m)
        hasher.update(len(encoded).to_bytes(4, "little"))
        hasher.update(encoded)
    return hasher.digest()


def _is_complete_object(chunk: bytes, start: int) -> bool:
    """Whether chunk[start:] is one JSON object (blank around it). Looks at its two ends first, so an
    unfinished long line costs nothing to reject and nothing is copied."""
    i, j = len(chunk) - 1, start
    while i >= j and chunk[i] in _WS_BYTES:
        i -= 1
    while j <= i and chunk[j] in _WS_BYTES:
        j += 1
    if i <= j or chunk[j] != 0x7B or chunk[i] != 0x7D:  # "{" … "}"
        return False
    try:
        _raw(memoryview(chunk)[j:i + 1])
    except msgspec.DecodeError:
        return False
    return True


def complete_end(chunk: bytes, start: int = 0) -> int:
    """How many leading bytes of `chunk` are complete lines (the rest waits for more data)."""
    end = chunk.rfind(b"\n", start) + 1
    if end == 0:
        end = start
    if end < len(chunk) and _is_complete_object(chunk, end):
        return len(chunk)
    return end


def fold(source: Source, state: FoldState, chunk: bytes, ctx: ParseContext,
         max_line: int = MAX_LINE) -> tuple[bytes, FoldState]:
    """Consume the complete lines of `chunk`, the source bytes from `state.offset` on.

    Returns the rendered body lines and the new state; `state` itself is left untouched.
    """
    pos = 0
    skipping = state.skipping
    if skipping:  # the rest of a line over the limit: drop it up to its newline
        nl = chunk.find(b"\n")
        if nl < 0:
            return b"", msgspec.structs.replace(state, offset=state.offset + len(chunk))
        pos, skipping = nl + 1, False
    long_lines = state.long_lines
    last_nl = chunk.rfind(b"\n", pos)
    tail = len(chunk) - (last_nl + 1 if last_nl >= 0 else pos)
    if tail > max_line:  # an unfinished line already over the limit: never wait to hold it whole
        end, skipping, long_lines = len(chunk), True, long_lines + 1
        limit = len(chunk) - tail
    else:
        end = complete_end(chunk, pos)
        limit = end
    view = memoryview(chunk)
    src = msgspec.structs.replace(state.source)
    parse = source.parse_line
    messages: list[Message] = []
    while pos < limit:
        nl = chunk.find(b"\n", pos, limit)
        if nl < 0:
            nl = limit
        if nl - pos > max_line:
            long_lines += 1
        elif nl > pos and (chunk[pos] not in _WS_BYTES or chunk[pos:nl].strip(_WS)):
            try:
                m = parse(src, view[pos:nl], ctx)
            except Exception:  # noqa: BLE001 — one hostile line (nesting past the recursion limit, a
                m = None        # shape the plug-in did not expect) is skipped and counted, never fatal
                src.malformed += 1
            if m is not None:
                if type(m) is tuple:  # one line that held several records (a glued line)
                    messages.extend(m)
                else:
                    messages.append(m)
        pos = nl + 1
    body, thread = render(state.thread, messages)
    return body, FoldState(offset=state.offset + end, source=src, thread=thread, long_lines=long_lines,
                           skipping=skipping)


__all__ = ["MAX_LINE", "FoldState", "ParseContext", "closing", "complete_end", "fold", "message_digest",
           "new_fold_state", "state_decoder"]
