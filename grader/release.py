"""From a solution to what students get: stubs, the handout and the public checks.

Solution files mark each graded body with nbgrader's markers:

    ### BEGIN SOLUTION  short hint for the student
    ...the instructor's code...
    ### END SOLUTION

and `make_stub` replaces each marked region by `raise NotImplementedError("hint")`,
so the stub imports, constructs nothing and scores zero with a message that says what
to write.

A handout is the stub .py file, or (`kit release --notebook`, `handout = "notebook"` in kit.toml)
the notebook `hwN/hwN.ipynb` (`make_notebook`): the handout as locked markdown cells, the stub's
code in nbgrader solution cells with stable grade ids, a scratch cell, and a last cell that runs
`%kit check hwN`. The notebook records the stub's fingerprint, so that a folder holding both forms
is graded on the one the student changed (kit.grader.graded).
"""
from __future__ import annotations

import ast
import re
import shutil
import tempfile
from pathlib import Path

from .course import COURSE_FILE, Assignment, Course, is_hidden_file
from .notebook import definitions_digest
from .report import PASSED, Report

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


def write_student_files(course: Course, assignment: Assignment, dest: Path, *, notebook: bool = False) -> list[Path]:
    """The stub of the graded file (or, with `notebook`, the notebook hwN.ipynb in its place) and the handout
    (README.md) of `assignment`, written into `dest`. The other form of the graded file, if `dest` has it
    from an earlier release, is removed: a release holds one."""
    src = solution_dir(course, assignment)
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(src.iterdir()):
        if path.name.startswith((".", "__")):
            continue
        target = dest / path.name
        if path.name == assignment.file and notebook:
            target = dest / assignment.notebook
            target.write_text(notebook_handout(src, assignment, solution=False), encoding="utf-8")
        elif path.suffix == ".py":
            target.write_text(make_stub(path.read_text(), str(path)))
        elif path.is_file():
            shutil.copyfile(path, target)
        else:
            continue
        written.append(target)
    (dest / (assignment.file if notebook else assignment.notebook)).unlink(missing_ok=True)
    return written


def notebook_handout(src: Path, assignment: Assignment, *, solution: bool) -> str:
    """The notebook of `assignment` from its solution folder: the stub's code, or (`solution`) the solution's."""
    source = (src / assignment.file).read_text()
    stub = make_stub(source, str(src / assignment.file))
    readme = src / "README.md"
    handout = readme.read_text() if readme.is_file() else f"# {assignment.name}: {assignment.title}\n"
    return make_notebook(assignment, source if solution else stub, handout, stub=definitions_digest(stub))


# -- the notebook form of a handout ------------------------------------------------------------------

RULES = """\
## Working in this notebook

This notebook is the notebook form of `{file}`: write your code in the code cells below, which
hold that file's code, and hand in this notebook, `{notebook}`. (Handing in `{file}` instead works
too; with both, kit grades the one you changed.)

**Only definitions are graded.** kit grades the module your notebook defines, without running the
notebook: from every code cell it keeps imports, functions, classes and assignments of constants
(`EPS = 1e-5`), and leaves out everything that does work — calls such as `print(...)` or
`m = MyModule(3, 4)`, loops, training, plotting — as well as IPython magics (`%timeit`) and shell
commands (`!pip install ...`). So try your code freely, in the scratch cell or anywhere: none of it
runs when grading, and the report lists in one line what was left out. Whatever your classes need
when they are defined must be a definition too (`device = torch.device("cpu")` is a call: left out).

**Messages point into this notebook**: "cell 5, line 3" is line 3 of the 5th cell from the top,
text cells included.

**Check your work** by running the last cell, `%kit check {assignment}`. It checks the notebook as
saved on disk, in a separate, sandboxed process, never your kernel's state, so **save first**
(Ctrl+S or Cmd+S): kit warns when the cell you ran last is not in the saved file. It takes the
options of `kit check` in a terminal (`%kit check {assignment} -v` also shows what your code
printed), and `kit check {assignment}` in a terminal checks the same file.

**In Colab**, where the notebook is not a file kit can read, `%kit check` checks the cells the kernel
has run, in the order they ran, and says so; "cell N" then means the cell that ran as `In [N]`.
Install kit and open the assignment's folder first (your instructor gives the commands, such as
`!pip install ...` and `%cd ...`).
"""

SCRATCH = """\
# Scratch cell: try your code here, e.g. build your module and run it on a small random input.
# Calls, prints and loops are never run when grading: only definitions are graded.
"""


