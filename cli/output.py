"""Printing a report for people: a table of checks, then what went wrong and why."""
from __future__ import annotations

from pathlib import Path

from kit.grader.report import ERROR, FAILED, PASSED, SKIPPED, Report
from rich.console import Console
from rich.table import Table
from rich.text import Text

STYLE = {PASSED: ("✓", "green"), FAILED: ("✗", "red"), ERROR: ("!", "bold red"), SKIPPED: ("–", "dim")}


def print_report(report: Report, *, submission: Path | None = None, verbose: bool = False,
                 console: Console | None = None) -> None:
    console = console or Console(highlight=False)
    title = f"{report.assignment}" + (f"  ({submission})" if submission else "")
    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("", width=1, no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("component", no_wrap=True)
    table.add_column("points", justify="right", no_wrap=True)
    table.add_column("result", ratio=1, overflow="fold")
    for c in report.checks:
        mark, style = STYLE[c.status]
        first = c.message.splitlines()[0] if c.message else (c.description if verbose else "")
        points = "" if c.status == SKIPPED else f"{c.points:g}/{c.max_points:g}"
        table.add_row(Text(mark, style=style), c.id + (" (hidden)" if c.hidden else ""), c.component, points,
                      Text(first if len(first) < 90 else first[:87] + "...", style="dim" if c.status == PASSED else ""))
    console.print(table)
    details = [c for c in report.checks if c.status in (FAILED, ERROR) and len(c.message.splitlines()) > 1]
    for c in details:
        console.print(Text(f"\n{c.id}", style="bold"), Text(f" [{c.status}]", style=STYLE[c.status][1]))
        console.print(Text(c.message), soft_wrap=True)
    if verbose:
        for c in report.checks:
            if c.output and not c.hidden:
                console.print(Text(f"\noutput of {c.id}:", style="bold"))
                console.print(Text(c.output.rstrip()), soft_wrap=True)
    for note in report.notes:
        console.print(Text(f"note: {note}", style="yellow"))
    style = "bold green" if report.all_passed else "bold"
    console.print(Text(f"\nscore: {report.score:g} / {report.max_score:g}", style=style))
