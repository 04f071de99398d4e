"""Notebook submissions: only definitions are graded, nothing is run to find them, messages point at cells,
and a notebook that cannot be read costs its student the grade and nothing else.

Reading and converting are tested on their own (no child); grading runs real children (one fork
server for the module, as a grading worker keeps one). The `.py` fixtures graded as notebooks are in
tests/test_notebook_twins.py, the real kernel in tests/test_notebook_magic.py.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pytest

from kit.grader.files import content_hash
from kit.grader.forkserver import ForkLauncher
from kit.grader.graded import graded_file
from kit.grader.launch import Limits
from kit.grader.notebook import (
    MAX_BYTES,
    Cell,
    NotebookError,
    SourceMap,
    convert,
    definitions_digest,
    left_out_note,
    parse,
)
from kit.grader.release import code_sections, notebook_handout
from kit.grader.report import FAILED, INFO, LEFT_OUT, PASSED, SKIPPED, UNUSABLE
from kit.grader.sandbox import make_launcher
from tests.conftest import ROOT
from tests.conftest import grade as grade_folder
from tests.notebooks import DEMO, cells_of, notebook, write_notebook

SOLUTION = (ROOT / "solutions" / "hw1" / "my_linear.py").read_text()
STUB = (ROOT / "assignments" / "hw1" / "my_linear.py").read_text()
BIAS_IGNORED = (ROOT / "tests" / "submissions" / "hw1" / "bias_ignored" / "my_linear.py").read_text()


@pytest.fixture(scope="module")
def hw1(course):
    return course.assignment("hw1")


@pytest.fixture(scope="module")
def launcher(hw1):
    made = ForkLauncher(make_launcher(Limits(check_timeout=hw1.check_timeout, time_budget=hw1.time_budget),
                                      require=False))
    yield made
    made.close()


def grade(spec, folder, launcher, **kwargs):
    return grade_folder(spec, folder, launcher=launcher, **kwargs)


def full_marks(report) -> bool:
    return report.score == report.max_score > 0 and all(c.status in (PASSED, SKIPPED) for c in report.checks)


def module_of(*sources: str):
    return convert([Cell(number, source) for number, source in enumerate(sources, start=2)])


# -- what is kept -------------------------------------------------------------------------------------

def test_definitions_are_kept_and_work_is_left_out():
    module = module_of(
        "import torch\nfrom torch import nn\nEPS = 1e-5\nSCALE = (EPS * 2, -1, 'x')\n",
        "model = nn.Linear(3, 4)\nw = model.weight\nprint(model)\nfor _ in range(10**9):\n    pass\n",
        "@torch.no_grad()\ndef helper(x, eps=EPS):\n    return x + eps\n\nact = lambda x: x.relu()\n",
        "class My(nn.Module):\n    pass\nMy.act = act\nx = 1; print(x)\n",
        "try:\n    import scipy\nexcept ImportError:\n    scipy = None\n",
        "%matplotlib inline\n!pip install foo\nfiles = !ls\ndevice = torch.device('cpu')\n",
        "%%bash\nwhile true; do sleep 1; done\n",
        "model\n'''a note'''\n...\npass\n",
    )
    kept = module.source
    for line in ("import torch", "EPS = 1e-5", "SCALE = (EPS * 2, -1, 'x')", "@torch.no_grad()", "def helper",
                 "act = lambda x: x.relu()", "class My(nn.Module):", "My.act = act", "x = 1", "import scipy"):
        assert line in kept, line
    for line in ("nn.Linear(3, 4)", "model.weight", "print(", "range(", "device", "get_ipython", "while True"):
        assert line not in kept, line
    compile(kept, "module", "exec")
    left = [(item.cell, item.first, item.last) for item in module.left_out]
    # w = model.weight reads a name only a left-out statement binds: left out too, never a NameError
    assert left == [(3, 1, 1), (3, 2, 2), (3, 3, 3), (3, 4, 5), (5, 4, 4), (7, 1, 1), (7, 2, 2), (7, 3, 3),
                    (7, 4, 4), (8, 1, 2), (9, 1, 1)]
    assert module.left_out[-2].text == "%%bash"  # the student's text, not IPython's rewriting


def test_each_kept_line_maps_back_to_its_cell_and_line():
    module = module_of("import torch\n\n\nx = f(); Y = 2\n", "# a comment\n@dec\ndef g():\n    return Y\n",
                       "from __future__ import annotations\n")
    lines = module.source.splitlines()
    assert lines[0] == "from __future__ import annotations"  # hoisted: it must come first
    assert module.lines[0] == (4, 1)
    where = dict(zip(lines, module.lines))
    assert where["import torch"] == (2, 1)
    assert where["Y = 2"] == (2, 4)
    assert where["@dec"] == (3, 2) and where["def g():"] == (3, 3) and where["    return Y"] == (3, 4)
    smap = SourceMap("hw1.ipynb", "my_linear.py", module.lines)
    trace = '  File "my_linear.py", line 6, in g\n    return Y\n  File "helpers.py", line 5, in h\n'
    assert smap.relocate(trace) == ('  File "hw1.ipynb", cell 3, line 4, in g\n    return Y\n'
                                    '  File "helpers.py", line 5, in h\n')
    assert smap.relocate("invalid syntax (my_linear.py, line 4)") == "invalid syntax (hw1.ipynb, cell 3, line 2)"


def test_a_cell_under_time_or_capture_is_read_as_python():
    module = module_of("import torch\n", "%%time\nclass A:\n    pass\nprint(A)\n", "%%capture out\nB = 1\n")
    assert "class A:" in module.source and "B = 1" in module.source
    where = dict(zip(module.source.splitlines(), module.lines))
    assert where["class A:"] == (3, 2) and where["B = 1"] == (4, 2)
    assert [(i.cell, i.first, i.text) for i in module.left_out] == [(3, 1, "%%time"), (3, 4, "print(A)"),
                                                                    (4, 1, "%%capture out")]
    with pytest.raises(NotebookError, match=r"\(cell 2, line 3\)"):
        module_of("%%time\nx = 1\ndef f(:\n")


def test_a_cell_that_does_not_parse_is_a_located_syntax_error():
    with pytest.raises(NotebookError, match=r"SyntaxError: .* \(cell 3, line 2\)"):
        module_of("import torch\n", "x = 1\ndef f(:\n")


def test_the_definitions_digest_sees_code_not_layout_comments_or_demo_code():
    digest = definitions_digest(SOLUTION)
    assert module_of(*cells_of(SOLUTION)).digest == digest
    assert definitions_digest(SOLUTION.replace("        y = x @ self.weight.T\n",
                                               "        # the product\n        y = x @ self.weight.T  # (N, out)\n"
                                               )) == digest
    assert definitions_digest(SOLUTION + "\nprint(MyLinear(2, 3))\n") == digest
    assert definitions_digest(SOLUTION.replace("y + self.bias", "y - self.bias")) != digest
    assert definitions_digest(STUB) != digest


def test_the_left_out_note_is_one_line_naming_cells():
    module = module_of(*(f"print({k})\n" for k in range(12)))
    note = left_out_note("hw1.ipynb", module.left_out)
    assert "\n" not in note and note.startswith("hw1.ipynb: only its definitions were graded")
    assert "cell 2 line 1 `print(0)`" in note and "cell 9 line 1 `print(7)`" in note
    assert "print(8)" not in note and note.endswith("and 4 more")


# -- reading: every bad input is a clear error, and costs the student the grade -------------------------

def valid(**changes) -> dict:
    doc = json.loads(notebook([SOLUTION]))
    doc.update(changes)
    return doc


def encoded(doc) -> bytes:
    return json.dumps(doc).encode()


def with_cell(**cell) -> bytes:
    doc = valid()
    doc["cells"][1].update(cell)
    return encoded(doc)


def without_key(key: str) -> bytes:
    doc = valid()
    del doc["cells"][1][key]
    return encoded(doc)


def duplicate_ids() -> bytes:
    doc = valid()
    doc["cells"][1]["id"] = doc["cells"][0]["id"]
    return encoded(doc)


BAD = {
    "not JSON": (b"def forward(self, x):\n    return x\n", "not valid JSON (line 1, column 1"),
    "truncated JSON": (encoded(valid())[:-300], "is cut off"),
    "empty": (b"", "is empty"),
    "a JSON list": (b"[1, 2, 3]", "without the cells of one"),
    "nbformat 3": (encoded({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": [{"cells": []}]}),
                   "old notebook format 3"),
    "unknown nbformat": (encoded(valid(nbformat=5)), "unknown notebook format (5.5)"),
    "no nbformat": (encoded({"cells": [], "metadata": {}}), "unknown notebook format (None.0)"),
    "an R kernel": (encoded(valid(metadata={"kernelspec": {"name": "ir", "language": "R", "display_name": "R"}})),
                    "has a kernel for R (R), not Python"),
    "a Julia language_info": (encoded(valid(metadata={"language_info": {"name": "julia"}})),
                              "has a kernel for julia, not Python"),
    "source a number": (with_cell(source=42), "the source of cell 2 is neither text nor a list of lines"),
    "source a list of numbers": (with_cell(source=[1, 2]), "the source of cell 2 is neither text nor a list"),
    "a cell without an id": (without_key("id"), "cell 2 has no id"),
    "duplicated cell ids": (duplicate_ids(), "cells 1 and 2 have the same id 'intro'"),
    "cells not a list": (encoded(valid(cells={"a": 1})), "its cells are not a list"),
    "invalid UTF-8": (encoded(valid()).replace(b"MyLinear", b"My\xffLinear", 1), "is not valid UTF-8 text"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_notebook_is_a_clear_error(case):
    data, message = BAD[case]
    with pytest.raises(NotebookError) as caught:
        parse(data)
    assert message in str(caught.value)


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_notebook_scores_zero_with_that_message(hw1, launcher, tmp_path, case):
    data, message = BAD[case]
    (tmp_path / "hw1.ipynb").write_bytes(data)
    report = grade(hw1, tmp_path, launcher)
    assert report.score == 0 and report.max_score > 0 and report.graded_file == "hw1.ipynb"
    assert [p.kind for p in report.problems] == [UNUSABLE]
    assert report.problems[0].message.startswith("hw1.ipynb ") and message in report.problems[0].message
    assert all(c.status == FAILED and c.reason == UNUSABLE for c in report.checks if c.counts)


def test_a_notebook_over_the_size_limit_scores_zero(hw1, launcher, tmp_path):
    with open(tmp_path / "hw1.ipynb", "wb") as f:
        f.truncate(MAX_BYTES + 1)
    report = grade(hw1, tmp_path, launcher)
    assert report.score == 0 and f"is larger than {MAX_BYTES >> 20} MiB" in report.problems[0].message


def test_a_notebook_that_is_a_link_is_not_followed(hw1, launcher, tmp_path):
    elsewhere = write_notebook(tmp_path / "elsewhere" / "hw1.ipynb", [SOLUTION])
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "hw1.ipynb").symlink_to(elsewhere)
    report = grade(hw1, tmp_path / "sub", launcher)
    assert report.score == 0 and "a link, not a regular file" in report.problems[0].message


@pytest.mark.parametrize("form", ["list", "string"])
def test_sources_as_lists_of_lines_or_as_strings_grade_the_same(hw1, launcher, tmp_path, form):
    doc = json.loads(notebook(cells_of(SOLUTION)))
    for cell in doc["cells"]:
        text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        cell["source"] = text.splitlines(keepends=True) if form == "list" else text
    (tmp_path / "hw1.ipynb").write_text(json.dumps(doc))
    assert full_marks(grade(hw1, tmp_path, launcher))


def test_a_notebook_before_cell_ids_is_read(hw1, launcher, tmp_path):
    doc = json.loads(notebook(cells_of(SOLUTION)))
    doc["nbformat_minor"] = 4
    for cell in doc["cells"]:
        del cell["id"]
    (tmp_path / "hw1.ipynb").write_text(json.dumps(doc))
    assert full_marks(grade(hw1, tmp_path, launcher))


def test_a_40_mb_output_costs_nothing(hw1, launcher, tmp_path):
    """Stored outputs are never read beyond the JSON parse, and never reach the child."""
    nb = nbformat.reads(notebook(cells_of(SOLUTION)), as_version=4)
    nb.cells[-1].outputs = [nbformat.v4.new_output("display_data", data={"image/png": "A" * (40 << 20)})]
    nbformat.write(nb, str(tmp_path / "hw1.ipynb"))
    assert (tmp_path / "hw1.ipynb").stat().st_size > 40 << 20
    assert full_marks(grade(hw1, tmp_path, launcher))


# -- grading ----------------------------------------------------------------------------------------------

def test_demo_cells_never_run(hw1, launcher, tmp_path):
    """An endless loop, an hour of training and a shell command: graded as its .py twin, full marks."""
    endless = "import time\nwhile True:\n    time.sleep(1)\n"
    training = "model = MyLinear(3, 4)\nfor epoch in range(3600):\n    time.sleep(1)\n"
    write_notebook(tmp_path / "hw1.ipynb", [*cells_of(SOLUTION), endless, training, "!rm -rf ~\n"])
    report = grade(hw1, tmp_path, launcher)
    assert full_marks(report)
    note = next(n.text for n in report.notes if n.kind == LEFT_OUT)
    assert "`while True:`" in note and "`model = MyLinear(3, 4)`" in note and "`!rm -rf ~`" in note


def test_messages_point_at_cells(hw1, launcher, tmp_path):
    crash = SOLUTION.replace("        return y\n", "        raise ValueError('boom')\n")
    write_notebook(tmp_path / "hw1.ipynb", cells_of(crash))
    report = grade(hw1, tmp_path, launcher)
    forward = next(c for c in report.checks if c.id == "forward")
    cell = 1 + 1 + [i for i, text in enumerate(cells_of(crash)) if "raise ValueError" in text][0]
    line = next(k for k, text in enumerate(cells_of(crash)[cell - 2].splitlines(), 1) if "raise ValueError" in text)
    assert f'File "hw1.ipynb", cell {cell}, line {line}, in forward' in forward.message
    assert "my_linear.py" not in forward.message


def test_an_import_error_points_at_its_cell(hw1, launcher, tmp_path):
    write_notebook(tmp_path / "hw1.ipynb", [*cells_of(SOLUTION), "import torch\nimport not_a_module_at_all\n"])
    report = grade(hw1, tmp_path, launcher)
    problem = report.problems[0].message
    assert report.score == 0 and problem.startswith("could not import hw1.ipynb: ModuleNotFoundError")
    assert f'File "hw1.ipynb", cell {len(cells_of(SOLUTION)) + 2}, line 2, in <module>' in problem


def test_a_forbidden_api_points_at_its_cell(hw1, launcher, tmp_path):
    forbidden = SOLUTION.replace("y = x @ self.weight.T", "y = torch.nn.functional.linear(x, self.weight)")
    cells = cells_of(forbidden)
    write_notebook(tmp_path / "hw1.ipynb", cells)
    report = grade(hw1, tmp_path, launcher)
    cell = next(i for i, text in enumerate(cells, start=2) if "functional.linear" in text)
    line = next(k for k, text in enumerate(cells[cell - 2].splitlines(), 1) if "functional.linear" in text)
    assert report.score == 0
    assert f"(hw1.ipynb, cell {cell}, line {line}: torch.nn.functional.linear)" in report.problems[0].message


def test_a_syntax_error_points_at_its_cell(hw1, launcher, tmp_path):
    write_notebook(tmp_path / "hw1.ipynb", [*cells_of(SOLUTION), "def broken(:\n"])
    report = grade(hw1, tmp_path, launcher)
    where = f"cell {len(cells_of(SOLUTION)) + 2}, line 1"
    assert report.score == 0 and report.problems[0].message.startswith("could not import hw1.ipynb: SyntaxError")
    assert f"(hw1.ipynb, {where})" in report.problems[0].message


def test_the_notebook_may_import_a_module_next_to_it(hw1, launcher, tmp_path):
    (tmp_path / "linalg.py").write_text("def affine(x, w, b):\n    y = x @ w.T\n    return y if b is None else y + b\n")
    body = SOLUTION.replace("y = x @ self.weight.T\n        if self.bias is not None:\n            y = y + self.bias",
                            "y = affine(x, self.weight, self.bias)")
    assert body != SOLUTION
    write_notebook(tmp_path / "hw1.ipynb", ["from linalg import affine\n", *cells_of(body)])
    before = content_hash(tmp_path)
    assert full_marks(grade(hw1, tmp_path, launcher))
    assert content_hash(tmp_path) == before  # nothing written into the student's folder


def test_a_wrong_notebook_gets_its_py_twins_verdicts(hw1, launcher, tmp_path):
    (tmp_path / "py").mkdir()
    (tmp_path / "py" / "my_linear.py").write_text(BIAS_IGNORED)
    write_notebook(tmp_path / "nb" / "hw1.ipynb", cells_of(BIAS_IGNORED))
    py, nb = grade(hw1, tmp_path / "py", launcher), grade(hw1, tmp_path / "nb", launcher)
    assert [(c.id, c.status, c.points, c.message) for c in nb.checks] == \
           [(c.id, c.status, c.points, c.message) for c in py.checks]
    assert (py.graded_file, nb.graded_file) == ("my_linear.py", "hw1.ipynb")


# -- which file is graded -----------------------------------------------------------------------------

def released(course, hw1, folder: Path, *, solution: bool) -> Path:
    """The notebook `kit release --notebook` hands out (with the stub's fingerprint), solved or not."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hw1.ipynb"
    path.write_text(notebook_handout(course.solutions / "hw1", hw1, solution=solution))
    return path


KIT_FILES: list[str] = []


def chosen(hw1, folder: Path) -> tuple[str, list[str]]:
    graded = graded_file(hw1, folder, KIT_FILES)
    try:
        return graded.name, [n.text for n in graded.notes if n.kind == INFO]
    finally:
        graded.discard()


def test_with_both_the_one_that_differs_from_the_released_stub_is_graded(course, hw1, launcher, tmp_path):
    released(course, hw1, tmp_path, solution=True)
    (tmp_path / "my_linear.py").write_text(STUB)
    name, notes = chosen(hw1, tmp_path)
    assert name == "hw1.ipynb" and notes == ["both my_linear.py and hw1.ipynb were handed in: graded hw1.ipynb "
                                             "(my_linear.py is still the released stub)"]
    report = grade(hw1, tmp_path, launcher)
    assert full_marks(report) and report.graded_file == "hw1.ipynb"
    assert any("graded hw1.ipynb" in n.text for n in report.notes)


def test_with_both_a_changed_py_wins(course, hw1, tmp_path):
    released(course, hw1, tmp_path / "a", solution=False)
    (tmp_path / "a" / "my_linear.py").write_text(SOLUTION)
    assert chosen(hw1, tmp_path / "a") == ("my_linear.py", [
        "both my_linear.py and hw1.ipynb were handed in: graded my_linear.py (hw1.ipynb is still the released stub)"])
    released(course, hw1, tmp_path / "b", solution=True)
    (tmp_path / "b" / "my_linear.py").write_text(BIAS_IGNORED)
    assert chosen(hw1, tmp_path / "b")[0] == "my_linear.py"
    assert "both differ from the released stub" in chosen(hw1, tmp_path / "b")[1][0]


def test_with_both_a_notebook_kit_did_not_release_leaves_the_py(hw1, tmp_path):
    write_notebook(tmp_path / "hw1.ipynb", cells_of(SOLUTION))
    (tmp_path / "my_linear.py").write_text(STUB)
    assert chosen(hw1, tmp_path) == ("my_linear.py", [
        "both my_linear.py and hw1.ipynb were handed in: graded my_linear.py "
        "(hw1.ipynb does not say what the released stub was)"])


def test_with_both_an_unreadable_notebook_leaves_the_py(hw1, tmp_path):
    (tmp_path / "hw1.ipynb").write_text("{ not json")
    (tmp_path / "my_linear.py").write_text(SOLUTION)
    name, notes = chosen(hw1, tmp_path)
    assert name == "my_linear.py" and "hw1.ipynb cannot be used (is not a notebook" in notes[0]


def test_a_notebook_named_otherwise_is_graded_when_named(hw1, launcher, tmp_path):
    path = write_notebook(tmp_path / "Copy of hw1 (2).ipynb", cells_of(SOLUTION))
    report = grade(hw1, path, launcher)
    assert full_marks(report) and report.graded_file == "Copy of hw1 (2).ipynb"


def test_neither_file_is_a_clear_error(hw1, launcher, tmp_path):
    report = grade(hw1, tmp_path, launcher)
    assert report.score == 0
    first = report.problems[0].message.splitlines()[0]
    assert first == f"my_linear.py (or hw1.ipynb) not found in {tmp_path.resolve()}"


def test_the_private_folder_is_removed(hw1, tmp_path):
    write_notebook(tmp_path / "hw1.ipynb", cells_of(SOLUTION))
    graded = graded_file(hw1, tmp_path, KIT_FILES)
    private = graded.path.parent
    assert private != tmp_path and (private / "my_linear.py").is_file()
    graded.discard()
    assert not private.exists()


def test_code_cells_of_a_handout_hold_the_stub(course, hw1, tmp_path):
    nb = nbformat.reads(notebook_handout(course.solutions / "hw1", hw1, solution=False), as_version=4)
    code = [cell.source for cell in nb.cells if cell.metadata.get("nbgrader", {}).get("solution")]
    assert code == [text for _, text in code_sections(STUB)]
    assert nb.metadata.kit.stub == definitions_digest(STUB)


def test_a_folder_copy_of_a_student_notebook_grades_alike(hw1, launcher, tmp_path):
    """The same notebook in an nbgrader-style folder and named directly: one verdict."""
    write_notebook(tmp_path / "hw1.ipynb", [*cells_of(BIAS_IGNORED), DEMO])
    shutil.copy(tmp_path / "hw1.ipynb", tmp_path / "mine.ipynb")
    by_folder, by_name = grade(hw1, tmp_path, launcher), grade(hw1, tmp_path / "mine.ipynb", launcher)
    assert [(c.id, c.status) for c in by_folder.checks] == [(c.id, c.status) for c in by_name.checks]
