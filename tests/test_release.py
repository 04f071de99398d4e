"""`kit release`: what students get holds no solution and no hidden check, and still works on its own.

- `assignments/hwN/` is exactly what `kit release` generates from `solutions/hwN/` (no drift), and the
  notebook form of the handout (`kit release hwN --notebook`) holds that stub and that handout, passes
  its self-check, and is a valid nbgrader student notebook;
- a bundle (`kit release hwN --out DIR`) has no hidden check file, no hidden check name, no line of
  a solution region, and `kit check hwN` inside it, with only kit installed and the solution copied
  in, gives full public marks.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from kit.grader.course import is_hidden_file
from kit.grader.notebook import definitions_digest
from kit.grader.release import BEGIN, END, write_bundle, write_student_files
from tests.conftest import ROOT

ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "grader" / "suites").glob("*/assignment.toml"))
KIT = str(Path(sys.executable).with_name("kit"))


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def solution_lines(source: str) -> tuple[list[str], set[str]]:
    """(stripped lines inside solution regions, stripped lines outside them)."""
    inside, outside, region = [], set(), False
    for line in source.splitlines():
        if BEGIN.match(line):
            region = True
        elif END.match(line):
            region = False
        elif region:
            inside.append(line.strip())
        else:
            outside.add(line.strip())
    return inside, outside


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_assignments_folder_matches_a_fresh_release(course, name, tmp_path):
    """assignments/hwN is byte for byte what `kit release hwN` writes: regenerate with `kit release hwN`."""
    spec = course.assignment(name)
    write_student_files(course, spec, tmp_path)
    expected = files_under(tmp_path)
    actual = files_under(course.assignments / name) if (course.assignments / name).is_dir() else {}
    assert sorted(actual) == sorted(expected), f"assignments/{name} is out of date: run `kit release {name}`"
    drift = [f for f in expected if actual[f] != expected[f]]
    assert not drift, f"assignments/{name}: {drift} differ from the solutions' stubs: run `kit release {name}`"


@pytest.fixture(scope="module", params=ASSIGNMENTS)
def bundle(request, course, tmp_path_factory):
    spec = course.assignment(request.param)
    out = tmp_path_factory.mktemp(f"bundle-{spec.name}")
    write_bundle(course, spec, out)
    return spec, out


def test_bundle_has_no_hidden_checks(bundle):
    spec, out = bundle
    files = files_under(out)
    assert not [f for f in files if "_hidden" in f or is_hidden_file(Path(f))]
    hidden_names = set()
    for path in spec.suite_dir.glob("test_*_hidden.py"):
        hidden_names |= {line.split("(")[0].removeprefix("def ").strip() for line in path.read_text().splitlines()
                         if line.startswith("def test_")}
    assert hidden_names, "the suite has hidden checks to keep back"
    text = "\n".join(b.decode(errors="replace") for b in files.values())
    leaked = sorted(n for n in hidden_names if n in text)
    assert not leaked, f"hidden check names in the bundle: {leaked}"
    public = {p.name for p in spec.suite_dir.iterdir() if p.is_file() and not is_hidden_file(p)
              and p.suffix in (".py", ".toml")}
    assert {Path(f).name for f in files if f.startswith(".kit/")} == public


def test_bundle_has_no_solution_code(bundle, course):
    """No distinctive line of a solution region in the stubs, and no run of 3 region lines anywhere.

    (Single lines like `self.register_parameter("bias", None)` may appear in the handout or in the
    public reference code, so elsewhere only runs of lines count.)
    """
    spec, out = bundle
    files = files_under(out)
    stripped = {f: "\n".join(line.strip() for line in b.decode(errors="replace").splitlines())
                for f, b in files.items()}
    stubs = {f: t for f, t in stripped.items() if f.startswith(spec.name + "/") and f.endswith(".py")}
    assert stubs
    checked = 0
    for path in (course.solutions / spec.name).glob("*.py"):
        inside, outside = solution_lines(path.read_text())
        assert inside, f"{path} has no solution region"
        for line in inside:
            # lines also outside the regions are legitimately in the stub; short ones prove nothing
            if line in outside or len(line) < 24 or line.startswith("#"):
                continue
            checked += 1
            hits = [f for f, t in stubs.items() if line in t.splitlines()]
            assert not hits, f"solution line {line!r} of {path.name} found in {hits}"
        code = [line for line in inside if line and not line.startswith("#")]
        for k in range(len(code) - 2):
            window = "\n".join(code[k:k + 3])
            if len(window) < 40:
                continue
            hits = [f for f, t in stripped.items() if window in t]
            assert not hits, f"solution lines {window!r} of {path.name} found in {hits}"
    assert checked, "no distinctive solution line was checked"
    assert "NotImplementedError" in (out / spec.name / spec.file).read_text()


def test_kit_check_inside_the_bundle_gives_full_public_marks(bundle, course, tmp_path):
    spec, out = bundle
    work = tmp_path / "bundle"
    shutil.copytree(out, work)
    shutil.copyfile(course.solutions / spec.name / spec.file, work / spec.name / spec.file)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KIT")}
    run = subprocess.run([KIT, "check", spec.name, "--json"], cwd=work, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    doc = json.loads(run.stdout)
    assert doc["score"] == doc["max_score"] > 0
    assert all(c["status"] in ("passed", "skipped") for c in doc["checks"])
    assert not any(c["hidden"] for c in doc["checks"])
    assert all(c["status"] != "skipped" or c["gpu"] for c in doc["checks"])


def test_kit_check_inside_the_bundle_on_the_stub_scores_zero(course, tmp_path):
    spec = course.assignment("hw1")
    write_bundle(course, spec, tmp_path)
    run = subprocess.run([KIT, "check", "hw1", "--json"], cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    doc = json.loads(run.stdout)
    assert doc["score"] == 0 and doc["max_score"] > 0
    assert any("not implemented yet" in c["message"] for c in doc["checks"])


def test_kit_release_command_writes_a_bundle(tmp_path):
    out = tmp_path / "release"
    run = subprocess.run([KIT, "release", "hw1", "--out", str(out), "--no-verify", "--course", str(ROOT)],
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert (out / "kit.toml").is_file() and (out / "hw1" / "my_linear.py").is_file()
    assert not list(out.rglob("*_hidden*"))


# -- the notebook form of the handout ---------------------------------------------------------------

@pytest.fixture(scope="module")
def notebooks(course, tmp_path_factory) -> dict[str, Path]:
    """Each assignment released with --notebook, as it would be today."""
    out = {}
    for name in ASSIGNMENTS:
        dest = tmp_path_factory.mktemp(f"notebook-{name}")
        write_student_files(course, course.assignment(name), dest, notebook=True)
        out[name] = dest
    return out


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_notebook_handout_holds_the_released_stub_and_handout(course, notebooks, name, tmp_path):
    """No drift between the two forms: the notebook's code is assignments/hwN's stub, its text the README."""
    spec = course.assignment(name)
    released = course.assignments / name
    assert sorted(p.name for p in notebooks[name].iterdir()) == sorted(["README.md", spec.notebook])
    nb = nbformat.read(notebooks[name] / spec.notebook, as_version=4)
    nbformat.validate(nb)
    stub = (released / spec.file).read_text()
    solution_cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert "\n\n\n".join(c.source for c in solution_cells) + "\n" == stub  # cut only before a class or function
    assert nb.metadata.kit == {"assignment": name, "file": spec.file, "stub": definitions_digest(stub)}
    readme = (released / "README.md").read_text()
    handout = [c.source for c in nb.cells if c.id.startswith("handout-")]
    assert "\n\n".join(handout) == readme.strip()
    assert nb.cells[-1].source == f"%load_ext kit.cli\n%kit check {name}"
    rules = next(c.source for c in nb.cells if c.id == "how-to-work")
    for words in ("only definitions", "left out", "%kit check", "Colab", "save", "cell 5, line 3"):
        assert words.lower() in rules.lower(), words
    write_student_files(course, spec, tmp_path, notebook=True)  # stable: the same bytes, the same cell ids
    assert (tmp_path / spec.notebook).read_bytes() == (notebooks[name] / spec.notebook).read_bytes()


def test_the_notebook_handout_is_an_nbgrader_student_notebook(course, notebooks):
    from nbgrader.nbgraderformat import MetadataValidator
    from nbgrader.utils import compute_checksum

    for name, folder in notebooks.items():
        nb = nbformat.read(folder / course.assignment(name).notebook, as_version=4)
        MetadataValidator().validate_nb(nb)
        graded = [c for c in nb.cells if "nbgrader" in c.metadata]
        assert all(c.metadata.nbgrader.checksum == compute_checksum(c) for c in graded)
        assert all(c.metadata.nbgrader.locked and not c.metadata.get("editable", True)
                   for c in nb.cells if c.cell_type == "markdown")
        code = [c for c in graded if c.cell_type == "code"]
        assert [c.metadata.nbgrader.grade_id for c in code] == [c.id for c in code]
        assert code[-1].metadata.nbgrader.locked and all(c.metadata.nbgrader.solution for c in code[:-1])


def test_a_notebook_release_replaces_the_py_stub_and_back(course, tmp_path):
    spec = course.assignment("hw1")
    write_student_files(course, spec, tmp_path)
    write_student_files(course, spec, tmp_path, notebook=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "hw1.ipynb"]
    write_student_files(course, spec, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "my_linear.py"]


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_the_notebook_self_check_is_green(course, name):
    """`kit release hwN --notebook`: the solution notebook scores full marks, the stub notebook zero."""
    from kit.grader.launch import Limits
    from kit.grader.release import self_check
    from kit.grader.sandbox import make_launcher

    spec = course.assignment(name)
    launcher = make_launcher(Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget), require=False)
    try:
        solved, stubbed = self_check(course, spec, launcher, notebook=True)
    finally:
        launcher.close()
    assert solved.graded_file == stubbed.graded_file == spec.notebook
    assert solved.score == solved.max_score > 0 and stubbed.score == 0


def test_a_course_can_hand_out_notebooks_by_default(tmp_path):
    course = tmp_path / "course"
    shutil.copytree(ROOT / "solutions" / "hw1", course / "solutions" / "hw1")
    (course / "kit.toml").write_text(f'[course]\nsuites = "{ROOT / "grader" / "suites"}"\nassignments = "out"\n'
                                     'solutions = "solutions"\nhandout = "notebook"\n')
    run = subprocess.run([KIT, "release", "hw1", "--no-verify"], cwd=course, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert sorted(p.name for p in (course / "out" / "hw1").iterdir()) == ["README.md", "hw1.ipynb"]
    run = subprocess.run([KIT, "release", "hw1", "--no-verify", "--py"], cwd=course, capture_output=True, text=True)
    assert sorted(p.name for p in (course / "out" / "hw1").iterdir()) == ["README.md", "my_linear.py"]
    (course / "kit.toml").write_text((course / "kit.toml").read_text().replace('"notebook"', '"ipynb"'))
    run = subprocess.run([KIT, "release", "hw1", "--no-verify"], cwd=course, capture_output=True, text=True)
    assert run.returncode == 2 and "handout" in run.stderr and "'py', 'notebook'" in run.stderr
