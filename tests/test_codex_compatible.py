"""`session-syncd import --codex-compatible` against Codex's own importer, line for line (issue 8).

Why: the mode promises the rollout Codex's importer writes for the same source, except what Codex draws
at random or from the clock (thread / session / window ids, file names, line and session_meta
timestamps) and the differences README lists (`base_instructions`, the client's `originator` and
`source`, `cli_version` of a newer Codex). So each tree below is imported twice from the same HOME:
by the real `codex app-server` (`externalAgentConfig/detect` + `import`, both versions `make test`
installs) into one Codex home, and by our real CLI into another. Then, per source: the same sessions
were taken (selection), and after normalising only the values above every line is equal (key order
included); the title is Codex's; no session_index.jsonl. A failure names the first differing line.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "golden"))

from codex_app_server import CodexAppServer, codex_bin_params, codex_version  # noqa: E402
from regenerate import SOURCES as GOLDEN_SOURCES  # noqa: E402
from support import Tree, git, ledger_rows, make_fixture, make_git_repo, run_import  # noqa: E402


BINS = codex_bin_params()
OLD = 36500  # days: a max age that takes every hand-made source (their times are fixed, in the past)
CLIENT = ("session-syncd-tests", "vscode")  # originator, source Codex's app-server writes for our test client
OURS = ("codex_cli_rs", "cli")  # what Codex's own CLI (`/import`) writes, and so do we
ID, STAMP = "<id>", "<now>"


# -- running both importers ------------------------------------------------------------------------

def codex_import(tree: Tree, codex_home: Path, binary: str, detect: dict[str, int]) -> dict[str, dict[str, Any]]:
    """Codex's importer for Claude and Cursor; {canonical source path: its ledger record}."""
    with CodexAppServer(tree.home, codex_home, binary=binary, timeout=60, cwd=tree.root) as codex:
        for source in (None, "cursor"):
            items = codex.detect(source, **detect)
            if items:
                done = codex.import_sessions(items, source, timeout=120)
                failures = [f for r in done["itemTypeResults"] for f in r["failures"]]
                assert not failures, failures
    ledger = codex_home / "external_agent_session_imports.json"
    records = json.loads(ledger.read_text())["records"] if ledger.exists() else []
    return {r["source_path"]: r for r in records}


def our_import(tree: Tree, *args: str) -> dict[str, dict[str, Any]]:
    """`import --codex-compatible ARGS`, or the config key instead of the flag when the tree has a config."""
    by_config = (tree.root / "config" / "session-syncd" / "config.toml").exists()
    summary = run_import(tree, *(() if by_config else ("--codex-compatible",)), *args)
    assert summary["failed"] == 0, summary
    return {str(Path(r["path"]).resolve()): r for r in ledger_rows(tree) if r["rollout_path"]}


def rollout_of(codex_home: Path, thread_id: str) -> Path:
    (found,) = (codex_home / "sessions").rglob(f"rollout-*-{thread_id}.jsonl")
    return found


def _ms(stamp: str) -> int:
    return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)


def normalise(text: str, version: str, ours: bool, window: tuple[int, int] | None = None) -> list[str]:
    """The rollout's lines with ids, wall-clock stamps and the listed differences replaced, checking
    on the way that those values are what each side is expected to write."""
    out = []
    for raw in text.split("\n")[:-1]:  # not splitlines(): U+2028 inside a string is not a line break
        rec = json.loads(raw)
        if window is not None:  # ours: stamped at write time, during our import
            assert window[0] <= _ms(rec["timestamp"]) <= window[1], rec["timestamp"]
        rec["timestamp"] = STAMP
        if rec["type"] == "session_meta":
            meta = rec["payload"]
            assert meta["id"] == meta["session_id"] and meta["context_window"]["window_id"] != meta["id"]
            meta["id"] = meta["session_id"] = meta["context_window"]["window_id"] = ID
            meta["timestamp"] = STAMP
            assert (meta["originator"], meta["source"]) == (OURS if ours else CLIENT)
            meta["originator"], meta["source"] = OURS
            assert meta["cli_version"] == ("0.169.0" if ours else version)
            meta["cli_version"] = "0.169.0"
            if not ours:  # the model's built-in prompt: not ours to know (README)
                assert meta.pop("base_instructions")["provenance"]["type"] == "model"
        out.append(json.dumps(rec, ensure_ascii=False, separators=(",", ":")))
    return out


