"""Which sessions exist, and which of them need work: every enabled source's roots, walked once,
filtered by age and count, then sorted against the ledger by stat alone (the fast path: a session whose
stat the ledger already has is not read at all; for a log, unless its ctime moved since: see `triage`).

Owns root resolution (config/flags over the plug-in's defaults), the `--max-age` / `--max-sessions`
selection, and that triage. Shell code: it lists folders and stats files, nothing more.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec

from daemon.config import Config, child_sessions, expand
from daemon.sources import SOURCES, Identity, Source, Version, default_roots, label
from daemon.sources.base import OneFile, sessions, version_of


class Root(msgspec.Struct, frozen=True):
    kind: str
    path: Path
    explicit: bool  # named by the user: its absence is worth a warning
    children: bool = False  # `child_sessions = true`: the agent's child sessions are listed too

    @property
    def source(self) -> Source:
        """The plug-in, loaded on first use: a root that does not exist never loads it."""
        return SOURCES[self.kind]


class Found(msgspec.Struct, frozen=True):
    ident: Identity
    version: Version  # the stat of a one-file session; the plug-in's change token otherwise


def roots(cfg: Config, env: Mapping[str, str]) -> list[Root]:
    out = []
    for kind in SOURCES:
        sc = cfg.sources.get(kind)
        if sc is not None and not sc.enabled:
            continue
        children = child_sessions(cfg, kind)
        if sc is not None and sc.roots:
            out.extend(Root(kind, expand(r, env).absolute(), True, children) for r in sc.roots)
        else:
            out.extend(Root(kind, p.absolute(), False, children) for p in default_roots(kind, env))
    return out


def discover(cfg: Config, env: Mapping[str, str], now: float | None = None) -> tuple[list[Found], list[str]]:
    """All sessions to consider, newest first, and one-line warnings (missing explicit roots, stat errors)."""
    warnings: list[str] = []
    found: list[Found] = []
    for root in roots(cfg, env):
        linked: dict[str, bool] = {}  # folder → whether it, or a folder above it in the root, is a symlink
        if not (root.path.is_dir() or root.path.is_file()):  # a file root: a database named by the user
            if root.explicit:
                warnings.append(f"{root.kind} folder {root.path} does not exist; fix the path in the config "
                                f"or the --{root.kind}-root flag")
            continue
        one_file = isinstance(root.source, OneFile)
        top = str(root.path)
        try:
            for ident in sessions(root.source, root.path, children=root.children):
                through, st = _through_symlink(top, str(ident.path), linked)
                if through:
                    continue  # the roots are what the user gave us: a link inside one is not followed
                try:
                    found.append(Found(ident, version_of(st) if one_file and st is not None
                                       else root.source.version(ident)))
                except OSError as exc:
                    warnings.append(f"cannot stat {ident.path}: {exc.strerror}; check its permissions")
                except Exception as exc:  # noqa: BLE001 — a plug-in's store it cannot read (a corrupt DB)
                    warnings.append(f"cannot read {ident.path} ({type(exc).__name__}: {exc}); it is skipped")
        except Exception as exc:  # noqa: BLE001 — one source's tree must not stop discovery of the others
            warnings.append(f"cannot list {label(root.kind)} sessions under {root.path} "
                            f"({type(exc).__name__}: {exc}); check the folder")
    found.sort(key=lambda f: (-f.version.mtime_ns, str(f.ident.path)))
    # One session, one entry: copies of a session id (two roots, a moved folder left behind) keep the newest.
    seen: set[tuple[str, str]] = set()
    found = [f for f in found if (k := (f.ident.kind, f.ident.session_id)) not in seen and not seen.add(k)]
    if cfg.max_age_days is not None:
        cutoff = (now if now is not None else time.time()) - cfg.max_age_days * 86400
        found = [f for f in found if f.version.mtime_ns >= cutoff * 1e9]
    if cfg.max_sessions is not None:
        found = found[: cfg.max_sessions]
    return found, warnings


def _through_symlink(top: str, name: str, linked: dict[str, bool]) -> tuple[bool, os.stat_result | None]:
    """Whether `name` (a path below the root `top`) is a symlink or lies in a symlinked folder below `top`
    (a root that is itself a link is followed: the user named it), and the file's lstat (None: it cannot
    be taken). One lstat per folder, cached, and per file; plain strings, not pathlib (this runs for every
    session of every run, most of a no-change run)."""
    try:
        st = os.lstat(name)
    except OSError:
        return False, None
    if stat.S_ISLNK(st.st_mode):
        return True, st
    folder = name[:name.rfind(os.sep)] or os.sep  # dirname: a str of a Path has no trailing or double sep
    chain = []
    while folder != top and folder not in linked and folder.startswith(top + os.sep):
        chain.append(folder)
        folder = os.path.dirname(folder)
    verdict = linked.get(folder, False)
    for f in reversed(chain):
        verdict = verdict or os.path.islink(f)
        linked[f] = verdict
    return verdict, st


class Triage(msgspec.Struct):
    todo: list[Found]  # to hand to the engine, largest first (a pool then finishes evenly)
    unchanged: int  # the ledger has exactly this stat
    skipped: list[str]  # still skipped for the reason recorded at this stat (nothing read)


def triage(found: list[Found], known: dict[tuple[str, str], tuple[tuple[int, int, int], str, int | None]],
           skips: dict[tuple[str, str], tuple[tuple[int, int, int], str | None, str]]) -> Triage:
    """Split discovered sessions by what the ledger knows (`Ledger.stats()`, `Ledger.skips()`); a session
    is (kind, session id): one found at a new path (a moved file) goes to the engine once, to record it.

    An equal stat is not enough when the ledger recorded the file's ctime and it moved since: a rewrite
    that puts size and mtime back (`cp -p`, rsync) looks unchanged otherwise. The engine checks the whole
    folded prefix then (a chmod costs that one read, and the new ctime is recorded)."""
    out = Triage(todo=[], unchanged=0, skipped=[])
    for f in found:
        key = (f.ident.kind, f.ident.session_id)
        stat = f.version.key()
        skip = skips.get(key)
        entry = known.get(key)
        if (entry is not None and entry[0] == stat and entry[1] == str(f.ident.path)
                and (entry[2] is None or f.version.ctime_ns is None or entry[2] == f.version.ctime_ns)):
            out.unchanged += 1
        elif skip is not None and skip[0] == stat and not (skip[1] and os.path.isdir(skip[1])):
            out.skipped.append(skip[2])
        else:
            out.todo.append(f)
    out.todo.sort(key=lambda f: -f.version.size)
    return out
