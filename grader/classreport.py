"""The class report (`kit report hwN --html FILE`): one self-contained page of how a graded class did.

Made from the gradebook alone (the stored reports, nbgrader's scores, kit's notes on each grading
attempt): no student code runs. It is the instructor's page, so hidden checks are shown in full.
The numbers come from `stats.summarize`, the same as `kit grade`'s summary; the plots are
matplotlib figures inlined as SVG (matplotlib is imported here only, with the Agg backend, and
only when a page is made); the page is rendered by Jinja2 with autoescape. Its
Content-Security-Policy lets it load nothing (its one script is allowed by hash), so it works
offline, from a file, and a page that tried to fetch something would be stopped by the browser.
"""
from __future__ import annotations

import base64
import hashlib
import io
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from .gradebook import Attempt
from .render import environment
from .report import ERROR, FAILED, PASSED, SKIPPED, Report
from .stats import summarize

SLOWEST = 10  # submissions listed under "slowest"
COLORS = {PASSED: "#2e7d32", FAILED: "#c62828", ERROR: "#ef6c00", SKIPPED: "#b0b0b0"}
WORDS = {PASSED: "passed", FAILED: "failed", ERROR: "error", SKIPPED: "not run"}
ACCENT, FULL = "#3949ab", "#2e7d32"


@dataclass
class GradedClass:
    """Everything the gradebook holds about one assignment's grading, as the report needs it."""

    assignment: str
    title: str
    course: str
    gradebook: str
    reports: dict[str, Report]
    final: dict[str, tuple[float, float]]  # nbgrader's score and max per student (manual grades included)
    submitted: dict[str, datetime | None]
    attempts: dict[str, Attempt]


def load(book, assignment: str, *, title: str = "", course: str = "") -> GradedClass:
    """Read a graded assignment from `book` (a kit.grader.gradebook.Gradebook)."""
    stored = book.stored(assignment)
    scores = book.scores(assignment)
    return GradedClass(
        assignment=assignment, title=title, course=course, gradebook=book.url,
        reports={s: Report.from_json(r.report) for s, r in stored.items()},
        final={s: scores[s][:2] for s in stored if s in scores},
        submitted={s: scores[s][2] for s in stored if s in scores},
        attempts=book.attempts(assignment))


def feedback_link(feedback_dir: Path, report_file: Path, assignment: str):
    """student -> the URL of their feedback page (kit feedback's layout), relative to the report."""
    base = report_file.resolve().parent

    def href(student: str) -> str:
        rel = os.path.relpath(feedback_dir.resolve() / student / assignment / "feedback.html", base)
        return quote(Path(rel).as_posix())

    return href


# -- what the page shows -----------------------------------------------------------------------------

def view(data: GradedClass, *, feedback_href, feedback_missing: str | None = None, command: str = "") -> dict:
    """Everything the template shows, as plain values (the template only lays them out)."""
    summary = summarize(data.reports)
    checks = sorted(summary["checks"], key=_struggle)
    students = _students(data, feedback_href)
    components = [c["component"] for c in summary["components"]]
    not_graded = [_not_graded(name, a, data.reports.get(name))
                  for name, a in sorted(data.attempts.items()) if a.error is not None]
    n = summary["submissions"]
    return {
        "assignment": data.assignment,
        "heading": data.assignment + (f": {data.title}" if data.title else ""),
        "course": data.course,
        "gradebook": data.gradebook,
        "made": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "summary": summary,
        "figures": [
            ("submissions graded", str(n)),
            ("mean", f"{summary['mean']:.2f} / {summary['max_score']:g}"),
            ("median", f"{summary['median']:g}"),
            ("range", f"{summary['min']:g} – {summary['max']:g}"),
            ("full marks", f"{summary['full_marks']} ({_percent(summary['full_marks'], n)})"),
            ("not graded", str(len(not_graded))),
        ],
        "charts": charts(summary, checks) if n else {},
        "checks": [_check_view(c, n, feedback_href) for c in checks],
        "messages": [{**m, "students": [(s, feedback_href(s)) for s in m["students"]]} for m in summary["messages"]],
        "problems": [{**p, "students": [(s, feedback_href(s)) for s in p["students"]]} for p in summary["problems"]],
        "components": components,
        "students": students,
        "show_final": any(s["final"] is not None for s in students),
        "slowest": sorted((s for s in students if s["seconds"] is not None),
                          key=lambda s: -s["seconds"])[:SLOWEST],
        "times_known": any(s["seconds"] is not None for s in students),
        "not_graded": not_graded,
        "feedback_missing": feedback_missing,
    }


