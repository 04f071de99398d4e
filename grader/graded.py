"""Which file of a submission is graded, and the file the child imports for it.

A submission is a folder holding the assignment's .py file, its notebook (`hwN.ipynb`), or
both; or a notebook given by name (`kit check --path work.ipynb`, `%kit check`). A .py file is
imported as it is. A notebook is turned into the module it defines (kit.grader.notebook), which is
written, with copies of the folder's other .py modules, into a private folder that only the child
is shown: the student's folder is never written to, and the notebook itself (outputs and all)
never reaches the child. With both files, kit grades the one that differs from the released stub
(a notebook kit released records the stub's fingerprint); if both do, or kit cannot tell, the .py.
"""
from __future__ import annotations

import os
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .course import Assignment
from .files import entries, read_regular, special_kind
from .notebook import (
    CellSyntaxError,
    Module,
    Notebook,
    NotebookError,
    SourceMap,
    convert,
    definitions_digest,
    left_out_note,
    read_cells,
)
from .problems import missing_file, syntax_error
from .report import INFO, LEFT_OUT, Note
from .sandbox import shows_course

MAX_MODULES, MAX_MODULE_BYTES = 200, 16 << 20  # the student's other .py files copied next to a notebook's module


@dataclass
class GradedFile:
    """The file a submission is graded on, as the child imports it and as reports name it."""

    path: Path  # what the child imports
    name: str  # what reports call it: my_linear.py, hw1.ipynb
    unusable: str | None = None  # why nothing of the submission can run
    source_map: SourceMap | None = None  # a notebook's: lines of `path` back to cells
    notes: list[Note] = field(default_factory=list)
    private: tempfile.TemporaryDirectory | None = None

    def locate(self, file: str, line: int) -> str:
        """`my_linear.py, line 12`, or for a notebook's module `hw1.ipynb, cell 4, line 3`."""
        return ", ".join(self.place(file, line))

    def place(self, file: str, line: int) -> tuple[str, str]:
        """("my_linear.py", "line 12"), or for a notebook's module ("hw1.ipynb", "cell 4, line 3")."""
        if self.source_map is not None and file == self.source_map.generated:
            return self.name, self.source_map.where(line)
        return file, f"line {line}"

    def relocate(self, error: dict | None) -> dict | None:
        """A child's error (kit.grader.replies) whose locations name the notebook's cells."""
        if error is None or self.source_map is None:
            return error
        return {**error, "message": self.relocate_text(error["message"]),
                "traceback": self.relocate_text(error["traceback"])}

    def relocate_text(self, text: str) -> str:
        """`text` (a check's message) with every place in the graded module named as the notebook's cell."""
        return text if self.source_map is None else self.source_map.relocate(text)

    def discard(self) -> None:
        """Remove the private folder (once the report no longer needs it)."""
        if self.private is not None:
            self.private.cleanup()
            self.private = None


def graded_file(assignment: Assignment, submission: Path, kit_files: list[str]) -> GradedFile:
    """What to grade in `submission` (a folder, or a notebook file). `kit_files` are the paths the child is
    shown besides the student's (a folder holding them shows the graded file only, as the sandbox does)."""
    if submission.suffix == ".ipynb" and not submission.is_dir():
        return from_notebook(assignment, submission, submission.name, kit_files)
    py, nb = submission / assignment.file, submission / assignment.notebook
    if not os.path.lexists(nb):
        graded = GradedFile(py, assignment.file)
        if not os.path.lexists(py):
            graded.unusable = missing_file(assignment.file, assignment.notebook, str(submission), sources(submission))
        elif kind := special_kind(py.stat().st_mode if py.exists() else py.lstat().st_mode):
            graded.unusable = f"{assignment.file} in {submission} is {kind}, not a regular file"
        return graded
    if not py.is_file():
        return from_notebook(assignment, nb, assignment.notebook, kit_files)
    try:
        notebook = read_cells(nb)
        module = convert(notebook.cells)
    except NotebookError as exc:
        why = f"{assignment.notebook} cannot be used ({exc})"
        return GradedFile(py, assignment.file, notes=[Note(INFO, both_here(assignment, assignment.file, why))])
    use_notebook, why = choose(assignment, py, notebook, module)
    if not use_notebook:
        return GradedFile(py, assignment.file, notes=[Note(INFO, both_here(assignment, assignment.file, why))])
    graded = from_notebook(assignment, nb, assignment.notebook, kit_files, (notebook, module))
    graded.notes.insert(0, Note(INFO, both_here(assignment, assignment.notebook, why)))
    return graded


