"""`kit report hwN --html FILE`: one page of how the class did, from the gradebook (no student code runs)."""
from __future__ import annotations

import shlex
from pathlib import Path

import click

from kit.grader.course import Course

from .options import KitError, db_option, gradebook_url, with_course


@click.command()
@click.argument("assignment")
@click.option("--html", "html", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the page here (one self-contained file: it works offline).")
@click.option("--feedback", "feedback_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where `kit feedback` wrote the students' pages, to link to them "
                   "(default: COURSE/feedback, its default).")
@db_option
@with_course
def report(assignment: str, html: Path, feedback_dir: Path | None, db: str | None, course: Course) -> None:
    """Write the class report of ASSIGNMENT: one HTML page for the instructor.

    The distribution of totals, every check's pass / fail / error rate and the failure
    messages most students got (hidden checks included), the slowest submissions, those
    that could not be graded and why, and a sortable table of students linking to their
    feedback pages. Made from what `kit grade ASSIGNMENT` stored: no student code runs.
    """
    from kit.grader.classreport import load, write_report
    from kit.grader.gradebook import Gradebook

    spec = course.assignment(assignment)
    url = gradebook_url(course, db, must_exist=f"run kit grade {assignment} first")
    with Gradebook(url) as book:
        data = load(book, spec.name, title=spec.title, course=course.name)
    if not data.reports and not data.attempts:
        raise KitError(f"nothing graded for {assignment} in {url} (run kit grade {assignment} first)")
    out = write_report(data, html.resolve(), feedback_dir=(feedback_dir or course.root / "feedback").resolve(),
                       command=shlex.join(["kit", "report", spec.name, "--html", str(html)]))
    click.echo(f"wrote the class report of {spec.name} ({len(data.reports)} students) to {out}")
