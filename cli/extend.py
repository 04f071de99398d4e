"""`kit extend hwN STUDENT --until ...`: more time for one student, in the course's extensions.toml."""
from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import click

from kit.grader.course import Course

from .options import KitError, db_option, gradebook_url, with_course


@click.command()
@click.argument("assignment")
@click.argument("student")
@click.option("--until", metavar="DATETIME",
              help="The new due date, with its time zone: 2026-12-03T23:59:00+08:00 (or ...Z for UTC).")
@click.option("--days", type=click.FloatRange(min=0, min_open=True), help="The new due date: this many days after "
              "the assignment's due date.")
@click.option("--remove", is_flag=True, help="Take the extension back.")
@db_option
@with_course
def extend(assignment: str, student: str, until: str | None, days: float | None, remove: bool, db: str | None,
           course: Course) -> None:
    """Give STUDENT until another date for ASSIGNMENT (written to COURSE/extensions.toml).

    When the gradebook already holds the student's submission, its late penalty is applied
    again at once (no code runs); otherwise `kit grade` applies it.
    """
    from kit.grader.collect import valid_student
    from kit.grader.late import Deadlines, extensions_file, write_extension

    spec = course.assignment(assignment)
    if not valid_student(student):
        raise KitError(f"{student!r} is not a usable student id (letters, digits and _ . @ + -)")
    if sum([until is not None, days is not None, remove]) != 1:
        raise KitError("say one of --until DATETIME, --days N or --remove")
    due = course.due_date(spec)
    new = None
    if until is not None:
        new = _zoned(until)
    elif days is not None:
        if due is None:
            raise KitError(f"{assignment} has no due date to add days to: give --until, or set `due`")
        new = due + timedelta(days=days)
    if new is not None and due is not None and new <= due:
        raise KitError(f"{new.isoformat()} is not after the due date ({due.isoformat()}): an extension gives more "
                       "time")
    write_extension(course, spec.name, student, new)
    if new is None:
        click.echo(f"{student}: no extension for {spec.name} any more ({extensions_file(course)})")
    else:
        click.echo(f"{student}: {spec.name} due {new.isoformat()} ({extensions_file(course)})")
    url = gradebook_url(course, db)
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        return  # nothing graded yet: kit grade applies it
    from kit.grader.gradebook import Gradebook

    with Gradebook(url, Deadlines.load(course, [spec])) as book:
        records = book.apply_late(spec.name, students=[student])
    if student in records:
        r = records[student]
        click.echo(f"applied: {r.lateness.describe()}; score {r.score:g}/{r.max_score:g}"
                   + (f" (late penalty -{r.penalty:g})" if r.penalty else ""))
    else:
        click.echo(f"{student} has no graded submission of {spec.name} yet: kit grade applies it")


def _zoned(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise KitError(f"--until {text!r} is not a date and time like 2026-12-03T23:59:00+08:00") from None
    if moment.tzinfo is None:
        raise KitError(f"--until {text!r} has no time zone: write one, like {moment.isoformat()}+08:00 or "
                       f"{moment.isoformat()}Z")
    return moment
