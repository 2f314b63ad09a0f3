"""Bad input and a hostile environment: each gives one clear line, the right exit code, and nothing
already imported is lost or duplicated. Real files, real subprocesses, a real full tmpfs."""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from support import Tree, cli_command, ledger_rows, run_import


def _run_import(tree: Tree, *args: str, config: Path, **kw):
    return run_import(tree, "--config", str(config), *args, **kw)


def claude_session(tree: Tree, cwd: Path, name: str, turns: int, pad: int = 0, malformed: int = 0) -> Path:
    path = tree.home / ".claude" / "projects" / "-p" / f"{name}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(turns):
        for kind, text in (("user", f"question {i} " + "x" * pad), ("assistant", f"answer {i}")):
            content = text if kind == "user" else [{"type": "text", "text": text}]
            lines.append(json.dumps({"type": kind, "cwd": str(cwd), "sessionId": name,
                                     "timestamp": f"2026-11-01T10:{i // 60:02d}:{i % 60:02d}.000Z",
                                     "message": {"role": kind, "content": content}}))
    lines[1:1] = ['{"type":"user","truncated'] * malformed
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def tree(tmp_path: Path) -> Tree:
    t = Tree(tmp_path)
    (tmp_path / "repos" / "p").mkdir(parents=True)
    return t


def test_malformed_lines_are_skipped_and_counted(tree: Tree) -> None:
    claude_session(tree, tree.root / "repos" / "p", "s1", turns=3, malformed=2)
    summary = run_import(tree)
    assert (summary["imported"], summary["failed"], summary["malformed_lines"]) == (1, 0, 2)
    assert summary["returncode"] == 0


def test_cwd_that_no_longer_exists_is_imported_by_default(tree: Tree) -> None:
    """Codex lists, reads and resumes a thread whose cwd is gone (tests/test_coexist_probe.py), so a
    session in a deleted worktree is not lost: it is imported, without git metadata."""
    gone = tree.root / "repos" / "gone"
    claude_session(tree, gone, "s1", turns=2)
    summary = run_import(tree)
    assert (summary["imported"], summary["skipped"], summary["returncode"]) == (1, 0, 0), summary
    (rollout,) = tree.rollouts()
    meta = json.loads(rollout.read_text().splitlines()[0])["payload"]
    assert meta["cwd"] == str(gone) and "git" not in meta


def test_cwd_that_no_longer_exists_is_skipped_with_codexs_rule_then_imported_when_back(tree: Tree) -> None:
    gone = tree.root / "repos" / "gone"
    claude_session(tree, gone, "s1", turns=2)
    config = tree.root / "skip.toml"
    config.write_text("skip_missing_cwd = true\n")
    run_import = functools.partial(_run_import, config=config)
    summary = run_import(tree)
    assert (summary["imported"], summary["skipped"], summary["returncode"]) == (0, 1, 0)
    assert any(str(gone) in e and "no longer exists" in e for e in summary["errors"]), summary["errors"]
    assert not tree.rollouts()
    again = run_import(tree)  # nothing changed: still skipped, for the same reason, without reading it
    assert (again["skipped"], again["bytes_read"], again["errors"]) == (1, 0, summary["errors"])
    gone.mkdir()
    summary = run_import(tree)
    assert (summary["imported"], summary["skipped"]) == (1, 0)
    assert len(tree.rollouts()) == 1


