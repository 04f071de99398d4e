"""From a solution to what students get: stubs, the handout and the public checks.

Solution files mark each graded body with nbgrader's markers:

    ### BEGIN SOLUTION  short hint for the student
    ...the instructor's code...
    ### END SOLUTION

and `make_stub` replaces each marked region by `raise NotImplementedError("hint")`,
so the stub imports, constructs nothing and scores zero with a message that says what
to write.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from .course import COURSE_FILE, Assignment, Course, is_hidden_file

BEGIN = re.compile(r"^(?P<indent>\s*)### BEGIN SOLUTION\b[\s:.-]*(?P<hint>.*?)\s*$")
END = re.compile(r"^\s*### END SOLUTION\s*$")
DEFAULT_HINT = "replace this line with your code"


class MarkerError(ValueError):
    pass


def make_stub(source: str, filename: str = "<solution>") -> str:
    """`source` with every solution region replaced by a NotImplementedError that carries its hint."""
    out: list[str] = []
    inside: int | None = None
    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        begin = BEGIN.match(line)
        if begin:
            if inside is not None:
                raise MarkerError(f"{filename}:{number}: BEGIN SOLUTION inside the region opened at line {inside}")
            inside = number
            hint = begin["hint"] or DEFAULT_HINT
            out.append(f"{begin['indent']}raise NotImplementedError({hint!r})\n")
        elif END.match(line):
            if inside is None:
                raise MarkerError(f"{filename}:{number}: END SOLUTION without BEGIN SOLUTION")
            inside = None
        elif inside is None:
            out.append(line)
    if inside is not None:
        raise MarkerError(f"{filename}:{inside}: BEGIN SOLUTION is never closed")
    return "".join(out)


def solution_dir(course: Course, assignment: Assignment) -> Path:
    if course.solutions is None:
        raise MarkerError("the course file names no solutions folder")
    return course.solutions / assignment.name


def write_student_files(course: Course, assignment: Assignment, dest: Path) -> list[Path]:
    """The stub of the graded file and the handout (README.md) of `assignment`, written into `dest`."""
    src = solution_dir(course, assignment)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(src.iterdir()):
        if path.name.startswith((".", "__")):
            continue
        target = dest / path.name
        if path.suffix == ".py":
            target.write_text(make_stub(path.read_text(), str(path)))
        elif path.is_file():
            shutil.copyfile(path, target)
        else:
            continue
        written.append(target)
    return written


def write_bundle(course: Course, assignment: Assignment, out: Path) -> Path:
    """A self-contained student bundle: `out/hwN/` (stubs, handout), public checks, and a course file."""
    write_student_files(course, assignment, out / assignment.name)
    checks = out / ".kit" / "suites" / assignment.name
    if checks.exists():
        shutil.rmtree(checks)
    checks.mkdir(parents=True)
    for path in sorted(assignment.suite_dir.iterdir()):
        if path.is_file() and not is_hidden_file(path) and path.suffix in (".py", ".toml"):
            shutil.copyfile(path, checks / path.name)
    import tomli_w

    course_file = {"course": {"name": course.name, "suites": ".kit/suites", "assignments": "."}}
    (out / COURSE_FILE).write_text("# Written by `kit release`: lets `kit check` find the checks of this bundle.\n"
                                   + tomli_w.dumps(course_file))
    return out
