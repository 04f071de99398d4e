"""`kit similarity`: copies are found through the usual disguises, independent solutions are not flagged.

The class: two students who copied (tests/similarity/hw6: one renamed every variable and
argument, reordered classes and methods, rewrote the comments and reformatted), the course's
own solution and the independently written alt_correct fixture, two students who handed in
the bare stub, one whose file is not Python and one with no file. Every assignment's
solution and alt_correct, written independently, stay below the default threshold; an
automatic disguise of each solution (names renamed, definitions reordered, comments and
docstrings gone, code reformatted) is flagged.
"""
from __future__ import annotations

import ast
import builtins
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from kit.cli.main import cli
from kit.grader.course import load_course
from kit.grader.similarity import THRESHOLD, compare, kgram_hashes, normalize
from tests.conftest import ROOT

FIXTURES = ROOT / "tests" / "similarity" / "hw6"
COURSE = load_course(ROOT)
HOSTILE = 'class ResNet:  # </td></tr></table><script>alert("x")</script>\n    name = "<img src=x onerror=alert(1)>"\n'


def source(hw: str, where: str) -> str:
    spec = COURSE.assignment(hw)
    folder = {"solution": ROOT / "solutions" / hw, "stub": ROOT / "assignments" / hw,
              "alt_correct": ROOT / "tests" / "submissions" / hw / "alt_correct"}[where]
    return (folder / spec.file).read_text()


def disguise(text: str) -> str:
    """What a student who copies does to hide it: every name of their own renamed (the names the handout
    prescribes kept, or the checks would fail), classes, functions and methods in reverse order, comments and
    docstrings gone, the code reformatted."""
    tree = ast.parse(text)
    keep = set(dir(builtins)) | {"self", "cls"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            keep.update(a.asname or a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef):
            keep.add(node.name)  # the contract: class and method names, class attributes
            keep.update(t.id for s in node.body if isinstance(s, ast.Assign) for t in s.targets
                        if isinstance(t, ast.Name))
            if ast.get_docstring(node) is not None:
                node.body = node.body[1:] or [ast.Pass()]
    renames: dict[str, str] = {}

    def new(name: str) -> str:
        return name if name in keep else renames.setdefault(name, f"q{len(renames)}_{name[::-1]}")

    class Rename(ast.NodeTransformer):
        def visit_Name(self, node: ast.Name) -> ast.Name:
            node.id = new(node.id)
            return node

        def visit_arg(self, node: ast.arg) -> ast.arg:
            node.arg = new(node.arg)
            return node

        def visit_keyword(self, node: ast.keyword) -> ast.keyword:
            self.generic_visit(node)
            return node  # keyword names belong to the callee (torch's), never renamed

    tree = Rename().visit(tree)
    for node in [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef))]:
        defs = [s for s in node.body if isinstance(s, ast.FunctionDef | ast.ClassDef)]
        rest = [s for s in node.body if not isinstance(s, ast.FunctionDef | ast.ClassDef)]
        node.body = rest + defs[::-1]
    if ast.get_docstring(tree) is not None:
        tree.body = tree.body[1:]
    return ast.unparse(tree)


# -- normalisation --------------------------------------------------------------------------------------

def test_names_comments_formatting_and_order_do_not_matter():
    a = '''import torch.nn.functional as F
from torch import nn


class Block(nn.Module):
    """A block."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, kernel_size=3, padding=1)  # same size

    def forward(self, x):
        y = self.conv(x)
        return F.relu(y + x)
'''
    b = '''from torch import nn
import torch.nn.functional as functional
class Block(nn.Module):
    def forward(self, inputs):
        # residual
        out = self.layer(inputs)
        return functional.relu(out + inputs)
    def __init__(self, c):
        super().__init__()
        self.layer = nn.Conv2d(
            c,
            c,
            kernel_size=3,
            padding=1,
        )
'''
    assert normalize("a", a).tokens == normalize("b", b).tokens
    tokens = normalize("a", a).tokens
    assert {"Conv2d", "relu", "kernel_size", "padding"} <= set(tokens)  # the API stays: it is not the student's
    assert not {"channels", "conv", "x", "y", "F", "int", "None"} & set(tokens)
    different = a.replace("F.relu(y + x)", "F.relu(y) + x")
    assert normalize("c", different).tokens != tokens


def test_the_hash_of_a_kgram_is_the_same_in_every_process():
    """Python's own hash() of strings changes from one run to the next: results would too."""
    code = ("import sys; from kit.grader.similarity import kgram_hashes; "
            "print(kgram_hashes(['V', '=', 'V', '.', 'Conv2d', '(', 'V', ',', 'V', ')', 'V', '=', 'V']))")
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(runs) == 1
    assert runs.pop().strip() == str(kgram_hashes(["V", "=", "V", ".", "Conv2d", "(", "V", ",", "V", ")", "V", "=",
                                                   "V"]))


@pytest.mark.parametrize("hw", COURSE.names())
def test_independent_solutions_are_not_flagged(hw):
    codes = {w: normalize(w, source(hw, w)) for w in ("solution", "alt_correct")}
    result = compare(hw, codes, normalize("stub", source(hw, "stub")))
    pairs = {p.students: p for p in result.pairs}
    pair = pairs.get(("alt_correct", "solution"))
    assert pair is None or (not pair.flagged and pair.similarity < THRESHOLD), pair


