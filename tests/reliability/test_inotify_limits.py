"""Running out of inotify watches (ENOSPC) degrades to polling the unwatched folders, for real.

The limit is lowered for real, without touching the machine's: each test runs its process in a new
user namespace (`unshare --user --map-root-user`) and writes that namespace's own
/proc/sys/user/max_inotify_watches (Linux ≥ 5.11 counts watches per user namespace), so other
programs on the machine keep theirs. Skipped, saying why, only where user namespaces are unavailable.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capability import missing
from daemon_support import DaemonProc, Session, synced, toml_config, wait_until
from support import REPO, Tree, cli_command

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="inotify is Linux's")]


def _limited(limit: int, argv: list[str]) -> list[str]:
    """`argv` in a new user namespace whose inotify watch limit is `limit`."""
    return ["unshare", "--user", "--map-root-user", "sh", "-c",
            f'echo {limit} > /proc/sys/user/max_inotify_watches && exec "$@"', "sh", *argv]


@pytest.fixture(scope="module", autouse=True)
def _namespaces() -> None:
    if shutil.which("unshare") is None:
        missing("unshare(1) is not installed (util-linux)")
    probe = subprocess.run(_limited(3, ["cat", "/proc/sys/user/max_inotify_watches"]), capture_output=True,
                           text=True)
    if probe.returncode != 0 or probe.stdout.strip() != "3":
        missing(f"cannot make a user namespace with its own inotify limit here: {probe.stderr.strip()}")


_WATCHER = """
import json, sys, trio
from pathlib import Path
from daemon.watch import Changed, watching

root = Path(sys.argv[1])
async def main():
    send, receive = trio.open_memory_channel(1000)
    async with watching([root], send, depths={root: 1}, poll_interval=0.2):
        print("ready", flush=True)
        for line in sys.stdin:  # each command: write a file, then wait for its Changed
            path = Path(line.strip())
            path.parent.mkdir(exist_ok=True)
            with open(path, "a") as f:
                f.write("{}\\n")
            with trio.fail_after(20):
                while (ev := await receive.receive()) != Changed(path):
                    pass
            print("seen", path, flush=True)
trio.run(main)
"""


def test_watcher_polls_the_folders_it_cannot_watch(tmp_path: Path) -> None:
    root = tmp_path / "projects"
    for i in range(8):
        (root / f"p{i}").mkdir(parents=True)
    # 4 watches: the anchor, the root and two project folders; the other six (and new ones) are polled.
    proc = subprocess.Popen(_limited(4, [sys.executable, "-c", _WATCHER, str(root)]), cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    other: list[str] = []  # what else it printed (unconfigured structlog prints its warning to stdout)

    def next_line(want: str) -> None:
        assert proc.stdout is not None
        while (line := proc.stdout.readline()) and line.strip() != want:
            other.append(line)
        assert line.strip() == want, f"exited before {want!r}: {other}"

    try:
        assert proc.stdin is not None
        next_line("ready")
        for path in [root / f"p{i}" / "s.jsonl" for i in range(8)] + [root / "new" / "n.jsonl",
                                                                        root / "p7" / "s.jsonl"]:
            proc.stdin.write(f"{path}\n")
            proc.stdin.flush()
            next_line(f"seen {path}")
        proc.stdin.close()
        assert proc.wait(timeout=30) == 0
        assert sum("watch.polling" in line for line in other) == 1, other
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_daemon_starts_polls_and_says_how_to_fix_it(tmp_path: Path) -> None:
    tree = Tree(tmp_path)
    projects = tree.home / ".claude" / "projects"
    sessions = [Session(projects, tmp_path / "repos" / "p", project=f"-work-p{i}") for i in range(6)]
    for s in sessions:
        s.write_turns(("hello", "hi"))
    daemon = DaemonProc(tree, toml_config() + "poll_interval_s = 0.3\n")
    daemon.config_path.write_text("poll_interval_s = 0.3\n" + toml_config())
    with daemon:
        # The daemon under a 4-watch limit: it must start, not refuse.
        with daemon.stderr_path.open("wb") as err:
            daemon.log_start = daemon.log_size()
            daemon.proc = subprocess.Popen(_limited(4, cli_command("run", "--config", str(daemon.config_path))),
                                           env=tree.env(), cwd=tree.root, stdin=subprocess.DEVNULL,
                                           stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        daemon.wait_event("daemon.ready", timeout=60)
        for s in sessions:
            wait_synced(tree, s.path, daemon)
        (warning,) = daemon.find("watch.polling")
        assert warning["level"] == "warning" and "fs.inotify.max_user_watches" in warning["error"]
        # Changes in every folder still arrive, watched or polled, and in a project folder made later.
        for s in sessions:
            s.append(b"".join(s.turn_lines("more", "yes")))
        late = Session(projects, tmp_path / "repos" / "p", project="-work-late")
        late.write_turns(("late", "ok"))
        for s in [*sessions, late]:
            wait_synced(tree, s.path, daemon)
        assert len(daemon.find("watch.polling")) == 1  # one warning, however many folders
        # doctor, in the same namespace, names the limit and the fix.
        doctor = subprocess.run(_limited(4, cli_command("doctor")), env=tree.env(), capture_output=True, text=True,
                                timeout=60)
        line = next(x for x in doctor.stdout.splitlines() if "inotify" in x)
        assert "limit 4" in line and "sysctl" in line and "fs.inotify.max_user_watches=" in line, doctor.stdout
        assert daemon.stop() == 0


def wait_synced(tree: Tree, path: Path, daemon: DaemonProc) -> None:
    wait_until(lambda: synced(tree, path), 60, f"{path.name} synced", daemon)
