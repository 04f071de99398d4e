"""What a student reads from `kit check`, run as a student runs it (click's CliRunner, or a real process).

A file that cannot be used and a forbidden API are each said once, at the top, the way Python says
it; no failed check's message is cut; a wrong shape is reported as a shape, never as an operation the
student did not write; the report fits 80 columns and carries no colour where there is no terminal;
`--watch` checks again when the graded file is saved.
"""
from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from kit.cli.main import cli
from kit.grader.report import FAILED
from tests.conftest import ROOT, grade

SUBMISSIONS = ROOT / "tests" / "submissions"
COLOUR = re.compile(r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|9[0-7]|38;[25])[;m]")  # a foreground colour, not bold or dim


def check(assignment: str, folder: Path, *args: str, env: dict | None = None):
    return CliRunner().invoke(cli, ["check", assignment, "--course", str(ROOT), "--path", str(folder), *args],
                              catch_exceptions=False, env=env)


def words(text: str) -> str:
    """`text` with every run of white space one space: a message wrapped at word boundaries reads the same."""
    return " ".join(text.split())


def no_table_rows(output: str, ids: list[str]) -> None:
    for check_id in ids:
        assert not re.search(rf"^\S │ {re.escape(check_id)}\s", output, re.M), output


def hw1_with(tmp_path: Path, old: str, new: str) -> Path:
    """The hw1 solution with one edit: `old` (which must be there) replaced by `new`."""
    folder = tmp_path / "hw1"
    folder.mkdir()
    text = (ROOT / "solutions" / "hw1" / "my_linear.py").read_text()
    assert old in text
    (folder / "my_linear.py").write_text(text.replace(old, new, 1))
    return folder


def test_a_syntax_error_is_said_once_as_python_says_it(tmp_path):
    result = check("hw1", SUBMISSIONS / "hw1" / "syntax_error")
    out = result.output
    assert result.exit_code == 1
    assert out.count("SyntaxError") == 1 and out.count("could not import my_linear.py") == 1, out
    assert re.search(r'File "my_linear\.py", line 7\n +def forward\(self, x\)\n +\^\n', out), out
    assert "What to do: fix the code at the caret" in out and "score: 0 / 14" in out
    assert "12 checks not run (14 points): see above" in out
    no_table_rows(out, ["forward", "input_grad", "init_bounds"])


def test_a_missing_class_is_said_once_with_what_the_file_defines():
    result = check("hw1", SUBMISSIONS / "hw1" / "missing_class")
    out = result.output
    assert out.count("does not define MyLinear") == 1, out
    assert "defines MyLinearLayer" in out and "is MyLinearLayer meant to be MyLinear?" in out
    assert "score: 0 / 14" in out
    no_table_rows(out, ["forward", "input_grad", "init_bounds"])


def test_a_failing_import_is_said_once_with_its_traceback(tmp_path):
    folder = hw1_with(tmp_path, "import torch\n", "import torch\nimport torch_helpers_of_mine\n")
    out = check("hw1", folder).output
    assert words(out).count("could not import my_linear.py: ModuleNotFoundError: No module named "
                            "'torch_helpers_of_mine' (my_linear.py, line 5)") == 1, out
    assert out.count("No module named") == 1 and out.count("Traceback (most recent call last)") == 1, out
    assert "import torch_helpers_of_mine" in out and "What to do: check the module's name" in out
    no_table_rows(out, ["forward", "input_grad"])


def test_a_missing_file_names_what_the_folder_holds(tmp_path):
    (tmp_path / "my_linnear.py").write_text("")
    out = check("hw1", tmp_path).output
    assert out.count("my_linear.py (or hw1.ipynb) not found") == 1, out
    assert "That folder holds my_linnear.py: is it your work under another name?" in out


def test_a_forbidden_api_is_one_verdict_naming_the_call_its_line_and_the_rule():
    result = check("hw3", SUBMISSIONS / "hw3" / "forbidden")
    out = result.output
    assert out.count("hw3 scores 0 on every check: it uses a forbidden API") == 1, out
    assert out.count("F.cross_entropy(logits") == 1, out  # the line of source, shown once with a caret under the call
    assert re.search(r'File "focal_loss\.py", line 48\n.*-F\.cross_entropy\(.*\n +\^{15}\n', out), out
    assert "(forbidden in hw3)" in out and "score: 0 / 22" in out
    assert "16 checks of FocalLoss scored 0 (22 points): see above" in out
    no_table_rows(out, ["ce_value", "gamma_grad", "reduction_sum"])


def test_no_failed_check_message_is_cut(course):
    folder = SUBMISSIONS / "hw3" / "log_softmax_naive"
    report = grade(course.assignment("hw3"), folder, hidden=False)
    failed = [c for c in report.checks if c.status == FAILED]
    assert any(len(c.message.splitlines()[0]) > 90 for c in failed)  # what was cut before
    out = words(check("hw3", folder).output)
    for c in failed:
        assert words(c.message) in out, c.message


