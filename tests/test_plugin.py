"""A suite run with plain pytest (`pytest grader/suites/hwN --submission DIR`), as an instructor would."""
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_plain_pytest_says_when_there_is_no_sandbox():
    """Without bubblewrap on PATH the summary carries kit check's one-line warning."""
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # the venv's bin: python, pytest, no bwrap
    # set by grade_submission in this process; the plugin loads by entry point
    env.pop("PYTEST_DISABLE_PLUGIN_AUTOLOAD", None)
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "grader/suites/hw1", "--submission", "solutions/hw1", "-p", "no:cacheprovider",
         "-k", "test_forward and not leading"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "kit: hw1 score 2 / 2" in out.stdout, out.stdout
    assert "note: no sandbox: bubblewrap not installed" in out.stdout, out.stdout