def _not_graded(name: str, attempt: Attempt, earlier: Report | None) -> dict:
    error = attempt.error or ""
    return {"name": name, "error": error, "headline": error.strip().splitlines()[0] if error.strip() else "",
            "at": _when(attempt.at), "graded_before": f"{earlier.score:g} / {earlier.max_score:g}" if earlier else None}


def _struggle(check: dict) -> tuple:
    """Checks most students did not pass first; checks that did not run here last."""
    ran = check[PASSED] + check[FAILED] + check[ERROR]
    return (ran == 0, check[PASSED] / ran if ran else 1.0, check["check"])


def _when(iso: str) -> str:
    """A stored UTC time, as people read it."""
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    except ValueError:
        return iso


def _percent(k: int, n: int) -> str:
    return f"{100 * k / n:.0f}%" if n else "–"


def _check_view(c: dict, n: int, href) -> dict:
    not_passed = c[FAILED] + c[ERROR]
    problems = [(count, word) for count, word in ((c["unusable"], "could not be used at all"),
                                                  (c["forbidden"], "used a forbidden API")) if count]
    return {**c, "not_passed": not_passed, "rate": _percent(not_passed, n),
            "messages": [{**m, "students": [(s, href(s)) for s in m["students"]]} for m in c["messages"]],
            "problems": problems}


def _students(data: GradedClass, href) -> list[dict]:
    rows = []
    for student, report in sorted(data.reports.items()):
        counts = {status: sum(1 for c in report.checks if c.status == status) for status in (PASSED, FAILED, ERROR)}
        final = data.final.get(student)
        changed = final is not None and abs(final[0] - report.score) > 1e-9
        attempt = data.attempts.get(student)
        slow = max(report.checks, key=lambda c: c.duration, default=None)
        stamp = data.submitted.get(student)
        rows.append({
            "student": student, "href": href(student),
            "score": report.score, "max_score": report.max_score,
            "final": final[0] if changed else None,
            "components": {name: got for name, (got, _) in report.components().items()},
            "counts": counts,
            "submitted": stamp.strftime("%Y-%m-%d %H:%M") if stamp else "",
            "seconds": attempt.seconds if attempt and attempt.error is None else None,
            "node": attempt.node if attempt else "",
            "check_seconds": round(sum(c.duration for c in report.checks), 2),
            "slowest_check": (slow.id, slow.duration) if slow and slow.duration else None,
            "problem": report.problems[0].message.strip().splitlines()[0] if report.problems else "",
        })
    return rows


# -- plots -------------------------------------------------------------------------------------------

def charts(summary: dict, checks: list[dict]) -> dict[str, str]:
    """The page's plots, each an inline <svg> element."""
    import matplotlib

    matplotlib.use("Agg")  # never a window, whatever the environment asks for
    style = {"svg.fonttype": "none", "svg.hashsalt": "kit", "text.parse_math": False, "font.size": 9,
             "font.family": "DejaVu Sans", "axes.spines.top": False, "axes.spines.right": False,
             "axes.edgecolor": "#888888", "xtick.color": "#444444", "ytick.color": "#444444"}
    with matplotlib.rc_context(style):
        return {"totals": _histogram(summary), "components": _components(summary), "checks": _checks(checks)}


def _histogram(summary: dict) -> str:
    from matplotlib.figure import Figure

    bins = summary["distribution"]
    fig = Figure(figsize=(5.2, 2.7))
    ax = fig.add_subplot()
    counts = [b["count"] for b in bins]
    bars = ax.bar(range(len(bins)), counts, color=[ACCENT] * (len(bins) - 1) + [FULL], width=0.8)
    ax.bar_label(bars, labels=[str(c) if c else "" for c in counts], padding=2)
    ax.set_xticks(range(len(bins)), [b["range"].replace("-", "–") for b in bins], rotation=35, ha="right")
    ax.set_ylabel("students")
    ax.set_xlabel(f"total, as a share of {summary['max_score']:g} points")
    ax.set_ylim(0, max(counts + [1]) * 1.18)
    ax.yaxis.get_major_locator().set_params(integer=True)
    return _svg(fig, "totals", "Distribution of totals")


