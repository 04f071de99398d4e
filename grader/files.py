"""What a submission folder holds: its regular files and links, read without ever blocking; and
where kit keeps what it can work out again (`user_cache`).

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
from typing import BinaryIO

SKIP_DIRS = frozenset({"__pycache__", ".ipynb_checkpoints", ".git"})
TIMESTAMP_FILE = "timestamp.txt"  # nbgrader's record of the hand-in time: not part of what was handed in


def user_cache() -> Path | None:
    """$XDG_CACHE_HOME/kit (default ~/.cache/kit); None without a home folder."""
    try:
        return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "kit"
    except RuntimeError:  # no HOME and no passwd entry
        return None


def entries(folder: Path) -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) of every regular file and link under `folder`, in a stable order.

    A folder's files come in name order, then its sub-folders, depth first. The walk keeps its own
    stack, so a submission nested thousands of folders deep is long to walk, never a RecursionError
    that would stop a whole class from being graded.
    """
    root = str(folder)
    stack = [""]
    while stack:
        here = stack.pop()
        try:
            with os.scandir(os.path.join(root, here)) as listing:
                found = sorted((entry.name, entry) for entry in listing)
        except OSError:  # vanished, unreadable, or a path too long for the system
            continue
        folders = []
        for name, entry in found:
            rel = os.path.join(here, name) if here else name
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if name not in SKIP_DIRS:
                    folders.append(rel)
            elif stat.S_ISREG(st.st_mode) or (stat.S_ISLNK(st.st_mode) and not (
                    name in SKIP_DIRS and os.path.isdir(os.path.join(root, rel)))):
                yield rel, st
        stack.extend(reversed(folders))


class NotRegular(OSError):
    """A path that is not a regular file where one was expected (its message says what it is)."""


def special_kind(mode: int) -> str | None:
    """What a file that is not a regular file is, in words ('a named pipe', ...); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in ((stat.S_ISLNK, "a link"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a device"), (stat.S_ISBLK, "a device")):
        if test(mode):
            return kind
    return "a special file"


def open_regular(path: Path | str) -> BinaryIO:
    """Open `path` for reading if, and only if, it is a regular file (NotRegular otherwise).

    The path is checked before it is opened, so no pipe, socket or device is ever opened, and
    the opened file is checked again, since it may have been swapped in between: O_NONBLOCK
    keeps even a pipe swapped in from blocking the open, O_NOFOLLOW a link from leading out.
    """
    before = os.lstat(path)
    kind = special_kind(before.st_mode)
    if kind:
        raise NotRegular(f"{kind}, not a regular file")
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    after = os.fstat(fd)
    if not stat.S_ISREG(after.st_mode) or (after.st_dev, after.st_ino) != (before.st_dev, before.st_ino):
        os.close(fd)
        raise NotRegular("it changed into something else while it was opened")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def read_regular(path: Path | str, limit: int | None = None) -> bytes:
    """The bytes of a regular file (at most `limit`), never following a link nor blocking (OSError)."""
    with open_regular(path) as f:
        return f.read() if limit is None else f.read(limit)


def within(folder: Path, rel: str) -> bool:
    """Whether `folder/rel`, every link resolved, lies inside `folder` (a name the child sent is trusted no further)."""
    root = os.path.realpath(folder)
    return os.path.realpath(os.path.join(root, rel)).startswith(root + os.sep)


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
