"""Output paths checked before the work that fills them (a typo must not cost a long computation)."""
from __future__ import annotations

import os
from pathlib import Path

from lgc.errors import check


def check_writable_file(path: str | os.PathLike, flag: str) -> None:
    """UserError unless `path` can be written: it is not a folder, and its folder exists and is
    writable. Every command creates the file (or folder) it is told to write, never the folders
    above it: a missing folder is more often a typo than a wish."""
    p = Path(path).absolute()
    check(not p.is_dir(), f"{flag} {path}: is a folder, expected a file name")
    folder = p.parent
    check(folder.exists(), f"{flag} {path}: folder {folder} does not exist")
    check(folder.is_dir(), f"{flag} {path}: {folder} is not a folder")
    check(os.access(folder, os.W_OK | os.X_OK), f"{flag} {path}: folder {folder} is not writable")
