"""Probe how Codex treats rollouts that *we* write by hand (README section C/D).

Why: our daemon writes rollout files directly into $CODEX_HOME/sessions; the
answers recorded in tests/golden/README.md come from running this script against
the real binary. Run:

    SESSION_SYNCD_CODEX_BIN=/path/to/codex python tests/golden/probe_handwritten.py
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import sys
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from codex_app_server import CodexAppServer, CodexRpcError  # noqa: E402

V7 = "01a22b90-0000-7000-8000-0000000000"  # + 2 hex digits


def tid(n: int) -> str:
    """A fixed UUIDv7-shaped thread id."""
    return f"{V7}{n:02x}"


def line(kind: str, payload: dict[str, Any], ts: str = "2026-06-03T12:00:00.000Z") -> str:
    return json.dumps({"timestamp": ts, "type": kind, "payload": payload}, ensure_ascii=False)


def meta(thread_id: str, cwd_: str, /, **over: Any) -> dict[str, Any]:
    """session_meta payload as we intend to write it; over=DROP removes a key."""
    m: dict[str, Any] = {
        "id": thread_id,
        "session_id": thread_id,
        "timestamp": "2026-06-03T12:00:00.000Z",
        "cwd": cwd_,
        "originator": "session-syncd",
        "cli_version": "0.169.0",
        "source": "vscode",
        "model_provider": "openai",
        "history_mode": "legacy",
        "git": {"commit_hash": "0123456789abcdef0123456789abcdef01234567", "branch": "main",
                "repository_url": "https://example.invalid/r.git"},
    }
    m.update(over)
    return {k: v for k, v in m.items() if v is not DROP}


DROP = object()


def turn(n: int, user: str, assistant: str, t0: int, ts: str = "2026-06-03T12:00:00.000Z") -> list[str]:
    return [
        line("event_msg", {"type": "task_started", "turn_id": f"external-import-turn-{n}", "started_at": t0,
                           "model_context_window": None, "collaboration_mode_kind": "default"}, ts),
        line("event_msg", {"type": "user_message", "message": user, "local_images": [], "local_audio": [],
                           "text_elements": []}, ts),
        line("response_item", {"type": "message", "role": "user", "content": [{"type": "input_text", "text": user}]}, ts),
        line("event_msg", {"type": "agent_message", "message": assistant, "phase": None, "memory_citation": None}, ts),
        line("response_item", {"type": "message", "role": "assistant",
                               "content": [{"type": "output_text", "text": assistant}]}, ts),
        line("event_msg", {"type": "task_complete", "turn_id": f"external-import-turn-{n}", "last_agent_message": None,
                           "started_at": t0, "completed_at": t0 + 5}, ts),
    ]


def write_rollout(codex_home: Path, thread_id: str, lines: list[str], day: str = "2026/06/03",
                  stamp: str = "2026-06-03T12-00-00") -> Path:
    path = codex_home / "sessions" / day / f"rollout-{stamp}-{thread_id}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def brief(t: dict[str, Any] | None) -> dict[str, Any] | None:
    keys = ("id", "name", "preview", "createdAt", "updatedAt", "recencyAt", "source", "cwd", "gitInfo", "path")
    return None if t is None else {k: t.get(k) for k in keys}


def read_summary(c: CodexAppServer, thread_id: str) -> Any:
    try:
        t = c.read_thread(thread_id)
    except CodexRpcError as e:
        return f"ERROR {e.code}: {e.error_message}"
    return {**brief(t), "turns": [[(i["type"], i.get("text") or i.get("content")) for i in tr["items"]]
                                  for tr in t["turns"]]}


class Env:
    """A fresh HOME/CODEX_HOME/cwd triple."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="probe_"))
        self.home, self.codex_home, self.cwd = self.root / "home", self.root / "codex", self.root / "proj"
        for p in (self.home, self.codex_home, self.cwd):
            p.mkdir(parents=True)

    def server(self) -> CodexAppServer:
        return CodexAppServer(self.home, self.codex_home)

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


PROBES: list[Callable[[], None]] = []


def probe(fn: Callable[[], None]) -> Callable[[], None]:
    PROBES.append(fn)
    return fn


def show(label: str, value: Any) -> None:
    print(f"  {label}: {json.dumps(value, ensure_ascii=False)}")


@probe
def minimal_full_meta() -> None:
    """Full meta, fresh CODEX_HOME without state_5.sqlite; list both ways + read."""
    e = Env()
    write_rollout(e.codex_home, tid(1), [line("session_meta", meta(tid(1), str(e.cwd)))]
                  + turn(1, "hello there\nsecond line", "hi", 1780488000, "2026-06-03T12:00:01.000Z"))
    show("state_5.sqlite before start", (e.codex_home / "state_5.sqlite").exists())
    with e.server() as c:
        show("list default sourceKinds", [brief(t) for t in c.list_threads(source_kinds=None)])
        show("list stateDbOnly", [brief(t) for t in c.list_threads(useStateDbOnly=True)])
        show("read", read_summary(c, tid(1)))
    show("state_5.sqlite after", (e.codex_home / "state_5.sqlite").exists())
    e.close()


