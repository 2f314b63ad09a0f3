"""Everything we create is private: folders 0700, files 0600, whatever the umask.

Owns the one helper for creating folders that way (`mkdir -p` would give intermediate folders
0777 & ~umask). Folders that already exist are left as they are: they are not ours.
"""

from __future__ import annotations

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
