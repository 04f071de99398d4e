"""`kit release hwN`: turn the solution into what students get, after proving the checks work."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click

from kit.grader.course import Course

from .options import KitError, with_course


@click.command()
@click.argument("assignment")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write a self-contained student bundle here (stubs, handout, public checks, course file). "
                   "Default: refresh the course's assignments/ folder.")
@with_course
@click.option("--no-verify", is_flag=True, help="Skip the self-check (solutions full marks, stubs zero).")
def release(assignment: str, out: Path | None, course: Course, no_verify: bool) -> None:
    """Release ASSIGNMENT: stubs from the solutions' markers, the handout, the public checks."""
    from kit.grader.release import MarkerError, solution_dir, write_bundle, write_student_files

    spec = course.assignment(assignment)
    try:
        solutions = solution_dir(course, spec)
        if not solutions.is_dir():
            raise KitError(f"no solutions in {solutions}")
        if not no_verify:
            with tempfile.TemporaryDirectory(prefix="kit-release-") as tmp:
                write_student_files(course, spec, Path(tmp))
                self_check(spec, solutions, Path(tmp))
    except MarkerError as exc:
        raise KitError(str(exc)) from None
    if out is None:
        written = write_student_files(course, spec, course.assignments / assignment)
        click.echo(f"released {assignment}: " + ", ".join(str(p.relative_to(course.root)) for p in written))
    else:
        write_bundle(course, spec, out)
        click.echo(f"released {assignment} to {out}: students run `kit check {assignment}` there")


def self_check(spec, solutions: Path, stubs: Path) -> None:
    """Refuse a release whose checks cannot tell the solution from the stub."""
    from kit.grader.grade import NotGraded, grade_submission
    from kit.grader.launch import Limits
    from kit.grader.report import PASSED
    from kit.grader.sandbox import make_launcher

    launcher = make_launcher(Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget), require=False)
    try:
        solved = grade_submission(spec, solutions, launcher=launcher, hidden=True)
        stubbed = grade_submission(spec, stubs, launcher=launcher, hidden=True)
    except NotGraded as exc:
        raise KitError(f"the self-check could not run: {exc}") from None
    bad = [c for c in solved.checks if c.status != PASSED and c.counts]
    if bad:
        lines = "\n".join(f"  {c.id}: {c.message.splitlines()[0] if c.message else c.status}" for c in bad)
        raise KitError(f"the solutions do not score full marks, so nothing was released:\n{lines}")
    scoring = [c for c in stubbed.checks if c.points > 0]
    if scoring:
        lines = "\n".join(f"  {c.id}" for c in scoring)
        raise KitError(f"the stubs score points on these checks, so nothing was released:\n{lines}")
    click.echo(f"self-check: solutions {solved.score:g}/{solved.max_score:g}, stubs {stubbed.score:g}")
