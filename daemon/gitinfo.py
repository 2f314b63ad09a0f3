"""Git metadata of a session's cwd (commit, branch, origin URL), read from `.git` without running git.

Codex's own importer loses this (PR #26637 review); we put it into `session_meta.git`. Reading the
files directly costs microseconds where three `git` subprocesses per session would cost milliseconds.
Handles worktrees and submodules (`.git` files with `gitdir:`), `commondir`, loose and packed refs.
The branch the agent recorded wins over the checkout's current one (the session ran on it), and then
the commit is that branch's tip when the repository has it.
"""

from __future__ import annotations

import configparser
import functools
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from daemon.codex.lines import GitInfo

# Every session of a repository reads the same few files; the two that take parsing (config, packed-refs)
# are parsed once per version of the file: the memo is keyed by the file's stat, and git replaces both by
# renaming a lock file over them (a new inode), so an edit is never missed. Discovery uses one stat per
# folder and plain strings: with pathlib and configparser this was ~0.3 ms of every session's import.
_MEMO_FILES = 64


def _read(path: str) -> str | None:
    """A small file's text: open, read, close (a buffered `open` adds an fstat, an ioctl, two seeks, a
    second fstat and a read to find the end: six more syscalls for each of a session's two or three)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        pieces = []
        while piece := os.read(fd, 1 << 16):
            pieces.append(piece)
            if len(piece) < 1 << 16:  # a regular file read short: its end
                break
        return b"".join(pieces).decode("utf-8", "replace").strip()
    except OSError:
        return None
    finally:
        os.close(fd)


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _folders_up(cwd: str) -> Iterator[str]:
    """`cwd` and each folder above it, as plain strings (pathlib's `parents` made a Path for each level:
    ~0.1 ms of every session's sync); a relative cwd keeps pathlib's rules."""
    if not cwd.startswith("/"):
        path = Path(cwd)
        yield from map(str, (path, *path.parents))
        return
    folder = cwd.rstrip("/") or "/"
    while True:
        yield folder
        above = os.path.dirname(folder)
        if above == folder:
            return
        folder = above


def _find_git_dirs(cwd: str) -> tuple[str, str] | None:
    """(git dir, common dir) of the repository containing `cwd`."""
    for d in _folders_up(cwd):
        dot = os.path.join(d, ".git")
        try:
            mode = os.stat(dot).st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode):
            git_dir = dot
        elif stat.S_ISREG(mode):
            text = _read(dot) or ""
            if not text.startswith("gitdir:"):
                return None
            git_dir = os.path.realpath(os.path.join(d, text[len("gitdir:"):].strip()))
        else:
            continue
        common = _read(os.path.join(git_dir, "commondir"))
        return git_dir, (os.path.realpath(os.path.join(git_dir, common)) if common else git_dir)
    return None


SYMREF_MAX_DEPTH = 5  # git's own limit (refs.c SYMREF_MAXDEPTH): a ref pointing at itself ends here


@functools.lru_cache(maxsize=_MEMO_FILES)
def _packed_refs(path: str, _signature: tuple[int, int, int]) -> dict[str, str]:
    refs: dict[str, str] = {}
    for line in (_read(path) or "").splitlines():
        parts = line.split(" ", 1)
        if len(parts) == 2:
            refs.setdefault(parts[1], parts[0])  # the first line naming a ref wins, as before
    return refs


def _resolve_ref(git_dir: str, common: str, ref: str, depth: int = 0) -> str | None:
    if depth > SYMREF_MAX_DEPTH:
        return None
    for base in (git_dir, common):
        value = _read(os.path.join(base, ref))
        if value:
            if not value.startswith("ref:"):
                return value
            return _resolve_ref(git_dir, common, value[4:].strip(), depth + 1)
    packed = os.path.join(common, "packed-refs")
    signature = _signature(packed)
    return _packed_refs(packed, signature).get(ref) if signature is not None else None


@functools.lru_cache(maxsize=_MEMO_FILES)
def _parse_origin(path: str, _signature: tuple[int, int, int]) -> str | None:
    # git allows valueless keys (`\tbare` = true), trailing `# …`/`; …` comments and quoted values
    parser = configparser.RawConfigParser(strict=False, allow_no_value=True, inline_comment_prefixes=("#", ";"))
    try:
        parser.read(path, encoding="utf-8")
        url = parser.get('remote "origin"', "url")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return None
    if url and len(url) >= 2 and url[0] == url[-1] == '"':
        url = url[1:-1]
    return url or None


def _origin_url(common: str) -> str | None:
    path = os.path.join(common, "config")
    signature = _signature(path)
    return _parse_origin(path, signature) if signature is not None else None


def git_info(cwd: str, recorded_branch: str | None = None) -> GitInfo | None:
    dirs = _find_git_dirs(cwd)
    if dirs is None:
        return None
    git_dir, common = dirs
    head = _read(os.path.join(git_dir, "HEAD")) or ""
    branch = head[len("ref: refs/heads/"):] if head.startswith("ref: refs/heads/") else None
    if recorded_branch and recorded_branch != branch:
        branch = recorded_branch
        commit = _resolve_ref(git_dir, common, f"refs/heads/{recorded_branch}")  # None if not here
    else:
        commit = _resolve_ref(git_dir, common, head[4:].strip()) if head.startswith("ref:") else (head or None)
    return GitInfo(commit_hash=commit, branch=branch, repository_url=_origin_url(common))
