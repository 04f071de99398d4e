"""`kit feedback hwN`: a feedback page per student, from the graded reports in the gradebook."""
from __future__ import annotations

from pathlib import Path

import click

from kit.grader.course import Course

from .options import KitError, db_option, gradebook_url, students_option, with_course


@click.command()
@click.argument("assignment")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write OUT/<student>/ASSIGNMENT/feedback.{md,html} (default: COURSE/feedback, nbgrader's place).")
@db_option
@students_option
@with_course
def feedback(assignment: str, out: Path | None, db: str | None, students: tuple[str, ...], course: Course) -> None:
    """Write each student's feedback for ASSIGNMENT (Markdown and HTML).

    Public checks in full; hidden checks by name, points and verdict only. Run
    `kit grade ASSIGNMENT` first: feedback is made from the reports it stored.
    """
    from kit.grader.feedback import write_feedback
    from kit.grader.gradebook import Gradebook
    from kit.grader.report import Report

    spec = course.assignment(assignment)
    url = gradebook_url(course, db, must_exist=f"run kit grade {assignment} first")
    target = (out or course.root / "feedback").resolve()
    with Gradebook(url) as book:
        stored = book.stored(spec.name)
        scores = book.scores(spec.name)
        late = book.late(spec.name)
    if students:
        unknown = sorted(set(students) - set(stored))
        if unknown:
            raise KitError(f"no graded submission of {assignment} for: {', '.join(unknown)}")
        stored = {s: v for s, v in stored.items() if s in students}
    if not stored:
        raise KitError(f"nothing graded for {assignment} in {url} (run kit grade {assignment} first)")
    for student, record in sorted(stored.items()):
        score, top, stamp = scores.get(student, (None, None, None))
        write_feedback(Report.from_json(record.report), student, target / student / spec.name, title=spec.title,
                       final_score=(score, top) if score is not None else None,
                       timestamp=f"{stamp} UTC" if stamp else None,
                       late=late[student].lateness if student in late else None,
                       penalty=late[student].penalty if student in late else 0.0)
    click.echo(f"wrote feedback for {len(stored)} students to {target}/<student>/{spec.name}/")