@pytest.mark.parametrize("hw", COURSE.names())
def test_a_disguised_copy_of_every_solution_is_flagged(hw):
    original = source(hw, "solution")
    copied = disguise(original)
    assert normalize("x", copied).tokens != [] and copied != original
    codes = {"copier": normalize("copier", copied), "original": normalize("original", original),
             "alt_correct": normalize("alt_correct", source(hw, "alt_correct"))}
    result = compare(hw, codes, normalize("stub", source(hw, "stub")))
    top = result.pairs[0]
    assert top.students == ("copier", "original") and top.flagged and top.similarity >= 0.95, result.pairs
    assert not any(p.flagged for p in result.pairs[1:]), result.pairs


# -- a class, through the command -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def course(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("similarity") / "course"
    root.mkdir()
    (root / "kit.toml").write_text(f'[course]\nsuites = "{ROOT / "grader" / "suites"}"\n'
                                   f'assignments = "{ROOT / "assignments"}"\n')
    files = {"original": FIXTURES / "original.py", "disguised": FIXTURES / "disguised.py",
             "solution": ROOT / "solutions" / "hw6" / "resnet.py",
             "alt": ROOT / "tests" / "submissions" / "hw6" / "alt_correct" / "resnet.py",
             "stub1": ROOT / "assignments" / "hw6" / "resnet.py", "stub2": ROOT / "assignments" / "hw6" / "resnet.py"}
    for student, path in files.items():
        (root / "submitted" / student / "hw6").mkdir(parents=True)
        shutil.copy(path, root / "submitted" / student / "hw6" / "resnet.py")
    (root / "submitted" / "broken" / "hw6").mkdir(parents=True)
    (root / "submitted" / "broken" / "hw6" / "resnet.py").write_text(HOSTILE + "def resnet18(:\n")
    (root / "submitted" / "nothing" / "hw6").mkdir(parents=True)
    return root


def run(course: Path, *args: str):
    return CliRunner().invoke(cli, ["similarity", "hw6", "--course", str(course), *args], catch_exceptions=False)


def test_the_copy_is_flagged_and_nothing_else(course):
    result = run(course, "--json", "--min", "0")
    assert result.exit_code == 1, result.output  # something is flagged
    doc = json.loads(result.output)
    assert doc["assignment"] == "hw6"
    pairs = doc["pairs"]
    assert pairs[0]["students"] == ["disguised", "original"] and pairs[0]["flagged"]
    assert pairs[0]["similarity"] >= 0.9
    assert [p["similarity"] for p in pairs] == sorted((p["similarity"] for p in pairs), reverse=True)
    assert all(0.0 <= p["similarity"] <= 1.0 for p in pairs)
    assert [p for p in pairs if p["flagged"]] == pairs[:1]
    for p in pairs[1:]:
        assert p["similarity"] < THRESHOLD, p
    listed = {tuple(p["students"]) for p in pairs}
    assert ("stub1", "stub2") not in listed  # the stub is boilerplate: two bare stubs share nothing
    assert any("broken: not valid Python" in n for n in doc["notes"])
    assert any("nothing: no resnet.py" in n for n in doc["notes"])


def test_the_html_report_links_both_students_and_escapes_their_code(course, tmp_path):
    out = tmp_path / "report.html"
    result = run(course, "--out", str(out))
    assert result.exit_code == 1 and "disguised & original" in result.output, result.output
    page = out.read_text()
    first = page.index('id="pair-1"')
    heading = page[first:page.index("</h2>", first)]
    for student in ("disguised", "original"):
        href = os.path.relpath(course / "submitted" / student / "hw6" / "resnet.py", tmp_path)
        assert f'href="{href}"' in heading
    assert 'class="m0" title="match 1"' in page  # matching lines are highlighted


def test_student_code_in_the_report_is_escaped(tmp_path):
    root = tmp_path / "course"
    root.mkdir()
    (root / "kit.toml").write_text(f'[course]\nsuites = "{ROOT / "grader" / "suites"}"\n'
                                   f'assignments = "{ROOT / "assignments"}"\n')
    for student, text in (("ann", HOSTILE + (FIXTURES / "original.py").read_text()),
                          ("bob", (FIXTURES / "disguised.py").read_text())):
        (root / "submitted" / student / "hw6").mkdir(parents=True)
        (root / "submitted" / student / "hw6" / "resnet.py").write_text(text)
    result = run(root, "--out", str(tmp_path / "report.html"))
    assert result.exit_code == 1, result.output
    page = (tmp_path / "report.html").read_text()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page  # shown, as text
    assert "<script>" not in page and "<img" not in page


def test_threshold_and_usage_errors(course, tmp_path):
    assert run(course, "--threshold", "1.5").exit_code == 2
    lonely = tmp_path / "lonely"
    (lonely / "ann" / "hw6").mkdir(parents=True)
    result = run(course, str(lonely))
    assert result.exit_code == 2 and "fewer than two submissions" in result.output
    result = run(course, str(tmp_path / "missing"))
    assert result.exit_code == 2 and "no folder" in result.output
    relaxed = json.loads(run(course, "--json", "--threshold", "0.1").output)
    assert sum(p["flagged"] for p in relaxed["pairs"]) > 1
