"""Bringing submissions into the course: `submitted/<student>/<assignment>/`, whatever they came as.

- `layouts`: nbgrader's `SOURCE/<student>/<assignment>/` or a folder of LMS downloads, and
  how one submission is re-rooted around the graded file;
- `archives`: unpacking the untrusted zips and folders, with caps, never a link or a pipe;
- `students`: student ids in file names, and which ones may become folder names;
- `timestamps`: when each was handed in, from the LMS's or nbgrader's records, never from
  inside the archive, and which record said so;
- `report`: what happened to every source, and why.

When a student has several sources, the newest wins. Each collected folder gets nbgrader's
`timestamp.txt`, so `kit grade` can record when it was handed in; one whose time nobody
recorded is collected without it and flagged. Folders are replaced atomically: an
interrupted collect leaves each student's folder either as it was or as it should be.

Pure standard library: no torch, no nbgrader.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path

from .archives import DEFAULT_LIMITS, ArchiveLimits, Budget, Rejected, copy_folder, extract_zip, human, open_regular
from .layouts import (
    Candidate,
    archive_candidates,
    detect_layout,
    graded_names,
    locate_archives,
    locate_submission,
    loose_name,
    nbgrader_candidates,
    normalize,
)
from .report import COLLECTED, KEPT, REJECTED, SUPERSEDED, CollectReport, Entry
from .students import DEFAULT_PATTERN, compile_pattern, valid_student
from .timestamps import (
    FROM_DOWNLOAD,
    FROM_DOWNLOAD_ALL,
    TIMESTAMP_FILE,
    download_time,
    format_timestamp,
    read_timestamp,
)

__all__ = ["DEFAULT_PATTERN", "TIMESTAMP_FILE", "ArchiveLimits", "CollectReport", "Entry", "collect",
           "locate_submission", "read_timestamp", "valid_student"]

NO_TIME = ("no submission time: nothing recorded when it was handed in, so whether it was late is unknown "
           "(nbgrader counts it on time); check it by hand")


def collect(assignment: str, filename: str, source: Path, dest_root: Path, *, layout: str = "auto",
            pattern: str = DEFAULT_PATTERN, source_assignment: str | None = None,
            limits: ArchiveLimits = DEFAULT_LIMITS) -> CollectReport:
    """Collect ASSIGNMENT's submissions from `source` into `dest_root/<student>/<assignment>/`.

    `filename` is the graded file (assignment.toml's `file`); it and the assignment's notebook
    (`hwN.ipynb`) decide how archives are re-rooted and which loose files count as submissions.
    `source` is a folder in either layout, or one download-all zip of LMS downloads.
    """
    regex = compile_pattern(pattern)
    names = graded_names(assignment, filename)
    report = CollectReport(assignment, str(dest_root))
    dest_root.mkdir(parents=True, exist_ok=True)
    name = source_assignment or assignment
    if layout == "auto":
        layout = detect_layout(source, name)
    with tempfile.TemporaryDirectory(prefix=".kit-collect-", dir=dest_root) as scratch:
        if layout == "nbgrader":
            if not source.is_dir():
                report.entries.append(Entry(source.name, None, REJECTED, ["nbgrader's layout is a folder"]))
                return report
            candidates = nbgrader_candidates(source, name, report)
        else:
            arrival = FROM_DOWNLOAD
            if not source.is_dir():  # one download-all zip holding every student's archive
                unpacked = Path(scratch) / "download"
                unpacked.mkdir()
                bulk = ArchiveLimits(max_archive_bytes=limits.max_archive_bytes * 200, max_files=20000,
                                     max_entries=40000, max_total_bytes=limits.max_archive_bytes * 200,
                                     max_file_bytes=limits.max_archive_bytes, max_ratio=limits.max_ratio)
                try:
                    extract_zip(source, unpacked, bulk, keep_dates=True)
                except Rejected as exc:
                    report.entries.append(Entry(source.name, None, REJECTED, [str(exc)]))
                    return report
                source, arrival = locate_archives(unpacked), FROM_DOWNLOAD_ALL
            candidates = archive_candidates(source, regex, names, report, arrival)
        for cand in _newest_per_student(candidates):
            _collect_one(cand, assignment, names, dest_root, limits)
    report.entries.sort(key=lambda e: (e.student or "~", e.status != COLLECTED, e.source))
    return report


def _newest_per_student(candidates: list[Candidate]) -> list[Candidate]:
    by_student: dict[str, list[Candidate]] = {}
    for cand in candidates:
        by_student.setdefault(cand.student, []).append(cand)
    chosen = []
    for _, group in sorted(by_student.items()):
        # equal times (one stamp in two names): the later download, then the name, decides
        group.sort(key=lambda c: (c.timestamp or datetime.min, download_time(c.path) or datetime.min, c.path.name),
                   reverse=True)
        best = group[0]
        for other in group[1:]:
            other.entry.status = SUPERSEDED
            when = f"{best.entry.timestamp}, by {best.entry.timestamp_source}" if best.timestamp else "no time"
            other.entry.reasons.append(f"older than {best.path.name} ({when})")
        chosen.append(best)
    return chosen


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


def _collect_one(cand: Candidate, assignment: str, names: tuple[str, ...], dest_root: Path,
                 limits: ArchiveLimits) -> None:
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
            filename = loose_name(cand.path.name, names)
            budget = Budget(limits)
            budget.add_file(filename)
            with open_regular(cand.path) as src:
                if os.fstat(src.fileno()).st_size > limits.max_file_bytes:
                    raise Rejected(f"larger than {human(limits.max_file_bytes)}")
                budget.copy(src, staging / filename, filename)
        staging, notes = normalize(staging, names)
        entry.reasons += notes
        _remove(staging / TIMESTAMP_FILE)  # one the student packed says nothing; ours is written from the record
        if cand.timestamp is None:
            entry.reasons.append(NO_TIME)
        else:
            (staging / TIMESTAMP_FILE).write_text(format_timestamp(cand.timestamp) + "\n")
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


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)
