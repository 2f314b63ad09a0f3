"""One writer per Codex home (issue 8): `import` and the daemon exclude each other per CODEX_HOME, also
from different state dirs. Real subprocesses holding the real flock."""

from __future__ import annotations

import subprocess
from pathlib import Path

from daemon_support import DaemonProc, Session, toml_config
from support import Tree, cli_command, run_import


def _tree_with_session(tmp_path: Path) -> Tree:
    tree = Tree(tmp_path)
    Session(tree.home / ".claude" / "projects", tree.root / "repos" / "p").write_turns(("q", "a"))
    return tree


def test_an_import_from_another_state_dir_is_refused_while_the_daemon_writes(tmp_path: Path) -> None:
    tree = _tree_with_session(tmp_path)
    with DaemonProc(tree, toml_config(claude_roots=[tree.home / ".claude" / "projects"])) as daemon:
        daemon.start()
        env = {**tree.env(), "XDG_STATE_HOME": str(tmp_path / "other-state")}
        done = subprocess.run(cli_command("import"), env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 1, done.stdout
        assert done.stderr.count("\n") == 1 and "writes to the Codex home" in done.stderr
        assert f"pid {daemon.pid}" in done.stderr and "daemon" in done.stderr
        assert daemon.stop() == 0
    assert len(tree.rollouts()) == 1
    env = {**tree.env(), "XDG_STATE_HOME": str(tmp_path / "other-state")}
    done = subprocess.run(cli_command("import"), env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr  # the daemon is gone: the lock went with it


def test_two_imports_into_one_codex_home_exclude_each_other(tmp_path: Path) -> None:
    tree = _tree_with_session(tmp_path)
    holder = subprocess.Popen(
        [*cli_command()[:1], "-c", "import sys, time; from pathlib import Path; from daemon.codex import homelock; "
         "lock = homelock.acquire(Path(sys.argv[1]), 'import', Path('/elsewhere')); print('held', flush=True); "
         "time.sleep(60)", str(tree.codex_home)], env=tree.env(), stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        blocked = subprocess.run(cli_command("import"), env=tree.env(), capture_output=True, text=True, timeout=60)
    finally:
        holder.kill()
        holder.wait()
    assert blocked.returncode == 1 and "writes to the Codex home" in blocked.stderr, blocked.stderr
    assert "/elsewhere" in blocked.stderr and tree.rollouts() == []
    summary = run_import(tree)  # the holder is gone
    assert summary["imported"] == 1 and len(tree.rollouts()) == 1
