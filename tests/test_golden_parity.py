"""Parity with Codex 0.169's own importer: our rollout for each golden source equals Codex's, masked.

Why: `tests/golden/codex/*.jsonl` is what the real Codex importer wrote for the hand-written sources in
`tests/golden/sources/`. We run our real `session-syncd import` on the same sources (installed the same
way, same mtime) and compare. Every event/response payload, turn id, started_at/completed_at, token
total and the marker's position is compared exactly; only what mask.py masks differs by design:
line timestamps (ours are the source's times, Codex's the write time) and the run/client dependent
`session_meta` values. Our `session_meta` also has a different key set (no `account_scoped`,
`base_instructions`, `multi_agent_version`, `context_window`): it is checked separately against the
shape that tests/golden/README.md §C found sufficient for Codex.

The title we write to `session_index.jsonl` must be the title Codex's importer chose (its detect entry
and import result, stored in its SQLite `threads.title`) wherever that title is readable; where it is
not (`Imported session` for a session that has a slash command), ours is the better one in DIFFERENT_TITLES.
"""

from __future__ import annotations

import json
import re
import sys
from datetime import datetime
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))
sys.path.insert(0, str(TESTS / "golden"))

from codex_app_server import CodexAppServer  # noqa: E402
from mask import CWD_PLACEHOLDER, MASK, mask_rollout, mask_thread  # noqa: E402
from regenerate import OUT, SOURCE_MTIME, SOURCES, Layout, install_source  # noqa: E402
from support import Tree, require_codex, rollout_thread_id, run_import  # noqa: E402

GOLDEN = sorted((agent, src.stem) for agent in ("claude", "cursor") for src in (SOURCES / agent).glob("*.jsonl"))
IDS = [f"{a}-{n}" for a, n in GOLDEN]

#: session_meta keys we write, in order (tests/golden/README.md §C: what Codex needs; `git` only in a repo).
OUR_META_KEYS = ["id", "session_id", "timestamp", "cwd", "originator", "cli_version", "source", "model_provider",
                 "history_mode"]


def _import(tmp: Path, agents_names: list[tuple[str, str]]) -> tuple[Layout, dict[str, Path]]:
    """Install the sources as regenerate.py does for Codex, run our import; return {name: rollout}."""
    layout = Layout(tmp)
    layout.cwd.mkdir(parents=True)
    by_path = {install_source(layout, agent, SOURCES / agent / f"{name}.jsonl"): f"{agent}-{name}"
               for agent, name in agents_names}
    tree = Tree(tmp)
    assert tree.home == layout.home and tree.codex_home == layout.codex_home
    summary = run_import(tree)
    assert summary["failed"] == 0 and summary["skipped"] == 0, summary
    assert summary["imported"] == len(agents_names), summary
    rows = {Path(r["path"]): r for r in _rows(tree)}
    return layout, {by_path[p]: Path(r["rollout_path"]) for p, r in rows.items()}


def _rows(tree: Tree) -> list[dict]:
    from support import ledger_rows

    return ledger_rows(tree)


def _index_titles(codex_home: Path) -> dict[str, str]:
    """session_index.jsonl: the last line per id wins (as Codex reads it)."""
    titles: dict[str, str] = {}
    for line in (codex_home / "session_index.jsonl").read_text().splitlines():
        entry = json.loads(line)
        titles[entry["id"]] = entry["thread_name"]
    return titles


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Layout, dict[str, Path]]:
    """All golden sources imported by us into one Codex home (one subprocess run)."""
    return _import(tmp_path_factory.mktemp("parity"), GOLDEN)


@pytest.mark.parametrize("name", IDS)
def test_rollout_body_matches_codex_importer(imported: tuple[Layout, dict[str, Path]], name: str) -> None:
    layout, rollouts = imported
    ours = mask_rollout(rollouts[name].read_bytes(), str(layout.cwd))
    golden = (OUT / f"{name}.jsonl").read_text().splitlines()
    assert json.loads(ours[0])["type"] == json.loads(golden[0])["type"] == "session_meta"
    # Everything after session_meta: every payload, in order, exactly.
    assert ours[1:] == golden[1:]
    # The cwd is the same value in both session_meta lines.
    assert json.loads(ours[0])["payload"]["cwd"] == json.loads(golden[0])["payload"]["cwd"] == CWD_PLACEHOLDER


def _source_times_ms(src: Path) -> set[int]:
    """Every time a source states: record `timestamp` / `timestamp_ms`, Cursor `<timestamp>` tags, its mtime."""
    times = {SOURCE_MTIME * 1000}
    text = src.read_text()
    for raw in text.splitlines():
        try:
            rec = json.loads(raw)
        except ValueError:
            continue
        if isinstance(rec, dict):
            if isinstance(rec.get("timestamp"), str):
                try:
                    times.add(_ms(rec["timestamp"]))
                except ValueError:
                    pass
            if type(rec.get("timestamp_ms")) is int:
                times.add(rec["timestamp_ms"])
    for stamp in re.findall(r"<timestamp>\s*([^<]+?)\s*</timestamp>", text):
        try:  # Cursor also writes human-readable stamps ("Wednesday, Jun 3, 2026, 12:00 PM (UTC)")
            times.add(_ms(stamp))
        except ValueError:
            pass
    return times


