"""What the real Codex app-server shows after `session-syncd import`, and after every kind of change.

Why: the point of session-syncd is that Codex lists and reads our threads as its own. These tests run
the real CLI on a generated Claude Code + Cursor tree, then ask the real `codex app-server` (HOME and
CODEX_HOME in temp dirs): every session is listed exactly once, `thread/read` has one turn per source
user message with the same user and assistant texts (computed by the small reference reader in
support.py, not by our fold), the marker last, names from session_index.jsonl, gitInfo for a real git
repo. Then: a no-op re-import, an appended turn, a rewritten source, and a thread continued in Codex
(conflict copy).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from codex_app_server import CodexAppServer  # noqa: E402
from support import (  # noqa: E402
    MARKER,
    Tree,
    append_bytes,
    claude_turn,
    cursor_turn,
    expected_view,
    ledger_rows,
    ledger_superseded,
    make_fixture,
    make_git_repo,
    read_view,
    reference_turns,
    require_codex,
    rollout_thread_id,
    run_import,
)

pytestmark = pytest.mark.codex

ORIGIN = "https://example.invalid/fixture/project-00.git"
BRANCHES = ("main", "dev", "feature/import", "fix/ledger")  # every branch the fixture generator records


class World:
    """A generated tree; project-00 is a real git repository."""

    def __init__(self, root: Path) -> None:
        self.tree = make_fixture(root, sessions=5, mib=3, cursor=2)
        self.repo = root / "repos" / "project-00"
        self.sha = make_git_repo(self.repo, ORIGIN, BRANCHES)
        self.sources = self.tree.sources()
        assert len(self.sources) == 7, self.sources

    def rows(self) -> dict[Path, dict[str, Any]]:
        return {Path(r["path"]): r for r in ledger_rows(self.tree)}

    def kind(self, path: Path) -> str:
        return dict((p, k) for k, p in self.sources)[path]


@pytest.fixture
def world(tmp_path: Path) -> World:
    require_codex()
    return World(tmp_path)


def codex_view(tree: Tree) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """(thread/list entries, {id: thread/read with turns}) from a fresh real app-server."""
    with CodexAppServer(tree.home, tree.codex_home) as codex:
        listed = codex.list_threads()
        reads = {t["id"]: codex.read_thread(t["id"]) for t in listed}
    return listed, reads


def assert_listed_once(listed: list[dict[str, Any]], expected_ids: set[str]) -> None:
    ids = [t["id"] for t in listed]
    assert len(ids) == len(set(ids)), f"a thread is listed twice: {sorted(ids)}"
    assert set(ids) == expected_ids


def assert_thread_matches_source(read: dict[str, Any], source: Path, kind: str) -> None:
    ref = reference_turns(source, kind)
    assert ref, f"{source} has no user message"
    got = read_view(read)
    want = expected_view(ref)
    assert len(got) == len(want), f"{source}: {len(got)} turns in Codex, {len(want)} user messages in the source"
    for n, (g, w) in enumerate(zip(got, want), 1):
        assert g == w, f"{source}: turn {n} differs"
    assert read["turns"][-1]["items"][-1]["text"] == MARKER
    assert [t["id"] for t in read["turns"]] == [f"external-import-turn-{n}" for n in range(1, len(ref) + 1)]
    if kind == "claude":  # Cursor records carry no times (the file mtime is used)
        assert [t["startedAt"] for t in read["turns"]] == [t.started_at for t in ref]


def test_every_session_is_one_codex_thread_with_its_turns(world: World) -> None:
    summary = run_import(world.tree)
    assert summary["imported"] == 7 and summary["failed"] == 0 and summary["skipped"] == 0, summary
    rows = world.rows()
    assert set(rows) == {p for _k, p in world.sources}
    by_thread = {r["thread_id"]: (path, r) for path, r in rows.items()}
    assert len(by_thread) == 7
    assert sorted(rollout_thread_id(p) for p in world.tree.rollouts()) == sorted(by_thread)

    listed, reads = codex_view(world.tree)
    assert_listed_once(listed, set(by_thread))
    names = {}
    for line in (world.tree.codex_home / "session_index.jsonl").read_text().splitlines():
        entry = json.loads(line)
        names[entry["id"]] = entry["thread_name"]
    shown = 0
    for entry in listed:
        path, row = by_thread[entry["id"]]
        kind = world.kind(path)
        assert_thread_matches_source(reads[entry["id"]], path, kind)
        assert entry["path"] == row["rollout_path"]
        # The title: session_index → `name` (thread/list hides a name equal to the preview, as for Codex's own).
        assert names[entry["id"]] == row["title"]
        assert entry["name"] == (row["title"] if row["title"] != entry["preview"] else None)
        assert reads[entry["id"]]["name"] == row["title"]
        shown += entry["name"] is not None
        # cwd and git: project-00 is a real repository with an origin remote.
        first_cwd = (json.loads(path.read_bytes().split(b"\n", 1)[0]).get("cwd") if kind == "claude"
                     else str(world.tree.root / "repos" / path.parents[2].name.split("-repos-")[-1]))
        assert entry["cwd"] == first_cwd
        if Path(entry["cwd"]) == world.repo:
            branch = (json.loads(path.read_bytes().split(b"\n", 1)[0])["gitBranch"] if kind == "claude" else "main")
            assert entry["gitInfo"] == {"sha": world.sha, "branch": branch, "originUrl": ORIGIN}
        else:
            assert entry["gitInfo"] is None
    assert shown >= 3, "expected most fixture titles to differ from their preview and show as names"
    assert any(Path(t["cwd"]) == world.repo for t in listed), "no thread in the git repository"


def test_second_import_changes_nothing(world: World) -> None:
    run_import(world.tree)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in world.tree.rollouts()}
    index_before = (world.tree.codex_home / "session_index.jsonl").read_bytes()
    again = run_import(world.tree)
    assert again["unchanged"] == 7 and again["imported"] == 0 and again["bytes_read"] == 0, again
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in world.tree.rollouts()} == before
    assert (world.tree.codex_home / "session_index.jsonl").read_bytes() == index_before
    listed, _reads = codex_view(world.tree)
    assert_listed_once(listed, {r["thread_id"] for r in world.rows().values()})


def test_appended_turn_lands_in_the_same_thread(world: World) -> None:
    run_import(world.tree)
    rows = world.rows()
    claude_src = world.tree.claude_sources()[0]
    cursor_src = world.tree.cursor_sources()[0]
    _, reads_before = codex_view(world.tree)
    append_bytes(claude_src, claude_turn(claude_src, "One more thing: rename the flag.", "Renamed it."))
    append_bytes(cursor_src, cursor_turn("And the docs?", "Docs updated."))

    summary = run_import(world.tree)
    assert summary["by_kind"] == {"appended": 2}, summary
    assert summary["unchanged"] == 5
    after = world.rows()
    assert {p: r["thread_id"] for p, r in after.items()} == {p: r["thread_id"] for p, r in rows.items()}
    assert len(world.tree.rollouts()) == 7

    listed, reads = codex_view(world.tree)
    assert_listed_once(listed, {r["thread_id"] for r in after.values()})
    for src, kind, user, agent in ((claude_src, "claude", "One more thing: rename the flag.", "Renamed it."),
                                   (cursor_src, "cursor", "And the docs?", "Docs updated.")):
        tid = after[src]["thread_id"]
        old, new = read_view(reads_before[tid]), read_view(reads[tid])
        assert len(new) == len(old) + 1
        # The old last turn loses only the marker; the new turn is exactly the appended one.
        assert new[:-2] == old[:-1]
        assert new[-2] == (old[-1][0], old[-1][1][:-1])
        assert new[-1] == (user, [agent, MARKER])
        assert_thread_matches_source(reads[tid], src, kind)


def test_rewritten_source_replaces_the_thread_content(world: World) -> None:
    run_import(world.tree)
    src = world.tree.claude_sources()[1]
    tid = world.rows()[src]["thread_id"]
    lines = src.read_bytes().split(b"\n")[:-1]
    # Drop the last 40% of the records and change the first user message (an early line).
    kept = lines[: int(len(lines) * 0.6)]
    first_user = next(i for i, l in enumerate(kept) if json.loads(l).get("type") == "user"
                      and isinstance(json.loads(l)["message"]["content"], str))
    rec = json.loads(kept[first_user])
    rec["message"]["content"] = "Edited first question (compaction rewrote this line)."
    kept[first_user] = json.dumps(rec, separators=(",", ":")).encode()
    src.write_bytes(b"\n".join(kept) + b"\n")

    summary = run_import(world.tree)
    assert summary["by_kind"] == {"rewritten": 1}, summary
    row = world.rows()[src]
    assert row["thread_id"] == tid and row["generation"] == 0
    assert [rollout_thread_id(p) for p in world.tree.rollouts()].count(tid) == 1
    assert ledger_superseded(world.tree) == []

    listed, reads = codex_view(world.tree)
    assert_listed_once(listed, {r["thread_id"] for r in world.rows().values()})
    assert read_view(reads[tid])[0][0] == "Edited first question (compaction rewrote this line)."
    assert_thread_matches_source(reads[tid], src, "claude")


def codex_continues(rollout: Path, text: str) -> None:
    """Append a user turn to a rollout the way Codex does when the user types in the thread."""
    lines = [
        {"type": "event_msg", "payload": {"type": "task_started", "turn_id": "0199aaaa-0000-7000-8000-000000000001",
                                          "started_at": 1796000000, "model_context_window": None,
                                          "collaboration_mode_kind": "default"}},
        {"type": "event_msg", "payload": {"type": "user_message", "message": text, "local_images": [],
                                          "local_audio": [], "text_elements": []}},
        {"type": "response_item", "payload": {"type": "message", "role": "user",
                                              "content": [{"type": "input_text", "text": text}]}},
    ]
    with rollout.open("ab") as f:
        for line in lines:
            f.write(json.dumps({"timestamp": "2026-11-30T10:00:00.000Z", **line}).encode() + b"\n")


def test_thread_continued_in_codex_gets_a_new_generation(world: World) -> None:
    run_import(world.tree)
    src = world.tree.claude_sources()[2]
    old = world.rows()[src]
    rollout = Path(old["rollout_path"])
    codex_continues(rollout, "continue here in Codex")
    user_work = rollout.read_bytes()
    append_bytes(src, claude_turn(src, "Meanwhile in Claude Code.", "Still going."))

    summary = run_import(world.tree)
    assert summary["by_kind"] == {"conflict": 1}, summary
    assert rollout.read_bytes() == user_work, "the thread the user continued in Codex was modified"
    new = world.rows()[src]
    assert new["generation"] == 1 and new["thread_id"] != old["thread_id"]
    assert new["rollout_path"] != old["rollout_path"]
    (sup,) = ledger_superseded(world.tree)
    assert (sup["thread_id"], sup["next_thread"], sup["generation"], sup["rollout_path"]) == (
        old["thread_id"], new["thread_id"], 0, old["rollout_path"])
    assert sup["reason"] == "thread continued in Codex"

    listed, reads = codex_view(world.tree)
    expected = {r["thread_id"] for r in world.rows().values()} | {old["thread_id"]}
    assert_listed_once(listed, expected)
    assert len(world.tree.rollouts()) == 8
    # The new generation holds the whole grown source; the old one keeps the user's Codex turn.
    assert_thread_matches_source(reads[new["thread_id"]], src, "claude")
    assert read_view(reads[old["thread_id"]])[-1][0] == "continue here in Codex"

    # A further change to the source goes to the new generation only.
    append_bytes(src, claude_turn(src, "And one more.", "Done."))
    summary = run_import(world.tree)
    assert summary["by_kind"] == {"appended": 1}, summary
    assert rollout.read_bytes() == user_work
    assert len(ledger_superseded(world.tree)) == 1
