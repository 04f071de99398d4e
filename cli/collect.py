"""`kit collect hwN SOURCE`: bring submissions into COURSE/submitted/<student>/hwN/."""
from __future__ import annotations

import json
import re
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from kit.grader.course import Course

from .options import KitError, json_option, with_course

STYLE = {"collected": "green", "rejected": "bold red", "superseded": "dim", "kept": "yellow", "ignored": "dim"}


@click.command()
@click.argument("assignment")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--dest", type=click.Path(file_okay=False, path_type=Path),
              help="Where submissions go: DEST/<student>/ASSIGNMENT/ (default: COURSE/submitted).")
@click.option("--layout", type=click.Choice(["auto", "nbgrader", "zips"]), default="auto", show_default=True,
              help="nbgrader: SOURCE/<student>/<assignment>/; zips: one archive per student (or one zip of them).")
@click.option("--pattern", metavar="REGEX",
              help="Finds the student id in an archive's file name: a named group (?P<student>...), "
                   "optionally (?P<timestamp>...). Default: the name up to the first '_' or space.")
@click.option("--source-assignment", metavar="NAME", help="The assignment's folder name in SOURCE (nbgrader layout).")
@click.option("--max-files", type=click.IntRange(min=1), default=200, show_default=True,
              help="Most files one submission may hold.")
@click.option("--max-mb", type=click.FloatRange(min=0.001), default=20.0, show_default=True,
              help="Most MiB one submission may unpack to.")
@json_option
@with_course
@click.pass_context
def collect(ctx: click.Context, assignment: str, source: Path, dest: Path | None, layout: str, pattern: str | None,
            source_assignment: str | None, max_files: int, max_mb: float, as_json: bool, course: Course) -> None:
    """Collect ASSIGNMENT's submissions from SOURCE into the course.

    SOURCE is nbgrader's `submitted/` layout, a folder of LMS downloads (one zip per
    student, the student id in the file name), or one zip holding those. Archives are
    untrusted: path traversal, links, special files, too many files or bytes (zip
    bombs) reject them. A student with several archives gets the newest. The submission
    time is the LMS's or nbgrader's record (a time in the file name, the download's
    arrival time, nbgrader's timestamp.txt), never a date inside the archive. Exit
    status: 0 everything collected cleanly, 1 something was rejected or odd, 2 usage error.
    """
    from kit.grader.collect import DEFAULT_PATTERN, ArchiveLimits
    from kit.grader.collect import collect as run_collect
    from kit.grader.collect.students import compile_pattern

    spec = course.assignment(assignment)
    limits = ArchiveLimits(max_files=max_files, max_total_bytes=int(max_mb * (1 << 20)),
                           max_file_bytes=min(int(max_mb * (1 << 20)), ArchiveLimits.max_file_bytes))
    target = (dest or course.root / "submitted").resolve()
    pattern = pattern or DEFAULT_PATTERN
    try:
        compile_pattern(pattern)
    except ValueError:
        raise KitError("--pattern needs a named group (?P<student>...)") from None
    except re.error as exc:
        raise KitError(f"bad --pattern: {exc}") from None
    report = run_collect(spec.name, spec.file, source.resolve(), target, layout=layout, pattern=pattern,
                         source_assignment=source_assignment, limits=limits)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        print_collect_report(report)
    ctx.exit(0 if report.clean else 1)


def submitted(entry) -> str:
    """When the entry was handed in and whose record says so, e.g. `2024-03-01 12:00:00 UTC (file name)`."""
    if entry.student is None or entry.status in ("rejected", "ignored"):
        return ""
    if not entry.timestamp:
        return "unknown"
    return f"{entry.timestamp.split('.')[0]} UTC ({entry.timestamp_source})"


def print_collect_report(report) -> None:
    console = Console(highlight=False)
    table = Table(title=Text(f"collect {report.assignment} -> {report.dest}"), title_justify="left", show_edge=False)
    table.add_column("source", overflow="fold")
    table.add_column("student")
    table.add_column("status")
    table.add_column("files", justify="right")
    table.add_column("submitted (according to)")
    table.add_column("why / what was odd", ratio=1, overflow="fold")
    for e in report.entries:
        status = e.status + (" (odd)" if e.odd else "")
        table.add_row(Text(e.source), Text(e.student or ""),
                      Text(status, style="yellow" if e.odd else STYLE.get(e.status, "")),
                      str(e.files) if e.status == "collected" else "", Text(submitted(e)),
                      Text("; ".join(e.reasons)))
    console.print(table)
    counts = {}
    for e in report.entries:
        counts[e.status] = counts.get(e.status, 0) + 1
    odd = sum(1 for e in report.entries if e.odd)
    line = ", ".join(f"{n} {status}" for status, n in counts.items()) + (f" ({odd} odd)" if odd else "")
    console.print(Text(line or "nothing found", style="bold"))
