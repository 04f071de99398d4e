"""How submissions arrive, and how one is shaped into nbgrader's `submitted/<student>/<assignment>/`.

Two layouts are understood:

- nbgrader's, `SOURCE/<student>/<assignment>/...` (another course's `submitted/` folder,
  or an exchange that was already collected), timed by nbgrader's `timestamp.txt`;
- a folder of downloads from an LMS, one zip (or one copy of the graded file) per student,
  the student id in the file name, timed by the name's `timestamp` group or else by the
  file's arrival on disk.

A submission is re-rooted around its graded file: the assignment's .py file or its notebook
(`hwN.ipynb`), whichever it holds (`graded_names`).
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from ..course import notebook_name
from ..files import special_kind
from .archives import Rejected, is_junk, open_regular
from .report import COLLECTED, IGNORED, REJECTED, CollectReport, Entry
from .students import valid_student
from .timestamps import (
    FROM_DOWNLOAD,
    FROM_FILE_NAME,
    FROM_NBGRADER,
    TIMESTAMP_FILE,
    download_time,
    format_timestamp,
    parse_timestamp,
    read_timestamp,
)


def graded_names(assignment: str, filename: str) -> tuple[str, str]:
    """The files a submission of `assignment` is found by: its graded .py file, and its notebook."""
    return filename, notebook_name(assignment)


def loose_name(name: str, names: tuple[str, ...]) -> str | None:
    """Which graded file a loose download is a copy of (Canvas renames `hw1.ipynb` `doejohn_1_2_hw1.ipynb`)."""
    return next((n for n in names if name.endswith(n)), None)


@dataclass
class Candidate:
    """A source that may become a student's submission, once the newest of theirs is chosen."""

    path: Path
    student: str
    timestamp: datetime | None
    kind: str  # "zip", "file" (a loose copy of the graded file), "folder"
    entry: Entry


def detect_layout(source: Path, assignment: str) -> str:
    """'nbgrader' when SOURCE holds <student>/<assignment>/ folders, else 'zips'."""
    if not source.is_dir():
        return "zips"
    for child in source.iterdir():
        if child.is_dir() and not child.is_symlink() and (child / assignment).is_dir():
            return "nbgrader"
    return "zips"


def nbgrader_candidates(source: Path, name: str, report: CollectReport) -> list[Candidate]:
    """One candidate per `SOURCE/<student>/<name>/` folder; every other thing there is listed and left."""
    out = []
    for child in sorted(source.iterdir()):
        if is_junk([child.name]) or child.name.startswith("."):
            continue
        entry = Entry(child.name, child.name, COLLECTED)
        report.entries.append(entry)
        if child.is_symlink():
            entry.status, entry.reasons = REJECTED, ["the student folder is a link"]
            continue
        if not child.is_dir():
            entry.student, entry.status, entry.reasons = None, IGNORED, ["not a student folder"]
            continue
        entry.source = f"{child.name}/{name}"
        if not valid_student(child.name):
            entry.student, entry.status, entry.reasons = None, REJECTED, [f"{child.name!r} is not a usable student id"]
            continue
        folder = child / name
        if folder.is_symlink():
            entry.status, entry.reasons = REJECTED, ["the assignment folder is a link"]
            continue
        if not folder.exists():
            entry.status, entry.reasons = IGNORED, [f"no {name}/ folder: nothing submitted"]
            continue
        if not folder.is_dir():
            entry.status, entry.reasons = REJECTED, [f"{name} is {special_kind(folder.lstat().st_mode)}, not a folder"]
            continue
        stamp = read_timestamp(folder)
        if stamp is not None:
            entry.timestamp, entry.timestamp_source = format_timestamp(stamp), FROM_NBGRADER
        out.append(Candidate(folder, child.name, stamp, "folder", entry))
    return out


