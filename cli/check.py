"""`kit check hwN`: grade one submission and tell the student what to do next."""
from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path

import click
from kit.grader.course import Course, SetupError, find_course, load_course


def resolve_course(course_dir: Path | None) -> Course:
    return load_course(course_dir.resolve()) if course_dir else find_course()


def default_submission(course: Course, assignment: str) -> Path:
    """./hwN if the student works there, else the course's own copy (the stubs, in a release)."""
    here = Path.cwd() / assignment
    return here if here.is_dir() else course.assignments / assignment


@click.command()
@click.argument("assignment")
@click.option("--path", "path", type=click.Path(file_okay=False, path_type=Path),
              help="Folder with your files (default: ./ASSIGNMENT, else the course's copy).")
@click.option("--course", "course_dir", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Course folder holding kit.toml (default: the current folder or above).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead of a table.")
@click.option("--junit-xml", type=click.Path(dir_okay=False, path_type=Path), help="Also write a JUnit XML report.")
@click.option("--hidden", is_flag=True, help="Include hidden checks (instructors).")
@click.option("-k", "keyword", metavar="EXPR", help="Only run checks matching the pytest -k expression.")
@click.option("-v", "--verbose", is_flag=True, help="Show every check, and what your code printed.")
def check(assignment: str, path: Path | None, course_dir: Path | None, as_json: bool, junit_xml: Path | None,
          hidden: bool, keyword: str | None, verbose: bool) -> None:
    """Check your ASSIGNMENT (e.g. hw1) against PyTorch and print your score."""
    from kit.grader.runner import Limits, make_runner
    from kit.grader.sandbox import make_launcher

    try:
        course = resolve_course(course_dir)
        spec = course.assignment(assignment)
        submission = (path or default_submission(course, assignment)).resolve()
        if not submission.is_dir():
            raise SetupError(f"no folder {submission}")
    except SetupError as exc:
        raise click.UsageError(str(exc)) from None
    limits = Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget)
    launcher = make_launcher(limits, require=False)  # bubblewrap if it works here, else a warning
    runner = make_runner(submission, spec, limits=limits, launcher=launcher)
    runner.start()  # the child imports torch while we do the same
    from kit.grader.reference import persisted, store_path
    from kit.grader.session import run_suite

    # public references are the same on every run: keep them for the next one (hidden ones never)
    with contextlib.nullcontext() if hidden else persisted(store_path(spec.suite_dir)):
        report = run_suite(spec, submission, runner=runner, hidden=hidden, keyword=keyword)
    if launcher.warning:
        report.notes.append(launcher.warning)
    if junit_xml:
        from kit.grader.formats import junit_xml as to_junit

        junit_xml.write_text(to_junit(report))
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        from .output import print_report

        print_report(report, submission=submission, verbose=verbose)
    exit_now(0 if report.all_passed else 1)


def exit_now(code: int) -> None:
    """Exit without tearing torch down: the report is out, and teardown costs a few hundred ms."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
