"""Unpacking what students sent, which is untrusted: zips and folders, with caps, never a link or a pipe.

An archive is unpacked by hand, member by member, into a fresh folder: no absolute paths,
no `..`, no links of any kind, no device files, and caps on the number of files and the
bytes actually written (a zip bomb's headers lie, so the bytes are counted as they are
written). A folder is copied without following links; a link that points outside it
rejects it. Nothing is opened unless it is a regular file: a named pipe would hang the
open, a device may act on it. `Rejected` says why a source must not be collected.
"""
from __future__ import annotations

import errno
import os
import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from .. import files
from ..files import special_kind

JUNK_NAMES = {"__MACOSX", ".DS_Store", "Thumbs.db", "desktop.ini", "__pycache__", ".ipynb_checkpoints", ".git"}
JUNK_SUFFIXES = (".pyc", ".pyo")
ARCHIVE_SUFFIXES = (".zip", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".7z", ".rar")


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps on what one submission may unpack to (defaults fit a handful of .py files, generously)."""

    max_archive_bytes: int = 50 << 20  # the archive file itself
    max_files: int = 200  # regular files written
    max_entries: int = 2000  # entries in the archive's directory, folders included
    max_total_bytes: int = 20 << 20  # bytes written for one submission
    max_file_bytes: int = 10 << 20  # bytes written for one file
    max_ratio: float = 200.0  # compression ratio of one member (checked above 1 MiB)
    max_depth: int = 16  # folder nesting


DEFAULT_LIMITS = ArchiveLimits()


class Rejected(Exception):
    """This source must not be collected; the message says why."""


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _listing(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


# -- names and kinds of files ---------------------------------------------------------------------

def safe_parts(name: str) -> list[str]:
    """The path components of an archive member, or Rejected when the name could escape or is garbage."""
    if not name or "\x00" in name or any(ord(ch) < 32 for ch in name):
        raise Rejected(f"entry {name!r} has control characters in its name")
    unified = name.replace("\\", "/")
    if unified.startswith("/") or re.match(r"^[A-Za-z]:", unified):
        raise Rejected(f"entry {name!r} has an absolute path")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Rejected(f"entry {name!r} points outside the archive (..)")
    if any(len(p.encode()) > 255 for p in parts):
        raise Rejected(f"entry {name!r} has a name longer than 255 bytes")
    return parts


def is_junk(parts: list[str]) -> bool:
    return any(p in JUNK_NAMES or p.startswith("._") for p in parts) or parts[-1].endswith(JUNK_SUFFIXES)


def open_regular(path: Path) -> BinaryIO:
    """Open `path` if, and only if, it is a regular file (kit.grader.files.open_regular); Rejected otherwise."""
    try:
        return files.open_regular(path)
    except files.NotRegular as exc:
        raise Rejected(str(exc)) from None
    except OSError as exc:
        raise Rejected(f"cannot read it ({exc.strerror or exc})") from None


# -- writing files under caps ---------------------------------------------------------------------

class Budget:
    """Counts files and bytes written for one submission, and rejects it past the caps."""

    def __init__(self, limits: ArchiveLimits) -> None:
        self.limits = limits
        self.files = 0
        self.bytes = 0

    def add_file(self, name: str) -> None:
        self.files += 1
        if self.files > self.limits.max_files:
            raise Rejected(f"more than {self.limits.max_files} files")

    def copy(self, src: BinaryIO, dest: Path, name: str) -> None:
        """Copy the stream `src` into the new file `dest`, counting every byte."""
        written = 0
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        with os.fdopen(fd, "wb") as out:
            while True:
                chunk = src.read(1 << 16)
                if not chunk:
                    break
                written += len(chunk)
                self.bytes += len(chunk)
                if written > self.limits.max_file_bytes:
                    raise Rejected(f"{name} unpacks to more than {human(self.limits.max_file_bytes)}")
                if self.bytes > self.limits.max_total_bytes:
                    raise Rejected(f"unpacks to more than {human(self.limits.max_total_bytes)} in all")
                out.write(chunk)


def _target(root: Path, parts: list[str], limits: ArchiveLimits) -> Path:
    if len(parts) > limits.max_depth:
        raise Rejected(f"{'/'.join(parts)} is nested deeper than {limits.max_depth} folders")
    target = root.joinpath(*parts)
    # belt and braces: nothing we write is a link, but never trust a join
    if os.path.commonpath([os.path.abspath(target), os.path.abspath(root)]) != os.path.abspath(root):
        raise Rejected(f"entry {'/'.join(parts)} points outside the archive")
    for parent in reversed(target.parents):
        if parent == root or not str(parent).startswith(str(root)):
            continue
        if parent.is_symlink() or (parent.exists() and not parent.is_dir()):
            raise Rejected(f"entry {'/'.join(parts)} clashes with a file of the same name")
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


# -- zips and folders -----------------------------------------------------------------------------

def extract_zip(archive: Path, dest: Path, limits: ArchiveLimits = DEFAULT_LIMITS, *,
                keep_dates: bool = False) -> list[str]:
    """Unpack the untrusted `archive` into the empty folder `dest`; notes on odd things, or Rejected.

    `keep_dates` gives each file written the date its entry records (read as UTC), as unzip does:
    only for a download the LMS zipped, whose dates the LMS wrote. A student's own dates mean nothing.
    """
    notes: list[str] = []
    try:
        with open_regular(archive) as raw:
            if os.fstat(raw.fileno()).st_size > limits.max_archive_bytes:
                raise Rejected(f"the archive is larger than {human(limits.max_archive_bytes)}")
            with zipfile.ZipFile(raw) as zf:
                notes = _extract_members(zf, dest, limits, keep_dates)
    except Rejected:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
        raise Rejected(f"not a readable zip archive ({exc})") from None
    except NotImplementedError as exc:
        raise Rejected(f"uses an unsupported zip feature ({exc})") from None
    except RuntimeError as exc:  # zipfile raises it for encrypted members
        raise Rejected(f"cannot be unpacked ({exc})") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise Rejected("an entry's path is too long") from None
        raise Rejected(f"cannot be unpacked ({exc.strerror or exc})") from None
    return notes


def _extract_members(zf: zipfile.ZipFile, dest: Path, limits: ArchiveLimits, keep_dates: bool) -> list[str]:
    infos = zf.infolist()
    if len(infos) > limits.max_entries:
        raise Rejected(f"more than {limits.max_entries} entries")
    files = [i for i in infos if not i.is_dir()]
    if len(files) > limits.max_files:
        raise Rejected(f"more than {limits.max_files} files")
    declared = sum(i.file_size for i in files)
    if declared > limits.max_total_bytes:
        raise Rejected(f"unpacks to {human(declared)}, more than {human(limits.max_total_bytes)} (zip bomb?)")
    budget = Budget(limits)
    seen: set[str] = set()
    notes: list[str] = []
    skipped: list[str] = []
    for info in infos:
        parts = safe_parts(info.filename)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise Rejected(f"entry {info.filename!r} is a symbolic link")
        if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            raise Rejected(f"entry {info.filename!r} is {special_kind(mode)}")
        if info.flag_bits & 0x1:
            raise Rejected(f"entry {info.filename!r} is encrypted")
        if not parts or info.is_dir():
            continue
        rel = "/".join(parts)
        if is_junk(parts):
            skipped.append(rel)
            continue
        if rel.casefold() in seen:
            raise Rejected(f"two entries named {rel!r}")
        seen.add(rel.casefold())
        if info.file_size > limits.max_file_bytes:
            raise Rejected(f"{rel} is larger than {human(limits.max_file_bytes)}")
        if info.file_size > (1 << 20) and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise Rejected(f"{rel} is compressed more than {limits.max_ratio:g}:1 (zip bomb?)")
        budget.add_file(rel)
        target = _target(dest, parts, limits)
        with zf.open(info) as src:
            budget.copy(src, target, rel)
        if keep_dates:
            _set_date(target, info)
        if parts[-1].lower().endswith(ARCHIVE_SUFFIXES):
            notes.append(f"contains an archive, not unpacked: {rel}")
    if skipped:
        notes.append(f"skipped {len(skipped)} junk entries ({_listing(sorted(skipped))})")
    return notes


def _set_date(path: Path, info: zipfile.ZipInfo) -> None:
    try:
        when = datetime(*info.date_time, tzinfo=UTC).timestamp()
    except ValueError:  # a garbled date: the file keeps the time it was unpacked, later rather than earlier
        return
    os.utime(path, (when, when), follow_symlinks=False)


def copy_folder(src: Path, dest: Path, limits: ArchiveLimits = DEFAULT_LIMITS) -> list[str]:
    """Copy the untrusted folder `src` into the empty folder `dest` without following links.

    Links inside are skipped, links pointing outside reject it; pipes, sockets and devices are
    skipped without being opened.
    """
    notes: list[str] = []
    budget = Budget(limits)
    root = os.path.realpath(src)
    skipped: list[str] = []

    def walk(folder: Path, parts: list[str]) -> None:
        if len(parts) > limits.max_depth:
            raise Rejected(f"{'/'.join(parts)} is nested deeper than {limits.max_depth} folders")
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise Rejected(f"cannot read {'/'.join(parts) or '.'} ({exc.strerror})") from None
        for entry in entries:
            here = [*parts, entry.name]
            rel = "/".join(here)
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if os.path.commonpath([target, root]) != root:
                    raise Rejected(f"{rel} is a link pointing outside the submission")
                notes.append(f"skipped a link: {rel}")
                continue
            if is_junk(here):
                skipped.append(rel)
                continue
            if entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), here)
                continue
            try:
                kind = special_kind(entry.stat(follow_symlinks=False).st_mode)
            except OSError as exc:
                raise Rejected(f"cannot read {rel} ({exc.strerror})") from None
            if kind:
                notes.append(f"skipped {kind}: {rel}")
                continue
            safe_parts(rel)
            budget.add_file(rel)
            try:
                f = open_regular(Path(entry.path))
            except Rejected as exc:
                raise Rejected(f"{rel}: {exc}") from None
            with f:
                if os.fstat(f.fileno()).st_size > limits.max_file_bytes:
                    raise Rejected(f"{rel} is larger than {human(limits.max_file_bytes)}")
                budget.copy(f, _target(dest, here, limits), rel)

    walk(src, [])
    if skipped:
        notes.append(f"skipped {len(skipped)} junk entries ({_listing(skipped)})")
    return notes