def archive_candidates(source: Path, regex: re.Pattern, names: tuple[str, ...], report: CollectReport,
                       arrival: str = FROM_DOWNLOAD) -> list[Candidate]:
    """One candidate per downloaded zip or loose copy of a graded file (`names`) whose name gives a student id.

    Its time is the name's `timestamp` group, else the file's modification time, which `arrival`
    names (when it was downloaded, or the date the LMS gave it in a download-all zip); never a date
    stored inside the archive, which the student chose.
    """
    out = []
    for path in sorted(source.iterdir()):
        if is_junk([path.name]):
            continue
        entry = Entry(path.name, None, COLLECTED)
        report.entries.append(entry)
        if path.name.startswith("."):
            entry.status, entry.reasons = IGNORED, ["a hidden file"]
            continue
        kind = special_kind(path.lstat().st_mode)
        if kind:
            entry.status, entry.reasons = IGNORED, [f"{kind}, not a downloaded file"]
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
        try:
            with open_regular(path) as f:
                is_zip = zipfile.is_zipfile(f)
        except Rejected as exc:
            entry.status, entry.reasons = REJECTED, [str(exc)]
            continue
        if not is_zip and loose_name(path.name, names) is None:
            entry.status, entry.reasons = REJECTED, [f"neither a zip archive nor a copy of {' or '.join(names)}"]
            continue
        stamp = None
        if "timestamp" in regex.groupindex and match.group("timestamp"):
            stamp = parse_timestamp(match.group("timestamp"))
            if stamp is None:
                entry.reasons.append(f"could not read the time {match.group('timestamp')!r} in the name")
        source = FROM_FILE_NAME
        if stamp is None:
            stamp, source = download_time(path), arrival
        if stamp is not None:
            entry.timestamp, entry.timestamp_source = format_timestamp(stamp), source
        out.append(Candidate(path, student, stamp, "zip" if is_zip else "file", entry))
    return out


def locate_archives(folder: Path) -> Path:
    """Inside an unpacked download-all zip, the folder that holds the per-student archives."""
    while True:
        children = [p for p in folder.iterdir() if not is_junk([p.name])]
        if len(children) == 1 and children[0].is_dir():
            folder = children[0]
            continue
        return folder


# -- shaping a submission ------------------------------------------------------------------------

def _hoist(staging: Path, inner: Path) -> Path:
    """Make `inner` (a folder inside `staging`) the submission: returns the new staging folder."""
    fresh = Path(tempfile.mkdtemp(prefix=".kit-collect-", dir=staging.parent))
    for child in inner.iterdir():
        os.rename(child, fresh / child.name)
    shutil.rmtree(staging)
    return fresh


def normalize(staging: Path, names: tuple[str, ...]) -> tuple[Path, list[str]]:
    """Put the graded file (any of `names`) at the top: strip a lone wrapping folder, or find it deeper down."""
    notes: list[str] = []
    while not any((staging / name).exists() for name in names):
        children = [p for p in staging.iterdir() if p.name != TIMESTAMP_FILE]
        if len(children) == 1 and children[0].is_dir() and not children[0].is_symlink():
            staging = _hoist(staging, children[0])
            continue
        break
    if not any((staging / name).is_file() for name in names):
        found = _graded_files(staging, names)
        folders = sorted({p.parent for p in found})
        if len(folders) == 1:
            rel = folders[0].relative_to(staging)
            notes.append(f"{' and '.join(p.name for p in found)} {'was' if len(found) == 1 else 'were'} in {rel}/; "
                         "collected that folder")
            staging = _hoist(staging, folders[0])
        elif found:
            where = ", ".join(str(p.relative_to(staging)) for p in found[:3])
            notes.append(f"{len(found)} copies of {' or '.join(names)} ({where}); none is at the top, "
                         "so grading will not find one")
        else:
            notes.append(f"no {' or '.join(names)} in it")
    return staging, notes


def _graded_files(folder: Path, names: tuple[str, ...]) -> list[Path]:
    return sorted(p for name in names for p in folder.rglob(name) if p.is_file() and not p.is_symlink())


def locate_submission(folder: Path, names: tuple[str, ...]) -> Path:
    """The folder holding the graded file (any of `names`): `folder` itself, or the one folder below it that does."""
    if any((folder / name).is_file() for name in names):
        return folder
    folders = sorted({p.parent for p in _graded_files(folder, names)})
    return folders[0] if len(folders) == 1 else folder
