"""Hostile input for the fuzz tests: real transcript lines of every agent, and the ways they go bad.

Owns the seeds (lines and rows taken from the project's own fixtures: tests/golden/sources, tests/fixtures)
and the hypothesis strategies that mutate them: truncation, byte flips, invalid UTF-8, lone surrogate
escapes, NUL bytes, a BOM, CRLF, nesting past any recursion limit, a wrong type in any field (structure
aware: every key and index of the decoded record is a target), huge values, glued and split lines. Also
the oracles the tests judge by: which line a plug-in must count as bad, and what valid output looks like.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import strategies as st

TESTS = Path(__file__).resolve().parents[1]
FIXTURES = TESTS / "fixtures"
GOLDEN = TESTS / "golden" / "sources"
CWD = "/w/project"

DEEP = 1200  # levels: past msgspec's recursion limit on Python 3.11 (1000) from any stack depth (3.12 and
#              3.13 decode it: both outcomes must hold the contract), and the line still under the line
#              limit (a longer one is skipped unread, whatever it holds)
SHALLOW_MAX = 40  # nesting we generate on purpose stays far below it (no depth near the limit: the limit
#                   depends on the caller's stack, and a test must not depend on that)
HUGE = 5000  # bytes of a "huge" value: over the line limit the pure tests fold with (LINE_LIMIT)
LINE_LIMIT = 4096

_DEEP_MARK = "\x00deep\x00"
_HUGE_MARK = "\x00huge\x00"


# ---------------------------------------------------------------- seeds


def _lines(path: Path) -> list[bytes]:
    text = path.read_text("utf-8").replace("__CWD__", CWD).replace("@REPO@", CWD)
    return [line.encode() for line in text.splitlines() if line.strip()]


def _files(pattern: str, base: Path = FIXTURES) -> list[Path]:
    return sorted(p for p in base.glob(pattern) if p.is_file())


def seed_lines(kind: str) -> list[bytes]:
    """Every line of the project's fixtures for a line-based agent, as the agent wrote them."""
    if kind in ("claude", "cursor"):
        paths = _files(f"{kind}/*.jsonl", GOLDEN)
    elif kind == "copilot":
        paths = _files("copilot/home/.copilot/session-state/**/*.jsonl")
    elif kind == "qwen":
        paths = _files("qwen/projects/**/*.jsonl")
    elif kind == "gemini":
        paths = _files("gemini/root/tmp/**/*.jsonl")
    else:
        raise ValueError(kind)
    out = [line for p in paths for line in _lines(p)]
    assert out, f"no seed lines for {kind}"
    return out + [json.dumps(extra).encode() for extra in EXTRA_SEEDS.get(kind, ())]


def gemini_documents() -> list[bytes]:
    """The legacy whole-file Gemini sessions (`.json`), compacted to one line each."""
    return [json.dumps(json.loads(p.read_text("utf-8"))).encode() for p in _files("gemini/root/tmp/**/*.json")
            if "sessionId" in p.read_text("utf-8")]


_SQL_ROW = re.compile(r"\('([^']*)', '([^']*)', '([^']*)', (\d+), (\d+),\s*'((?:[^']|'')*)'\)", re.S)


def opencode_rows() -> tuple[list[bytes], list[bytes], list[tuple[str, bytes]]]:
    """(1.x message data, 1.x part data, 2.x (type, data)) from the OpenCode fixtures (SQL and JSON tree)."""
    messages: list[bytes] = []
    parts: list[bytes] = []
    v2: list[tuple[str, bytes]] = []
    v1 = (FIXTURES / "opencode" / "v1.sql").read_text("utf-8").replace("@REPO@", CWD)
    for table in re.split(r"INSERT INTO ", v1)[1:]:
        rows = [m.group(1).replace("''", "'").encode() for m in re.finditer(r"'(\{(?:[^']|'')*\})'", table)]
        if table.startswith("message"):
            messages += rows
        elif table.startswith("part"):
            parts += rows
    for m in _SQL_ROW.finditer((FIXTURES / "opencode" / "v2.sql").read_text("utf-8").replace("@REPO@", CWD)):
        v2.append((m.group(3), m.group(6).replace("''", "'").encode()))
    for p in _files("opencode/storage/message/**/*.json"):
        messages.append(json.dumps(json.loads(p.read_text("utf-8").replace("@REPO@", CWD))).encode())
    for p in _files("opencode/storage/part/**/*.json"):
        parts.append(json.dumps(json.loads(p.read_text("utf-8").replace("@REPO@", CWD))).encode())
    assert messages and parts and v2, (len(messages), len(parts), len(v2))
    return messages, parts, v2


