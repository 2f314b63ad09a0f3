"""Security: what we create is private, symlinks do not lead us out of the roots, no network at all.

Real `session-syncd import` and `run` subprocesses on real temp trees. The network check runs them
under a `sitecustomize` that installs an audit hook (PEP 578) recording every AF_INET/AF_INET6 socket
created, connected or bound, in the main process and in every worker process (they start Python with
the same environment); a positive control proves the hook sees a socket when one is made.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from daemon_support import DaemonProc, Session, toml_config, wait_until, synced
from support import Tree, ledger_rows, run_import

pytestmark = pytest.mark.slow

_SITECUSTOMIZE = '''
import os, socket, sys
_out = os.environ["SECURITY_SOCKET_LOG"]
def _hook(event, args):
    if event in ("socket.__new__", "socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo"):
        fam = getattr(args[0], "family", None) if event != "socket.__new__" else args[1]
        if event == "socket.getaddrinfo" or fam in (socket.AF_INET, socket.AF_INET6):
            with open(_out, "a") as f:
                f.write(f"{os.getpid()} {event} {args[1:]!r} {sys.argv!r}\\n")
sys.addaudithook(_hook)
'''


def _private_tree(tree: Tree) -> tuple[Tree, list[Session]]:
    projects = tree.home / ".claude" / "projects"
    sessions = [Session(projects, tree.root / "repos" / "p", project=f"-work-p{i}") for i in range(3)]
    for s in sessions:
        s.write_turns(("hello", "hi"), ("again", "sure"))
    return tree, sessions


def _check_private(folder: Path) -> list[str]:
    bad = []
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in [dirpath, *(os.path.join(dirpath, d) for d in dirnames)]:
            mode = stat.S_IMODE(os.lstat(name).st_mode)
            if mode != 0o700:
                bad.append(f"{name}: folder {oct(mode)}")
        for f in filenames:
            p = os.path.join(dirpath, f)
            mode = stat.S_IMODE(os.lstat(p).st_mode)
            if mode != 0o600:
                bad.append(f"{p}: file {oct(mode)}")
    return sorted(set(bad))


def test_files_0600_folders_0700_after_import_and_daemon(tmp_path: Path) -> None:
    tree, sessions = _private_tree(Tree(tmp_path))
    old = os.umask(0o022)  # a permissive umask: what we create must be private anyway
    try:
        run_import(tree)
        with DaemonProc(tree, toml_config()) as daemon:
            daemon.start()
            for s in sessions:
                s.append(b"".join(s.turn_lines("more", "yes")))
            for s in sessions:
                wait_until(lambda s=s: synced(tree, s.path), 60, "synced", daemon)
            assert daemon.stop() == 0
    finally:
        os.umask(old)
    assert tree.codex_home.is_dir() and tree.state.is_dir()
    assert _check_private(tree.codex_home) == []
    assert _check_private(tree.state / "session-syncd") == []


def test_symlinks_out_of_the_roots_are_not_followed(tmp_path: Path) -> None:
    """Decision: a session reached through a symlink (a symlinked project folder, or a symlinked
    session file) is not imported, wherever it points: the roots are what the user gave us."""
    tree = Tree(tmp_path)
    projects = tree.home / ".claude" / "projects"
    inside = Session(projects, tmp_path / "repos" / "p", project="-work-real")
    inside.write_turns(("real", "yes"))
    outside_root = tmp_path / "outside"
    outside = Session(outside_root, tmp_path / "repos" / "p", project="-work-secret")
    outside.write_turns(("secret", "no"))
    (projects / "-work-linked").symlink_to(outside.path.parent, target_is_directory=True)
    (projects / "-work-real" / f"{'1' * 8}-0000-4000-8000-000000000000.jsonl").symlink_to(outside.path)

    def imported() -> set[str]:
        return {r["path"] for r in ledger_rows(tree) if r["rollout_path"]}

    run_import(tree, check=False)
    assert imported() == {str(inside.path)}
    with DaemonProc(tree, toml_config()) as daemon:
        daemon.start()
        outside.append(b"".join(outside.turn_lines("secret 2", "no")))  # a change behind the links
        inside.append(b"".join(inside.turn_lines("real 2", "yes")))
        wait_until(lambda: synced(tree, inside.path), 60, "synced", daemon)
        assert daemon.stop() == 0
    assert imported() == {str(inside.path)}
    assert not any("secret" in p.read_text() for p in tree.rollouts())


def test_no_network_socket_is_ever_opened(tmp_path: Path) -> None:
    tree, sessions = _private_tree(Tree(tmp_path))
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(_SITECUSTOMIZE)
    log = tmp_path / "sockets.txt"
    extra = {"SECURITY_SOCKET_LOG": str(log)}

    class AuditedTree(Tree):
        def env(self) -> dict[str, str]:
            env = super().env()
            return {**env, **extra, "PYTHONPATH": f"{site}{os.pathsep}{env['PYTHONPATH']}"}

    audited = AuditedTree(tree.root)
    # Positive control: the hook sees a network socket when one is made.
    subprocess.run([sys.executable, "-c", "import socket; socket.socket(socket.AF_INET6).close()"],
                   env=audited.env(), check=True)
    assert "socket.__new__" in log.read_text()
    log.unlink()

    summary = run_import(audited, "--json")
    assert summary["imported"] == 3, summary
    with DaemonProc(audited, toml_config(workers=2)) as daemon:  # type: ignore[arg-type]
        daemon.start()
        for s in sessions:
            s.append(b"".join(s.turn_lines("more", "yes")))
        for s in sessions:
            wait_until(lambda s=s: synced(tree, s.path), 60, "synced", daemon)
        assert daemon.stop() == 0
    subprocess.run([sys.executable, "-m", "daemon", "status", "--json"], env=audited.env(), cwd=tree.root,
                   capture_output=True, check=False, timeout=60)
    subprocess.run([sys.executable, "-m", "daemon", "doctor"], env=audited.env(), cwd=tree.root,
                   capture_output=True, check=False, timeout=60)
    assert not log.exists(), log.read_text()
    json.dumps(summary)
