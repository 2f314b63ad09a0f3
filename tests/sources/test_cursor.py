"""Cursor agent CLI source: records → messages, `<user_query>` unwrapping, discovery and cwd decoding."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from daemon.sources import default_roots
from daemon.sources.base import ParseContext, SourceState
from daemon.sources.cursor import MAX_PATH_PROBES, SOURCE, decode_project_dir, unwrap_query
from message_view import View as Message, view

MTIME_MS = 1_780_488_000_789  # file mtime: the fallback timestamp, whole seconds
CTX = ParseContext(mtime_ms=MTIME_MS)
FALLBACK = 1_780_488_000_000


def rec(role: str | None = "user", content: object = "hello", **extra) -> dict:
    r: dict = {} if role is None else {"role": role}
    r["message"] = {"content": content}
    r.update(extra)
    return r


def parse(*objs: object, ctx: ParseContext = CTX) -> tuple[list[Message], SourceState]:
    st = SourceState()
    out = []
    for o in objs:
        raw = o if isinstance(o, bytes) else json.dumps(o, ensure_ascii=False).encode()
        if (m := view(SOURCE.parse_line(st, raw, ctx))) is not None:
            out.append(m)
    return out, st


def one(obj: object) -> Message | None:
    msgs, _ = parse(obj)
    return msgs[0] if msgs else None


# ---------------------------------------------------------------- records


def test_role_key_decides_type_ignored():
    assert one(rec("user", [{"type": "text", "text": "hi"}])) == Message("user", "hi", FALLBACK)
    assert one(rec("assistant", "ok")) == Message("assistant", "ok", FALLBACK)
    assert one({"type": "assistant", "message": {"content": "type-only record (no role)"}}) is None
    assert one({"type": "user", "role": "assistant", "message": {"content": "x"}}).role == "assistant"
    assert one(rec("system", "x")) is None
    assert one(rec("tool", "x")) is None


@pytest.mark.parametrize("extra", [{"isMeta": True}, {"isSidechain": True}])
def test_meta_and_sidechain_dropped(extra):
    assert one(rec("user", "x", **extra)) is None
    assert one(rec("assistant", "x", **extra)) is None


def test_content_rules_shared_with_claude():
    assert one(rec("user", "  spaced  ")).text == "  spaced  "
    assert one(rec("user", "  \n ")) is None
    assert one(rec("user", None)) is None
    assert one({"role": "user"}) is None
    m = one(rec("user", [{"type": "tool_result", "tool_use_id": "t1", "content": "print('hi')"}]))
    assert m == Message("assistant", "[external_agent_tool_result]\nprint('hi')\n[/external_agent_tool_result]", FALLBACK)
    m = one(rec("assistant", [{"type": "text", "text": "Je regarde."},
                              {"type": "tool_use", "name": "ReadFile", "input": {"path": "main.py"}}]))
    assert m.text == 'Je regarde.\n\n[external_agent_tool_call: ReadFile]\ninput: {"path":"main.py"}\n[/external_agent_tool_call]'


def test_timestamps():
    msgs, _ = parse(rec("user", "a", timestamp_ms=1_780_488_000_123),
                    rec("assistant", "b", timestamp="2026-06-03T14:00:02+02:00"),
                    rec("assistant", "c"),
                    rec("assistant", "d", timestamp="bogus", timestamp_ms=1_780_488_009_000),
                    rec("assistant", "e", timestamp_ms=1.5e12))
    assert [m.ts_ms for m in msgs] == [1_780_488_000_123, 1_780_488_002_000, FALLBACK, 1_780_488_009_000, FALLBACK]


def test_start_ms_from_first_user_message():
    _, st = parse(rec("assistant", "a", timestamp_ms=1000), rec("user", "u", timestamp_ms=5000))
    assert st.start_ms == 5000
    # without a record time, a parseable <timestamp> context block is the start
    _, st = parse(rec("user", "<timestamp>2026-06-03T12:00:00Z</timestamp>\n<user_query>q</user_query>"))
    assert st.start_ms == 1_780_488_000_000
    # neither: left to the engine (file mtime)
    _, st = parse(rec("user", "<timestamp>Wednesday, Jun 3, 2026, 12:00 PM (UTC)</timestamp><user_query>q</user_query>"))
    assert st.start_ms is None


def test_cwd_embedded_first_record():
    _, st = parse({"cwd": "/embedded"}, rec("user", "x", cwd="/other"))
    assert st.cwd == "/embedded"
    _, st = parse(rec("user", "x"))
    assert st.cwd is None


def test_malformed_counted_and_crlf():
    msgs, st = parse(b"{oops", b"[]", json.dumps(rec("user", "ok")).encode() + b"\r")
    assert st.malformed == 2 and [m.text for m in msgs] == ["ok"]


# ---------------------------------------------------------------- <user_query>


@pytest.mark.parametrize("text,expected", [
    ("<timestamp>Wednesday, Jun 3, 2026, 12:00 PM (UTC)</timestamp>\n<user_query>\n  Réparer le bug ✓ dans main.py\n</user_query>\n",
     "Réparer le bug ✓ dans main.py"),
    ("<user_query>Add a CLI flag</user_query>", "Add a CLI flag"),
    ("  <cursor_commands>/fix</cursor_commands>\n\n<timestamp>x</timestamp> <user_query> q </user_query>  \n", "q"),
    ("<timestamp>a</timestamp><timestamp>b</timestamp><cursor_commands>\nmulti\nline\n</cursor_commands><user_query>q</user_query>", "q"),
    ("<user_query>line one\n\n  line two  </user_query>", "line one\n\n  line two"),
])
def test_unwrap_query(text, expected):
    assert unwrap_query(text)[0] == expected
    assert one(rec("user", [{"type": "text", "text": text}])).text == expected
    assert one(rec("user", text)).text == expected


@pytest.mark.parametrize("text", [
    "<cursor_commands>/fix</cursor_commands>\n<timestamp>x</timestamp>\n<user_query>second</user_query>\ntrailing text keeps the wrapper",
    "hello <user_query>q</user_query>",
    "<other>x</other><user_query>q</user_query>",
    "<timestamp>x</timestamp> plain message",
    "<user_query>   </user_query>",
    "<timestamp>unclosed<user_query>q</user_query>",
    "  just text  ",
])
def test_unwrap_query_keeps_other_text_verbatim(text):
    assert unwrap_query(text)[0] == text
    assert one(rec("user", text)).text == text


def test_assistant_text_never_unwrapped():
    assert one(rec("assistant", "<user_query>q</user_query>")).text == "<user_query>q</user_query>"


# ---------------------------------------------------------------- decode_project_dir


@pytest.fixture
def base():
    """A temp dir whose path has no `-`, `.` or space (pytest's tmp_path has `pytest-of-…`)."""
    d = Path(tempfile.mkdtemp(prefix="ssdcur", dir="/tmp")).resolve()
    assert not any(c in str(d) for c in "-. "), d  # mkdtemp's suffix is [a-z0-9_]: holds under /tmp
    _BASES.append(d)
    yield d
    _BASES.remove(d)
    shutil.rmtree(d)


_BASES: list[Path] = []


def enc(path: Path, leading: bool = True) -> str:
    """Cursor's folder name for `path`: every separator became `-` (the temp base keeps its `_`s)."""
    base = next((b for b in _BASES if path.is_relative_to(b)), Path("/"))
    rel = str(path.relative_to(base))
    s = str(base).rstrip("/").replace("/", "-") + "-" + "".join("-" if c in "/._ " else c for c in rel)
    return s if leading else s[1:]


def test_decode_plain(base: Path):
    d = base / "proj" / "src"
    d.mkdir(parents=True)
    assert decode_project_dir(enc(d), base) == str(d)
    assert decode_project_dir(enc(d, leading=False), base) == str(d)


@pytest.mark.parametrize("name", ["my-proj", "my.proj", "my_proj", "my proj", "a-b.c_d", "web-app.v2"])
def test_decode_separators_inside_a_component(base: Path, name: str):
    d = base / "code" / name / "pkg"
    d.mkdir(parents=True)
    assert decode_project_dir(enc(d), base) == str(d)


def test_decode_underscore_kept_literally(base: Path):
    d = base / "my_proj"
    d.mkdir()
    assert decode_project_dir(str(d).replace("/", "-"), base) == str(d)


def test_decode_dashes_in_several_components(base: Path):
    d = base / "my-org" / "web-app" / "sub.dir"
    d.mkdir(parents=True)
    assert decode_project_dir(enc(d), base) == str(d)


def test_decode_ambiguous_is_none(base: Path):
    (base / "my-proj").mkdir()
    (base / "my" / "proj").mkdir(parents=True)
    assert decode_project_dir(enc(base / "my-proj"), base) is None
    (base / "a.b").mkdir()
    (base / "a_b").mkdir()
    assert decode_project_dir(enc(base / "a.b"), base) is None


def test_decode_missing_or_file_is_none(base: Path):
    assert decode_project_dir(enc(base / "nope" / "x"), base) is None
    (base / "f").write_text("")
    assert decode_project_dir(enc(base / "f"), base) is None


@pytest.mark.parametrize("name", ["-tmp--x", "-tmp-.-x", "-tmp-..-x", "-a:b", "-a\\b", "", "-"])
def test_decode_invalid_components(name: str, base: Path):
    assert decode_project_dir(name, base) is None


def test_decode_empty_window_is_home(tmp_path: Path):
    assert decode_project_dir("empty-window", tmp_path) == str(tmp_path)


def test_decode_probe_budget(base: Path, monkeypatch):
    d = base / "a-b-c-d" / "e-f-g-h" / "i"
    d.mkdir(parents=True)
    calls = []
    real = os.path.isdir

    def counting(p):
        calls.append(p)
        return real(p)

    monkeypatch.setattr("daemon.sources.cursor.os.path.isdir", counting)
    decode_project_dir(enc(d) + "-x-y-z-w-v-u-t-s-r-q-p-o-n-m", base)
    assert len(calls) <= MAX_PATH_PROBES


# ---------------------------------------------------------------- discovery


def _touch(p: Path) -> Path:
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("{}\n")
    return p


def test_discover_recursive_skips_subagents(base: Path):
    home = base / "home"
    root = home / ".cursor" / "projects"
    cwd = base / "work" / "my-app"
    cwd.mkdir(parents=True)
    proj = root / enc(cwd)
    a = _touch(proj / "agent-transcripts" / "c1" / "c1.jsonl")
    b = _touch(proj / "agent-transcripts" / "c2" / "deep" / "x.jsonl")
    c = _touch(proj / "agent-transcripts" / "top.jsonl")
    _touch(proj / "agent-transcripts" / "c1" / "subagents" / "s.jsonl")
    _touch(proj / "agent-transcripts" / "subagents" / "s2.jsonl")
    _touch(proj / "agent-transcripts" / "c1" / "notes.txt")
    _touch(proj / "other" / "z.jsonl")
    e = _touch(root / "empty-window" / "agent-transcripts" / "e1" / "e1.jsonl")
    (root / "no-transcripts").mkdir()
    found = list(SOURCE.discover(root))
    by_path = {i.path: i for i in found}
    assert set(by_path) == {a, b, c, e}
    assert [i.path for i in found if i.path != e] == sorted([a, b, c])
    assert SOURCE.fallback_cwd(by_path[a]) == str(cwd) and by_path[a].session_id == "c1"
    assert by_path[a].kind == "cursor"
    assert SOURCE.fallback_cwd(by_path[e]) == str(home)
    assert list(SOURCE.discover(base / "missing")) == []


def test_identify(base: Path):
    root = base / "h" / ".cursor" / "projects"
    cwd = base / "w"
    cwd.mkdir()
    proj = root / enc(cwd)
    ident = SOURCE.identify(root, proj / "agent-transcripts" / "c" / "c.jsonl")
    assert ident is not None and ident.session_id == "c" and SOURCE.fallback_cwd(ident) == str(cwd)
    assert SOURCE.identify(root, proj / "agent-transcripts" / "c.jsonl") is not None
    assert SOURCE.identify(root, proj / "agent-transcripts" / "c" / "subagents" / "s.jsonl") is None
    assert SOURCE.identify(root, proj / "other" / "c.jsonl") is None
    assert SOURCE.identify(root, proj / "agent-transcripts" / "c.txt") is None
    assert SOURCE.identify(root, base / "elsewhere" / "agent-transcripts" / "c.jsonl") is None


def test_default_roots():
    assert default_roots("cursor", {"HOME": "/h"}) == [Path("/h/.cursor/projects")]
