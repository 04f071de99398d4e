"""Printing a report for people: what is wrong with the submission as a whole (said once), a table
of checks with one short line each, then every failed check's message in full.

Reads well on an 80-column terminal and in CI logs: rich drops colour when the output is not a
terminal and honours NO_COLOR; prose wraps at word boundaries, lines of code and tensors are never
re-wrapped, and the table keeps each row to one line, cut with "…" only where the full message
follows below it. The checks a problem costs are folded into one line under it. Every text is
passed through `clean_text`, so nothing a student's code printed or raised can move the cursor
or recolour the terminal.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from kit.grader.child.wire import clean_text
from kit.grader.report import ERROR, FAILED, PASSED, SKIPPED, UNUSABLE, CheckResult, Problem, Report

STYLE = {PASSED: ("✓", "green"), FAILED: ("✗", "red"), ERROR: ("!", "bold red"), SKIPPED: ("–", "dim")}


def _text(text: str, style: str = "", **options) -> Text:
    return Text(clean_text(text), style=style, **options)


def print_block(console: Console, message: str, first_style: str = "") -> None:
    """A multi-line message: its first line in `first_style`; prose wraps at word boundaries under its own
    indent, while code (a traceback's lines of source, carets) and tensors are printed as they are."""
    previous = ""
    for i, line in enumerate(clean_text(message).splitlines() or [""]):
        style = first_style if i == 0 else ""
        stripped = line.lstrip()
        if verbatim(stripped, previous.lstrip()):
            console.print(Text(line, style=style), soft_wrap=True)
        else:
            console.print(Padding(Text(stripped, style=style), (0, 0, 0, len(line) - len(stripped)), expand=False))
        previous = line


def verbatim(line: str, previous: str) -> bool:
    """Whether a line (without its indent) is code or data that re-wrapping would garble."""
    return (line.startswith(('File "', "[", "tensor(")) or previous.startswith('File "')
            or (bool(line) and set(line) <= set("^~ ")))


def print_report(report: Report, *, submission: Path | None = None, verbose: bool = False,
                 console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    title = report.assignment + (f"  ({graded_path(report, submission)})" if submission else "")
    for problem in report.problems:
        print_block(console, problem.message, "bold red")
        console.print()
    folded = {id(c) for p in report.problems for c in costs(report, p)}
    shown = [c for c in report.checks if id(c) not in folded]
    console.print(_text(title, "bold"), soft_wrap=True)
    if any(c.counts for c in shown):  # not a table of checks that could not run here only
        console.print(_table(shown, verbose))
    for problem in report.problems:
        if line := folded_line(report, problem):
            console.print(Text("✗ ", style="red"), _text(line, "bold"))
    for c in shown:
        if c.status in (FAILED, ERROR) and c.message:
            console.print(Text(f"\n{c.id}", style="bold"), Text(f" [{c.status}]", style=STYLE[c.status][1]))
            print_block(console, c.message)
    if verbose:
        for c in report.checks:
            if c.output and not c.hidden:
                console.print(Text(f"\noutput of {c.id}:", style="bold"))
                print_block(console, c.output.rstrip())
    for note in report.notes:
        print_block(console, f"note: {note.text}", "yellow")
    style = "bold green" if report.all_passed else "bold"
    console.print(Text(f"\nscore: {report.score:g} / {report.max_score:g}", style=style))


def costs(report: Report, problem: Problem) -> list[CheckResult]:
    """The checks `problem` made fail (kit.grader.plugin.apply_problems gives each the first problem that fits)."""
    first = {}
    for c in report.checks:
        if c.reason and c.counts:
            match = next((p for p in report.problems if p.kind == c.reason and p.component in (None, c.component)),
                         None)
            first[id(c)] = match
    return [c for c in report.checks if first.get(id(c)) is problem]


def folded_line(report: Report, problem: Problem) -> str:
    """The one line that stands for every check `problem` costs, instead of a row each repeating it."""
    checks = costs(report, problem)
    if not checks:
        return ""
    points = sum(c.max_points for c in checks)
    which = f"{len(checks)} check{'s' if len(checks) > 1 else ''}" + \
        (f" of {problem.component}" if problem.component else "")
    what = "not run" if problem.kind == UNUSABLE else "scored 0"
    return f"{which} {what} ({points:g} point{'s' if points != 1 else ''}): see above"


def graded_path(report: Report, submission: Path) -> Path:
    """The file that was graded: the submission's .py file or notebook (or the notebook it named)."""
    return submission / report.graded_file if report.graded_file and submission.is_dir() else submission


def _table(checks: list[CheckResult], verbose: bool) -> Table:
    """One row a check, one line a row: the component column only when there is more than one."""
    several = len({c.component for c in checks}) > 1
    table = Table(show_edge=False, pad_edge=False, header_style="bold")
    table.add_column("", width=1, no_wrap=True)
    table.add_column("check", no_wrap=True)
    if several:
        table.add_column("component", no_wrap=True)
    table.add_column("points", justify="right", no_wrap=True)
    table.add_column("result", ratio=1)
    for c in checks:
        mark, style = STYLE[c.status]
        first = c.message.splitlines()[0] if c.message else (c.description if verbose else "")
        points = f"{c.points:g}/{c.max_points:g}" if c.counts else ""
        row = [Text(mark, style=style), _text(c.id + (" (hidden)" if c.hidden else ""))]
        row += [_text(c.component)] if several else []
        if c.status in (FAILED, ERROR) and c.message:  # in full below the table: one line here
            result = _text(first, no_wrap=True, overflow="ellipsis")
        else:  # said only here: wrapped at word boundaries, never cut
            result = _text(first, "dim" if c.status == PASSED else "")
        table.add_row(*row, points, result)
    return table
