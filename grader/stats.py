"""The class at a glance: per-component means, the distribution of totals, which checks failed how often."""
from __future__ import annotations

import statistics

from .report import FAILED, PASSED, Report


def summarize(reports: dict[str, Report]) -> dict:
    """Per-component means, the distribution of totals, and which checks failed how often."""
    totals = [r.score for r in reports.values()]
    maxima = [r.max_score for r in reports.values()]
    components: dict[str, dict] = {}
    failures: dict[str, dict] = {}
    for report in reports.values():
        for name, (got, top) in report.components().items():
            c = components.setdefault(name, {"component": name, "max_score": top, "scores": []})
            c["max_score"] = max(c["max_score"], top)
            c["scores"].append(got)
        for check in report.checks:
            if check.status == PASSED or not check.counts:
                continue
            f = failures.setdefault(check.id, {"check": check.id, "component": check.component,
                                               "max_points": check.max_points, "hidden": check.hidden,
                                               "failed": 0, "error": 0})
            f["failed" if check.status == FAILED else "error"] += 1
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
    }

