"""Mask the run-dependent parts of a Codex rollout so two imports can be compared.

Why: Codex's importer and ours must produce the same rollout for the same source,
except for wall-clock write times, fresh UUIDs and machine/config dependent
session_meta fields. Masking keeps every key (and the key order) so presence and
order are still compared; only the *values* of volatile fields are replaced.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MASK = "<masked>"
CWD_PLACEHOLDER = "__CWD__"

#: session_meta payload keys whose values depend on the run, the client or the config.
VOLATILE_META_KEYS: frozenset[str] = frozenset(
    {
        "id",
        "session_id",
        "timestamp",
        "originator",  # clientInfo.name of the app-server client
        "cli_version",
        "source",  # "vscode" for app-server imports, "cli" for the TUI
        "model_provider",
        "base_instructions",  # model prompt text + provenance
        "context_window",  # {"window_id": <fresh UUIDv7>}
        "git",  # depends on the cwd's repository
        "memory_mode",
    }
)

#: Thread (thread/list, thread/read) keys that depend on the run.
VOLATILE_THREAD_KEYS: frozenset[str] = frozenset({"id", "sessionId", "path", "cliVersion", "originator", "gitInfo"})


def _replace_cwd(value: Any, cwd: str | None) -> Any:
    """Replace the run's cwd inside every string (tool inputs can mention it too)."""
    if cwd is None:
        return value
    if isinstance(value, str):
        return value.replace(cwd, CWD_PLACEHOLDER)
    if isinstance(value, list):
        return [_replace_cwd(v, cwd) for v in value]
    if isinstance(value, dict):
        return {k: _replace_cwd(v, cwd) for k, v in value.items()}
    return value


def mask_record(record: dict[str, Any], cwd: str | None = None) -> dict[str, Any]:
    """Mask one parsed rollout line (`{timestamp, type, payload}`)."""
    out = {k: (MASK if k == "timestamp" else v) for k, v in record.items()}
    payload = out.get("payload")
    if out.get("type") == "session_meta" and isinstance(payload, dict):
        out["payload"] = {k: (MASK if k in VOLATILE_META_KEYS else v) for k, v in payload.items()}
    return _replace_cwd(out, cwd)


def dumps(obj: Any) -> str:
    """Compact, key-order preserving, non-ASCII kept: the form goldens are stored in."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def mask_rollout(text: str | bytes, cwd: str | None = None) -> list[str]:
    """Masked lines (as compact JSON strings) of a whole rollout file's text."""
    if isinstance(text, bytes):
        text = text.decode()
    return [dumps(mask_record(json.loads(line), cwd)) for line in text.splitlines() if line.strip()]


def mask_thread(
    thread: dict[str, Any], cwd: str | None = None, extra_keys: Iterable[str] = ()
) -> dict[str, Any]:
    """Mask a thread object from thread/list or thread/read (ids, paths, versions)."""
    volatile = VOLATILE_THREAD_KEYS | frozenset(extra_keys)
    return _replace_cwd({k: (MASK if k in volatile else v) for k, v in thread.items()}, cwd)
