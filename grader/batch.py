"""Grading a class: which submissions need grading, grading them, recording each result as it comes.

`kit grade` uses this with local worker processes (kit.grader.pool) or a Ray cluster; both
grade each submission with `grade_submission`, and only this process writes the gradebook,
one transaction per submission, as each result arrives. A rerun skips what was graded with
the same files and the same checks (`needs_grading`, the one rule), so an interrupted run
just continues.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Protocol

from .collect import read_timestamp, valid_student
from .course import Assignment
from .files import content_hash, special_kind
from .pool import Job, Outcome
from .report import Report


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path
    content_hash: str
    timestamp: datetime | None = None

    @property
    def job(self) -> Job:
        return Job(self.student, self.path)


def find_submissions(submitted: Path, assignment: str) -> tuple[list[Submission], dict[str, str]]:
    """Every `submitted/<student>/<assignment>/` folder, and the folders passed over: name (printable) -> why."""
    found: list[Submission] = []
    skipped: dict[str, str] = {}
    if not submitted.is_dir():
        return found, {str(submitted): "no such folder"}
    for child in sorted(submitted.iterdir()):
        if child.name.startswith(".") or not child.is_dir():
            continue
        folder = child / assignment
        try:
            kind = special_kind(folder.lstat().st_mode)
        except OSError:
            continue  # nothing handed in for this assignment
        if not valid_student(child.name):  # before its name is shown anywhere
            skipped[ascii(child.name)[:100]] = "not a usable student id"
            continue
        if not folder.is_dir():
            skipped[child.name] = f"{assignment} is {kind or 'a file'}, not a folder"
            continue
        if child.is_symlink() or folder.is_symlink():
            skipped[child.name] = "the submission folder is a link"
            continue
        found.append(Submission(child.name, folder.resolve(), content_hash(folder), read_timestamp(folder)))
    return found, skipped


def suite_hash(assignment: Assignment) -> str:
    """A fingerprint of the assignment's checks (public and hidden): change a check, and everything is regraded."""
    h = hashlib.sha256()
    for path in sorted(assignment.suite_dir.iterdir()):
        if path.is_file() and path.suffix in (".py", ".toml"):
            h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


Fingerprints = dict[str, tuple[str, str]]  # student -> (content hash, suite hash) of what the gradebook holds


def needs_grading(sub: Submission, graded: Fingerprints, checks: str, force: bool) -> bool:
    """A submission is graded again unless the gradebook holds a grade of the same files by the same checks."""
    return force or graded.get(sub.student) != (sub.content_hash, checks)


@dataclass
class ClassRun:
    """What one `kit grade` run did."""

    reports: dict[str, Report] = field(default_factory=dict)  # every graded student's report, cached ones too
    cached: set[str] = field(default_factory=set)  # graded by an earlier run, files and checks unchanged
    errors: dict[str, str] = field(default_factory=dict)  # not graded, and why
    nodes: dict[str, str] = field(default_factory=dict)  # which machine graded each submission this run
    seconds: dict[str, float] = field(default_factory=dict)
    regraded_for_checks: int = 0
    interrupted: bool = False


class Grader(Protocol):
    """Anything that grades jobs and yields their outcomes as they finish: the local pool, a Ray cluster."""

    def grade(self, assignment: Assignment, jobs: list[Job]) -> Iterator[Outcome]: ...


def grade_class(assignment: Assignment, submissions: Iterable[Submission], book, grader: Grader, *,
                force: bool = False, on_result: Callable[[Outcome], None] = lambda outcome: None) -> ClassRun:
    """Grade what needs grading, writing each result to `book` (a kit.grader.gradebook.Gradebook) as it arrives.

    Ctrl-C stops the grading (the workers too) and leaves every finished result saved.
    """
    checks = suite_hash(assignment)
    stored = book.stored(assignment.name)
    graded = {s: (r.content_hash, r.suite_hash) for s, r in stored.items()}
    run, todo = ClassRun(), {}
    for sub in submissions:
        if needs_grading(sub, graded, checks, force):
            todo[sub.student] = sub
            if not force and graded.get(sub.student, ("",))[0] == sub.content_hash:
                run.regraded_for_checks += 1
        else:
            run.reports[sub.student] = Report.from_json(stored[sub.student].report)
            run.cached.add(sub.student)
    if not todo:
        return run
    outcomes = grader.grade(assignment, [sub.job for sub in todo.values()])
    try:
        for outcome in outcomes:
            sub = todo[outcome.job.student]
            run.seconds[sub.student] = outcome.seconds
            if outcome.report is None:
                run.errors[sub.student] = outcome.error or "unknown error"
            else:
                book.record(assignment.name, sub.student, outcome.report, content_hash=sub.content_hash,
                            suite_hash=checks, timestamp=sub.timestamp, seconds=outcome.seconds, node=outcome.node)
                run.reports[sub.student] = outcome.report
                run.nodes[sub.student] = outcome.node
            on_result(outcome)
    except KeyboardInterrupt:
        run.interrupted = True
    finally:
        outcomes.close()  # stops the workers and their children
    return run