_T = "2026-06-03T12:00:00Z"
#: Shapes the fixtures lack but the plug-ins read (from tests/sources/test_*.py): titles, every block kind.
EXTRA_SEEDS: dict[str, list[dict[str, Any]]] = {
    "claude": [
        {"type": "custom-title", "customTitle": "My title", "sessionId": "s"},
        {"type": "ai-title", "aiTitle": "AI title", "sessionId": "s"},
        {"type": "user", "cwd": CWD, "timestamp_ms": 1780488000000, "isMeta": False, "gitBranch": "dev",
         "message": {"role": "user", "content": [{"type": "text", "text": "<user_query>q</user_query>"},
                                                  {"type": "image", "source": {}}, {"type": "future", "x": 1}]}},
        {"type": "assistant", "timestamp": _T, "message": {"role": "assistant", "content": [
            {"type": "tool_use", "name": "Bash", "input": {"command": "ls", "description": "list"}},
            {"type": "tool_result", "content": [{"type": "text", "text": "a"}], "is_error": True}]}},
    ],
    "cursor": [
        {"role": "user", "timestamp": _T, "message": {"content": "<timestamp>2026-06-03T12:00:00Z</timestamp>"
                                                                 "<user_query>hi</user_query>"}},
        {"role": "assistant", "message": {"content": [{"type": "thinking", "thinking": "t"},
                                                      {"type": "tool_use", "name": "Edit", "input": {"file": "a"}}]}},
    ],
    "copilot": [
        {"type": "user.message", "data": {"content": "typed", "source": "user"}, "timestamp": _T},
        {"type": "assistant.message", "data": {"content": "x", "reasoningText": "r", "toolRequests": [
            {"name": "bash", "arguments": "{\"command\": \"ls\"}"}]}, "timestamp": _T},
        {"type": "tool.execution_complete", "data": {"success": True, "result": "ok"}, "timestamp": _T},
        {"type": "assistant.message", "data": {"content": "sub", "parentToolCallId": "c1"}, "timestamp": _T},
        {"type": "future.event", "data": {}, "timestamp": _T},
    ],
    "gemini": [
        {"$rewindTo": "a1b2c3d4-0000-4000-8000-000000000001"},
        {"$set": {"summary": "A summary", "messages": [{"id": "m1", "type": "user", "content": "checkpoint"}]}},
        {"id": "g1", "timestamp": _T, "type": "gemini", "content": [
            {"functionCall": {"name": "ls", "args": {}}}, {"inlineData": {"mimeType": "image/png"}},
            {"executableCode": {}}, {"fileData": {"mimeType": "text/plain"}}]},
        {"id": "u1", "timestamp": _T, "type": "user", "displayContent": [{"text": "typed"}], "content": "expanded"},
        {"id": "i1", "type": "info", "content": "notice"},
    ],
    "qwen": [
        {"uuid": "q1", "parentUuid": None, "sessionId": "s", "timestamp": _T, "type": "system",
         "subtype": "custom_title", "systemPayload": {"customTitle": "Qwen title", "titleSource": "auto"}},
        {"uuid": "q2", "parentUuid": "q1", "sessionId": "s", "timestamp": _T, "type": "tool_result",
         "toolCallResult": {"status": "error", "responseParts": {"functionResponse": {"response": {"error": "e"}}}}},
        {"uuid": "q3", "parentUuid": "q2", "sessionId": "s", "timestamp": _T, "type": "user",
         "systemPayload": {"hookContext": "h", "displayText": "typed"},
         "message": {"role": "user", "parts": [{"text": "expanded"}, {"inlineData": {"mimeType": "image/png"}}]}},
    ],
}


