"""Reports in other people's formats: JUnit XML, Gradescope's results.json, GitHub Classroom, CSV.

Everything here is plain data in, text or dicts out (no torch, no pytest, no nbgrader).

Hidden checks never leak through these formats: a hidden check appears with its id,
component, points and verdict only (`CheckResult.redacted`), never with its
message, inputs or what the student's code printed.

`python -m kit.grader.formats {classroom|junit|gradescope|markdown} REPORT.json`
converts a `kit check --json` report; the classroom workflow uses `classroom` (the GitHub
Classroom reporter's payload, base64 JSON) and `markdown` (the job summary).
"""
from __future__ import annotations

import base64
import csv
import io
import json
import re
import sys
import xml.etree.ElementTree as ET

from .report import ERROR, FAILED, PASSED, SKIPPED, CheckResult, Report

# characters XML 1.0 cannot hold (ANSI escapes from a traceback, NULs a student printed...)
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def _clean(text: str) -> str:
    return _XML_ILLEGAL.sub("", _ANSI.sub("", text or ""))


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text and text.strip() else ""


def _visible(report: Report, public: bool) -> list[CheckResult]:
    return [c.redacted() if public else c for c in report.checks]


# -- JUnit XML ---------------------------------------------------------------------------------------

def junit_xml(report: Report, *, public: bool = True) -> str:
    """The report as a JUnit XML document: one testcase per check, classname = component.

    Points go into each testcase's properties and the suite's (`score`, `max_score`), so CI
    dashboards that read JUnit show pass/fail and tools that read properties get the marks.
    Skipped GPU checks are `<skipped>` with the reason. With `public` (the default), hidden
    checks carry their verdict only.
    """
    checks = _visible(report, public)
    count = {s: sum(1 for c in checks if c.status == s) for s in (FAILED, ERROR, SKIPPED)}
    suite = ET.Element("testsuite", {
        "name": f"kit.{report.assignment}", "tests": str(len(checks)), "failures": str(count[FAILED]),
        "errors": str(count[ERROR]), "skipped": str(count[SKIPPED]),
        "time": f"{sum(c.duration for c in checks):.3f}"})
    props = ET.SubElement(suite, "properties")
    for name, value in (("assignment", report.assignment), ("score", f"{report.score:g}"),
                        ("max_score", f"{report.max_score:g}")):
        ET.SubElement(props, "property", {"name": name, "value": value})
    for note in report.notes:
        ET.SubElement(props, "property", {"name": "note", "value": _clean(note.text)})
    for c in checks:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"{report.assignment}.{c.component}", "name": c.id + (" (hidden)" if c.hidden else ""),
            "time": f"{c.duration:.3f}"})
        cprops = ET.SubElement(case, "properties")
        for name, value in (("points", f"{c.points:g}"), ("max_points", f"{c.max_points:g}"),
                            ("hidden", str(c.hidden).lower()), ("description", _clean(c.description))):
            ET.SubElement(cprops, "property", {"name": name, "value": value})
        message = _clean(c.message)
        if c.status == FAILED:
            failure = ET.SubElement(case, "failure",
                                    {"message": _first_line(message) or "failed", "type": "CheckFailed"})
            failure.text = message
        elif c.status == ERROR:
            error = ET.SubElement(case, "error", {"message": _first_line(message) or "error", "type": "CheckError"})
            error.text = message
        elif c.status == SKIPPED:
            ET.SubElement(case, "skipped", {"message": _first_line(message) or "skipped"})
        if c.output and not c.hidden:
            ET.SubElement(case, "system-out").text = _clean(c.output)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"


# -- Gradescope -------------------------------------------------------------------------------------

def gradescope_results(report: Report, *, execution_time: float | None = None,
                       hidden_visibility: str = "after_published") -> dict:
    """Gradescope's `results.json` for one submission.

    Each check is a test with its points; hidden checks get `visibility: hidden_visibility`
    ("after_published" by default) and only their verdict as output. A check that could not
    run (no CUDA device) is listed with 0/0 points and says so, so the total stays that of the
    checks that ran (`Report.max_score`), as everywhere else in kit.
    """
    tests = []
    for number, check in enumerate(report.checks, start=1):
        c = check.redacted()
        if not c.counts:  # no status: neither passed nor failed
            score, top, status = 0.0, 0.0, None
            output = c.message or "not run"
        else:
            score, top = c.points, c.max_points
            status = "passed" if c.status == PASSED else "failed"
            output = c.message if c.status != PASSED else (c.description or "")
            if c.output and not c.hidden:
                output += f"\n\nYour code printed:\n{c.output}"
        tests.append({
            "name": f"{c.component}: {c.id}" + (" (hidden)" if c.hidden else ""),
            "number": str(number),
            "score": round(score, 6),
            "max_score": round(top, 6),
            "status": status,
            "output": _ANSI.sub("", output).strip(),
            "output_format": "text",
            "tags": [c.component] + (["hidden"] if c.hidden else []) + (["gpu"] if c.gpu else []),
            "visibility": hidden_visibility if c.hidden else "visible",
        })
        if status is None:
            del tests[-1]["status"]
    out = {
        "score": report.score,
        "output": f"{report.assignment}: {report.score:g} / {report.max_score:g}"
                  + "".join(f"\n{p.message}" for p in report.problems)
                  + "".join(f"\nnote: {n.text}" for n in report.notes),
        "output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "tests": tests,
    }
    if execution_time is not None:
        out["execution_time"] = round(execution_time, 3)
    return out


