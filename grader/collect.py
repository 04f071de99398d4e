"""Bringing submissions into the course: `submitted/<student>/<assignment>/`, whatever they came as.

Two sources are understood:

- nbgrader's layout, `SOURCE/<student>/<assignment>/...` (e.g. another course's
  `submitted/` folder, or an exchange that was already collected);
- a folder of archives downloaded from an LMS, one zip per student, the student id in
  the file name (a regular expression with a named group `student` finds it; an
  optional group `timestamp` gives the submission time).

Everything that comes in is untrusted. An archive is unpacked by hand, member by
member, into a fresh folder: no absolute paths, no `..`, no links of any kind, no
device files, and caps on the number of files and the bytes actually written (a zip
bomb's headers lie, so the bytes are counted as they are written). A student folder is
copied without following links, and a link that points outside it rejects it. A
rejected source is not collected; every rejected, superseded or odd source is listed
in the `CollectReport` with the reason.

When a student has several archives, the newest wins (the `timestamp` group if the
pattern has one, else the newest entry inside the archive, else the file's mtime).
Each collected folder gets nbgrader's `timestamp.txt`, so `kit grade` can record when
it was handed in. Folders are replaced atomically: an interrupted collect leaves each
student's folder either as it was or as it should be.

Pure standard library: no torch, no nbgrader.
"""
from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import tempfile
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

COLLECTED, REJECTED, SUPERSEDED, KEPT, IGNORED = "collected", "rejected", "superseded", "kept", "ignored"
TIMESTAMP_FILE = "timestamp.txt"
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f UTC"  # what nbgrader writes
# Student ids become folder names: letters, digits and a few separators, never a path.
STUDENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}")
# Default: the student id is the start of the file name, up to the first `_`, space or dot-extension
# (`jdoe.zip`, `jdoe_hw1.zip`, Canvas' `doejohn_12345_67890_hw1.zip`, `jdoe - hw1.zip`).
DEFAULT_PATTERN = r"^(?P<student>[A-Za-z0-9][A-Za-z0-9.@+-]*?)(?:[_ ]|\.zip$)"
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


class Rejected(Exception):
    """This source must not be collected; the message says why."""


@dataclass
class Entry:
    """What happened to one source (an archive, a student folder, a stray file)."""

    source: str
    student: str | None
    status: str
    reasons: list[str] = field(default_factory=list)  # why rejected / superseded, or what was odd
    timestamp: str | None = None
    dest: str | None = None
    files: int = 0

    @property
    def odd(self) -> bool:
        return self.status == COLLECTED and bool(self.reasons)


@dataclass
class CollectReport:
    assignment: str
    dest: str
    entries: list[Entry] = field(default_factory=list)

    def by_status(self, status: str) -> list[Entry]:
        return [e for e in self.entries if e.status == status]

    @property
    def clean(self) -> bool:
        """Every source collected (or knowingly kept/superseded) without anything odd."""
        return all(e.status in (COLLECTED, SUPERSEDED, KEPT) and not e.odd for e in self.entries)

    def to_json(self) -> dict:
        return {"assignment": self.assignment, "dest": self.dest,
                "entries": [asdict(e) | {"odd": e.odd} for e in self.entries]}


# -- time stamps ----------------------------------------------------------------------------------

def parse_timestamp(text: str) -> datetime | None:
    """A submission time from nbgrader's timestamp.txt, an ISO time, an LMS file-name stamp or an epoch.

    Returns a naive datetime in UTC (what nbgrader stores), or None if `text` is none of these.
    """
    t = text.strip()
    if not t:
        return None
    if re.fullmatch(r"\d{9,11}(\.\d+)?", t):
        return datetime.fromtimestamp(float(t), UTC).replace(tzinfo=None)
    iso = re.sub(r"\s*(UTC|GMT|Z)$", "+00:00", t)
    try:
        dt = datetime.fromisoformat(iso)
    except ValueError:
        dt = None
        for fmt in ("%Y-%m-%d-%H-%M-%S", "%Y-%m-%d_%H-%M-%S", "%Y-%m-%dT%H-%M-%S", "%Y%m%d%H%M%S",
                    "%Y%m%d-%H%M%S", "%Y%m%d_%H%M%S", "%Y-%m-%d-%H%M%S", "%Y-%m-%d-%H-%M"):
            try:
                dt = datetime.strptime(t, fmt)
                break
            except ValueError:
                continue
        if dt is None:
            return None
    if dt.tzinfo is not None:
        dt = dt.astimezone(UTC).replace(tzinfo=None)
    return dt


