"""`kit check hwN`: grade one submission and tell the student what to do next."""
from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from kit.grader.course import Assignment, Course
from kit.grader.report import Report

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
@click.option("--watch", is_flag=True, help="Check again every time you save your work (Ctrl-C to stop).")
@click.pass_context
def check(ctx: click.Context, assignment: str, path: Path | None, course: Course, as_json: bool,
          junit_xml: Path | None, hidden: bool, keyword: str | None, verbose: bool, watch: bool) -> None:
    """Check your ASSIGNMENT (e.g. hw1) against PyTorch and print your score."""
    spec = course.assignment(assignment)
    submission = (path or default_submission(course, assignment)).resolve()
    if not submission.is_dir() and not (submission.suffix == ".ipynb" and submission.is_file()):
        raise KitError(f"no folder or notebook {submission}")
    if watch and as_json:
        raise KitError("--watch prints a report for people each time: use it without --json")

    def once() -> bool:
        report = check_once(spec, submission, hidden=hidden, keyword=keyword)
        if junit_xml:
            from kit.grader.formats import junit_xml as to_junit

            junit_xml.write_text(to_junit(report))
        if as_json:
            click.echo(json.dumps(report.to_json(), indent=2))
        else:
            from .output import print_report

            print_report(report, submission=submission, verbose=verbose)
        return report.all_passed

    if watch:
        watch_and_check(submission, once)
        ctx.exit(0)
    ctx.exit(0 if once() else 1)


def check_once(spec: Assignment, submission: Path, *, hidden: bool, keyword: str | None) -> Report:
    from kit.grader.grade import NotGraded, grade_submission
    from kit.grader.launch import Limits
    from kit.grader.sandbox import make_launcher, remembered_probe

    # bubblewrap if it works here (as found by an earlier run, while nothing changed), else a warning in the report
    launcher = make_launcher(Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget), require=False,
                             found=remembered_probe())
    try:  # public references are the same on every run: kept for the next one (hidden ones never)
        return grade_submission(spec, submission, launcher=launcher, hidden=hidden, keyword=keyword,
                                keep_references=True)
    except NotGraded as exc:
        raise KitError(str(exc)) from None


def is_source(change: object, path: str) -> bool:
    """A student's Python file or notebook (editors' backups, caches and checkpoints are not)."""
    parts = Path(path).parts
    return path.endswith((".py", ".ipynb")) and not any(p in ("__pycache__", ".ipynb_checkpoints") or
                                                        p.startswith(".") for p in parts[-2:])


def watch_and_check(submission: Path, once: Callable[[], bool]) -> None:
    """Check, then check again after every save of the submission's sources (changes that come together, as
    an editor's save does, are one), the screen cleared first on a terminal; Ctrl-C stops."""
    import watchfiles

    folder = submission if submission.is_dir() else submission.parent
    wanted = is_source if submission.is_dir() else (lambda change, path: Path(path).name == submission.name)
    terminal = sys.stdout.isatty()
    # an empty set of changes every half second, so that the first one starts the watcher before the first
    # check (a save while checking is seen after it) and the loop below waits for a real one; Ctrl-C ends it
    saves = watchfiles.watch(folder, watch_filter=wanted, raise_interrupt=False, yield_on_timeout=True,
                             rust_timeout=500)
    try:
        next(saves, None)
        while True:
            if terminal:
                click.clear()
            try:
                once()
            except KitError as exc:  # a file that cannot be graded now may be saved right in a moment
                click.echo(f"error: {exc.message}", err=True)
            click.echo(f"\nwatching {folder}: save your work to check again, Ctrl-C to stop")
            sys.stdout.flush()
            if not next((changes for changes in saves if changes), None):
                return
            if not terminal:  # a log keeps every run: a rule between them instead of a cleared screen
                click.echo("\n" + "-" * 79 + "\nchanged: checking again\n")
    except KeyboardInterrupt:  # Ctrl-C while checking
        pass
