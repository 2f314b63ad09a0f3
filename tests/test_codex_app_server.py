"""Fast checks of tests/codex_app_server.py against the real Codex binary.

Why: every parity test leans on this helper; if the protocol drifts (a new Codex
version), these fail first and say so plainly.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))

from codex_app_server import CodexAppServer, CodexRpcError, codex_bin  # noqa: E402
from mask import mask_rollout  # noqa: E402
from regenerate import MAX_AGE_DAYS, OUT, SOURCES, Layout, install_source  # noqa: E402

pytestmark = pytest.mark.codex


@pytest.fixture
def layout(tmp_path: Path) -> Layout:
    if codex_bin() is None:
        pytest.fail("SESSION_SYNCD_CODEX_BIN must point at the real codex binary (run `make test`)")
    lay = Layout(tmp_path)
    lay.cwd.mkdir(parents=True)
    return lay


def test_import_claude_source_is_listed_read_and_matches_golden(layout: Layout) -> None:
    install_source(layout, "claude", SOURCES / "claude" / "basic.jsonl")
    with CodexAppServer(layout.home, layout.codex_home) as codex:
        items = codex.detect(max_session_age_days=MAX_AGE_DAYS)
        assert [s["title"] for s in items[0]["details"]["sessions"]] == ["My custom title"]
        done = codex.import_sessions(items)
        (ok,) = done["itemTypeResults"][0]["successes"]

        (thread,) = codex.list_threads()
        assert thread["id"] == ok["target"]
        assert thread["name"] == "My custom title"
        assert thread["source"] == "vscode"

        read = codex.read_thread(ok["target"])
        assert [[i["type"] for i in t["items"]] for t in read["turns"]] == [
            ["userMessage", "agentMessage", "agentMessage"],
            ["userMessage", "agentMessage", "agentMessage"],
        ]
        assert read["turns"][-1]["items"][-1]["text"] == "<EXTERNAL SESSION IMPORTED>"

    masked = mask_rollout(Path(thread["path"]).read_bytes(), str(layout.cwd))
    assert masked == (OUT / "claude-basic.jsonl").read_text().splitlines()


def test_default_list_hides_exec_threads_but_helper_lists_all(layout: Layout) -> None:
    """thread/list without sourceKinds shows only interactive sources (cli, vscode)."""
    from probe_handwritten import line, meta, tid, turn, write_rollout

    for n, source in enumerate(["cli", "exec"]):
        write_rollout(
            layout.codex_home,
            tid(n),
            [line("session_meta", meta(tid(n), str(layout.cwd), source=source))] + turn(1, source, "ok", 1780488000),
        )
    with CodexAppServer(layout.home, layout.codex_home) as codex:
        assert {t["source"] for t in codex.list_threads(source_kinds=None)} == {"cli"}
        assert {t["source"] for t in codex.list_threads(page_size=1)} == {"cli", "exec"}
        with pytest.raises(CodexRpcError):
            codex.read_thread("not-a-uuid")