def _ms(stamp: str) -> int:
    dt = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return int(dt.timestamp() * 1000) if dt.tzinfo else -1


@pytest.mark.parametrize("name", IDS)
def test_line_timestamps_are_source_times(imported: tuple[Layout, dict[str, Path]], name: str) -> None:
    """Masked above; here: every line is stamped with a time the source states (not the wall clock),
    RFC 3339 with ms and `Z`, never decreasing after session_meta."""
    _layout, rollouts = imported
    agent, stem = name.split("-", 1)
    allowed = _source_times_ms(SOURCES / agent / f"{stem}.jsonl")
    records = [json.loads(line) for line in rollouts[name].read_text().splitlines()]
    assert all(len(r["timestamp"]) == 24 and r["timestamp"].endswith("Z") for r in records)
    stamps = [_ms(r["timestamp"]) for r in records]
    assert set(stamps) <= allowed, sorted(set(stamps) - allowed)
    assert stamps[1:] == sorted(stamps[1:])


@pytest.mark.parametrize("name", IDS)
def test_session_meta_shape(imported: tuple[Layout, dict[str, Path]], name: str) -> None:
    layout, rollouts = imported
    ours = json.loads(rollouts[name].read_text().splitlines()[0])["payload"]
    golden = json.loads((OUT / f"{name}.jsonl").read_text().splitlines()[0])["payload"]
    assert list(ours) == OUR_META_KEYS  # no cwd repo here, so no `git`
    assert ours["id"] == ours["session_id"] == rollout_thread_id(rollouts[name])
    assert ours["cwd"] == str(layout.cwd)
    for key in ("cwd", "history_mode"):
        assert ours[key].replace(str(layout.cwd), CWD_PLACEHOLDER) == golden[key]


#: Golden sessions whose Codex title is not readable → the title we give them instead, and why.
DIFFERENT_TITLES = {
    # `/clear` + `<local-command-stdout>`: Codex finds no line outside its wrappers.
    "claude-control_only": ("Imported session", "/clear"),
}


def _unreadable(title: str) -> bool:
    """What no thread is named when its session has real text (issue 8, "Titles people can read")."""
    line = title.strip()
    return (line == "Imported session" or line.startswith(("Caveat: ", "[Request interrupted by user"))
            or re.fullmatch(r"</?[A-Za-z][\w.:-]*(\s[^<>]*)?>", line) is not None)


@pytest.mark.parametrize("name", IDS)
def test_title_matches_codex_importer(imported: tuple[Layout, dict[str, Path]], name: str) -> None:
    """Our session_index title = the title Codex's detector offered and its importer stored, where that
    one is readable; the better title listed in DIFFERENT_TITLES where it is not."""
    _layout, rollouts = imported
    thread = rollout_thread_id(rollouts[name])
    golden = json.loads((OUT / f"{name}.thread.json").read_text())
    codex_title = golden["import_success_title"]
    assert codex_title == golden["detected"]["title"]
    ours = _index_titles(_layout.codex_home)[thread]
    if name in DIFFERENT_TITLES:
        assert (codex_title, ours) == DIFFERENT_TITLES[name]
        assert _unreadable(codex_title) and not _unreadable(ours)
    else:
        assert not _unreadable(codex_title), f"{name}: Codex's title {codex_title!r} belongs in DIFFERENT_TITLES"
        assert ours == codex_title


@pytest.mark.codex
def test_codex_reads_our_threads_like_its_own(imported: tuple[Layout, dict[str, Path]]) -> None:
    """The real app-server shows our threads with the same turns/items as the ones it imported itself.

    Differences by design, not compared: `preview` (Codex's importer writes its SQLite preview from the
    first line; for a rollout it indexes itself Codex takes the whole first user message, README §C),
    createdAt/updatedAt/recencyAt, source/originator/cliVersion. `name` comes from our
    session_index.jsonl: thread/list shows it unless it equals the preview (then `null`, as for
    Codex's own imports); thread/read always shows it.
    """
    require_codex()
    layout, rollouts = imported
    titles = _index_titles(layout.codex_home)
    with CodexAppServer(layout.home, layout.codex_home) as codex:
        listed = codex.list_threads()
        ids = [t["id"] for t in listed]
        assert sorted(ids) == sorted(rollout_thread_id(p) for p in rollouts.values())
        assert len(ids) == len(set(ids))
        by_id = {t["id"]: t for t in listed}
        for name, path in sorted(rollouts.items()):
            thread_id = rollout_thread_id(path)
            golden = json.loads((OUT / f"{name}.thread.json").read_text())["read"]
            read = mask_thread(codex.read_thread(thread_id), str(layout.cwd))
            assert read["turns"] == golden["turns"], name
            for key in ("historyMode", "modelProvider", "cwd", "status", "ephemeral", "parentThreadId"):
                assert read[key] == golden[key], (name, key)
            assert read["path"] == MASK and by_id[thread_id]["path"] == str(path)
            preview = by_id[thread_id]["preview"]
            expected_name = titles[thread_id] if titles[thread_id] != preview else None
            assert by_id[thread_id]["name"] == expected_name, name
            # thread/read shows the session_index name as it is (no preview rule there).
            assert read["name"] == titles[thread_id], name