def format_timestamp(dt: datetime) -> str:
    return dt.strftime(TIMESTAMP_FORMAT)


def read_timestamp(folder: Path) -> datetime | None:
    """The time in `folder/timestamp.txt` (nbgrader's), if there is a readable one."""
    path = folder / TIMESTAMP_FILE
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 200:
            return None
        return parse_timestamp(path.read_text(errors="replace"))
    except OSError:
        return None


# -- names --------------------------------------------------------------------------------------------

def valid_student(student: str) -> bool:
    return bool(STUDENT_ID.fullmatch(student)) and student not in (".", "..")


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

    def copy(self, src, dest: Path, name: str) -> None:
        """Copy the stream `src` into the new file `dest`, counting every byte."""
        written = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        fd = os.open(dest, flags, 0o644)
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


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


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


def extract_zip(archive: Path, dest: Path, limits: ArchiveLimits = ArchiveLimits()) -> list[str]:
    """Unpack the untrusted `archive` into the empty folder `dest`; notes on odd things, or Rejected."""
    try:
        size = archive.stat().st_size
    except OSError as exc:
        raise Rejected(f"cannot read it ({exc.strerror})") from None
    if size > limits.max_archive_bytes:
        raise Rejected(f"the archive is larger than {human(limits.max_archive_bytes)}")
    notes: list[str] = []
    try:
        with zipfile.ZipFile(archive) as zf:
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
            seen: dict[str, str] = {}
            skipped = []
            for info in infos:
                parts = safe_parts(info.filename)
                mode = info.external_attr >> 16
                if stat.S_ISLNK(mode):
                    raise Rejected(f"entry {info.filename!r} is a symbolic link")
                if mode and stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                    raise Rejected(f"entry {info.filename!r} is a special file")
                if info.flag_bits & 0x1:
                    raise Rejected(f"entry {info.filename!r} is encrypted")
                if not parts:
                    continue
                if is_junk(parts):
                    skipped.append("/".join(parts))
                    continue
                if info.is_dir():
                    continue
                key = "/".join(parts).casefold()
                if key in seen:
                    raise Rejected(f"two entries named {'/'.join(parts)!r}")
                seen[key] = info.filename
                if info.file_size > limits.max_file_bytes:
                    raise Rejected(f"{'/'.join(parts)} is larger than {human(limits.max_file_bytes)}")
                if info.file_size > (1 << 20) and info.file_size > limits.max_ratio * max(info.compress_size, 1):
                    raise Rejected(f"{'/'.join(parts)} is compressed more than {limits.max_ratio:g}:1 (zip bomb?)")
                budget.add_file("/".join(parts))
                target = _target(dest, parts, limits)
                with zf.open(info) as src:
                    budget.copy(src, target, "/".join(parts))
                if parts[-1].lower().endswith(ARCHIVE_SUFFIXES):
                    notes.append(f"contains an archive, not unpacked: {'/'.join(parts)}")
            if skipped:
                notes.append(f"skipped {len(skipped)} junk entries ({', '.join(sorted(skipped)[:3])}"
                             f"{', ...' if len(skipped) > 3 else ''})")
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


