"""Git metadata read straight from `.git`, checked against real repositories made with `git`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from daemon.codex.lines import GitInfo
from daemon.gitinfo import git_info

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")

ORIGIN = "https://example.invalid/team/repo.git"


def git(cwd: Path, *args: str) -> str:
    env = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e", "GIT_CONFIG_GLOBAL": "/dev/null", "GIT_CONFIG_NOSYSTEM": "1",
           "HOME": str(cwd), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    r = tmp_path / "repo"
    r.mkdir()
    git(r, "init", "-q", "-b", "main")
    (r / "a.txt").write_text("a")
    git(r, "add", "a.txt")
    git(r, "commit", "-q", "-m", "first")
    return r


def head(r: Path, rev: str = "HEAD") -> str:
    return git(r, "rev-parse", rev)


def test_branch_commit_no_origin(repo: Path):
    assert git_info(str(repo)) == GitInfo(commit_hash=head(repo), branch="main", repository_url=None)


def test_origin_url_and_subdirectory(repo: Path):
    git(repo, "remote", "add", "origin", ORIGIN)
    git(repo, "remote", "add", "upstream", "https://example.invalid/other.git")
    sub = repo / "src" / "pkg"
    sub.mkdir(parents=True)
    assert git_info(str(sub)) == GitInfo(commit_hash=head(repo), branch="main", repository_url=ORIGIN)


def test_other_branch(repo: Path):
    git(repo, "checkout", "-q", "-b", "feature/x")
    (repo / "b.txt").write_text("b")
    git(repo, "add", "b.txt")
    git(repo, "commit", "-q", "-m", "second")
    info = git_info(str(repo))
    assert info.branch == "feature/x" and info.commit_hash == head(repo) != head(repo, "main")


def test_packed_refs(repo: Path):
    git(repo, "tag", "v1")
    git(repo, "pack-refs", "--all")
    assert not (repo / ".git" / "refs" / "heads" / "main").exists()
    assert git_info(str(repo)) == GitInfo(commit_hash=head(repo), branch="main")


def test_unborn_branch(tmp_path: Path):
    git(tmp_path, "init", "-q", "-b", "trunk")
    assert git_info(str(tmp_path)) == GitInfo(commit_hash=None, branch="trunk")


def test_detached_head(repo: Path):
    first = head(repo)
    (repo / "b.txt").write_text("b")
    git(repo, "add", "b.txt")
    git(repo, "commit", "-q", "-m", "second")
    git(repo, "checkout", "-q", "--detach", first)
    assert git_info(str(repo)) == GitInfo(commit_hash=first, branch=None)


def test_worktree(repo: Path, tmp_path: Path):
    git(repo, "remote", "add", "origin", ORIGIN)
    wt = tmp_path / "wt"
    git(repo, "worktree", "add", "-q", "-b", "wt-branch", str(wt))
    (wt / "c.txt").write_text("c")
    git(wt, "add", "c.txt")
    git(wt, "commit", "-q", "-m", "in worktree")
    assert (wt / ".git").is_file()
    assert git_info(str(wt)) == GitInfo(commit_hash=head(wt), branch="wt-branch", repository_url=ORIGIN)
    assert head(wt) != head(repo)
    # packed refs seen from the worktree (common dir)
    git(repo, "pack-refs", "--all")
    assert git_info(str(wt)).commit_hash == head(wt)
    # the main checkout is unaffected
    assert git_info(str(repo)) == GitInfo(commit_hash=head(repo), branch="main", repository_url=ORIGIN)


def test_recorded_branch_existing(repo: Path):
    git(repo, "branch", "other")
    git(repo, "checkout", "-q", "other")
    (repo / "d.txt").write_text("d")
    git(repo, "add", "d.txt")
    git(repo, "commit", "-q", "-m", "on other")
    git(repo, "checkout", "-q", "main")
    info = git_info(str(repo), recorded_branch="other")
    assert info.branch == "other" and info.commit_hash == head(repo, "other") != head(repo)
    git(repo, "pack-refs", "--all")
    assert git_info(str(repo), recorded_branch="other").commit_hash == head(repo, "other")
    # the same branch as the checkout: HEAD's commit
    assert git_info(str(repo), recorded_branch="main") == GitInfo(commit_hash=head(repo), branch="main")


def test_recorded_branch_missing(repo: Path):
    assert git_info(str(repo), recorded_branch="gone") == GitInfo(commit_hash=None, branch="gone")


def test_recorded_branch_on_detached_head(repo: Path):
    git(repo, "checkout", "-q", "--detach")
    assert git_info(str(repo), recorded_branch="main") == GitInfo(commit_hash=head(repo), branch="main")


def test_not_a_repo(tmp_path: Path):
    d = tmp_path / "plain"
    d.mkdir()
    assert git_info(str(d)) is None
    assert git_info(str(tmp_path / "missing" / "dir")) is None


def test_bogus_dot_git_file(tmp_path: Path):
    (tmp_path / ".git").write_text("not a gitdir line")
    assert git_info(str(tmp_path)) is None


def test_config_with_valueless_key_still_gives_origin(repo: Path):
    # git allows `key` without `= value` (boolean true); the origin URL must still be found
    with (repo / ".git" / "config").open("a") as f:
        f.write('[remote "origin"]\n\turl = ' + ORIGIN + '\n[extra]\n\tflag\n')
    assert git(repo, "remote", "get-url", "origin") == ORIGIN
    assert git_info(str(repo)).repository_url == ORIGIN


@pytest.mark.parametrize("line", [f'\turl = "{ORIGIN}"', f"\turl = {ORIGIN} ; a comment", f"\turl = {ORIGIN}  # note"])
def test_config_quoted_and_commented_url(repo: Path, line: str):
    with (repo / ".git" / "config").open("a") as f:
        f.write(f'[remote "origin"]\n{line}\n')
    assert git(repo, "remote", "get-url", "origin") == ORIGIN
    assert git_info(str(repo)).repository_url == ORIGIN