def test_missing_explicit_root_is_named(tree: Tree) -> None:
    missing = tree.root / "nowhere"
    proc = subprocess.run(cli_command("import", "--claude-root", str(missing)), env=tree.env(),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert f"claude folder {missing} does not exist" in proc.stderr


def test_codex_home_that_cannot_exist_fails_cleanly(tree: Tree) -> None:
    claude_session(tree, tree.root / "repos" / "p", "s1", turns=1)
    blocker = tree.root / "a-file"
    blocker.write_text("not a folder")
    env = {**tree.env(), "CODEX_HOME": str(blocker / "codex")}
    proc = subprocess.run(cli_command("import"), env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    (line,) = [l for l in proc.stderr.splitlines() if "Codex home" in l]
    assert str(blocker / "codex") in line and "fix its permissions" in line
    assert not tree.ledger_path.exists() or ledger_rows(tree) == []


def test_full_disk_fails_that_session_only(tree: Tree) -> None:
    """A 512 KiB tmpfs as CODEX_HOME (in a private mount namespace): the small session fits, the big one
    cannot; the big one fails with the fix, leaves no temp file, and the small one is imported."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("this test mounts a tmpfs: it needs root and unshare (CI and the dev machines have both)")
    cwd = tree.root / "repos" / "p"
    claude_session(tree, cwd, "small", turns=2)
    claude_session(tree, cwd, "big", turns=40, pad=30_000)  # ~2.4 MiB of rollout
    tree.codex_home.mkdir()
    script = ('mount -t tmpfs -o size=512k tmpfs "$0" && "$@"; code=$?; '
              'find "$0" -name "*.tmp" | sed "s/^/TEMP /"; exit $code')
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", script, str(tree.codex_home),
                           *cli_command("import", "--json", "--workers", "1")],
                          env=tree.env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    summary = json.loads([l for l in proc.stdout.splitlines() if l.startswith("{")][-1])
    assert (summary["imported"], summary["failed"]) == (1, 1), summary
    (error,) = summary["errors"]
    assert "big.jsonl: cannot write" in error and "free some disk space" in error, error
    assert "TEMP" not in proc.stdout
    rows = {Path(r["path"]).stem: r for r in ledger_rows(tree)}
    assert set(rows) == {"small"} and rows["small"]["thread_id"]


def test_full_disk_during_an_append_leaves_the_thread_whole(tree: Tree) -> None:
    """The append that does not fit fails with the fix, and the thread is byte-identical to before."""
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("this test mounts a tmpfs: it needs root and unshare (CI and the dev machines have both)")
    cwd = tree.root / "repos" / "p"
    src = claude_session(tree, cwd, "s1", turns=2)
    extra = tree.root / "extra.jsonl"
    extra.write_text(json.dumps({"type": "user", "cwd": str(cwd), "timestamp": "2026-11-01T11:00:00.000Z",
                                 "message": {"role": "user", "content": "y" * 1_000_000}}) + "\n")
    tree.codex_home.mkdir()
    imp = " ".join(cli_command("import", "--json"))
    script = (f'mount -t tmpfs -o size=256k tmpfs "$0" && {imp} > "$1/first.json" && '
              f'cat "$0"/sessions/*/*/*/*.jsonl | sha256sum > "$1/before" && cat "$2" >> "$3" && '
              f'{{ {imp} > "$1/second.json"; echo $? > "$1/code"; }} && '
              f'cat "$0"/sessions/*/*/*/*.jsonl | sha256sum > "$1/after"')
    proc = subprocess.run(["unshare", "--mount", "sh", "-c", script, str(tree.codex_home), str(tree.root),
                           str(extra), str(src)], env=tree.env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tree.root / "first.json").read_text())["imported"] == 1
    second = json.loads((tree.root / "second.json").read_text())
    assert (second["failed"], (tree.root / "code").read_text().strip()) == (1, "1"), second
    assert "free some disk space" in second["errors"][0]
    assert (tree.root / "before").read_text() == (tree.root / "after").read_text()
    (row,) = ledger_rows(tree)
    assert row["last_error"] and "free some disk space" in row["last_error"]


def test_what_we_write_is_private(tree: Tree) -> None:
    """Files 0600 and the folders we create 0700, whatever the umask."""
    claude_session(tree, tree.root / "repos" / "p", "s1", turns=1)
    run_import(tree)
    made = [p for p in tree.codex_home.rglob("*")] + [p for p in tree.state.rglob("*")]
    assert made
    modes = {str(p.relative_to(tree.root)): p.stat().st_mode & 0o777 for p in made}
    assert {k: m for k, m in modes.items() if m not in (0o600, 0o700)} == {}
