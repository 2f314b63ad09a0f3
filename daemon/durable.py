"""Directory entries that survive power loss: fsync a folder after creating something in it.

Why: a file's own fsync makes its bytes durable, not its name. After a power cut, a rollout renamed
into a day folder that was itself just created can vanish with the folder unless the folder's parent
was fsynced too (ext4, xfs, btrfs all need this; a crash of the process alone never loses them).
Owns only that; `daemon.private.make_dirs` decides the modes.
"""

from __future__ import annotations

import os
from pathlib import Path

from daemon.private import make_dirs


def fsync_dir(path: Path) -> None:
    """Make the entries of folder `path` (files created, renamed or removed in it) durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs_durable(path: Path) -> None:
    """`make_dirs(path)`, then fsync the parent of every folder it created (deepest first), so a file
    made durable inside `path` cannot lose its folder to a power cut. Free when `path` exists."""
    if path.is_dir():
        return
    top = path
    while not top.parent.is_dir():
        top = top.parent
    make_dirs(path)
    folder = path
    while True:
        fsync_dir(folder.parent)
        if folder == top:
            return
        folder = folder.parent
