"""gitinfo parses config and packed-refs once per version of the file: a changed file is always re-read.

Real repositories made with the real `git`; the edits are git's own (which rename a lock file over the
old one) and an in-place rewrite (same inode), so a memo keyed on anything less than the stat would fail.
"""

from __future__ import annotations

import os
from pathlib import Path

from daemon.gitinfo import git_info
from support import git, make_git_repo


def test_a_changed_origin_is_seen(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    make_git_repo(repo, "https://example.invalid/one.git")
    assert git_info(str(repo)).repository_url == "https://example.invalid/one.git"
    git(repo, "remote", "set-url", "origin", "https://example.invalid/two.git")
    assert git_info(str(repo)).repository_url == "https://example.invalid/two.git"
    config = repo / ".git" / "config"
    text = config.read_text().replace("two.git", "three-in-place.git")
    with open(config, "r+") as f:  # same inode, rewritten in place
        f.write(text)
        f.truncate()
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 1))
    assert git_info(str(repo)).repository_url == "https://example.invalid/three-in-place.git"


def test_repacked_and_moved_refs_are_seen(tmp_path: Path) -> None:
    repo = tmp_path / "r"
    repo.mkdir()
    first = make_git_repo(repo, "https://example.invalid/r.git", branches=("dev",))
    git(repo, "pack-refs", "--all")
    assert git_info(str(repo), "dev").commit_hash == first
    (repo / "f").write_text("more\n")
    git(repo, "add", "f")
    git(repo, "commit", "-q", "-m", "second")
    second = git(repo, "rev-parse", "HEAD")
    git(repo, "branch", "-f", "dev", "HEAD")
    git(repo, "pack-refs", "--all")
    assert second != first
    assert git_info(str(repo), "dev").commit_hash == second


def test_two_repositories_do_not_share_answers(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    for path, url in ((one, "https://example.invalid/1.git"), (two, "https://example.invalid/2.git")):
        path.mkdir()
        make_git_repo(path, url)
    (one / "sub" / "deeper").mkdir(parents=True)
    assert git_info(str(one / "sub" / "deeper")).repository_url == "https://example.invalid/1.git"
    assert git_info(str(two)).repository_url == "https://example.invalid/2.git"
