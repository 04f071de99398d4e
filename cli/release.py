"""`kit release hwN`: turn the solution into what students get, after proving the checks work."""
from __future__ import annotations

from pathlib import Path

import click

from kit.grader.course import Course

from .options import KitError, with_course


@click.command()
@click.argument("assignment")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Write a self-contained student bundle here (stubs, handout, public checks, course file). "
                   "Default: refresh the course's assignments/ folder.")
@click.option("--notebook/--py", "notebook", default=None,
              help="Hand out the notebook ASSIGNMENT/ASSIGNMENT.ipynb instead of the .py stub, or the .py stub "
                   "(default: kit.toml's [course] handout, else the .py stub).")
@with_course
@click.option("--no-verify", is_flag=True, help="Skip the self-check (solutions full marks, stubs zero).")
def release(assignment: str, out: Path | None, notebook: bool | None, course: Course, no_verify: bool) -> None:
    """Release ASSIGNMENT: stubs from the solutions' markers, the handout, the public checks."""
    from kit.grader.release import MarkerError, SelfCheckFailed, solution_dir, write_bundle, write_student_files

    spec = course.assignment(assignment)
    notebook = course.handout == "notebook" if notebook is None else notebook
    try:
        solutions = solution_dir(course, spec)
        if not solutions.is_dir():
            raise KitError(f"no solutions in {solutions}")
        if not no_verify:
            self_check(course, spec, notebook)
    except (MarkerError, SelfCheckFailed) as exc:
        raise KitError(str(exc)) from None
    if out is None:
        written = write_student_files(course, spec, course.assignments / assignment, notebook=notebook)
        click.echo(f"released {assignment}: " + ", ".join(str(p.relative_to(course.root)) for p in written))
    else:
        write_bundle(course, spec, out, notebook=notebook)
        click.echo(f"released {assignment} to {out}: students run `kit check {assignment}` there")


def self_check(course: Course, spec, notebook: bool) -> None:
    """Refuse a release whose checks cannot tell the solution from the stub."""
    from kit.grader.launch import Limits
    from kit.grader.release import self_check as run
    from kit.grader.sandbox import make_launcher

    launcher = make_launcher(Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget), require=False)
    try:
        solved, stubbed = run(course, spec, launcher, notebook=notebook)
    finally:
        launcher.close()
    solution, stub = ("solution notebook", "stub notebook") if notebook else ("solutions", "stubs")
    click.echo(f"self-check: {solution} {solved.score:g}/{solved.max_score:g}, {stub} {stubbed.score:g}")
