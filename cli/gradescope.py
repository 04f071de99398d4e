"""`kit gradescope hwN`: grade one submission inside Gradescope's autograder and write results.json."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click

from kit.grader.course import Course

from .options import KitError, with_course

AUTOGRADER = Path("/autograder")


@click.command()
@click.argument("assignment")
@click.option("--path", "path", type=click.Path(file_okay=False, path_type=Path),
              help="The student's upload (default: /autograder/submission in Gradescope, else ./ASSIGNMENT). "
                   "The graded file (or the notebook ASSIGNMENT.ipynb) may sit in a sub-folder.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where results.json goes (default: /autograder/results/results.json in Gradescope, "
                   "else ./results.json).")
@click.option("--public-only", is_flag=True, help="Run the public checks only.")
@click.option("--hidden-visibility", type=click.Choice(["after_published", "after_due_date", "hidden", "visible"]),
              default="after_published", show_default=True, help="Gradescope visibility of hidden checks.")
@with_course
@click.pass_context
def gradescope(ctx: click.Context, assignment: str, path: Path | None, out: Path | None, public_only: bool,
               hidden_visibility: str, course: Course) -> None:
    """Grade ASSIGNMENT for Gradescope: every check (hidden ones included) into results.json."""
    from kit.grader.collect import locate_submission
    from kit.grader.formats import gradescope_results
    from kit.grader.launch import Limits
    from kit.grader.sandbox import make_launcher

    started = time.monotonic()
    spec = course.assignment(assignment)
    if path is None:
        path = AUTOGRADER / "submission" if (AUTOGRADER / "submission").is_dir() else Path.cwd() / assignment
    if not path.is_dir():
        raise KitError(f"no folder {path}")
    if out is None:
        out = AUTOGRADER / "results" / "results.json" if (AUTOGRADER / "results").is_dir() else Path("results.json")
    submission = locate_submission(path.resolve(), (spec.file, spec.notebook))
    # Gradescope's container may not allow bubblewrap: then the report says so
    launcher = make_launcher(Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget), require=False)
    from kit.grader.grade import NotGraded, grade_submission

    try:
        report = grade_submission(spec, submission, launcher=launcher, hidden=not public_only)
    except NotGraded as exc:
        raise KitError(str(exc)) from None
    results = gradescope_results(report, execution_time=time.monotonic() - started,
                                 hidden_visibility=hidden_visibility)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    click.echo(f"{assignment}: {report.score:g} / {report.max_score:g} -> {out}")
    ctx.exit(0 if report.all_passed else 1)