# ---------------------------------------------------------------- values that do not belong
# Mutations run on a `random.Random` seeded by one hypothesis draw per line: a draw costs ~40 µs, a mutation
# makes dozens of choices, and ≥ 10,000 cases must fit in a minute. Hypothesis still chooses (and
# shrinks) how many lines there are and each line's seed; seed 0 is the first real line, unchanged.


def _nest(depth: int) -> Any:
    value: Any = 1
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


_ODD_INTS = [0, -1, 1, 2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**20, 10**30, 253402300800000, -62135596800001]
_ODD_FLOATS = [1e308, -1e308, 5e-324, 0.5, -0.0, 1.5e15, 1.7803e12]
_ODD_TEXT = ["", " ", "\u2028", "\x00", "\ufeff", "9999-12-31T23:59:59-23:59", "0001-01-01T00:00:00+23:00",
             "1969-12-31T23:59:59Z", "2026-06-03T12:00:00Z", "user", "assistant", "text", "tool_use", "tool_result",
             "HEAD", "custom_title", "session.start", "user.message", "assistant.message", "gemini", "system",
             "tool", "completed", "error", "subagent", "\U0001f600", "<user_query></user_query>", "e\u0301",
             "\x1f\x7f\x85", "/", "..", _DEEP_MARK, _HUGE_MARK]
_CHARS = "ab \n\t\x00\x1f\u2028\u00e9\U0001f600<>/\\\"{}[]"
_KEYS = ["type", "text", "content", "name", "input", "args", "role", "parts", "0", ""]


def wrong_value(rng: random.Random, depth: int = 0) -> Any:
    """A JSON value of any type, leaning to the ones that break code: odd numbers, odd strings, nesting."""
    r = rng.random()
    if r < 0.08:
        return None
    if r < 0.14:
        return rng.random() < 0.5
    if r < 0.26:
        return rng.choice(_ODD_INTS) if rng.random() < 0.6 else rng.randint(-(2**70), 2**70)
    if r < 0.32:
        return rng.choice(_ODD_FLOATS) if rng.random() < 0.5 else rng.uniform(-1e20, 1e20)
    if r < 0.50:
        return rng.choice(_ODD_TEXT)
    if r < 0.62:
        return "".join(rng.choice(_CHARS) for _ in range(rng.randint(0, 12)))
    if r < 0.75 and depth < 3:
        return [wrong_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if r < 0.90 and depth < 3:
        return {rng.choice(_KEYS): wrong_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return _nest(rng.randint(2, SHALLOW_MAX))


#: What a SQLite column can hold (sqlite3 hands over None, int, float, str or bytes, nothing else).
SQLITE = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.floats(), st.text(max_size=10), st.binary(max_size=10),
                   st.sampled_from(["user", "assistant", "shell", "system", 1778300001000, 1.778300001e12]))


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key and index inside a decoded JSON value (the root is `()`)."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def _set(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _set(value[head], rest, new)}
    copy = list(value)
    copy[head] = _set(copy[head], rest, new)
    return copy


def _encode(value: Any, ascii_only: bool) -> bytes:
    raw = json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":")).encode("utf-8", "surrogatepass")
    deep = json.dumps(_DEEP_MARK, ensure_ascii=ascii_only).encode()
    huge = json.dumps(_HUGE_MARK, ensure_ascii=ascii_only).encode()
    return (raw.replace(deep, b"[" * DEEP + b"]" * DEEP)
               .replace(huge, b'"' + b"x" * HUGE + b'"'))


def retyped(rng: random.Random, line: bytes) -> bytes:
    """The line with one to three of its fields (or the record itself) replaced by a value of another type."""
    try:
        value = json.loads(line)
    except ValueError:  # a seed that is already broken (the fixtures keep a few)
        return line
    for _ in range(rng.randint(1, 3)):
        paths = _paths(value)
        # mostly a leaf or an inner field: replacing the root each time would only test "not an object"
        value = _set(value, rng.choice(paths[1:] if len(paths) > 1 and rng.random() < 0.9 else paths),
                     wrong_value(rng))
    return _encode(value, rng.random() < 0.5)


_SNIPPETS = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x00", b"\\ud800", b"\\udfff", b"\\ud83d",
             b"\\u0000", b"\r", b"\xef\xbb\xbf", b'"', b"{", b"}", b"]", b",", b"\\", b"\n", b'{"type":',
             b"[" * DEEP, b"\t"]
