"""A report as HTML for a notebook's output: the same content as the terminal's (kit.cli.output), as a table.

What is wrong with the submission as a whole, the table of checks (or one line when none could
run), every failed check's message in full, with -v what the code printed, the notes, the score.
Every text is cleaned (`clean_text`) and escaped (Jinja2's autoescape), so nothing a student's code
printed or raised can become markup in the notebook.
"""
from __future__ import annotations

import functools

from kit.grader.child.wire import clean_text
from kit.grader.report import ERROR, FAILED, PASSED, SKIPPED, UNUSABLE, Report

MARK = {PASSED: "✓", FAILED: "✗", ERROR: "!", SKIPPED: "–"}

TEMPLATE = """\
<div class="kit-report">
<style>
.kit-report{font-family:system-ui,-apple-system,Segoe UI,sans-serif;line-height:1.4}
.kit-report table{border-collapse:collapse;margin:.4rem 0}
.kit-report th,.kit-report td{padding:.15rem .5rem;text-align:left;vertical-align:top;border-top:1px solid #ddd}
.kit-report .points{text-align:right}.kit-report tr.passed td.summary{color:#666}
.kit-report .passed .mark,.kit-report span.passed{color:#137333}.kit-report .skipped .mark{color:#777}
.kit-report .failed .mark,.kit-report .error .mark,.kit-report span.failed,.kit-report span.error{color:#b3261e}
.kit-report pre{background:#f6f8fa;padding:.5rem;white-space:pre-wrap;margin:0}
.kit-report pre.kit-problem{border-left:4px solid #b3261e;background:#fdf3f2;margin:.3rem 0}
.kit-report .kit-warning{background:#fff8e1;border-left:4px solid #f9a825;padding:.3rem .6rem;margin:.3rem 0}
.kit-report .kit-note{color:#8a6d00;margin:.2rem 0}.kit-report .kit-title,.kit-report .kit-score{font-weight:600}
.kit-report .kit-score{font-size:1.1rem}.kit-report .kit-score.all-passed{color:#137333}
</style>
<p class="kit-title">{{ title }}</p>
{% for warning in warnings %}
<p class="kit-warning">warning: {{ warning }}</p>
{% endfor %}
{% for problem in problems %}
<pre class="kit-problem">{{ problem }}</pre>
{% endfor %}
{% if unusable %}
<p class="kit-title">{{ counted }} checks not run: fix the problem above, then check again</p>
{% else %}
<table class="kit-checks">
<tr><th></th><th>check</th><th>component</th><th class="points">points</th><th>result</th></tr>
{% for c in checks %}
<tr class="{{ c.status }}"><td class="mark">{{ c.mark }}</td><td><code>{{ c.name }}</code></td>\
<td>{{ c.component }}</td><td class="points">{{ c.points }}</td><td class="summary">{{ c.summary }}</td></tr>
{% endfor %}
</table>
{% endif %}
{% for c in details %}
<p><code>{{ c.id }}</code> <span class="{{ c.status }}">[{{ c.status }}]</span></p>
<pre class="kit-message">{{ c.message }}</pre>
{% endfor %}
{% for c in outputs %}
<p>output of <code>{{ c.id }}</code>:</p>
<pre class="kit-output">{{ c.output }}</pre>
{% endfor %}
{% for note in notes %}
<p class="kit-note">note: {{ note }}</p>
{% endfor %}
<p class="kit-score{{ ' all-passed' if all_passed else '' }}">score: {{ score }}</p>
</div>
"""


@functools.cache
def _template():
    from jinja2 import Environment, StrictUndefined

    return Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True,
                       lstrip_blocks=True).from_string(TEMPLATE)


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
    return _template().render(
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
