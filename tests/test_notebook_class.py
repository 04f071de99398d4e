"""A class that hands in notebooks: `kit collect` brings them in, `kit grade` grades them (bad ones score
zero and cost nobody else anything), `kit feedback` and `kit gradescope` take them.

Real commands on a real course folder, with the sandbox when it works here; marked slow like
tests/test_grade.py (each graded notebook's child imports torch).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import zipfile
from datetime import datetime
from pathlib import Path

import pytest

from kit.grader.release import notebook_handout
from tests.conftest import ROOT
from tests.notebooks import DEMO, cells_of, notebook

KIT = str(Path(sys.executable).with_name("kit"))
CASES = ROOT / "tests" / "submissions" / "hw1"
SOLUTION = (ROOT / "solutions" / "hw1" / "my_linear.py").read_text()
STUB = (ROOT / "assignments" / "hw1" / "my_linear.py").read_text()
BIAS_IGNORED = (CASES / "bias_ignored" / "my_linear.py").read_text()
BIAS_SCORE = tomllib.loads((CASES / "bias_ignored" / "expected.toml").read_text())["score"]
CPU_ONLY = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
ENDLESS = "while True:\n    pass\n"


def sandbox_ok() -> bool:
    from kit.grader.sandbox import probe

    return probe().ok


def kit(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    flags = [] if sandbox_ok() or args[0] != "grade" else ["--unsafe-no-sandbox"]
    return subprocess.run([KIT, *args, *flags], cwd=cwd, capture_output=True, text=True, timeout=900, env=CPU_ONLY)


def zipped(path: Path, members: dict[str, str | bytes], when: datetime) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    os.utime(path, (when.timestamp(), when.timestamp()))


@pytest.fixture(scope="module")
def graded(course, tmp_path_factory):
    root = tmp_path_factory.mktemp("notebook-class")
    home = root / "course"
    home.mkdir()
    (home / "kit.toml").write_text(f'[course]\nname = "notebooks"\nsuites = "{ROOT / "grader" / "suites"}"\n')
    solved = notebook_handout(course.solutions / "hw1", course.assignment("hw1"), solution=True)
    when = datetime(2024, 3, 1, 12)
    downloads = root / "downloads"
    downloads.mkdir()
    zipped(downloads / "ann_hw1.zip", {"hw1/hw1.ipynb": solved}, when)  # a released notebook, solved
    (downloads / "bob_12345_67890_hw1.ipynb").write_text(notebook(cells_of(BIAS_IGNORED)))  # Canvas's loose copy
    os.utime(downloads / "bob_12345_67890_hw1.ipynb", (when.timestamp(), when.timestamp()))
    zipped(downloads / "cat_hw1.zip", {"hw1.ipynb": b"\x89PNG not a notebook"}, when)
    zipped(downloads / "dan_hw1.zip", {"work/my_linear.py": STUB, "work/hw1.ipynb": solved}, when)
    exchange = root / "exchange"
    for student, text in (("eve", notebook([SOLUTION])[:-200]),  # truncated
                          ("fay", notebook([*cells_of(SOLUTION), ENDLESS, DEMO])),
                          ("gus", json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {}, "worksheets": []})),
                          ("hal", None)):
        folder = exchange / student / "hw1"
        folder.mkdir(parents=True)
        (folder / "timestamp.txt").write_text("2024-03-01 12:00:00.000000 UTC\n")
        if text is None:
            (folder / "my_linear.py").write_text(SOLUTION)
        else:
            (folder / "hw1.ipynb").write_text(text)
    collected = [kit("collect", "hw1", str(downloads), "--json", cwd=home),
                 kit("collect", "hw1", str(exchange), "--json", cwd=home)]
    run = kit("grade", "hw1", "-j", "2", "--json", cwd=home)
    assert run.returncode == 1, run.stdout[-3000:] + run.stderr[-3000:]
    return home, collected, json.loads(run.stdout)


EXPECTED = {"ann": (21.0, "hw1.ipynb"), "bob": (BIAS_SCORE, "hw1.ipynb"), "cat": (0.0, "hw1.ipynb"),
            "dan": (21.0, "hw1.ipynb"), "eve": (0.0, "hw1.ipynb"), "fay": (21.0, "hw1.ipynb"),
            "gus": (0.0, "hw1.ipynb"), "hal": (21.0, "my_linear.py")}


@pytest.mark.slow
def test_collect_brings_notebooks_in(graded):
    home, collected, _ = graded
    entries = [e for run in collected for e in json.loads(run.stdout)["entries"]]
    assert sorted(e["student"] for e in entries if e["status"] == "collected") == sorted(EXPECTED)
    for student in EXPECTED:
        assert {p.name for p in (home / "submitted" / student / "hw1").iterdir()} >= {EXPECTED[student][1]}
    assert (home / "submitted" / "dan" / "hw1" / "my_linear.py").is_file()  # re-rooted around both files


@pytest.mark.slow
def test_every_notebook_gets_its_grade_and_bad_ones_cost_only_their_student(graded):
    _, _, doc = graded
    assert not doc["not_graded"]
    by_student = {s["student"]: s for s in doc["submissions"]}
    assert sorted(by_student) == sorted(EXPECTED)
    for student, (score, graded_file) in EXPECTED.items():
        sub = by_student[student]
        assert sub["score"] == pytest.approx(score), (student, sub["problems"])
        assert sub["graded_file"] == graded_file, student
    assert "is not valid UTF-8" in by_student["cat"]["problems"][0]["message"]
    assert "is cut off" in by_student["eve"]["problems"][0]["message"]
    assert "old notebook format 3" in by_student["gus"]["problems"][0]["message"]
    assert any("`while True:`" in n["text"] for n in by_student["fay"]["notes"])
    assert any("graded hw1.ipynb (my_linear.py is still the released stub)" in n["text"]
               for n in by_student["dan"]["notes"])


@pytest.mark.slow
def test_feedback_points_into_the_notebook(graded):
    home, _, _ = graded
    run = kit("feedback", "hw1", cwd=home)
    assert run.returncode == 0, run.stderr
    fay = (home / "feedback" / "fay" / "hw1" / "feedback.md").read_text()
    assert "hw1.ipynb" in fay and "left out" in fay
    cat = (home / "feedback" / "cat" / "hw1" / "feedback.html").read_text()
    assert "hw1.ipynb is not valid UTF-8" in cat


@pytest.mark.slow
def test_gradescope_grades_an_uploaded_notebook(graded, tmp_path):
    home, _, _ = graded
    upload = tmp_path / "upload" / "my files"
    upload.mkdir(parents=True)
    (upload / "hw1.ipynb").write_text(notebook(cells_of(BIAS_IGNORED)))
    out = tmp_path / "results.json"
    run = kit("gradescope", "hw1", "--path", str(tmp_path / "upload"), "--out", str(out), cwd=home)
    assert run.returncode == 1, run.stderr
    assert json.loads(out.read_text())["score"] == pytest.approx(BIAS_SCORE)
