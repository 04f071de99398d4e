"""A report as HTML for a notebook's output: the same content as the terminal's (kit.cli.output), as a table.

What is wrong with the submission as a whole, the table of checks (or one line when none could
run), every failed check's message in full, with -v what the code printed, the notes, the score.
Every text is cleaned (`clean_text`) and escaped (Jinja2's autoescape), so nothing a student's code
printed or raised can become markup in the notebook.
"""
from __future__ import annotations

from kit.grader.child.wire import clean_text
from kit.grader.render import environment
from kit.grader.report import ERROR, FAILED, PASSED, SKIPPED, UNUSABLE, Report

MARK = {PASSED: "✓", FAILED: "✗", ERROR: "!", SKIPPED: "–"}


def report_html(report: Report, *, title: str, verbose: bool = False, warnings: tuple[str, ...] = ()) -> str:
    """The report as one HTML fragment (a notebook cell's output), `warnings` shown above it."""
    checks = []
    for c in report.checks:
        first = c.message.splitlines()[0] if c.message else (c.description if verbose else "")
        checks.append({"id": clean_text(c.id), "name": clean_text(c.id + (" (hidden)" if c.hidden else "")),
                       "component": clean_text(c.component), "status": c.status, "mark": MARK[c.status],
                       "points": f"{c.points:g}/{c.max_points:g}" if c.counts else "",
                       "summary": clean_text(first), "message": clean_text(c.message), "output": clean_text(c.output),
                       "reason": c.reason})
    return environment().get_template("report.html.j2").render(
        title=clean_text(title), warnings=[clean_text(w) for w in warnings],
        problems=[clean_text(p.message) for p in report.problems],
        unusable=any(p.kind == UNUSABLE for p in report.problems),
        counted=sum(1 for c in report.checks if c.counts), checks=checks,
        details=[c for c in checks if c["status"] in (FAILED, ERROR) and c["message"] and not c["reason"]],
        outputs=[c for c, r in zip(checks, report.checks) if verbose and r.output and not r.hidden],
        notes=[clean_text(n.text) for n in report.notes], all_passed=report.all_passed,
        score=f"{report.score:g} / {report.max_score:g}")


def error_html(message: str) -> str:
    """A usage or setup error of `%kit check` (what `kit check` prints as "Error: ...")."""
    from markupsafe import escape

    return (f'<pre class="kit-error" style="border-left:4px solid #b3261e;background:#fdf3f2;padding:.5rem;'
            f'white-space:pre-wrap">Error: {escape(clean_text(message))}</pre>')
