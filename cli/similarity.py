"""`kit similarity hwN`: pairs of submissions that share unusually much code, for a person to read."""
from __future__ import annotations

import json
import os
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kit.grader.course import Course
from kit.grader.similarity import COMMON, THRESHOLD

from .options import KitError, json_option, with_course


@click.command()
@click.argument("assignment")
@click.argument("submitted", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="The HTML report (default: COURSE/similarity/ASSIGNMENT.html).")
@click.option("--threshold", type=click.FloatRange(0, 1), default=THRESHOLD, show_default=True,
              help="Flag pairs whose similarity is at least this.")
@click.option("--min", "minimum", type=click.FloatRange(0, 1), default=0.1, show_default=True,
              help="List pairs whose similarity is at least this (flagged pairs always).")
@click.option("--common", type=click.FloatRange(0, 1, min_open=True), default=COMMON, show_default=True,
              help="Leave out code found in more than this share of the class (and in more than 10 submissions).")
@json_option
@with_course
@click.pass_context
def similarity(ctx: click.Context, assignment: str, submitted: Path | None, out: Path | None, threshold: float,
               minimum: float, common: float, as_json: bool, course: Course) -> None:
    """Compare every pair of submissions of ASSIGNMENT and report those that share unusually much code.

    SUBMITTED holds SUBMITTED/<student>/ASSIGNMENT/ (default: COURSE/submitted). Renamed
    variables, reordered functions, new comments or formatting do not hide shared code; the
    released stub and code most of the class wrote alike are left out. A flagged pair is
    evidence for a person to read, never a verdict. Exit status 1 when some pair is flagged.
    """
    from kit.grader.similarity import compare_class, render_html

    spec = course.assignment(assignment)
    folder = (submitted or course.root / "submitted").resolve()
    if not folder.is_dir():
        raise KitError(f"no folder {folder} (collect submissions first: kit collect {assignment} SOURCE)")
    result = compare_class(spec, folder, _stub(course, spec), threshold=threshold, common=common)
    if len(result.codes) < 2:
        raise KitError(f"fewer than two submissions of {assignment} in {folder}: nothing to compare")
    page = (out or course.root / "similarity" / f"{spec.name}.html").resolve()
    page.parent.mkdir(parents=True, exist_ok=True)
    links = {s: os.path.relpath(folder / s / spec.name / spec.file, page.parent) for s in result.codes}
    page.write_text(render_html(result, links, minimum=minimum), encoding="utf-8")
    flagged = [p for p in result.pairs if p.flagged]
    if as_json:
        click.echo(json.dumps({**result.json(minimum), "report": str(page)}, indent=2))
    else:
        console = Console(highlight=False)
        n = len(result.codes)
        console.print(Text(f"{spec.name}: {n} submissions, {n * (n - 1) // 2} pairs compared, {len(flagged)} flagged "
                           f"(similarity {threshold:.0%} or more)"))
        table = Table(title="most similar pairs", title_justify="left", show_edge=False)
        for name in ("students", "similarity", "shared", ""):
            table.add_column(name, justify="right" if name in ("similarity", "shared") else "left")
        for p in result.pairs[:max(10, len(flagged))]:
            table.add_row(Text(" & ".join(p.students)), f"{p.similarity:.0%}", str(p.shared),
                          Text("flagged", style="bold red") if p.flagged else "")
        console.print(table)
        for note in result.notes:
            console.print(Text(f"note: {note}", style="yellow"))
        console.print(Text(f"report: {page}"))
    ctx.exit(1 if flagged else 0)


def _stub(course: Course, spec) -> str | None:
    """The released stub (assignments/ASSIGNMENT/<file>); if it was never released, the stub of the solution."""
    released = course.assignments / spec.name / spec.file
    if released.is_file():
        return released.read_text(encoding="utf-8")
    solution = course.solutions / spec.name / spec.file if course.solutions is not None else None
    if solution is not None and solution.is_file():
        from kit.grader.release import make_stub

        return make_stub(solution.read_text(encoding="utf-8"))
    return None
