"""`kit release`: what students get holds no solution and no hidden check, and still works on its own.

- `assignments/hwN/` is exactly what `kit release` generates from `solutions/hwN/` (no drift);
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

import pytest

from kit.grader.course import is_hidden_file
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
