"""Fault injection for the reliability tests: named points where a test can make us crash or raise.

Off unless `SESSION_SYNCD_FAULT` is set in the environment the process starts with, so production runs
pay one comparison per point. The value is `POINT:ACTION[:MATCH]`: at the point named POINT (e.g.
`fold`, `before_rename`, `before_commit`), when MATCH is empty or a substring of the session's path,
ACTION happens: `kill` (SIGKILL this process, as a power cut or the OOM killer would), `raise` (an
unexpected exception, as a bug triggered by one session's content would) or `stop` (SIGSTOP this
process, so a test can change the world at that moment — delete or truncate the source just read —
then SIGCONT it). With `SESSION_SYNCD_FAULT_ONCE=FILE` the fault fires only for whoever creates FILE
first (O_EXCL), so a test can kill exactly one worker.

The points, in the order one session's sync passes them: `fold` (read and folded), `intent` (a write
intent or reserved start is committed, nothing written yet), `store.written` / `store.before_rename` /
`store.renamed` / `store.dir_synced` (a whole rollout: written, fsynced, renamed into place, its folder
fsynced), `append.written` / `append.truncated` / `append.synced` (an append over our closing lines),
then in the process that owns the ledger `before_commit` / `after_commit`; and, apart from these,
`codex_ledger.before_install` (a merged Codex import ledger checked unchanged, about to go in place).

Owns nothing else; the points themselves sit where the work is (engine, store, record).
"""

from __future__ import annotations

import os
import signal

ENV = "SESSION_SYNCD_FAULT"
ONCE_ENV = "SESSION_SYNCD_FAULT_ONCE"


class InjectedFault(RuntimeError):
    """Raised by the `raise` action: stands for any unexpected error in one session's sync."""


#: Read once, when the process starts: a test sets it in the environment of the process it starts, and a
#: point is passed ~7 times per session (an `os.environ` lookup each was ~15 µs of every session's sync).
_SPEC = os.environ.get(ENV) or None


def point(name: str, path: object = "") -> None:
    spec = _SPEC
    if spec is None:
        return
    fault_point, _, rest = spec.partition(":")
    action, _, match = rest.partition(":")
    if fault_point != name or (match and match not in str(path)):
        return
    once = os.environ.get(ONCE_ENV)
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        except FileExistsError:
            return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "raise":
        raise InjectedFault(f"fault injected at {name}")
    elif action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