def assert_same_lines(name: str, ours: list[str], theirs: list[str]) -> None:
    for index, (a, b) in enumerate(zip(ours, theirs)):
        if a != b:
            pytest.fail(f"{name}: line {index + 1} differs\n  ours:  {a[:800]}\n  codex: {b[:800]}")
    assert len(ours) == len(theirs), f"{name}: {len(ours)} lines, Codex wrote {len(theirs)}"


def compare(tree: Tree, binary: str, our_args: tuple[str, ...], detect: dict[str, int]) -> int:
    """Import `tree` both ways; assert parity; return how many sessions were compared."""
    version = codex_version(binary)
    theirs_home = tree.root / "codex-theirs"
    theirs = codex_import(tree, theirs_home, binary, detect)
    began = time.time_ns() // 1_000_000
    ours = our_import(tree, *our_args)
    window = (began, time.time_ns() // 1_000_000)
    assert sorted(ours) == sorted(theirs), "the two importers took different sessions"
    for path, record in sorted(theirs.items()):
        row = ours[path]
        name = os.path.relpath(path, tree.home)
        codex_lines = normalise(rollout_of(theirs_home, record["imported_thread_id"]).read_text(), version, False)
        our_lines = normalise(Path(row["rollout_path"]).read_text(), version, True, window)
        assert_same_lines(name, our_lines, codex_lines)
        assert row["title"] == record["title"], name
    assert not (theirs_home / "session_index.jsonl").exists()
    assert not (tree.codex_home / "session_index.jsonl").exists()
    return len(theirs)


# -- the trees -------------------------------------------------------------------------------------

@pytest.fixture
def root() -> Iterator[Path]:
    """A folder whose path has no `-`: Codex decodes a Cursor project folder's name back into its cwd
    only when at most one path component has a dash (README lists this difference), and pytest's
    tmp_path has several."""
    made = Path(os.path.realpath(tempfile.mkdtemp(prefix="cc")))
    assert "-" not in str(made), f"TMPDIR {made.parent} has a '-': point TMPDIR elsewhere for this test"
    try:
        yield made
    finally:
        shutil.rmtree(made, ignore_errors=True)


@pytest.mark.codex
@pytest.mark.slow
@pytest.mark.parametrize("codex_bin", BINS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fixture_trees(root: Path, codex_bin: str, seed: int) -> None:
    """The generator's Claude and Cursor trees with Codex's default selection (30 days, 50 newest);
    seed 2 turns the mode on with the config key instead of the flag; seed 3 with a limit of 2
    sessions per agent on both sides."""
    tree = make_fixture(root, sessions=4, mib=0.4, cursor=3, seed=seed)
    if seed == 2:
        (root / "config" / "session-syncd").mkdir(parents=True)
        (root / "config" / "session-syncd" / "config.toml").write_text("codex_compatible = true\n")
    limit = {"max_sessions": 2} if seed == 3 else {}
    n = compare(tree, codex_bin, ("--max-sessions", "2") if limit else (), limit)
    assert n == (4 if limit else 7)


CWD_PROJECT = "proj"


def _claude(tree: Tree, name: str, records: list[dict[str, Any] | str], cwd: Path) -> Path:
    """A Claude Code session file: records as Claude Code writes them (raw strings written as they are)."""
    folder = tree.home / ".claude" / "projects" / str(cwd).replace("/", "-")
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, rec in enumerate(records):
        if isinstance(rec, str):
            lines.append(rec)
            continue
        full = {"parentUuid": None, "isSidechain": False, "userType": "external", "cwd": str(cwd),
                "sessionId": name, "version": "2.0.14", "gitBranch": "main", **rec,
                "uuid": f"00000000-0000-4000-8000-{i:012d}"}
        full.setdefault("timestamp", f"2026-06-0{1 + i // 60 % 9}T12:{i % 60:02d}:00.250Z")
        lines.append(json.dumps(full, ensure_ascii=False))
    path = folder / f"{name}.jsonl"
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _user(content: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "user", "message": {"role": "user", "content": content}, **extra}


def _assistant(content: Any, **extra: Any) -> dict[str, Any]:
    return {"type": "assistant", "message": {"role": "assistant", "model": "claude-x", "content": content}, **extra}


def edge_cases(tree: Tree) -> None:
    cwd = tree.root / "work" / CWD_PROJECT
    cwd.mkdir(parents=True)
    repo = tree.root / "work" / "repo"
    repo.mkdir()
    make_git_repo(repo, "https://example.invalid/edge.git")
    git(repo, "checkout", "-q", "-b", "feature/now")  # HEAD's branch, not the one the agent recorded
    huge = "x" * 300_000 + "ünïcödé"
    _claude(tree, "unicode", [
        _user("Ünïcödé: naïve café ☕ 𝔘𝔫𝔦 👩‍💻 עברית e\u0301 \u0000 nul \u2028 sep"),
        _assistant([{"type": "text", "text": "Ответ 🙂 — «ok» \t tab"}]),
        '{"type":"user","message":{"role":"user","content":"lone \\ud800 surrogate"}}',
        _user("  leading and trailing whitespace kept  \r\n"),
    ], cwd)
    _claude(tree, "empty", [], cwd)
    _claude(tree, "meta_only", [
        {"type": "summary", "summary": "Nothing here", "leafUuid": "x"},
        _user("<local-command-caveat>Caveat: …</local-command-caveat>", isMeta=True),
        _user("side question", isSidechain=True),
        {"type": "system", "content": "hook ran", "level": "info"},
    ], cwd)
    _claude(tree, "assistant_only", [_assistant([{"type": "text", "text": "Hello?"}])], cwd)
    _claude(tree, "tools_images_errors", [
        _user([{"type": "text", "text": "Look at this"}, {"type": "image", "source": {"type": "base64",
              "media_type": "image/png", "data": "iVBORw0KGgo="}}]),
        _assistant([{"type": "thinking", "thinking": "hmm", "signature": "s"}]),
        _assistant([{"type": "tool_use", "id": "t1", "name": "Bash",
                     "input": {"command": "pytest -q", "description": "Run tests", "timeout": 5}}]),
        _user([{"type": "tool_result", "tool_use_id": "t1", "is_error": True, "content": "E   boom\nFAILED"}],
              toolUseResult={"stdout": "", "stderr": "boom"}),
        _assistant([{"type": "tool_use", "id": "t2", "name": "Read", "input": {"file_path": "/a.py"}}]),
        _user([{"type": "tool_result", "tool_use_id": "t2", "content": [
            {"type": "text", "text": "line 1"}, {"type": "image", "source": {}}, {"type": "text", "text": ""}]}]),
        _assistant([{"type": "tool_use", "id": "t3", "name": "Write", "input": {"content": huge[:5000]}}]),
        _user([{"type": "tool_result", "tool_use_id": "t3", "content": huge}]),
        _assistant([{"type": "redacted_thinking", "data": "zz"}, {"type": "text", "text": "Fixed."}]),
        _user([{"type": "tool_result", "tool_use_id": "t4", "content": "x"}, {"type": "text", "text": "and now?"}]),
    ], cwd)
    _claude(tree, "titles", [
        _user("first prompt"),
        {"type": "ai-title", "aiTitle": "An AI title", "sessionId": "titles"},
        _assistant([{"type": "text", "text": "ok"}]),
        {"type": "custom-title", "customTitle": "  Old name ", "sessionId": "titles"},
        {"type": "custom-title", "customTitle": "  Final name\t", "sessionId": "titles"},
    ], cwd)
    _claude(tree, "ai_title_only", [_user("do it"), {"type": "ai-title", "aiTitle": "Doing it"}], cwd)
    _claude(tree, "command_wrappers", [
        _user("<command-message>init is analyzing your codebase…</command-message>\n<command-name>/init</command-name>"),
        _user("<local-command-caveat>Caveat: The messages below were generated by the user while running local "
              "commands. DO NOT respond to these messages.</local-command-caveat>"),
        _user("<command-name>/model</command-name>\n<command-args>opus</command-args>"),
        _user("<local-command-stdout>Set model to opus</local-command-stdout>"),
        _assistant([{"type": "text", "text": "Working."}]),
        _user("[Request interrupted by user]"),
        _user("<user_query>  the real question  </user_query>"),
    ], cwd)
    _claude(tree, "blank_first_line", [_user("\n\n  second line is the title\nthird")], cwd)
    _claude(tree, "git_cwd", [
        _user("in a repository", gitBranch="main"), _assistant([{"type": "text", "text": "yes"}])], repo)
    for src in sorted((GOLDEN_SOURCES / "claude").glob("*.jsonl")):  # the golden sources too
        text = src.read_text(encoding="utf-8").replace("__CWD__", str(cwd))
        (tree.home / ".claude" / "projects" / str(cwd).replace("/", "-") / src.name).write_text(text, encoding="utf-8")
    for src in sorted((GOLDEN_SOURCES / "cursor").glob("*.jsonl")):
        folder = (tree.home / ".cursor" / "projects" / str(cwd).lstrip("/").replace("/", "-") / "agent-transcripts"
                  / src.stem)
        folder.mkdir(parents=True)
        (folder / src.name).write_text(src.read_text(encoding="utf-8").replace("__CWD__", str(cwd)),
                                       encoding="utf-8")
    for path in tree.home.rglob("*.jsonl"):
        os.utime(path, (1780488000, 1780488000))  # Cursor records without a time take the file's


@pytest.mark.codex
@pytest.mark.slow
@pytest.mark.parametrize("codex_bin", BINS)
def test_edge_cases(root: Path, codex_bin: str) -> None:
    tree = Tree(root)
    edge_cases(tree)
    n = compare(tree, codex_bin, ("--max-age", str(OLD)), {"max_session_age_days": OLD})
    assert n == 14  # 7 hand-made (not: empty, meta-only, assistant-only) + the 7 golden sources


# -- the pure parts ----------------------------------------------------------------------------------

def test_restamp_keeps_every_length_and_only_changes_stamps() -> None:
    from daemon.codex import compat
    from daemon.codex.lines import iso_ms

    body = ('{"timestamp":"2026-06-03T12:00:00.000Z","type":"event_msg","payload":{"message":"a\\n\u2028"}}\n'
            '{"timestamp":"2026-06-03T12:00:05.123Z","type":"response_item","payload":{}}\n').encode()
    now = 1_796_195_496_789
    out = compat.restamp(body, now)
    assert len(out) == len(body) and out.count(b"\n") == 2
    assert [json.loads(line)["timestamp"] for line in out.split(b"\n")[:-1]] == [iso_ms(now)] * 2
    assert out.replace(iso_ms(now).encode(), b"") == body.replace(b"2026-06-03T12:00:00.000Z", b"").replace(
        b"2026-06-03T12:00:05.123Z", b"")
    assert compat.restamp(b"", now) == b""


def test_selection_is_per_agent_with_codex_defaults(tmp_path: Path) -> None:
    """Codex detects each agent apart: its 50 newest of the last 30 days (whole seconds), each limit
    the user sets replacing only its own default."""
    from daemon.codex import compat
    from daemon.discover import Found
    from daemon.sources.base import Identity, Version

    now, month = 2_000_000_000, 30 * 86400
    found = []
    for kind in ("claude", "cursor"):
        mtimes = ([(now - i) * 10**9 for i in range(40)]  # recent
                  + [(now - month) * 10**9 + i for i in range(30)]  # exactly 30 days (whole seconds): kept
                  + [(now - month - 1) * 10**9 + i for i in range(30)])  # older: never
        found += [Found(Identity(kind, f"{kind}{i}", tmp_path / f"{kind}-{i:03d}.jsonl"), Version(1, m, i))
                  for i, m in enumerate(mtimes)]
    found.sort(key=lambda f: (-f.version.mtime_ns, str(f.ident.path)))
    kept = compat.select(found, None, None, now)
    assert [sum(f.ident.kind == k for f in kept) for k in ("claude", "cursor")] == [50, 50]
    assert kept == [f for f in found if f in kept]  # newest first, as found
    assert {int(f.ident.session_id[6:]) for f in kept} == {*range(40), *range(60, 70)}  # the 50 newest
    assert len(compat.select(found, None, 1000, now)) == 2 * 70  # the age default still applies
    assert len(compat.select(found, 36500, None, now)) == 2 * 50  # and the count default
    assert len(compat.select(found, 36500, 1000, now)) == len(found)
