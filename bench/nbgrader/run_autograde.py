"""Time `nbgrader autograde hw2` on a course made by make_class.py and read back the scores.

    /work/venv/bin/python bench/nbgrader/run_autograde.py COURSE [--json OUT] [--log LOG]

runs ``python -m nbgrader autograde hw2 --force`` (every submitted student, serially: one Jupyter
kernel per notebook) with COURSE as working directory, measures its wall clock, then reads each
student's total and per-cell scores from the gradebook with ``nbgrader.api.Gradebook``.
It prints one line per student (variant from ``students.json``), a summary per variant and the
timing; ``--json`` writes everything as one document (see ``autograde()``).

Run it with the venv's interpreter: the kernel nbgrader starts is the ``python3`` kernelspec,
whose ``python`` argv jupyter_client replaces with the interpreter running nbgrader.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ASSIGNMENT = "hw2"
COURSE_ID = "kit-bench"


def read_gradebook(course: Path, assignment: str = ASSIGNMENT) -> dict[str, dict]:
    """student id → {score, max_score, cells: {grade_id: [score, max]}, failing: [grade_id]}."""
    from nbgrader.api import Gradebook, MissingEntry

    results: dict[str, dict] = {}
    with Gradebook(f"sqlite:///{Path(course).resolve() / 'gradebook.db'}",
                   course_id=COURSE_ID) as gb:
        for student in sorted(s.id for s in gb.students):
            try:
                sub = gb.find_submission(assignment, student)
            except MissingEntry:
                results[student] = {"score": None, "max_score": None, "cells": {},
                                    "failing": [], "graded": False}
                continue
            cells = {g.name: [g.score, g.max_score] for nb in sub.notebooks for g in nb.grades}
            results[student] = {
                "score": sub.score, "max_score": sub.max_score,
                "cells": dict(sorted(cells.items())),
                "failing": sorted(n for n, (s, m) in cells.items() if s < m),
                "graded": True,
            }
    return results


def autograde(course: Path, assignment: str = ASSIGNMENT, log: Path | None = None) -> dict:
    """Run nbgrader autograde on every submission of `course`; return timing and scores.

    Returns {"assignment", "n", "wall_s", "per_submission_s", "returncode", "students":
    {id: {...read_gradebook fields, "variant"}}}. `wall_s` covers the whole nbgrader process
    (its ~3 s import/startup included), not the gradebook read-back.
    """
    course = Path(course).resolve()
    n = len([p for p in (course / "submitted").iterdir() if (p / assignment).is_dir()])
    env = dict(os.environ)  # a venv that is not activated: keep its bin/ first (alembic, jupyter)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "autograde", assignment, "--force"],
                          cwd=course, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if log is not None:
        Path(log).write_text(proc.stdout + proc.stderr)
    students = read_gradebook(course, assignment)
    manifest_file = course / "students.json"
    if manifest_file.is_file():
        for entry in json.loads(manifest_file.read_text()):
            if entry["student"] in students:
                students[entry["student"]]["variant"] = entry["variant"]
    return {"assignment": assignment, "n": n, "wall_s": round(wall, 3),
            "per_submission_s": round(wall / max(n, 1), 3), "returncode": proc.returncode,
            "students": students, "stderr_tail": (proc.stdout + proc.stderr)[-2000:]
            if proc.returncode else ""}


def summarize(result: dict) -> str:
    """Human-readable table: per student, per variant, timing."""
    lines = []
    by_variant: dict[str, set] = {}
    for sid, r in result["students"].items():
        variant = r.get("variant", "?")
        score = "not graded" if not r["graded"] else f"{r['score']:g}/{r['max_score']:g}"
        lines.append(f"{sid}  {variant:28s} {score:>10s}  failing: {', '.join(r['failing']) or '-'}")
        if r["graded"]:
            by_variant.setdefault(variant, set()).add(
                (r["score"], r["max_score"], tuple(r["failing"])))
    lines.append("")
    for variant, outcomes in sorted(by_variant.items()):
        flag = "" if len(outcomes) == 1 else "   (students of this variant disagree!)"
        for score, max_score, failing in sorted(outcomes):
            lines.append(f"{variant:28s} {score:g}/{max_score:g}  failing: "
                         f"{', '.join(failing) or '-'}{flag}")
    lines.append(f"\nnbgrader autograde {result['assignment']}: {result['n']} submissions in "
                 f"{result['wall_s']:.1f} s ({result['per_submission_s']:.2f} s per submission), "
                 f"exit {result['returncode']}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("course", type=Path, help="nbgrader course dir made by make_class.py")
    ap.add_argument("--assignment", default=ASSIGNMENT)
    ap.add_argument("--json", type=Path, help="write the result document here")
    ap.add_argument("--log", type=Path, help="write nbgrader's output here")
    args = ap.parse_args(argv)
    result = autograde(args.course, args.assignment, args.log)
    print(summarize(result))
    if result["returncode"]:
        print(result["stderr_tail"], file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0 if result["returncode"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