def test_a_forward_of_the_wrong_shape_is_told_in_shapes(course, tmp_path):
    """hw5's forward returning (S, N, E): the checks say so, not which of their own steps could not use it."""
    folder = tmp_path / "hw5"
    folder.mkdir()
    text = (ROOT / "solutions" / "hw5" / "attention.py").read_text()
    old = "return self.out_proj(out), "
    assert old in text
    (folder / "attention.py").write_text(text.replace(old, "return self.out_proj(out).transpose(0, 1), "))
    report = grade(course.assignment("hw5"), folder, hidden=True)
    failed = [c for c in report.checks if c.status == FAILED]
    assert len(failed) >= 10
    for c in failed:
        assert "__" not in c.message and "Tensor." not in c.message and "raised" not in c.message, c.message
    message = next(c.message for c in failed if c.id == "self_attention")  # the suite compares the shape first
    assert "has shape (5, 2, 8)" in message and "(2, 5, 8)" in message, message
    out = check("hw5", folder).output
    assert "__mul__" not in out and "has shape (5, 2, 8)" in out


def test_it_reads_on_80_columns_without_colour_where_there_is_no_terminal():
    folder = SUBMISSIONS / "hw5" / "scaled_by_embed_dim"
    plain = subprocess.run([sys.executable, "-m", "kit.cli", "check", "hw5", "--course", str(ROOT), "--path",
                            str(folder)], capture_output=True, text=True, timeout=300,
                           env={k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "NO_COLOR",
                                                                                 "COLUMNS", "TERM")})
    out = plain.stdout
    assert plain.returncode == 1 and "\x1b" not in out, out
    table = out[:out.index("\n\n")].splitlines()[1:]  # the title, then a row a check
    assert len(table) > 10 and all(len(line) <= 80 for line in table), out
    for row in table[2:]:  # under the header and its rule, each check's id whole on its row: nothing wrapped
        assert re.match(r"^\S │ [a-z_0-9\[\].]+\s+│", row), row
    coloured = check("hw5", folder, env={"FORCE_COLOR": "1", "NO_COLOR": None})
    assert COLOUR.search(coloured.output)  # on a terminal, colour...
    honoured = check("hw5", folder, env={"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[1m" in honoured.output and not COLOUR.search(honoured.output)  # ...unless NO_COLOR: bold only


def test_watch_checks_again_when_the_graded_file_is_saved(tmp_path):
    folder = tmp_path / "hw1"
    shutil.copytree(ROOT / "solutions" / "hw1", folder)
    watcher = subprocess.Popen([sys.executable, "-m", "kit.cli", "check", "hw1", "--course", str(ROOT), "--path",
                                str(folder), "--watch", "-k", "forward"],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               # Ctrl-C as at a terminal, even when these tests run as a background job (its
                               # shell makes them ignore SIGINT, which the watcher would then inherit)
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in watcher.stdout], daemon=True).start()
    seen: list[str] = []

    def wait_for(text: str, within: float = 120) -> None:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                seen.append(lines.get(timeout=0.5))
            except queue.Empty:
                continue
            if text in seen[-1]:
                return
        pytest.fail(f"no {text!r} within {within} s:\n{''.join(seen)}")

    try:
        wait_for("score: 4 / 4")
        wait_for("watching")
        graded = folder / "my_linear.py"
        graded.write_text(graded.read_text().replace("def forward(self, x: torch.Tensor) -> torch.Tensor:",
                                                     "def forward(self, x: torch.Tensor) -> torch.Tensor", 1))
        wait_for("SyntaxError: expected ':'")
        wait_for("score: 0 / 4")
        wait_for("watching")
        (folder / "notes.txt").write_text("not a source")  # not the student's code: no new run
        graded.write_text((ROOT / "solutions" / "hw1" / "my_linear.py").read_text())
        wait_for("score: 4 / 4")
        wait_for("watching")
        watcher.send_signal(signal.SIGINT)  # Ctrl-C
        assert watcher.wait(timeout=30) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    assert sum("changed: checking again" in line for line in seen) == 2, "".join(seen)


def test_child_backward_says_what_is_wrong_with_the_output_before_computing():
    """`child.backward(out, grad)`, for suites: the student's output checked first, in the student's terms."""
    import torch

    from kit.grader.child.runtime import Helpers, WrongResult

    grad = torch.ones(2, 3, dtype=torch.float64)
    cases = [((torch.zeros(3, 2, dtype=torch.float64, requires_grad=True)), "has shape (3, 2); expected (2, 3)"),
             ((torch.zeros(2, 3, requires_grad=True)), "has dtype float32; expected float64"),
             ((torch.zeros(2, 3, dtype=torch.float64)), "does not require grad"),
             ([[0.0] * 3] * 2, "is a list, not a tensor")]
    for output, said in cases:
        with pytest.raises(WrongResult, match=re.escape(said)):
            Helpers.backward(output, grad)
    leaf = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    Helpers.backward(leaf * 2, grad)
    assert torch.equal(leaf.grad, torch.full((2, 3), 2.0, dtype=torch.float64))
