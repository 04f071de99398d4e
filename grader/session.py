"""Running a suite against one submission, in this process, and getting its Report."""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest

from . import plugin
from .course import Assignment
from .plugin import KitSession
from .report import ERROR, CheckResult, Report
from .runner import Limits, Runner, make_runner

PYTEST_ARGS = ["-p", "no:cacheprovider", "-p", "no:stepwise", "-p", "no:junitxml", "-p", "no:doctest",
               "-p", "no:unraisableexception", "-p", "no:threadexception", "--capture=sys", "--tb=native", "-p", "no:logging",
               "--import-mode=importlib", "-q", "--no-header", "-o", "addopts=", "-o", "python_files=test_*.py",
               "-W", "ignore::pytest.PytestAssertRewriteWarning"]


def run_suite(assignment: Assignment, submission: Path, *, runner: Runner | None = None, hidden: bool = False,
              keyword: str | None = None, limits: Limits | None = None, launcher=None) -> Report:
    """Grade `submission` with the assignment's checks (public ones, plus hidden ones if asked)."""
    runner = runner or make_runner(submission, assignment, limits=limits, launcher=launcher)
    session = KitSession(submission, assignment, runner)
    args = [*PYTEST_ARGS, "--rootdir", str(assignment.suite_dir), "-c", os.devnull,
            *map(str, assignment.suite_files(hidden))]
    if keyword:
        args += ["-k", keyword]
    os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            code = pytest.main(args, plugins=[plugin, session])
    finally:
        runner.close()
    report = session.report()
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) and not report.checks:
        report.checks.append(CheckResult("suite", "main", ERROR, 0.0, 0.0,
                                         f"the suite could not run (pytest exit {int(code)}):\n{out.getvalue()[-3000:]}"))
    return report
