"""Per-student feedback from a graded report: Markdown and a standalone HTML page.

Both are rendered from templates (kit.grader.render) over one view of the report: its
redacted form (`Report.redacted`), so hidden checks show their name, component, points and
verdict only.
"""
from __future__ import annotations

from pathlib import Path

from .late import NO_DUE, Lateness
from .render import environment
from .report import ERROR, FAILED, PASSED, SANDBOX, SKIPPED, Report

MARK = {PASSED: "✓", FAILED: "✗", ERROR: "!", SKIPPED: "–"}
WORD = {PASSED: "passed", FAILED: "failed", ERROR: "error", SKIPPED: "not run"}
def view(report: Report, student: str, *, title: str = "", final_score: tuple[float, float] | None = None,
         timestamp: str | None = None, late: Lateness | None = None, penalty: float = 0.0) -> dict:
    """What a student's feedback shows, whatever its format.

    `final_score` is the gradebook's (score, max) before any late penalty, when it differs from the report's
    (a manual grade); `late` and `penalty` say how late the submission was and the points that cost.
    """
    public = report.redacted()
    checks = [{"id": c.id, "name": c.id + (" (hidden)" if c.hidden else ""), "component": c.component,
               "status": c.status, "mark": MARK[c.status], "word": WORD[c.status],
               "points": f"{c.points:g} / {c.max_points:g}" if c.counts else "",
               "summary": _summary(c), "description": c.description, "message": c.message.rstrip(),
               "output": c.output.rstrip(), "hidden": c.hidden} for c in public.checks]
    hidden = [c for c in public.checks if c.hidden]
    changed = final_score is not None and abs(final_score[0] - report.score) > 1e-9
    raw, top = final_score if final_score is not None else (report.score, report.max_score)
    return {
        "heading": report.assignment + (f": {title}" if title else ""),
        "student": student, "timestamp": timestamp,
        "score": f"{report.score:g} / {report.max_score:g}",
        "final": f"{final_score[0]:g} / {final_score[1]:g}" if changed else None,
        "components": [{"name": name, "score": f"{got:g} / {top:g}"}
                       for name, (got, top) in report.components().items()],
        "problems": [p.message for p in public.problems],
        "checks": checks,
        "details": [c for c in checks if not c["hidden"] and c["status"] in (FAILED, ERROR) and c["message"]],
        "hidden": {"passed": sum(1 for c in hidden if c.status == PASSED), "total": len(hidden)} if hidden else None,
        "notes": [n.text for n in report.notes if n.kind != SANDBOX],
        "late": None if late is None or late.kind == NO_DUE else {
            "reason": late.describe(), "flagged": late.flagged,
            "penalty": f"{penalty:g}" if penalty else "", "raw": f"{raw:g} / {top:g}",
            "final": f"{max(0.0, raw - penalty):g} / {top:g}"},
    }


def _summary(c) -> str:
    """One line about a check: its message's first line, or its description; a hidden check's verdict only."""
    if c.hidden:
        return "" if c.status in (PASSED, SKIPPED) else "hidden check failed"
    return c.message.strip().splitlines()[0] if c.message.strip() else (c.description or "")


def render_markdown(report: Report, student: str, **kwargs) -> str:
    """Feedback as Markdown. `final_score` is the gradebook's (manual changes included) if it differs."""
    return environment(html=False).get_template("feedback.md.j2").render(view(report, student, **kwargs))


def render_html(report: Report, student: str, **kwargs) -> str:
    """The same feedback as one self-contained HTML page."""
    return environment().get_template("feedback.html.j2").render(view(report, student, **kwargs))


def write_feedback(report: Report, student: str, folder: Path, **kwargs) -> list[Path]:
    """`feedback.md` and `feedback.html` in `folder` (nbgrader's `feedback/<student>/<assignment>/`)."""
    folder.mkdir(parents=True, exist_ok=True)
    md, page = folder / "feedback.md", folder / "feedback.html"
    md.write_text(render_markdown(report, student, **kwargs), encoding="utf-8")
    page.write_text(render_html(report, student, **kwargs), encoding="utf-8")
    return [md, page]
