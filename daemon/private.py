"""Everything we create is private: folders 0700, files 0600, whatever the umask.

Owns the one helper for creating folders that way (`mkdir -p` would give intermediate folders
0777 & ~umask), and the one check that we could create something in a folder. Folders that already
exist are left as they are: they are not ours.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def make_dirs(path: Path) -> None:
    """Create `path` and its missing parents, each 0700."""
    missing = []
    while not path.is_dir():
        missing.append(path)
        path = path.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=0o700)
        except FileExistsError:
            continue  # made by someone else (Codex, a parallel run) meanwhile: not ours to chmod
        folder.chmod(0o700)


def probe_writable(folder: Path) -> str | None:
    """None if we can create (and remove) a file in `folder`, or in its nearest existing ancestor when it
    does not exist yet (it would be created there); otherwise the reason."""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is not a folder"
    # A name of our own (pid + clock) with O_EXCL rather than tempfile.mkstemp: every `import` probes the
    # Codex home, and tempfile would add random and shutil to its start-up.
    name = probe / f".session-syncd-probe-{os.getpid()}-{time.monotonic_ns()}"
    try:
        fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        return f"{probe} is not writable ({exc.strerror})"
    os.close(fd)
    os.unlink(name)
    return None


def check_codex_home(codex_home: Path) -> str | None:
    """One line if we cannot write threads into the Codex home at all (nothing is attempted then). Here,
    not in codex/store.py, so that an `import` with nothing to do need not load the writer."""
    problem = probe_writable(codex_home)
    if problem is None:
        return None
    return (f"Codex home {codex_home} is not writable ({problem}); "
            "fix its permissions or point CODEX_HOME / --codex-home elsewhere")
