"""Per-student feedback from a graded report: Markdown and a standalone HTML page.

Public checks are shown in full (what differed, where, by how much, the likely cause,
and what the student's own code printed). Hidden checks are summarised: name,
component, points and verdict, never their message, inputs or output
(`CheckResult.public_view`).
"""
from __future__ import annotations

import html
from pathlib import Path

from .report import ERROR, FAILED, PASSED, SKIPPED, Report

MARK = {PASSED: "✓", FAILED: "✗", ERROR: "!", SKIPPED: "–"}
WORD = {PASSED: "passed", FAILED: "failed", ERROR: "error", SKIPPED: "not run"}


def _points(c) -> str:
    return "" if c.status == SKIPPED else f"{c.points:g} / {c.max_points:g}"


def _summary(c) -> str:
    """One line about a check: its message's first line, or its description; a hidden check's verdict only."""
    if c.hidden:
        return "" if c.status in (PASSED, SKIPPED) else "hidden check failed"
    return c.message.strip().splitlines()[0] if c.message.strip() else (c.description or "")


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def _fence(text: str) -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}text\n{text.rstrip()}\n{fence}"


def render_markdown(report: Report, student: str, *, title: str = "", final_score: tuple[float, float] | None = None,
                    timestamp: str | None = None) -> str:
    """Feedback as Markdown. `final_score` is the gradebook's (manual changes included) if it differs."""
    checks = [c.public_view() for c in report.checks]
    lines = [f"# {report.assignment}" + (f": {title}" if title else ""), "",
             f"Student: `{student}`" + (f"  \nSubmitted: {timestamp}" if timestamp else ""), ""]
    lines.append(f"**Score: {report.score:g} / {report.max_score:g}**")
    if final_score and abs(final_score[0] - report.score) > 1e-9:
        lines.append(f"\n**Final score, after your instructor's review: {final_score[0]:g} / {final_score[1]:g}**")
    lines += ["", "| component | score |", "|---|---|"]
    for component, (got, top) in report.components().items():
        lines.append(f"| {_md_cell(component)} | {got:g} / {top:g} |")
    lines += ["", "## Checks", "", "| | check | component | points | result |", "|---|---|---|---|---|"]
    for c in checks:
        first = _summary(c)
        name = c.id + (" (hidden)" if c.hidden else "")
        lines.append(f"| {MARK[c.status]} | `{_md_cell(name)}` | {_md_cell(c.component)} | {_points(c)} | "
                     f"{_md_cell(first)[:200]} |")
    details = [c for c in checks if not c.hidden and c.status in (FAILED, ERROR) and c.message.strip()]
    if details:
        lines += ["", "## What went wrong"]
        for c in details:
            lines += ["", f"### `{c.id}` ({WORD[c.status]}, {_points(c)})", ""]
            if c.description:
                lines += [c.description, ""]
            lines.append(_fence(c.message))
            if c.output.strip():
                lines += ["", "Your code printed:", "", _fence(c.output)]
    hidden = [c for c in checks if c.hidden]
    if hidden:
        passed = sum(1 for c in hidden if c.status == PASSED)
        lines += ["", "## Hidden checks", "",
                  f"{passed} of {len(hidden)} hidden checks passed. Their inputs are not shown: they test the "
                  "same contract as the public checks, on cases you were not given."]
    notes = [n for n in report.notes if not n.startswith("no sandbox")]
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ddd;padding:.3rem .6rem;text-align:left;vertical-align:top}
th{background:#f4f4f4}.passed{color:#137333}.failed,.error{color:#b3261e}.skipped{color:#777}
pre{background:#f6f8fa;padding:.8rem;overflow-x:auto;white-space:pre-wrap}.score{font-size:1.3rem;font-weight:600}
"""


def render_html(report: Report, student: str, *, title: str = "", final_score: tuple[float, float] | None = None,
                timestamp: str | None = None) -> str:
    """The same feedback as one self-contained HTML page (everything escaped: messages hold student text)."""
    e = html.escape
    checks = [c.public_view() for c in report.checks]
    head = f"{report.assignment}" + (f": {title}" if title else "")
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{e(head)} — {e(student)}</title><style>{CSS}</style></head><body>",
           f"<h1>{e(head)}</h1>", f"<p>Student: <code>{e(student)}</code>"
           + (f"<br>Submitted: {e(timestamp)}" if timestamp else "") + "</p>",
           f'<p class="score">Score: {report.score:g} / {report.max_score:g}</p>']
    if final_score and abs(final_score[0] - report.score) > 1e-9:
        out.append(f'<p class="score">Final score, after your instructor\'s review: '
                   f"{final_score[0]:g} / {final_score[1]:g}</p>")
    out.append("<table><tr><th>component</th><th>score</th></tr>")
    for component, (got, top) in report.components().items():
        out.append(f"<tr><td>{e(component)}</td><td>{got:g} / {top:g}</td></tr>")
    out.append("</table><h2>Checks</h2><table><tr><th></th><th>check</th><th>component</th><th>points</th>"
               "<th>result</th></tr>")
    for c in checks:
        first = _summary(c)
        name = c.id + (" (hidden)" if c.hidden else "")
        out.append(f'<tr class="{c.status}"><td>{MARK[c.status]}</td><td><code>{e(name)}</code></td>'
                   f"<td>{e(c.component)}</td><td>{_points(c)}</td><td>{e(first)}</td></tr>")
    out.append("</table>")
    details = [c for c in checks if not c.hidden and c.status in (FAILED, ERROR) and c.message.strip()]
    if details:
        out.append("<h2>What went wrong</h2>")
        for c in details:
            out.append(f'<h3><code>{e(c.id)}</code> <span class="{c.status}">({WORD[c.status]}, {_points(c)})</span></h3>')
            if c.description:
                out.append(f"<p>{e(c.description)}</p>")
            out.append(f"<pre>{e(c.message.rstrip())}</pre>")
            if c.output.strip():
                out.append(f"<p>Your code printed:</p><pre>{e(c.output.rstrip())}</pre>")
    hidden = [c for c in checks if c.hidden]
    if hidden:
        passed = sum(1 for c in hidden if c.status == PASSED)
        out.append(f"<h2>Hidden checks</h2><p>{passed} of {len(hidden)} hidden checks passed. Their inputs are not "
                   "shown: they test the same contract as the public checks, on cases you were not given.</p>")
    notes = [n for n in report.notes if not n.startswith("no sandbox")]
    if notes:
        out.append("<h2>Notes</h2><ul>" + "".join(f"<li>{e(n)}</li>" for n in notes) + "</ul>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def write_feedback(report: Report, student: str, folder: Path, **kwargs) -> list[Path]:
    """`feedback.md` and `feedback.html` in `folder` (nbgrader's `feedback/<student>/<assignment>/`)."""
    folder.mkdir(parents=True, exist_ok=True)
    md, page = folder / "feedback.md", folder / "feedback.html"
    md.write_text(render_markdown(report, student, **kwargs))
    page.write_text(render_html(report, student, **kwargs))
    return [md, page]
