"""`kit export`: per-student, per-assignment scores out of the gradebook."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from kit.grader.course import SetupError

from .options import db_option, gradebook_url, resolve_course, students_option


@click.command()
@click.option("--format", "fmt", type=click.Choice(["csv", "wide", "json"]), default="csv", show_default=True,
              help="csv: one row per student and assignment (nbgrader export's columns); "
                   "wide: one row per student, a column per assignment; json: rows with per-component scores.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here (default: standard output).")
@db_option
@click.option("--assignment", "assignments", multiple=True, metavar="NAME", help="Only this assignment (repeatable).")
@students_option
@click.option("--components", is_flag=True, help="csv: add one column per component (ASSIGNMENT:COMPONENT).")
@click.option("--course", "course_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Course folder holding kit.toml (default: the current folder or above; not needed with --db).")
def export(fmt: str, out: Path | None, db: str | None, assignments: tuple[str, ...], students: tuple[str, ...],
           components: bool, course_dir: Path | None) -> None:
    """Export scores from the gradebook (manual changes made in formgrader included).

    A student without a submission scores 0 for that assignment, as in `nbgrader export`.
    """
    from kit.grader.gradebook import Gradebook

    try:
        course = resolve_course(course_dir)
    except SetupError:
        if db is None:
            raise
        course = None  # a gradebook named by --db needs no course
    url = gradebook_url(course, db, must_exist="run kit grade first, or pass --db")
    with Gradebook(url) as book:
        rows = book.export_rows(list(assignments) or None, list(students) or None)
    from kit.grader.formats import scores_csv, scores_wide_csv

    if fmt == "csv":
        text = scores_csv(rows, components=components)
    elif fmt == "wide":
        text = scores_wide_csv(rows)
    else:
        text = json.dumps(rows, indent=2) + "\n"
    if out:
        out.write_text(text)
        click.echo(f"exported {len(rows)} rows to {out}", err=True)
    else:
        sys.stdout.write(text)