_LONE = [b"\\ud800", b"\\udc00", b"\\udbff\\u0041"]


def byte_mutation(rng: random.Random, line: bytes) -> bytes:
    op = rng.choice(("truncate", "flip", "insert", "insert", "bom", "crlf", "surrogate", "deep", "huge"))
    n = len(line)
    at = rng.randint(0, n)
    if op == "truncate":
        return line[:at]
    if op == "flip" and n:
        at = min(at, n - 1)
        return line[:at] + bytes([line[at] ^ rng.randint(1, 255)]) + line[at + 1:]
    if op == "insert":
        return line[:at] + rng.choice(_SNIPPETS) + line[at:]
    if op == "bom":
        return b"\xef\xbb\xbf" + line
    if op == "crlf":
        return line + b"\r"
    if op == "surrogate":  # a lone surrogate escape inside a string value
        q = line.find(b'":"', at)
        q = line.find(b'":"') if q < 0 else q
        return line if q < 0 else line[:q + 3] + rng.choice(_LONE) + line[q + 3:]
    if op == "deep":
        return b"[" * DEEP + b"]" * DEEP if rng.random() < 0.3 else line[:at] + b"[" * DEEP + line[at:]
    if op == "huge":
        return line[:at] + b"y" * HUGE + line[at:]
    return line


def mutate_with(rng: random.Random, seeds: list[bytes]) -> bytes:
    """One line: a real one, a real one gone bad (bytes, types or both), or two glued together."""
    line = rng.choice(seeds)
    how = rng.choice(("keep", "bytes", "bytes", "types", "types", "types", "both", "glue"))
    if how in ("types", "both"):
        line = retyped(rng, line)
    if how in ("bytes", "both"):
        line = byte_mutation(rng, line)
    if how == "glue":
        other = rng.choice(seeds)
        line = rng.choice((line + other, line[: len(line) // 2] + other, line + b" " + other))
    return line


_SEED = st.integers(0, 2**64 - 1)
_INDEX = st.integers(0, 2**16)


def mutate(draw: st.DrawFn, seeds: list[bytes]) -> bytes:
    seed = draw(_SEED)
    return seeds[0] if seed == 0 else mutate_with(random.Random(seed), seeds)


def pick(draw: st.DrawFn, seq: list | tuple) -> Any:
    """One item of `seq` (shrinks towards the first)."""
    return seq[draw(_INDEX) % len(seq)]


def hostile_lines(seeds: list[bytes], min_size: int = 0, max_size: int = 10) -> st.SearchStrategy[list[bytes]]:
    @st.composite
    def lines(draw: st.DrawFn) -> list[bytes]:
        return [mutate(draw, seeds) for _ in range(min_size + draw(_INDEX) % (max_size - min_size + 1))]

    return lines()


#: For the renderer test: any JSON value as a hypothesis strategy (its seed drawn, as above).
WRONG = _SEED.map(lambda seed: wrong_value(random.Random(seed)))


# ---------------------------------------------------------------- oracles


_ROLLOUT_TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
_ROLLOUT_TYPES = {"event_msg", "response_item", "session_meta"}


def check_rollout_lines(body: bytes) -> list[dict[str, Any]]:
    """Every line valid JSON in strict UTF-8 (what Codex's serde reads), with a Codex timestamp; returned."""
    out = []
    if body:
        assert body.endswith(b"\n"), body[-200:]
    for raw in body.splitlines():
        rec = msgspec.json.decode(raw)  # strict: invalid UTF-8 or a lone surrogate raises
        assert isinstance(rec, dict) and rec.get("type") in _ROLLOUT_TYPES, raw[:200]
        assert isinstance(rec.get("timestamp"), str) and _ROLLOUT_TS.fullmatch(rec["timestamp"]), rec["timestamp"]
        out.append(rec)
    return out


def user_texts(body: bytes) -> list[str]:
    return [r["payload"]["message"] for r in check_rollout_lines(body)
            if r["type"] == "event_msg" and r["payload"]["type"] == "user_message"]


def is_blank(line: bytes) -> bool:
    return not line.strip(b" \t\r\n")