@probe
def required_meta_fields() -> None:
    """Drop one session_meta field at a time."""
    e = Env()
    fields = ["id", "session_id", "timestamp", "cwd", "originator", "cli_version", "source", "model_provider",
              "history_mode", "git"]
    for n, f in enumerate(fields, start=10):
        write_rollout(e.codex_home, tid(n), [line("session_meta", meta(tid(n), str(e.cwd), **{f: DROP}))]
                      + turn(1, f"without {f}", "ok", 1780488000))
    with e.server() as c:
        listed = {t["id"]: t for t in c.list_threads()}
        listed_default = {t["id"] for t in c.list_threads(source_kinds=None)}
        for n, f in enumerate(fields, start=10):
            r = read_summary(c, tid(n))
            show(f"without {f}", {"listed_all_kinds": tid(n) in listed, "listed_default": tid(n) in listed_default,
                                  "read": r if isinstance(r, str) else "ok",
                                  "list_source": listed.get(tid(n), {}).get("source")})
    e.close()


@probe
def source_values() -> None:
    e = Env()
    values: list[Any] = ["cli", "vscode", "exec", "mcp", "app_server", "appServer", "unknown", "session-syncd",
                         {"custom": "session-syncd"}]
    for n, v in enumerate(values, start=30):
        write_rollout(e.codex_home, tid(n), [line("session_meta", meta(tid(n), str(e.cwd), source=v))]
                      + turn(1, f"source {json.dumps(v)}", "ok", 1780488000))
    with e.server() as c:
        default = {t["id"]: t["source"] for t in c.list_threads(source_kinds=None)}
        every = {t["id"]: t["source"] for t in c.list_threads()}
        for n, v in enumerate(values, start=30):
            show(f"source={json.dumps(v)}", {"default_list": default.get(tid(n), "-"), "all_kinds": every.get(tid(n), "-"),
                                             "read": "ok" if not isinstance(read_summary(c, tid(n)), str) else
                                             read_summary(c, tid(n))})
    e.close()


@probe
def model_provider_filter() -> None:
    """thread/list without modelProviders shows only the configured provider."""
    e = Env()
    for n, mp in enumerate(["openai", "anthropic", "session-syncd"], start=80):
        write_rollout(e.codex_home, tid(n), [line("session_meta", meta(tid(n), str(e.cwd), model_provider=mp))]
                      + turn(1, mp, "ok", 1780488000))
    with e.server() as c:
        show("no modelProviders", [t["modelProvider"] for t in c.list_threads(source_kinds=None, model_providers=None)])
        show("modelProviders []", [t["modelProvider"] for t in c.list_threads(source_kinds=None)])
    e.close()


@probe
def old_date_folder_and_index() -> None:
    """Old folder before/after start; session_index.jsonl names; timestamps; dup ids; v4 ids; missing cwd."""
    e = Env()
    write_rollout(e.codex_home, tid(50), [line("session_meta", meta(tid(50), str(e.cwd)))]
                  + turn(1, "old folder, before start", "ok", 1736942400), day="2025/01/15", stamp="2025-01-15T12-00-00")
    v4 = str(uuid.UUID("3f2b1c9e-8d7a-4b6c-9e1f-2a3b4c5d6e7f"))
    write_rollout(e.codex_home, v4, [line("session_meta", meta(v4, str(e.cwd)))] + turn(1, "uuid v4 id", "ok", 1780488000))
    write_rollout(e.codex_home, "not-a-uuid", [line("session_meta", meta("not-a-uuid", str(e.cwd)))]
                  + turn(1, "non-uuid id", "ok", 1780488000))
    write_rollout(e.codex_home, tid(52), [line("session_meta", meta(tid(52), str(e.root / "gone")))]
                  + turn(1, "cwd does not exist", "ok", 1780488000))
    write_rollout(e.codex_home, tid(53), [line("session_meta", meta(tid(53), str(e.cwd)))]
                  + turn(1, "duplicate id, file A", "ok", 1780488000), stamp="2026-06-03T12-00-00")
    write_rollout(e.codex_home, tid(53), [line("session_meta", meta(tid(53), str(e.cwd)))]
                  + turn(1, "duplicate id, file B", "ok", 1780488100), stamp="2026-06-03T13-00-00")
    # Line timestamps far from the turn times / file name.
    write_rollout(e.codex_home, tid(54), [line("session_meta", meta(tid(54), str(e.cwd), timestamp="2024-02-02T02:02:02.000Z"),
                                               "2024-02-02T02:02:02.000Z")]
                  + turn(1, "line timestamps in 2024", "ok", 1780488000, "2024-02-02T02:03:00.000Z"))
    index = e.codex_home / "session_index.jsonl"
    index.write_text("".join(json.dumps(x) + "\n" for x in [
        {"id": tid(54), "thread_name": "first name", "updated_at": "2026-06-03T12:00:00Z"},
        {"id": tid(54), "thread_name": "last name", "updated_at": "2026-06-03T11:00:00Z"},
    ]))
    with e.server() as c:
        listed = c.list_threads()
        show("listed", [brief(t) for t in listed])
        for t in (tid(50), v4, "not-a-uuid", tid(52), tid(53), tid(54)):
            show(f"read {t}", read_summary(c, t))
        # Now drop a rollout into an old folder while the server runs.
        write_rollout(e.codex_home, tid(51), [line("session_meta", meta(tid(51), str(e.cwd)))]
                      + turn(1, "old folder, after start", "ok", 1736942400), day="2025/01/15", stamp="2025-01-15T13-00-00")
        with index.open("a") as f:
            f.write(json.dumps({"id": tid(50), "thread_name": "named after start", "updated_at": "2026-06-03T12:00:00Z"}) + "\n")
        again = {t["id"]: t for t in c.list_threads()}
        show("after start: old-folder rollout listed", brief(again.get(tid(51))))
        show("after start: name from index appended while running", again.get(tid(50), {}).get("name"))
        show("after start: read", read_summary(c, tid(51)))
    db = sqlite3.connect(e.codex_home / "state_5.sqlite")
    show("sqlite threads (id,title,name,git_sha)", db.execute("select id,title,name,git_sha from threads order by id").fetchall())
    db.close()
    with e.server() as c:
        show("restart: names", {t["id"]: t["name"] for t in c.list_threads()})
    e.close()


