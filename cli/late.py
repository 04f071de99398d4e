"""`kit late hwN`: apply the course's due dates, late policy and extensions again, and show each penalty."""
from __future__ import annotations

import json

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kit.grader.course import Course

from .options import KitError, db_option, gradebook_url, json_option, students_option, with_course


@click.command()
@click.argument("assignment")
@db_option
@students_option
@json_option
@with_course
@click.pass_context
def late(ctx: click.Context, assignment: str, db: str | None, students: tuple[str, ...], as_json: bool,
         course: Course) -> None:
    """Apply the due date, late policy and extensions to every graded submission of ASSIGNMENT.

    Run it after changing `due`, `[late]` or extensions.toml: the penalties in the gradebook
    (nbgrader's late_submission_penalty) follow at once, without grading anything again
    (`kit grade` applies them too, to unchanged submissions as well). Exit status 1 when
    some submission has no recorded time (counted on time: check it by hand).
    """
    from kit.grader.gradebook import Gradebook
    from kit.grader.late import Deadlines, class_notes

    spec = course.assignment(assignment)
    url = gradebook_url(course, db, must_exist=f"run kit grade {assignment} first")
    deadlines = Deadlines.load(course, [spec])
    with Gradebook(url, deadlines) as book:
        records = book.apply_late(spec.name, students=list(students) or None)
    if students:
        unknown = sorted(set(students) - set(records))
        if unknown:
            raise KitError(f"no graded submission of {assignment} for: {', '.join(unknown)}")
    if not records:
        raise KitError(f"nothing graded for {assignment} in {url} (run kit grade {assignment} first)")
    due = deadlines.due.get(spec.name)
    notes = class_notes(deadlines, spec.name, {s: r.lateness for s, r in records.items()})
    if as_json:
        click.echo(json.dumps({
            "assignment": spec.name,
            "due": due.isoformat() if due else None,
            "submissions": [{"student": s, "submitted": _iso(r.lateness.submitted), "due": _iso(r.lateness.due),
                             "extended": r.lateness.extended, "kind": r.lateness.kind,
                             "flagged": r.lateness.flagged, "late_seconds": r.lateness.seconds,
                             "raw_score": r.raw_score, "late_submission_penalty": r.penalty, "score": r.score,
                             "max_score": r.max_score, "reason": r.lateness.describe()}
                            for s, r in records.items()],
            "notes": notes,
        }, indent=2))
    else:
        table = Table(title=f"{spec.name}: late penalties", title_justify="left", show_edge=False)
        for name in ("student", "raw", "penalty", "score", "why"):
            table.add_column(name, justify="left" if name in ("student", "why") else "right")
        for s, r in records.items():
            table.add_row(Text(s), f"{r.raw_score:g}", f"-{r.penalty:g}" if r.penalty else "",
                          f"{r.score:g}/{r.max_score:g}", Text(r.lateness.describe(),
                                                              style="yellow" if r.lateness.flagged else ""))
        console = Console(highlight=False)
        console.print(table)
        for note in notes:
            console.print(Text(f"note: {note}", style="yellow"))
    ctx.exit(1 if any(r.lateness.flagged for r in records.values()) else 0)


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None
