"""`kit gradescope hwN`: grade one submission inside Gradescope's autograder and write results.json."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click
from kit.grader.course import SetupError

from .check import exit_now, resolve_course

AUTOGRADER = Path("/autograder")


@click.command()
@click.argument("assignment")
@click.option("--path", "path", type=click.Path(file_okay=False, path_type=Path),
              help="The student's upload (default: /autograder/submission in Gradescope, else ./ASSIGNMENT). "
                   "The graded file may sit in a sub-folder.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where results.json goes (default: /autograder/results/results.json in Gradescope, "
                   "else ./results.json).")
@click.option("--public-only", is_flag=True, help="Run the public checks only.")
@click.option("--hidden-visibility", type=click.Choice(["after_published", "after_due_date", "hidden", "visible"]),
              default="after_published", show_default=True, help="Gradescope visibility of hidden checks.")
@click.option("--course", "course_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
def gradescope(assignment: str, path: Path | None, out: Path | None, public_only: bool, hidden_visibility: str,
               course_dir: Path | None) -> None:
    """Grade ASSIGNMENT for Gradescope: every check (hidden ones included) into results.json."""
    from kit.grader.collect import locate_submission
    from kit.grader.formats import gradescope_results
    from kit.grader.runner import Limits, make_runner
    from kit.grader.sandbox import make_launcher

    started = time.monotonic()
    try:
        course = resolve_course(course_dir)
        spec = course.assignment(assignment)
    except SetupError as exc:
        raise click.UsageError(str(exc)) from None
    if path is None:
        path = AUTOGRADER / "submission" if (AUTOGRADER / "submission").is_dir() else Path.cwd() / assignment
    if not path.is_dir():
        raise click.UsageError(f"no folder {path}")
    if out is None:
        out = AUTOGRADER / "results" / "results.json" if (AUTOGRADER / "results").is_dir() else Path("results.json")
    submission = locate_submission(path.resolve(), spec.file)
    limits = Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget)
    launcher = make_launcher(limits, False)  # Gradescope's container may not allow bubblewrap: then a note
    runner = make_runner(submission, spec, limits=limits, launcher=launcher)
    runner.start()
    from kit.grader.session import run_suite

    report = run_suite(spec, submission, runner=runner, hidden=not public_only)
    if launcher.warning:
        report.notes.append(launcher.warning)
    results = gradescope_results(report, execution_time=time.monotonic() - started,
                                 hidden_visibility=hidden_visibility)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    click.echo(f"{assignment}: {report.score:g} / {report.max_score:g} -> {out}")
    exit_now(0 if report.all_passed else 1)
