"""Git metadata of a session's cwd (commit, branch, origin URL), read from `.git` without running git.

Codex's own importer loses this (PR #26637 review); we put it into `session_meta.git`. Reading the
files directly costs microseconds where three `git` subprocesses per session would cost milliseconds.
Handles worktrees and submodules (`.git` files with `gitdir:`), `commondir`, loose and packed refs.
The branch the agent recorded wins over the checkout's current one (the session ran on it), and then
the commit is that branch's tip when the repository has it.
"""

from __future__ import annotations

import configparser
from pathlib import Path

from daemon.codex.lines import GitInfo


def _read(path: Path) -> str | None:
    try:
        return path.read_text("utf-8", "replace").strip()
    except OSError:
        return None


def _find_git_dirs(cwd: Path) -> tuple[Path, Path] | None:
    """(git dir, common dir) of the repository containing `cwd`."""
    for d in (cwd, *cwd.parents):
        dot = d / ".git"
        if dot.is_dir():
            git_dir = dot
        elif dot.is_file():
            text = _read(dot) or ""
            if not text.startswith("gitdir:"):
                return None
            git_dir = (d / text[len("gitdir:"):].strip()).resolve()
        else:
            continue
        common = _read(git_dir / "commondir")
        return git_dir, ((git_dir / common).resolve() if common else git_dir)
    return None


SYMREF_MAX_DEPTH = 5  # git's own limit (refs.c SYMREF_MAXDEPTH): a ref pointing at itself ends here


def _resolve_ref(git_dir: Path, common: Path, ref: str, depth: int = 0) -> str | None:
    if depth > SYMREF_MAX_DEPTH:
        return None
    for base in (git_dir, common):
        value = _read(base / ref)
        if value:
            if not value.startswith("ref:"):
                return value
            return _resolve_ref(git_dir, common, value[4:].strip(), depth + 1)
    packed = _read(common / "packed-refs") or ""
    for line in packed.splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2 and parts[1] == ref:
            return parts[0]
    return None


def _origin_url(common: Path) -> str | None:
    # git allows valueless keys (`\tbare` = true), trailing `# …`/`; …` comments and quoted values
    parser = configparser.RawConfigParser(strict=False, allow_no_value=True, inline_comment_prefixes=("#", ";"))
    try:
        parser.read(common / "config", encoding="utf-8")
        url = parser.get('remote "origin"', "url")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    if url and len(url) >= 2 and url[0] == url[-1] == '"':
        url = url[1:-1]
    return url or None


def git_info(cwd: str, recorded_branch: str | None = None) -> GitInfo | None:
    dirs = _find_git_dirs(Path(cwd))
    if dirs is None:
        return None
    git_dir, common = dirs
    head = _read(git_dir / "HEAD") or ""
    branch = head[len("ref: refs/heads/"):] if head.startswith("ref: refs/heads/") else None
    if recorded_branch and recorded_branch != branch:
        branch = recorded_branch
        commit = _resolve_ref(git_dir, common, f"refs/heads/{recorded_branch}")  # None if not here
    else:
        commit = _resolve_ref(git_dir, common, head[4:].strip()) if head.startswith("ref:") else (head or None)
    return GitInfo(commit_hash=commit, branch=branch, repository_url=_origin_url(common))