def newest_member_time(archive: Path) -> datetime | None:
    """The newest modification time recorded inside a zip (a stand-in for the submission time)."""
    try:
        with zipfile.ZipFile(archive) as zf:
            stamps = []
            for info in zf.infolist()[:10000]:
                try:
                    stamps.append(datetime(*info.date_time))
                except ValueError:
                    continue
            return max(stamps) if stamps else None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError):
        return None


def copy_folder(src: Path, dest: Path, limits: ArchiveLimits = ArchiveLimits()) -> list[str]:
    """Copy the untrusted folder `src` into the empty folder `dest` without following links."""
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
            if not entry.is_file(follow_symlinks=False):
                notes.append(f"skipped a special file: {rel}")
                continue
            safe_parts(rel)
            budget.add_file(rel)
            if entry.stat(follow_symlinks=False).st_size > limits.max_file_bytes:
                raise Rejected(f"{rel} is larger than {human(limits.max_file_bytes)}")
            try:
                fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
            except OSError as exc:
                raise Rejected(f"cannot read {rel} ({exc.strerror})") from None
            with os.fdopen(fd, "rb") as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                    raise Rejected(f"{rel} changed into something else while it was copied")
                budget.copy(f, _target(dest, here, limits), rel)

    walk(src, [])
    if skipped:
        notes.append(f"skipped {len(skipped)} junk entries ({', '.join(skipped[:3])}{', ...' if len(skipped) > 3 else ''})")
    return notes


# -- shaping a submission ------------------------------------------------------------------------

def _hoist(staging: Path, inner: Path) -> Path:
    """Make `inner` (a folder inside `staging`) the submission: returns the new staging folder."""
    fresh = Path(tempfile.mkdtemp(prefix=".kit-collect-", dir=staging.parent))
    for child in inner.iterdir():
        os.rename(child, fresh / child.name)
    shutil.rmtree(staging)
    return fresh


def normalize(staging: Path, filename: str) -> tuple[Path, list[str]]:
    """Put the graded file at the top: strip a lone wrapping folder, or find the file deeper down."""
    notes: list[str] = []
    while not (staging / filename).exists():
        children = [p for p in staging.iterdir() if p.name != TIMESTAMP_FILE]
        if len(children) == 1 and children[0].is_dir() and not children[0].is_symlink():
            staging = _hoist(staging, children[0])
            continue
        break
    if not (staging / filename).is_file():
        found = sorted(p for p in staging.rglob(filename) if p.is_file() and not p.is_symlink())
        if len(found) == 1:
            rel = found[0].parent.relative_to(staging)
            notes.append(f"{filename} was in {rel}/; collected that folder")
            staging = _hoist(staging, found[0].parent)
        elif found:
            notes.append(f"{len(found)} copies of {filename} ({', '.join(str(p.relative_to(staging)) for p in found[:3])}); "
                         "none is at the top, so grading will not find one")
        else:
            notes.append(f"no {filename} in it")
    return staging, notes


def locate_submission(folder: Path, filename: str) -> Path:
    """The folder holding `filename`: `folder` itself, or the one folder below it that holds it."""
    if (folder / filename).is_file():
        return folder
    found = sorted(p for p in folder.rglob(filename) if p.is_file() and not p.is_symlink())
    return found[0].parent if len(found) == 1 else folder