def sources(folder: Path) -> list[str]:
    """The names of the .py files and notebooks directly in `folder` (what a misnamed file would be)."""
    try:
        with os.scandir(folder) as listing:
            return sorted(e.name for e in listing if e.name.endswith((".py", ".ipynb")))
    except OSError:
        return []


def choose(assignment: Assignment, py: Path, notebook: Notebook, module: Module) -> tuple[bool, str]:
    """(whether to grade the notebook, why) when both are handed in."""
    kit = notebook.metadata.get("kit")
    stub = kit.get("stub") if isinstance(kit, dict) else None  # written by `kit release --notebook`
    if not isinstance(stub, str):
        return False, f"{assignment.notebook} does not say what the released stub was"
    try:
        py_changed = definitions_digest(read_regular(py).decode("utf-8", "replace")) != stub
    except OSError:
        py_changed = True
    if module.digest != stub and not py_changed:
        return True, f"{assignment.file} is still the released stub"
    if module.digest == stub:
        return False, f"{assignment.notebook} is still the released stub"
    return False, "both differ from the released stub"


def both_here(assignment: Assignment, graded: str, why: str) -> str:
    return f"both {assignment.file} and {assignment.notebook} were handed in: graded {graded} ({why})"


def from_notebook(assignment: Assignment, path: Path, name: str, kit_files: list[str],
                  read: tuple[Notebook, Module] | None = None) -> GradedFile:
    """The module `path` defines (`read` if it was already), written for the child into a private folder."""
    unusable = GradedFile(path.parent / assignment.file, name)
    if read is None:
        try:
            notebook = read_cells(path)
        except NotebookError as exc:
            unusable.unusable = f"{name} {exc}"
            return unusable
        try:
            read = notebook, convert(notebook.cells)
        except CellSyntaxError as exc:
            unusable.unusable = syntax_error(name, exc.kind, exc.message, exc.where, exc.source, exc.column,
                                             exc.end_column)
            return unusable
        except NotebookError as exc:
            unusable.unusable = f"could not import {name}: {exc}"
            return unusable
    module = read[1]
    private = tempfile.TemporaryDirectory(prefix="kit-notebook-")
    root = Path(private.name)
    os.chmod(root, 0o755)  # a root grader's child runs as nobody
    if not shows_course(str(path.parent), kit_files):
        copy_modules(path.parent, root, skip=assignment.file)
    target = root / assignment.file
    target.write_text(module.source, encoding="utf-8")
    os.chmod(target, 0o644)
    notes = [Note(LEFT_OUT, left_out_note(name, module.left_out))] if module.left_out else []
    return GradedFile(target, name, source_map=SourceMap(name, assignment.file, module.lines), notes=notes,
                      private=private)


def copy_modules(folder: Path, dest: Path, *, skip: str) -> None:
    """The student's other .py files (regular files only), which the notebook's module may import."""
    count = total = 0
    for rel, st in entries(folder):
        if not rel.endswith(".py") or rel == skip or not stat.S_ISREG(st.st_mode):
            continue
        count, total = count + 1, total + st.st_size
        if count > MAX_MODULES or total > MAX_MODULE_BYTES:
            return
        try:
            data = read_regular(folder / rel)
        except OSError:
            continue
        target = dest / rel
        for parent in reversed(Path(rel).parents[:-1]):
            if not (dest / parent).is_dir():
                (dest / parent).mkdir()
                os.chmod(dest / parent, 0o755)
        target.write_bytes(data)
        os.chmod(target, 0o644)
