"""Rebuild tests/golden/codex/* by importing tests/golden/sources/* with the real Codex.

Why: the goldens are the parity target for our `--codex-compatible` import; they
must come from the pinned binary, never be hand-edited.

    SESSION_SYNCD_CODEX_BIN=/path/to/codex python tests/golden/regenerate.py

Sources contain the placeholder `__CWD__` for their working directory; it is
replaced by a real temp directory here (Codex only imports sessions whose cwd
exists) and masked back in the output. Every source file gets the mtime
SOURCE_MTIME, because Cursor records without timestamps use the file mtime.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from codex_app_server import CodexAppServer, require_codex_bin  # noqa: E402
from mask import CWD_PLACEHOLDER, dumps, mask_rollout, mask_thread  # noqa: E402

SOURCES = HERE / "sources"
OUT = HERE / "codex"
SOURCE_MTIME = 1780488000  # 2026-06-03T12:00:00Z
MAX_AGE_DAYS = 36500  # the fixed mtime is older than Codex's 30-day default
AGENTS = {"claude": None, "cursor": "cursor"}  # agent -> migrationSource


@dataclass
class Layout:
    """Temp HOME / CODEX_HOME / project cwd of one run."""

    root: Path

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def codex_home(self) -> Path:
        return self.root / "codex"

    @property
    def cwd(self) -> Path:
        return self.root / "work" / "proj"


def install_source(layout: Layout, agent: str, src: Path) -> Path:
    """Put one source where Codex's detector looks for it; return its path."""
    encoded = str(layout.cwd).replace("/", "-")  # Cursor decodes the cwd from this
    if agent == "claude":
        dest = layout.home / ".claude" / "projects" / encoded / src.name
    else:
        dest = layout.home / ".cursor" / "projects" / encoded / "agent-transcripts" / src.stem / src.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(src.read_bytes().replace(CWD_PLACEHOLDER.encode(), str(layout.cwd).encode()))
    os.utime(dest, (SOURCE_MTIME, SOURCE_MTIME))
    return dest


def import_all(layout: Layout, agent: str, names: list[str] | None = None) -> dict[str, dict[str, Any]]:
    """Import every source of `agent` with Codex; return {source name: artefacts}."""
    layout.cwd.mkdir(parents=True, exist_ok=True)
    srcs = sorted((SOURCES / agent).glob("*.jsonl"))
    installed = {
        install_source(layout, agent, s).resolve(): s.stem for s in srcs if names is None or s.stem in names
    }
    results: dict[str, dict[str, Any]] = {}
    with CodexAppServer(layout.home, layout.codex_home) as codex:
        items = codex.detect(AGENTS[agent], max_session_age_days=MAX_AGE_DAYS)
        detected = {
            Path(s["path"]).resolve(): s for i in items for s in (i.get("details") or {}).get("sessions", [])
        }
        done = codex.import_sessions(items, AGENTS[agent], timeout=120)
        failures = [f for r in done["itemTypeResults"] for f in r["failures"]]
        if failures:
            raise RuntimeError(f"Codex import failures: {failures}")
        # Codex's own default view (what a user's client shows), not the helper's all-view.
        listed = {t["id"]: t for t in codex.list_threads(source_kinds=None, model_providers=None)}
        for result in done["itemTypeResults"]:
            for ok in result["successes"]:
                src_path = Path(ok["source"]).resolve()
                thread = listed[ok["target"]]
                results[installed[src_path]] = {
                    "success": ok,
                    "detected": detected.get(src_path),
                    "list": thread,
                    # None when absent: the DB-only list hides threads whose preview is "".
                    "list_state_db_only": next(
                        (t for t in codex.list_threads(useStateDbOnly=True) if t["id"] == ok["target"]), None
                    ),
                    "read": codex.read_thread(ok["target"]),
                    "rollout": Path(thread["path"]).read_text(),
                }
    return results


def golden_thread_summary(art: dict[str, Any], cwd: str) -> dict[str, Any]:
    """The list/read view of one imported thread, masked.

    The default (scan-and-repair) thread/list reports createdAt/updatedAt of the
    rollout file (import time), so those are masked there only.
    """
    detected = dict(art["detected"] or {})
    detected.pop("path", None)
    return {
        "detected": mask_thread(detected, cwd),
        "import_success_title": art["success"].get("title"),
        "list": mask_thread(art["list"], cwd, extra_keys=("createdAt", "updatedAt")),
        "list_state_db_only": art["list_state_db_only"] and mask_thread(art["list_state_db_only"], cwd),
        "read": mask_thread(art["read"], cwd),
    }


def main() -> int:
    require_codex_bin()
    OUT.mkdir(exist_ok=True)
    for agent in AGENTS:
        root = Path(tempfile.mkdtemp(prefix="golden_"))
        try:
            layout = Layout(root)
            arts = import_all(layout, agent)
            expected = {s.stem for s in (SOURCES / agent).glob("*.jsonl")}
            if set(arts) != expected:
                print(f"warning: {agent}: not imported: {sorted(expected - set(arts))}", file=sys.stderr)
            for name, art in sorted(arts.items()):
                cwd = str(layout.cwd)
                lines = mask_rollout(art["rollout"], cwd)
                (OUT / f"{agent}-{name}.jsonl").write_text("\n".join(lines) + "\n")
                summary = golden_thread_summary(art, cwd)
                (OUT / f"{agent}-{name}.thread.json").write_text(
                    json.dumps(summary, ensure_ascii=False, indent=1) + "\n"
                )
                print(f"{agent}-{name}: {len(lines)} lines, name={art['list'].get('name')!r}")
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


__all__ = ["Layout", "import_all", "install_source", "dumps"]