def install(staging: Path, dest: Path) -> None:
    """Replace `dest` by `staging` with renames (same filesystem): never half a folder."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dest.exists() or dest.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=".kit-old-", dir=dest.parent))
        os.rename(dest, old / "x")
    os.rename(staging, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# -- collecting ------------------------------------------------------------------------------------

@dataclass
class Candidate:
    path: Path
    student: str
    timestamp: datetime | None
    kind: str  # "zip", "file" (a loose copy of the graded file), "folder"
    entry: Entry


def detect_layout(source: Path, assignment: str) -> str:
    """'nbgrader' when SOURCE holds <student>/<assignment>/ folders, else 'zips'."""
    if source.is_file():
        return "zips"
    for child in source.iterdir():
        if child.is_dir() and not child.is_symlink() and (child / assignment).is_dir():
            return "nbgrader"
    return "zips"


def collect(assignment: str, filename: str, source: Path, dest_root: Path, *, layout: str = "auto",
            pattern: str = DEFAULT_PATTERN, source_assignment: str | None = None,
            limits: ArchiveLimits = ArchiveLimits()) -> CollectReport:
    """Collect ASSIGNMENT's submissions from `source` into `dest_root/<student>/<assignment>/`.

    `filename` is the graded file (assignment.toml's `file`); it decides how archives are re-rooted
    and which loose files count as submissions.
    """
    regex = re.compile(pattern)
    if "student" not in regex.groupindex:
        raise ValueError("the pattern needs a named group (?P<student>...)")
    report = CollectReport(assignment, str(dest_root))
    dest_root.mkdir(parents=True, exist_ok=True)
    if layout == "auto":
        layout = detect_layout(source, source_assignment or assignment)
    with tempfile.TemporaryDirectory(prefix=".kit-collect-", dir=dest_root) as scratch:
        if layout == "nbgrader":
            candidates = _nbgrader_candidates(source, source_assignment or assignment, report)
        else:
            if source.is_file():  # one big download holding every student's archive
                unpacked = Path(scratch) / "download"
                unpacked.mkdir()
                bulk = ArchiveLimits(max_archive_bytes=limits.max_archive_bytes * 200, max_files=20000,
                                     max_entries=40000, max_total_bytes=limits.max_archive_bytes * 200,
                                     max_file_bytes=limits.max_archive_bytes, max_ratio=limits.max_ratio)
                try:
                    extract_zip(source, unpacked, bulk)
                except Rejected as exc:
                    report.entries.append(Entry(source.name, None, REJECTED, [str(exc)]))
                    return report
                source = locate_archives(unpacked)
            candidates = _archive_candidates(source, regex, filename, report)
        for cand in _newest_per_student(candidates):
            _collect_one(cand, assignment, filename, dest_root, limits)
    report.entries.sort(key=lambda e: (e.student or "~", e.status != COLLECTED, e.source))
    return report


def locate_archives(folder: Path) -> Path:
    """Inside an unpacked bulk download, the folder that holds the per-student archives."""
    while True:
        children = [p for p in folder.iterdir() if not is_junk([p.name])]
        if len(children) == 1 and children[0].is_dir():
            folder = children[0]
            continue
        return folder


def _nbgrader_candidates(source: Path, name: str, report: CollectReport) -> list[Candidate]:
    out = []
    for child in sorted(source.iterdir()):
        entry = Entry(child.name, child.name, COLLECTED)
        if is_junk([child.name]) or child.name.startswith("."):
            continue
        if child.is_symlink():
            entry.status, entry.reasons = REJECTED, ["the student folder is a link"]
            report.entries.append(entry)
            continue
        if not child.is_dir():
            entry.student, entry.status, entry.reasons = None, IGNORED, ["not a student folder"]
            report.entries.append(entry)
            continue
        entry.source = f"{child.name}/{name}"
        if not valid_student(child.name):
            entry.student, entry.status, entry.reasons = None, REJECTED, [f"{child.name!r} is not a usable student id"]
            report.entries.append(entry)
            continue
        folder = child / name
        if folder.is_symlink():
            entry.status, entry.reasons = REJECTED, ["the assignment folder is a link"]
            report.entries.append(entry)
            continue
        if not folder.is_dir():
            entry.status, entry.reasons = IGNORED, [f"no {name}/ folder: nothing submitted"]
            report.entries.append(entry)
            continue
        report.entries.append(entry)
        out.append(Candidate(folder, child.name, read_timestamp(folder), "folder", entry))
    return out


def _archive_candidates(source: Path, regex: re.Pattern, filename: str, report: CollectReport) -> list[Candidate]:
    out = []
    for path in sorted(source.iterdir()):
        if is_junk([path.name]):
            continue
        entry = Entry(path.name, None, COLLECTED)
        report.entries.append(entry)
        if path.name.startswith("."):
            entry.status, entry.reasons = IGNORED, ["a hidden file"]
            continue
        if path.is_symlink() or not path.is_file():
            entry.status, entry.reasons = IGNORED, ["not a file" if not path.is_symlink() else "a link"]
            continue
        match = regex.search(path.name)
        if not match or not match.group("student"):
            entry.status, entry.reasons = REJECTED, ["no student id in the file name (see --pattern)"]
            continue
        student = match.group("student")
        if not valid_student(student):
            entry.status, entry.reasons = REJECTED, [f"{student!r} is not a usable student id"]
            continue
        entry.student = student
        stamp = None
        if "timestamp" in regex.groupindex and match.group("timestamp"):
            stamp = parse_timestamp(match.group("timestamp"))
            if stamp is None:
                entry.reasons.append(f"could not read the time {match.group('timestamp')!r} in the name")
        if zipfile.is_zipfile(path):
            kind = "zip"
            stamp = stamp or newest_member_time(path)
        elif path.name.endswith(filename):
            kind = "file"
        else:
            entry.status, entry.reasons = REJECTED, [f"neither a zip archive nor a copy of {filename}"]
            continue
        if stamp is None:
            stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC).replace(tzinfo=None)
        entry.timestamp = format_timestamp(stamp)
        out.append(Candidate(path, student, stamp, kind, entry))
    return out


def _newest_per_student(candidates: list[Candidate]) -> list[Candidate]:
    by_student: dict[str, list[Candidate]] = {}
    for cand in candidates:
        by_student.setdefault(cand.student, []).append(cand)
    chosen = []
    for student, group in sorted(by_student.items()):
        group.sort(key=lambda c: (c.timestamp or datetime.min, _mtime(c.path), c.path.name), reverse=True)
        best = group[0]
        for other in group[1:]:
            other.entry.status = SUPERSEDED
            other.entry.reasons.append(f"older than {best.path.name} ({best.entry.timestamp or 'no time'})")
        chosen.append(best)
    return chosen


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _collect_one(cand: Candidate, assignment: str, filename: str, dest_root: Path, limits: ArchiveLimits) -> None:
    entry = cand.entry
    dest = dest_root / cand.student / assignment
    existing = read_timestamp(dest) if dest.is_dir() else None
    if existing and cand.timestamp and existing > cand.timestamp:
        entry.status = KEPT
        entry.reasons.append(f"{dest} holds a newer submission ({format_timestamp(existing)})")
        return
    staging = Path(tempfile.mkdtemp(prefix=".kit-collect-", dir=dest_root))
    try:
        if cand.kind == "zip":
            entry.reasons += extract_zip(cand.path, staging, limits)
        elif cand.kind == "folder":
            entry.reasons += copy_folder(cand.path, staging, limits)
        else:
            budget = Budget(limits)
            budget.add_file(filename)
            if cand.path.stat().st_size > limits.max_file_bytes:
                raise Rejected(f"larger than {human(limits.max_file_bytes)}")
            with open(cand.path, "rb") as src:
                budget.copy(src, staging / filename, filename)
        staging, notes = normalize(staging, filename)
        entry.reasons += notes
        stamp = cand.timestamp or read_timestamp(staging)
        if stamp is not None:
            (staging / TIMESTAMP_FILE).unlink(missing_ok=True)
            (staging / TIMESTAMP_FILE).write_text(format_timestamp(stamp) + "\n")
            entry.timestamp = format_timestamp(stamp)
        entry.files = sum(1 for p in staging.rglob("*") if p.is_file() and p.name != TIMESTAMP_FILE)
        install(staging, dest)
        entry.dest = str(dest)
    except Rejected as exc:
        entry.status = REJECTED
        entry.reasons.insert(0, str(exc))
        shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