@probe
def append_while_running() -> None:
    """Cut the closing lines, append a turn while an app-server runs, then read/list."""
    e = Env()
    closing = [line("event_msg", {"type": "agent_message", "message": "<EXTERNAL SESSION IMPORTED>", "phase": None,
                                  "memory_citation": None})]
    path = write_rollout(e.codex_home, tid(60), [line("session_meta", meta(tid(60), str(e.cwd)))]
                         + turn(1, "first", "one", 1780488000) + closing)
    with e.server() as c:
        show("before", read_summary(c, tid(60)))
        def default_view() -> dict[str, Any] | None:
            return brief({t["id"]: t for t in c.list_threads(source_kinds=None, model_providers=None)}[tid(60)])

        def all_view() -> dict[str, Any] | None:
            return brief({t["id"]: t for t in c.list_threads()}[tid(60)])

        before = (default_view(), all_view())
        lines = path.read_text().splitlines()[:-1]  # cut the marker
        path.write_text("\n".join(lines + turn(2, "second", "two", 1780499000)) + "\n")
        os.utime(path, (1780499005, 1780499005))
        show("read after append (same server)", read_summary(c, tid(60)))
        show("codex default list before/after append (same server)", [before[0], default_view()])
        show("all-kinds+all-providers list before/after append (same server)", [before[1], all_view()])
        show("list stateDbOnly (same server)", brief({t["id"]: t for t in c.list_threads(useStateDbOnly=True)}.get(tid(60))))
    with e.server() as c:
        show("codex default list after restart",
             brief({t["id"]: t for t in c.list_threads(source_kinds=None, model_providers=None)}[tid(60)]))
        show("all-kinds+all-providers list after restart", brief({t["id"]: t for t in c.list_threads()}[tid(60)]))
        show("list stateDbOnly after restart", brief({t["id"]: t for t in c.list_threads(useStateDbOnly=True)}.get(tid(60))))
    e.close()


@probe
def created_at_source_and_db_only_names() -> None:
    """Which timestamp is createdAt; does session_index feed the DB-only list; name vs empty preview."""
    e = Env()
    write_rollout(e.codex_home, tid(70), [line("session_meta", meta(tid(70), str(e.cwd), timestamp="2024-02-02T02:02:02.000Z"),
                                               "2023-03-03T03:03:03.000Z")]
                  + turn(1, "meta ts 2024, line ts 2023", "ok", 1780488000, "2022-04-04T04:04:04.000Z"))
    write_rollout(e.codex_home, tid(71), [line("session_meta", meta(tid(71), str(e.cwd)))]
                  + turn(1, "\nfirst line empty", "ok", 1780488000))
    (e.codex_home / "session_index.jsonl").write_text(
        json.dumps({"id": tid(71), "thread_name": "indexed name", "updated_at": "2026-06-03T12:00:00Z"}) + "\n")
    with e.server() as c:
        show("default list", [brief(t) for t in c.list_threads()])
        show("stateDbOnly list", [brief(t) for t in c.list_threads(useStateDbOnly=True)])
        show("searchTerm 'indexed'", [t["id"] for t in c.list_threads(searchTerm="indexed")])
    e.close()


def main() -> int:
    only = set(sys.argv[1:])
    for fn in PROBES:
        if not only or fn.__name__ in only:
            print(f"## {fn.__name__}: {fn.__doc__ or ''}")
            fn()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
