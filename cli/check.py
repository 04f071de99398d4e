"""`kit check hwN`: grade one submission and tell the student what to do next."""
from __future__ import annotations

import json
from pathlib import Path

import click

from kit.grader.course import Course

from .options import KitError, json_option, with_course


def default_submission(course: Course, assignment: str) -> Path:
    """./hwN if the student works there, else the course's own copy (the stubs, in a release)."""
    here = Path.cwd() / assignment
    return here if here.is_dir() else course.assignments / assignment


@click.command()
@click.argument("assignment")
@click.option("--path", "path", type=click.Path(path_type=Path),
              help="Folder with your files, or your notebook (default: ./ASSIGNMENT, else the course's copy). "
                   "In a folder, ASSIGNMENT.ipynb is checked when the graded .py file is not there, or is "
                   "still the released stub.")
@with_course
@json_option
@click.option("--junit-xml", type=click.Path(dir_okay=False, path_type=Path), help="Also write a JUnit XML report.")
@click.option("--hidden", is_flag=True, help="Include hidden checks (instructors).")
@click.option("-k", "keyword", metavar="EXPR", help="Only run checks matching the pytest -k expression.")
@click.option("-v", "--verbose", is_flag=True, help="Show every check, and what your code printed.")
@click.pass_context
def check(ctx: click.Context, assignment: str, path: Path | None, course: Course, as_json: bool,
          junit_xml: Path | None, hidden: bool, keyword: str | None, verbose: bool) -> None:
    """Check your ASSIGNMENT (e.g. hw1) against PyTorch and print your score."""
    from kit.grader.launch import Limits
    from kit.grader.sandbox import make_launcher

    spec = course.assignment(assignment)
    submission = (path or default_submission(course, assignment)).resolve()
    if not submission.is_dir() and not (submission.suffix == ".ipynb" and submission.is_file()):
        raise KitError(f"no folder or notebook {submission}")
    # bubblewrap if it works here, else a warning in the report
    launcher = make_launcher(Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget), require=False)
    from kit.grader.grade import NotGraded, grade_submission

    try:  # public references are the same on every run: kept for the next one (hidden ones never)
        report = grade_submission(spec, submission, launcher=launcher, hidden=hidden, keyword=keyword,
                                  keep_references=True)
    except NotGraded as exc:
        raise KitError(str(exc)) from None
    if junit_xml:
        from kit.grader.formats import junit_xml as to_junit

        junit_xml.write_text(to_junit(report))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        from .output import print_report

        print_report(report, submission=submission, verbose=verbose)
    ctx.exit(0 if report.all_passed else 1)