def make_notebook(assignment: Assignment, source: str, handout: str, *, stub: str) -> str:
    """The notebook (nbformat 4.5 JSON) of `source` split into cells, after the handout's markdown.

    Cells carry nbgrader's metadata (schema 3): the handout and the rules locked, the code in
    solution cells whose grade ids are the names they define (stable from one release to the next),
    the checking cell locked. `stub` is the stub's fingerprint (kit.grader.notebook.definitions_digest).
    """
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = []
    for number, text in enumerate(markdown_sections(handout), start=1):
        cells.append(locked(new_markdown_cell(text, id=f"handout-{number}")))
    rules = RULES.format(file=assignment.file, notebook=assignment.notebook, assignment=assignment.name).rstrip("\n")
    cells.append(locked(new_markdown_cell(rules, id="how-to-work")))
    for grade_id, text in code_sections(source):
        cells.append(nbgrader(new_code_cell(text, id=grade_id), grade_id, solution=True))
    cells.append(new_code_cell(SCRATCH.rstrip("\n"), id="scratch"))
    cells.append(locked(new_code_cell(f"%load_ext kit.cli\n%kit check {assignment.name}", id="kit-check")))
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "kit": {"assignment": assignment.name, "file": assignment.file, "stub": stub},
    })
    nb.nbformat_minor = 5
    nbformat.validate(nb)
    return nbformat.writes(nb) + "\n"


def locked(cell):
    """A cell students read but do not edit (nbgrader's read-only cell)."""
    cell = nbgrader(cell, cell["id"], locked=True)
    cell.metadata["editable"] = False
    return cell


def nbgrader(cell, grade_id: str, *, solution: bool = False, locked: bool = False):
    """nbgrader's schema-3 metadata, as `nbgrader generate_assignment` leaves it in a student's copy."""
    from nbgrader.utils import compute_checksum

    cell.metadata["nbgrader"] = {"grade": False, "grade_id": grade_id, "locked": locked, "schema_version": 3,
                                 "solution": solution, "task": False}
    cell.metadata["nbgrader"]["checksum"] = compute_checksum(cell)
    cell.metadata["nbgrader"]["cell_type"] = cell.cell_type
    cell.metadata["deletable"] = False
    return cell


def markdown_sections(text: str) -> list[str]:
    """The handout split before each `## ` heading (outside code fences): one markdown cell each."""
    sections: list[list[str]] = [[]]
    fenced = False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if line.startswith("## ") and not fenced and any(part.strip() for part in sections[-1]):
            sections.append([])
        sections[-1].append(line)
    return ["\n".join(section).strip("\n") for section in sections if any(part.strip() for part in section)]


def code_sections(source: str) -> list[tuple[str, str]]:
    """(grade id, code) of each cell: what comes before the first class or function (imports, constants),
    then each top-level class or function with the comments right above it."""
    lines = source.splitlines()
    starts: list[tuple[int, str]] = [(0, "imports")]
    for node in ast.parse(source).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)]) - 1
            while first > 0 and lines[first - 1].startswith("#"):
                first -= 1
            starts.append((first, node.name))
    out: list[tuple[str, str]] = []
    used: set[str] = set()
    for (begin, name), (end, _) in zip(starts, [*starts[1:], (len(lines), "")]):
        text = "\n".join(lines[begin:end]).strip("\n")
        if not text:
            continue
        grade_id = name if name not in used else f"{name}-{len(used)}"
        used.add(grade_id)
        out.append((grade_id, text))
    return out


def write_bundle(course: Course, assignment: Assignment, out: Path, *, notebook: bool = False) -> Path:
    """A self-contained student bundle: `out/hwN/` (stub or notebook, handout), public checks, and a course file."""
    write_student_files(course, assignment, out / assignment.name, notebook=notebook)
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


# -- the self-check ----------------------------------------------------------------------------------

class SelfCheckFailed(ValueError):
    """The checks cannot tell the solution from the stub: nothing may be released."""


def self_check(course: Course, assignment: Assignment, launcher, *, notebook: bool) -> tuple[Report, Report]:
    """Grade the solution and the stub as students get them (the .py files, or the notebooks), hidden checks
    included: (solution's report, stub's report), or SelfCheckFailed unless the first has full marks and
    the second nothing."""
    from .grade import NotGraded, grade_submission

    src = solution_dir(course, assignment)
    with tempfile.TemporaryDirectory(prefix="kit-release-") as tmp:
        stubs, solved_nb = Path(tmp) / "stub", Path(tmp) / assignment.notebook
        write_student_files(course, assignment, stubs, notebook=notebook)
        if notebook:
            solved_nb.write_text(notebook_handout(src, assignment, solution=True), encoding="utf-8")
        try:
            solved = grade_submission(assignment, solved_nb if notebook else src, launcher=launcher, hidden=True)
            stubbed = grade_submission(assignment, stubs, launcher=launcher, hidden=True)
        except NotGraded as exc:
            raise SelfCheckFailed(f"the self-check could not run: {exc}") from None
    form = "notebook" if notebook else "solutions"
    bad = [c for c in solved.checks if c.status != PASSED and c.counts]
    if bad:
        lines = "\n".join(f"  {c.id}: {c.message.splitlines()[0] if c.message else c.status}" for c in bad)
        raise SelfCheckFailed(f"the {form} do{'es' if notebook else ''} not score full marks, so nothing was "
                              f"released:\n{lines}")
    scoring = [c for c in stubbed.checks if c.points > 0]
    if scoring:
        lines = "\n".join(f"  {c.id}" for c in scoring)
        raise SelfCheckFailed(f"the stub{' notebook' if notebook else 's'} score{'s' if notebook else ''} points on "
                              f"these checks, so nothing was released:\n{lines}")
    return solved, stubbed
