"""`--codex-compatible`: write what Codex's own importer writes, where our defaults differ from it.

Owns the whole difference between the two modes (README, "--codex-compatible"), as small pure
functions the engine and the importer call when the mode is on:

- session_meta with Codex's keys in Codex's order (`lines.CodexSessionMeta`) and the values Codex's
  CLI importer (`/import`) writes; git read from the cwd as it is now (HEAD's branch), as Codex does;
- every line stamped with the time it is written (Codex stamps "now"; by default we stamp the
  source's own times, which is deterministic);
- the title: Codex's pick (`TitleState.codex`), kept in the ledger but not written to
  session_index.jsonl, which Codex's importer never writes (its title goes to its SQLite only);
- the selection: Codex's defaults (modified in the last 30 days, the 50 newest) for whichever of
  `--max-age` / `--max-sessions` the user did not set, per agent, as Codex detects each agent apart.

The conversion itself (records kept, tool notes, turns, the token estimate) is the same in both modes:
it already follows Codex's importer rule for rule (tests/golden).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING

import blake3
import msgspec

from daemon.codex import lines as L
from daemon.codex.title import TitleState, choose

if TYPE_CHECKING:
    from daemon.config import Config
    from daemon.discover import Found

MAX_AGE_DAYS = 30  # Codex's `maxSessionAgeDays` default
MAX_SESSIONS = 50  # Codex's `maxSessions` default
ORIGINATOR = "codex_cli_rs"  # what Codex's own CLI stamps (the app-server writes its client's name)
SOURCE = "cli"  # `/import` in the Codex CLI (the app-server writes "vscode")
MODEL_PROVIDER = "openai"  # Codex's default provider

_HEAD = b'{"timestamp":"'
_STAMP = len(_HEAD) + len("1970-01-01T00:00:00.000Z")


def window_id(thread: str) -> str:
    """The `context_window.window_id`: Codex draws a fresh UUIDv7; ours is derived from the thread id
    (same time bits, blake3 for the rest), so a rewrite of the thread keeps it."""
    value = uuid.UUID(thread).int
    rand = int.from_bytes(blake3.blake3(f"{thread}\0context_window".encode()).digest()[:10], "big")
    value = (value >> 80) << 80 | 0x7 << 76 | ((rand >> 68) & 0xFFF) << 64 | 0b10 << 62 | rand & (2**62 - 1)
    return str(uuid.UUID(int=value))


def meta_line(thread: str, cwd: str, git: L.GitInfo | None, cli_version: str, now_ms: int) -> bytes:
    """Codex's session_meta line, created `now_ms` (its line and its `timestamp` are the write time)."""
    meta = L.CodexSessionMeta(
        account_scoped=True, session_id=thread, id=thread, timestamp=L.iso_ms(now_ms), cwd=cwd,
        originator=ORIGINATOR, cli_version=cli_version, source=SOURCE, model_provider=MODEL_PROVIDER,
        history_mode="legacy", multi_agent_version="v1", context_window=L.ContextWindow(window_id(thread)),
        git=git)
    return L.encode(now_ms, "session_meta", meta)


def restamp(data: bytes, now_ms: int) -> bytes:
    """Whole rollout lines with every line's timestamp replaced by `now_ms`. The stamp has a fixed
    width, so every length (and every offset the ledger keeps) stays what it was."""
    if not data:
        return data
    stamp = _HEAD + L.iso_ms(now_ms).encode()
    return b"\n".join(line and stamp + line[_STAMP:] for line in data.split(b"\n"))


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def title(custom: str | None, ai: str | None, titles: TitleState, saw_user: bool) -> str | None:
    """Codex's title: custom ▸ AI ▸ its own fallback rule ▸ `Imported session`."""
    return choose(custom, ai, titles.codex, saw_user)


def select(found: list[Found], max_age_days: float | None, max_sessions: int | None, now: float) -> list[Found]:
    """Codex's detection: per agent, drop a session whose mtime (whole seconds) is older than the age
    limit, then keep the `max_sessions` newest (mtime in ns, then path). Unset limits take Codex's
    defaults. `found` is newest first (discover's order) and stays in that order."""
    age = MAX_AGE_DAYS if max_age_days is None else max_age_days
    limit = MAX_SESSIONS if max_sessions is None else max_sessions
    cutoff = int(now) - int(age * 86400)
    kept: list[Found] = []
    per_kind: dict[str, int] = {}
    for f in found:
        if f.version.mtime_ns // 1_000_000_000 < cutoff:
            continue
        taken = per_kind.get(f.ident.kind, 0)
        if taken < limit:
            per_kind[f.ident.kind] = taken + 1
            kept.append(f)
    return kept


def discover(cfg: Config, env: Mapping[str, str], now: float | None = None) -> tuple[list[Found], list[str]]:
    """`daemon.discover.discover` with Codex's selection instead of ours."""
    from daemon.discover import discover as discover_all

    found, warnings = discover_all(msgspec.structs.replace(cfg, max_age_days=None, max_sessions=None), env)
    return select(found, cfg.max_age_days, cfg.max_sessions, time.time() if now is None else now), warnings
