"""Hostile input end to end (issue 10): the real `session-syncd import` over a tree of mutated sessions of
every agent, then the real `codex app-server` lists every thread.

The sessions are the project's fixture shapes mutated by tests/reliability/hostile.py with fixed seeds
(reproducible), each with one good sentinel turn among the bad lines and, for Claude Code, a line over
the configured line limit. Asserted: exit status 0 and a sane summary (nothing failed, every session
imported, bad lines counted), every rollout is strict JSON lines, each sentinel is in its thread exactly
once, and Codex lists exactly the threads the ledger holds.
"""

from __future__ import annotations

import json
import os
import random
import uuid
from pathlib import Path

import pytest

from codex_app_server import CodexAppServer
from hostile import CWD, check_rollout_lines, mutate_with, opencode_rows, seed_lines, user_texts
from support import Tree, ledger_rows, require_codex, run_import

pytestmark = pytest.mark.codex

SENTINEL = "sentinel: the good turn among the bad lines"
PER_AGENT = 2  # mutated sessions per agent
LINES = 14  # mutated lines per session
T = "2026-06-03T12:30:00Z"


def _mutated(kind: str, seeds: list[bytes], rng: random.Random, cwd: str) -> list[bytes]:
    return [mutate_with(rng, seeds).replace(CWD.encode(), cwd.encode()) for _ in range(LINES)]


def _write(path: Path, lines: list[bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(line + b"\n" for line in lines))


def _tree(tmp_path: Path) -> tuple[Tree, int]:
    """The tree and how many sessions it holds."""
    tree = Tree(tmp_path)
    cwd_path = tree.root / "repos" / "w"
    cwd_path.mkdir(parents=True)
    cwd = str(cwd_path)
    home = tree.home
    (tree.root / "config" / "session-syncd").mkdir(parents=True)
    (tree.root / "config" / "session-syncd" / "config.toml").write_text("max_line_mb = 1\n")
    n = 0
    for i in range(PER_AGENT):
        sid = str(uuid.UUID(int=random.Random(f"sid{i}").getrandbits(128), version=4))
        rng = random.Random(f"claude{i}")
        lines = _mutated("claude", seed_lines("claude"), rng, cwd)
        lines.insert(rng.randint(0, LINES), json.dumps({"type": "user", "cwd": cwd, "timestamp": T,
                                                        "message": {"content": SENTINEL}}).encode())
        lines.insert(rng.randint(0, LINES), b'{"type":"user","message":{"content":"' + b"x" * (3 << 19) + b'"}}')
        _write(home / ".claude" / "projects" / "-w" / f"{sid}.jsonl", lines)

        rng = random.Random(f"cursor{i}")
        lines = _mutated("cursor", seed_lines("cursor"), rng, cwd)
        lines.insert(rng.randint(0, LINES), json.dumps({"role": "user", "cwd": cwd,
                                                        "message": {"content": SENTINEL}}).encode())
        _write(home / ".cursor" / "projects" / "w" / "agent-transcripts" / f"{sid}.jsonl", lines)

        rng = random.Random(f"copilot{i}")
        start = json.dumps({"type": "session.start", "timestamp": T, "data": {"context": {"cwd": cwd}}}).encode()
        lines = [start, *_mutated("copilot", seed_lines("copilot"), rng, cwd)]
        lines.insert(rng.randint(1, LINES), json.dumps({"type": "user.message", "timestamp": T,
                                                        "data": {"content": SENTINEL}}).encode())
        _write(home / ".copilot" / "session-state" / sid / "events.jsonl", lines)

        rng = random.Random(f"qwen{i}")
        lines = _mutated("qwen", seed_lines("qwen"), rng, cwd)
        lines.append(json.dumps({"uuid": "sentinel", "parentUuid": None, "sessionId": sid, "type": "user",
                                 "cwd": cwd, "timestamp": T, "message": {"parts": [{"text": SENTINEL}]}}).encode())
        lines.append(b"{broken")
        _write(home / ".qwen" / "projects" / "-w" / "chats" / f"{sid}.jsonl", lines)

        rng = random.Random(f"gemini{i}")
        meta = json.dumps({"sessionId": sid, "projectHash": "0" * 64, "startTime": T}).encode()
        lines = [meta, *_mutated("gemini", seed_lines("gemini"), rng, cwd)]
        lines += [json.dumps({"id": "sentinel", "type": "user", "timestamp": T, "content": SENTINEL}).encode(),
                  b"\xff\xfe not json"]
        project = home / ".gemini" / "tmp" / "w"
        _write(project / "chats" / f"session-2026-06-03T12-30-{sid[:8]}.jsonl", lines)
        (project / ".project_root").write_text(cwd)

        _opencode_session(home / ".local" / "share" / "opencode" / "storage", f"ses_fuzz{i}", cwd,
                          random.Random(f"opencode{i}"))
        n += 6
    return tree, n


def _opencode_session(storage: Path, sid: str, cwd: str, rng: random.Random) -> None:
    """A legacy JSON-tree session: mutated message and part files around a sentinel user message, all
    written long enough ago that a file that does not parse is skipped (not awaited)."""
    messages, parts, _ = opencode_rows()
    files = {storage / "session" / "proj" / f"{sid}.json":
             json.dumps({"id": sid, "directory": cwd, "title": "Fuzzed", "time": {"created": 1780489800000}}).encode()}
    for m in range(6):
        mid = f"msg_{sid}_{m}"
        files[storage / "message" / sid / f"{mid}.json"] = mutate_with(rng, messages).replace(CWD.encode(), cwd.encode())
        for p in range(2):
            files[storage / "part" / mid / f"prt_{m}_{p}.json"] = mutate_with(rng, parts)
    mid = f"msg_{sid}_sentinel"
    files[storage / "message" / sid / f"{mid}.json"] = b'{"role":"user","time":{"created":1780489800001}}'
    files[storage / "part" / mid / "prt_s.json"] = json.dumps({"type": "text", "text": SENTINEL}).encode()
    old = 1780000000
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (old, old))


def test_import_of_mutated_sessions_of_every_agent(tmp_path: Path) -> None:
    require_codex()
    tree, sessions = _tree(tmp_path)
    summary = run_import(tree, check=False)
    assert summary["returncode"] == 0 and summary["failed"] == 0, summary
    assert summary["sessions"] == sessions and summary["imported"] == sessions, summary
    assert summary["malformed_lines"] >= 6 * PER_AGENT, summary  # at least the line each session was given
    rows = [r for r in ledger_rows(tree) if r["rollout_path"]]
    assert len(rows) == sessions
    for row in rows:
        rollout = Path(row["rollout_path"])
        records = check_rollout_lines(rollout.read_bytes())
        assert records[0]["type"] == "session_meta"
        assert user_texts(rollout.read_bytes()).count(SENTINEL) == 1, (row["source"], row["path"])
    with CodexAppServer(tree.home, tree.codex_home) as codex:
        listed = codex.list_threads()
        assert sorted(t["id"] for t in listed) == sorted(r["thread_id"] for r in rows)
        for t in listed:
            assert codex.read_thread(t["id"])["turns"]
    again = run_import(tree)
    assert again["imported"] == 0 and again["failed"] == 0, again