def _components(summary: dict) -> str:
    from matplotlib.figure import Figure

    rows = summary["components"]
    fig = Figure(figsize=(5.2, 0.9 + 0.42 * len(rows)))
    ax = fig.add_subplot()
    names = [c["component"] for c in rows][::-1]
    shares = [100 * c["mean"] / c["max_score"] if c["max_score"] else 0.0 for c in rows][::-1]
    ax.barh(names, [100] * len(rows), color="#e8eaf6", height=0.6)
    bars = ax.barh(names, shares, color=ACCENT, height=0.6)
    ax.bar_label(bars, labels=[f"{c['mean']:.2f} / {c['max_score']:g}" for c in rows][::-1], padding=4)
    ax.set_xlim(0, 118)
    ax.set_xticks([0, 25, 50, 75, 100], ["0", "25%", "50%", "75%", "100%"])
    ax.set_xlabel("mean score, as a share of the component's points")
    return _svg(fig, "components", "Mean score per component")


def _checks(checks: list[dict]) -> str:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10.0, 0.8 + 0.24 * len(checks)))
    ax = fig.add_subplot()
    rows = checks[::-1]  # barh draws bottom-up: the first check on top
    labels = [c["check"] + ("  (hidden)" if c["hidden"] else "") for c in rows]
    left = [0.0] * len(rows)
    for status in (PASSED, FAILED, ERROR, SKIPPED):
        counts = [c[status] for c in rows]
        ax.barh(labels, counts, left=left, color=COLORS[status], height=0.72, label=WORDS[status])
        left = [a + b for a, b in zip(left, counts)]
    total = max(left + [1])
    for y, c in enumerate(rows):
        ran = c[PASSED] + c[FAILED] + c[ERROR]
        ax.text(total * 1.01, y, f"{c[PASSED]}/{ran} passed" if ran else "not run here", va="center",
                fontsize=8, color="#555555")
    for label in ax.get_yticklabels():
        if label.get_text().endswith("(hidden)"):
            label.set_color("#6a1b9a")
    ax.set_xlabel("submissions")
    ax.set_xlim(0, total * 1.13)  # room for the labels on the right
    ax.set_xticks([t for t in MaxNLocator(integer=True).tick_values(0, total) if 0 <= t <= total])
    ax.spines.bottom.set_bounds(0, total)
    ax.margins(y=0.01)
    ax.legend(ncols=4, loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False, fontsize=8)
    return _svg(fig, "checks", "Verdicts per check")


def _svg(fig, name: str, title: str) -> str:
    """`fig` as an <svg> element fit for inlining: no XML prologue, no metadata, no namespace URLs,
    ids prefixed with `name` (several plots share one document), a title for screen readers."""
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    svg = out.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.S)
    svg = re.sub(r'\s+xmlns(?::\w+)?="[^"]*"', "", svg)
    svg = re.sub(r'\s(width|height)="[\d.]+pt"', "", svg, count=2)
    svg = re.sub(r'\bid="([^"]+)"', rf'id="{name}-\1"', svg)
    svg = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", svg)
    svg = re.sub(r'href="#([^"]+)"', rf'href="#{name}-\1"', svg)
    return svg.replace("<svg", f'<svg class="chart" id="chart-{name}" role="img" aria-label="{title}"', 1)


# -- the page ----------------------------------------------------------------------------------------

def _script() -> tuple[str, str]:
    """The page's one script (sorting the student table) and its CSP hash."""
    source = environment().loader.get_source(environment(), "classreport.js")[0]
    digest = base64.b64encode(hashlib.sha256(source.encode()).digest()).decode()
    return source, f"'sha256-{digest}'"


def render(data: GradedClass, **kwargs) -> str:
    """The class report as one self-contained HTML page (see `view` for the keyword arguments)."""
    script, script_hash = _script()
    return environment().get_template("classreport.html.j2").render(
        view(data, **kwargs), script=script, script_hash=script_hash)


def write_report(data: GradedClass, out: Path, *, feedback_dir: Path, command: str = "") -> Path:
    """Write the page to `out`, linking each student to their page under `feedback_dir` (kit feedback's)."""
    missing = None
    if not any((feedback_dir / s / data.assignment / "feedback.html").is_file() for s in data.reports):
        missing = str(feedback_dir)
    page = render(data, feedback_href=feedback_link(feedback_dir, out, data.assignment),
                  feedback_missing=missing, command=command)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    return out
