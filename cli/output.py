"""Printing a report for people: what is wrong with the submission as a whole, a table of checks,
then every failed check's message in full.

Reads well on an 80-column terminal and in CI logs: rich drops colour when the output is not
a terminal and honours NO_COLOR; cells wrap at word boundaries; nothing is ever cut. Every
text is passed through `clean_text`, so nothing a student's code printed or raised can move
the cursor or recolour the terminal.
"""
from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from kit.grader.child.wire import clean_text
from kit.grader.report import ERROR, FAILED, PASSED, SKIPPED, UNUSABLE, Report

STYLE = {PASSED: ("✓", "green"), FAILED: ("✗", "red"), ERROR: ("!", "bold red"), SKIPPED: ("–", "dim")}


def _text(text: str, style: str = "") -> Text:
    return Text(clean_text(text), style=style)


def print_report(report: Report, *, submission: Path | None = None, verbose: bool = False,
                 console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    title = report.assignment + (f"  ({graded_path(report, submission)})" if submission else "")
    for problem in report.problems:
        console.print(_text(problem.message, "bold red"), soft_wrap=True)
        console.print()
    unusable = any(p.kind == UNUSABLE for p in report.problems)
    if unusable:  # no check could run: one line instead of a table of the same message
        counted = sum(1 for c in report.checks if c.counts)
        console.print(_text(title, "bold"))
        console.print(_text(f"{counted} checks not run: fix the problem above, then check again", "bold"))
    else:
        console.print(_table(report, title, verbose))
    details = [c for c in report.checks if c.status in (FAILED, ERROR) and c.message and not c.reason]
    for c in details:
        console.print(Text(f"\n{c.id}", style="bold"), Text(f" [{c.status}]", style=STYLE[c.status][1]))
        console.print(_text(c.message), soft_wrap=True)
    if verbose:
        for c in report.checks:
            if c.output and not c.hidden:
                console.print(Text(f"\noutput of {c.id}:", style="bold"))
                console.print(_text(c.output.rstrip()), soft_wrap=True)
    for note in report.notes:
        console.print(_text(f"note: {note.text}", "yellow"))
    style = "bold green" if report.all_passed else "bold"
    console.print(Text(f"\nscore: {report.score:g} / {report.max_score:g}", style=style))


def graded_path(report: Report, submission: Path) -> Path:
    """The file that was graded: the submission's .py file or notebook (or the notebook it named)."""
    return submission / report.graded_file if report.graded_file and submission.is_dir() else submission


def _table(report: Report, title: str, verbose: bool) -> Table:
    table = Table(title=clean_text(title), title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("", width=1, no_wrap=True)
    table.add_column("check", overflow="fold")
    table.add_column("component", overflow="fold")
    table.add_column("points", justify="right", no_wrap=True)
    table.add_column("result", ratio=1, overflow="fold")
    for c in report.checks:
        mark, style = STYLE[c.status]
        first = c.message.splitlines()[0] if c.message else (c.description if verbose else "")
        points = f"{c.points:g}/{c.max_points:g}" if c.counts else ""
        table.add_row(Text(mark, style=style), _text(c.id + (" (hidden)" if c.hidden else "")), _text(c.component),
                      points, _text(first, "dim" if c.status == PASSED else ""))
    return table