# -- GitHub Classroom -----------------------------------------------------------------------------

MESSAGE_LIMIT = 4000  # per check, in the classroom payload (it travels through a step output)


def classroom_results(report: Report) -> dict:
    """The payload GitHub Classroom's autograding reporter reads (`<RUNNER>_RESULTS`, base64 of this JSON)."""
    tests = []
    for check in report.checks:
        c = check.redacted()
        if not c.counts:
            continue
        tests.append({
            "name": f"{c.component}: {c.id}",
            "status": "pass" if c.status == PASSED else ("fail" if c.status == FAILED else "error"),
            "score": c.points,
            "message": _ANSI.sub("", c.message)[:MESSAGE_LIMIT],
            "line_no": 0,
            "execution_time": f"{c.duration:.3f}s",
        })
    status = "pass" if report.all_passed else ("error" if any(c.status == ERROR for c in report.checks) else "fail")
    return {"version": 1, "status": status, "max_score": report.max_score, "tests": tests}


def classroom_payload(report: Report) -> str:
    return base64.b64encode(json.dumps(classroom_results(report)).encode()).decode()


# -- CSV -------------------------------------------------------------------------------------------------

# nbgrader export's columns, in its order, then kit's: why the late penalty is what it is
NBGRADER_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                    "raw_score", "late_submission_penalty", "score", "max_score"]
CSV_COLUMNS = [*NBGRADER_COLUMNS, "late"]


def scores_csv(rows: list[dict], *, components: bool = False) -> str:
    """One line per student and assignment (nbgrader export's columns, and `late`: why the penalty is what it
    is); optionally one column per component."""
    names: list[str] = []
    if components:
        for row in rows:
            for name in row.get("components", {}):
                key = f"{row['assignment']}:{name}"
                if key not in names:
                    names.append(key)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS + names)
    for row in rows:
        extra = [_num(row.get("components", {}).get(k.split(":", 1)[1])) if k.startswith(row["assignment"] + ":")
                 else "" for k in names]
        writer.writerow([_cell(row.get(c, "")) for c in CSV_COLUMNS] + extra)
    return out.getvalue()


def scores_wide_csv(rows: list[dict]) -> str:
    """One line per student: a column per assignment, and the total."""
    assignments = list(dict.fromkeys(r["assignment"] for r in rows))
    students: dict[str, dict] = {}
    for r in rows:
        s = students.setdefault(r["student_id"], {"student_id": r["student_id"], "last_name": r["last_name"],
                                                  "first_name": r["first_name"], "email": r["email"]})
        s[r["assignment"]] = r["score"]
    maxima = {r["assignment"]: r["max_score"] for r in rows}
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["student_id", "last_name", "first_name", "email", *assignments, "total", "max_total"])
    for s in students.values():
        scores = [s.get(a, 0.0) for a in assignments]
        writer.writerow([_cell(s[k]) for k in ("student_id", "last_name", "first_name", "email")]
                        + [_num(x) for x in scores] + [_num(sum(scores)), _num(sum(maxima.values()))])
    return out.getvalue()


def _num(x) -> str:
    return "" if x is None else f"{float(x):g}"


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    text = "" if value is None else str(value)
    # a spreadsheet would run a cell that starts like a formula: student names are untrusted
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[0] not in ("classroom", "junit", "gradescope", "markdown"):
        print("usage: python -m kit.grader.formats {classroom|junit|gradescope|markdown} REPORT.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        report = Report.from_json(json.load(f))
    if argv[0] == "classroom":
        print(classroom_payload(report))
    elif argv[0] == "junit":
        sys.stdout.write(junit_xml(report))
    elif argv[0] == "gradescope":
        print(json.dumps(gradescope_results(report), indent=2))
    else:  # the student's feedback page, e.g. for a CI job summary
        from .feedback import render_markdown

        sys.stdout.write(render_markdown(report, "you"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
