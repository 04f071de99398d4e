"""What a submission folder holds: its regular files and links, read without ever blocking.

Every part of kit that looks at a student's folder (the fingerprint `kit grade` compares, the
copy sent to a forked child, the forbidden-API scan) walks it here: links are never followed,
folders of caches and editor state are skipped, and special files (named pipes, sockets,
devices) are left out, so that opening one can never hang the grader.
"""
from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

SKIP_DIRS = frozenset({"__pycache__", ".ipynb_checkpoints", ".git"})
TIMESTAMP_FILE = "timestamp.txt"  # nbgrader's record of the hand-in time: not part of what was handed in


def entries(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every regular file and link under `folder`, in a stable order."""
    root = str(folder)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS)
        names = sorted(filenames) + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        for name in sorted(names):
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                yield os.path.relpath(path, root), st


def read_regular(path: Path | str, limit: int | None = None) -> bytes:
    """The bytes of a regular file, never following a link nor blocking on a special file (OSError)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read() if limit is None else f.read(limit)
    finally:
        os.close(fd)


def content_hash(folder: Path) -> str:
    """A fingerprint of a submission: names, link targets and bytes (handing in the same files again is
    the same submission, so nbgrader's timestamp.txt and bytecode caches are left out)."""
    h = hashlib.sha256()
    for rel, st in entries(folder):
        if rel == TIMESTAMP_FILE or rel.endswith((".pyc", ".pyo")):
            continue
        h.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        path = os.path.join(folder, rel)
        if stat.S_ISLNK(st.st_mode):
            h.update(b"L" + os.readlink(path).encode("utf-8", "surrogateescape") + b"\0")
            continue
        try:
            h.update(b"F" + read_regular(path) + b"\0")
        except OSError as exc:
            h.update(b"E" + str(exc.errno).encode() + b"\0")
    return h.hexdigest()
