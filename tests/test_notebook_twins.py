"""Every wrong-submission fixture that is a plain module, handed in as a notebook, gets the verdicts of its .py.

A fixture is a plain module when it only defines things (or does not parse at all); the six that do
work at import time (exit_at_import, fake_output, and the four that build a forbidden name at module
level) are left out, since a notebook of them is, by the rules, graded without that work. Each
notebook is made in the test, as a handout splits code (imports, then a cell per class or function)
with a demo cell after it, and graded with a fork server per assignment (as `kit grade` does: about a
second per case); the hw1 cases are also graded from their .py file, and every message must match
once the place it points at is left aside.
"""
from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from kit.grader.forkserver import ForkLauncher
from kit.grader.launch import Limits
from kit.grader.notebook import Cell, NotebookError, convert
from kit.grader.report import LEFT_OUT
from kit.grader.sandbox import make_launcher
from tests.conftest import grade as grade_folder
from tests.notebooks import cells_of, write_notebook
from tests.test_submissions import CASES, assert_deserved


def plain(expected_file: Path) -> bool:
    source = next(p for p in expected_file.parent.glob("*.py")).read_text()
    try:
        return not convert([Cell(1, source)]).left_out
    except NotebookError:
        return True  # does not parse: neither form can be imported


PLAIN = [case for case in CASES if plain(case)]
IDS = [f"{p.parent.parent.name}/{p.parent.name}" for p in PLAIN]
WHERE = re.compile(r'"?<file>"?, (cell \d+, )?line \d+|cell \d+, line \d+')


def unplaced(message: str, spec) -> str:
    """A message without the file and place it points at (my_linear.py, line 9 / hw1.ipynb, cell 3, line 2)."""
    return WHERE.sub("<where>", message.replace(spec.notebook, "<file>").replace(spec.file, "<file>"))


@pytest.fixture(scope="module")
def fork_launchers():
    """One fork server per (assignment, limits), shared by every case, as a grading worker shares it."""
    made: dict = {}

    def get(limits: Limits):
        if limits not in made:
            made[limits] = ForkLauncher(make_launcher(limits, require=False))
        return made[limits]

    yield get
    for launcher in made.values():
        launcher.close()


def test_the_plain_fixtures_are_nearly_all_of_them():
    left_out = sorted(f"{p.parent.parent.name}/{p.parent.name}" for p in CASES if p not in PLAIN)
    assert left_out == ["hw1/exit_at_import", "hw1/fake_output", "hw11/forbidden_runtime", "hw4/forbidden_obfuscated",
                        "hw5/forbidden_aten", "hw9/forbidden_obfuscated"]
    assert len(PLAIN) >= 50


@pytest.mark.parametrize("expected_file", PLAIN, ids=IDS)
def test_a_notebook_gets_its_py_twins_verdicts(course, expected_file, fork_launchers, tmp_path):
    expected = tomllib.loads(expected_file.read_text())
    spec = course.assignment(expected_file.parent.parent.name)
    source = (expected_file.parent / spec.file).read_text()
    write_notebook(tmp_path / spec.notebook, cells_of(source))
    limits = _limits(spec, expected)
    report = grade_folder(spec, tmp_path, limits=limits, launcher=fork_launchers(limits))
    assert report.graded_file == spec.notebook
    assert_deserved({**expected, "messages": {}}, report)
    for check_id, text in expected.get("messages", {}).items():  # the same, but pointing into the notebook
        message = next(c.message for c in report.checks if c.id == check_id)
        assert unplaced(text, spec) in unplaced(message, spec), message
    if "SyntaxError" not in report.problems[0].message if report.problems else True:  # a cell parsed: demo said
        assert any(n.kind == LEFT_OUT and "trying it out" in n.text for n in report.notes)
    if spec.name == "hw1":
        twin = grade_folder(spec, expected_file.parent, limits=limits, launcher=fork_launchers(limits))
        assert [(c.id, c.status, c.points, unplaced(c.message, spec)) for c in report.checks] == \
               [(c.id, c.status, c.points, unplaced(c.message, spec)) for c in twin.checks]


def _limits(spec, expected: dict) -> Limits:
    return Limits(**expected["limits"]) if "limits" in expected else \
        Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget)

