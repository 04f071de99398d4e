"""`kit release hwN`: turn the solution into what students get, after proving the checks work."""
from __future__ import annotations

import tempfile
from pathlib import Path

import click
from kit.grader.course import SetupError

from .check import resolve_course


@click.command()
@click.argument("assignment")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write a self-contained student bundle here (stubs, handout, public checks, course file). "
                   "Default: refresh the course's assignments/ folder.")
@click.option("--course", "course_dir", type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--no-verify", is_flag=True, help="Skip the self-check (solutions full marks, stubs zero).")
def release(assignment: str, out: Path | None, course_dir: Path | None, no_verify: bool) -> None:
    """Release ASSIGNMENT: stubs from the solutions' markers, the handout, the public checks."""
    from kit.grader.release import MarkerError, solution_dir, write_bundle, write_student_files

    try:
        course = resolve_course(course_dir)
        spec = course.assignment(assignment)
        solutions = solution_dir(course, spec)
        if not solutions.is_dir():
            raise SetupError(f"no solutions in {solutions}")
    except (SetupError, MarkerError) as exc:
        raise click.UsageError(str(exc)) from None
    if not no_verify:
        with tempfile.TemporaryDirectory(prefix="kit-release-") as tmp:
            try:
                write_student_files(course, spec, Path(tmp))
            except MarkerError as exc:
                raise click.ClickException(str(exc)) from None
            self_check(spec, solutions, Path(tmp))
    if out is None:
        written = write_student_files(course, spec, course.assignments / assignment)
        click.echo(f"released {assignment}: " + ", ".join(str(p.relative_to(course.root)) for p in written))
    else:
        write_bundle(course, spec, out)
        click.echo(f"released {assignment} to {out}: students run `kit check {assignment}` there")


def self_check(spec, solutions: Path, stubs: Path) -> None:
    """Refuse a release whose checks cannot tell the solution from the stub."""
    from kit.grader.report import PASSED, SKIPPED
    from kit.grader.session import run_suite

    solved = run_suite(spec, solutions, hidden=True)
    bad = [c for c in solved.checks if c.status not in (PASSED, SKIPPED)]
    if bad:
        lines = "\n".join(f"  {c.id}: {c.message.splitlines()[0] if c.message else c.status}" for c in bad)
        raise click.ClickException(f"the solutions do not score full marks, so nothing was released:\n{lines}")
    stubbed = run_suite(spec, stubs, hidden=True)
    scoring = [c for c in stubbed.checks if c.points > 0]
    if scoring:
        lines = "\n".join(f"  {c.id}" for c in scoring)
        raise click.ClickException(f"the stubs score points on these checks, so nothing was released:\n{lines}")
    click.echo(f"self-check: solutions {solved.score:g}/{solved.max_score:g}, stubs {stubbed.score:g}")
