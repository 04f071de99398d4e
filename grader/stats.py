"""The class at a glance: per-component means, the distribution of totals, how each check went, and
the failure messages most students got.

Failure messages are grouped by their *pattern*: the message with every number replaced by `#`
and every index or shape by `(…)`, so "mismatched elements: 3 / 12 (25.0%) ... at index (0, 2)"
and "mismatched elements: 5 / 12 (41.7%) ... at index (1, 0, 3)" are one mistake made by two
students. A check that failed because the whole submission was unusable,
or used a forbidden API, is counted by that kind (its `reason`) and said once under `problems`,
not once per check.
"""
from __future__ import annotations

import re
import statistics

from .report import ERROR, FAILED, FORBIDDEN, PASSED, SKIPPED, UNUSABLE, Report

MESSAGES_PER_CHECK = 5  # the most frequent message patterns kept per check; the rest are counted
MESSAGES = 10  # the most frequent message patterns over all checks
# a number standing alone: not the 64 of float64, nor the 2 of x2; hex addresses too
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:0x[0-9a-fA-F]+|(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d+)?)(?![\w])")
_NUMBERS = re.compile(r"([(\[])#(?:, ?#)*,?([)\]])")  # an index or a shape: (#, #), [#, #, #], (#,)


def message_pattern(message: str, student: str = "") -> str:
    """`message` with its numbers replaced by `#`, its indices and shapes by `(…)`, the student's folder by
    `<student>`, and its whitespace tidied: what grouping compares."""
    if student:
        message = message.replace(f"/{student}/", "/<student>/")
    lines = [_NUMBERS.sub(r"\1…\2", _NUMBER.sub("#", line.rstrip())) for line in message.strip().splitlines()]
    return "\n".join(line for line in lines if line.strip())


def _group(messages: dict[str, str]) -> list[dict]:
    """Messages per student, grouped by pattern: most students first, each with one real example."""
    groups: dict[str, dict] = {}
    for student in sorted(messages):
        pattern = message_pattern(messages[student], student)
        g = groups.setdefault(pattern, {"pattern": pattern, "count": 0, "students": [],
                                        "example": messages[student].strip()})
        g["count"] += 1
        g["students"].append(student)
    return sorted(groups.values(), key=lambda g: (-g["count"], g["pattern"]))


def _across_checks(per_check: dict[str, list[dict]]) -> list[dict]:
    """The same patterns over all checks: how many students got each (once however many checks), and where."""
    merged: dict[str, dict] = {}
    for check, groups in per_check.items():
        for g in groups:
            m = merged.setdefault(g["pattern"], {"pattern": g["pattern"], "students": set(), "checks": [],
                                                 "example": g["example"]})
            m["students"].update(g["students"])
            m["checks"].append(check)
    rows = [{**m, "count": len(m["students"]), "students": sorted(m["students"])} for m in merged.values()]
    return sorted(rows, key=lambda m: (-m["count"], -len(m["checks"]), m["pattern"]))[:MESSAGES]


def summarize(reports: dict[str, Report]) -> dict:
    """Per-component means, the distribution of totals, every check's verdicts and most frequent failure
    messages (hidden checks included: this is the instructor's view), and the submissions' problems."""
    totals = [r.score for r in reports.values()]
    maxima = [r.max_score for r in reports.values()]
    components: dict[str, dict] = {}
    failures: dict[str, dict] = {}
    checks: dict[str, dict] = {}
    messages: dict[str, dict[str, str]] = {}  # check -> student -> message
    problems: dict[tuple[str, str], dict[str, str]] = {}  # (kind, component) -> student -> message
    for student, report in sorted(reports.items()):
        for name, (got, top) in report.components().items():
            c = components.setdefault(name, {"component": name, "max_score": top, "scores": []})
            c["max_score"] = max(c["max_score"], top)
            c["scores"].append(got)
        for p in report.problems:
            problems.setdefault((p.kind, p.component or ""), {})[student] = p.message
        for check in report.checks:
            row = checks.setdefault(check.id, {"check": check.id, "component": check.component,
                                               "hidden": check.hidden, "max_points": check.max_points,
                                               PASSED: 0, FAILED: 0, ERROR: 0, SKIPPED: 0, UNUSABLE: 0,
                                               FORBIDDEN: 0})
            row["max_points"] = max(row["max_points"], check.max_points)
            row[check.status] += 1
            if check.status == PASSED or not check.counts:
                continue
            f = failures.setdefault(check.id, {"check": check.id, "component": check.component,
                                               "max_points": check.max_points, "hidden": check.hidden,
                                               "failed": 0, "error": 0})
            f["failed" if check.status == FAILED else "error"] += 1
            if check.reason in (UNUSABLE, FORBIDDEN):
                row[check.reason] += 1  # said once, under problems
            else:
                messages.setdefault(check.id, {})[student] = check.message or f"({check.status}, no message)"
    grouped = {check_id: _group(by_student) for check_id, by_student in messages.items()}
    for check_id, row in checks.items():
        groups = grouped.get(check_id, [])
        row["messages"] = groups[:MESSAGES_PER_CHECK]
        row["other_messages"] = {"patterns": len(groups[MESSAGES_PER_CHECK:]),
                                 "students": sum(g["count"] for g in groups[MESSAGES_PER_CHECK:])}
    comp_rows = []
    for c in components.values():
        scores = c.pop("scores")
        c.update(mean=round(statistics.fmean(scores), 4),
                 full_marks=sum(1 for s in scores if s >= c["max_score"] - 1e-9),
                 zero=sum(1 for s in scores if s <= 1e-9))
        comp_rows.append(c)
    bins = [0] * 11  # [0,10%), ..., [90%,100%), 100%
    for score, top in zip(totals, maxima):
        frac = score / top if top else 0.0
        bins[10 if frac >= 1 - 1e-9 else min(9, int(frac * 10))] += 1
    labels = [f"{10 * i}-{10 * i + 10}%" for i in range(10)] + ["100%"]
    return {
        "submissions": len(reports),
        "max_score": max(maxima) if maxima else 0.0,
        "mean": round(statistics.fmean(totals), 4) if totals else 0.0,
        "median": statistics.median(totals) if totals else 0.0,
        "min": min(totals) if totals else 0.0,
        "max": max(totals) if totals else 0.0,
        "full_marks": sum(1 for r in reports.values() if r.all_passed),
        "components": comp_rows,
        "distribution": [{"range": label, "count": n} for label, n in zip(labels, bins)],
        "failures": sorted(failures.values(), key=lambda f: (-(f["failed"] + f["error"]), f["check"])),
        "checks": list(checks.values()),
        "messages": _across_checks(grouped),
        "problems": [{"kind": kind, "component": component or None, **g}
                     for (kind, component), by_student in sorted(problems.items())
                     for g in _group(by_student)],
    }
