"""Grading one submission: the one function every front end calls.

`kit check` (and, through it, the notebook magic `%kit check`), `kit gradescope`, `kit release`'s
self-check and the grading workers of `kit grade` (local or on a Ray cluster) all call `grade_submission`; the pytest
plugin's plain `pytest --submission` mode uses kit.grader.runner.open_runner, its first half. Nothing else
puts a launcher, a runner and a suite together.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from .child.wire import clean_text
from .course import Assignment
from .launch import Launcher
from .report import SANDBOX, Note, Report
from .runner import open_runner

PYTEST_ARGS = ["-p", "no:cacheprovider", "-p", "no:stepwise", "-p", "no:junitxml", "-p", "no:doctest",
               "-p", "no:unraisableexception", "-p", "no:threadexception", "-p", "no:logging",
               "--capture=sys", "--tb=native", "-rN", "--import-mode=importlib", "-q", "--no-header", "-o", "addopts=",
               "-o", "python_files=test_*.py", "-W", "ignore::pytest.PytestAssertRewriteWarning"]


class NotGraded(Exception):
    """The suite did not run to its end, so there is no report: the submission must be graded again."""


def grade_submission(assignment: Assignment, submission: Path, *, launcher: Launcher, hidden: bool,
                     keyword: str | None = None, keep_references: bool = False) -> Report:
    """Run the assignment's checks (hidden ones too if asked) on `submission` and return its report.

    `submission` is a student's folder (its .py file or its notebook is graded: kit.grader.graded), or a
    notebook file.

    `keep_references` (kit check, public checks only) keeps the torch references on disk for the
    student's next run (kit.grader.reference.persisted).

    The student's code runs only in the child `launcher` starts. Raises NotGraded when the suite
    did not run every one of its checks (whatever the child sent, a report is never partial), and
    ConfigError when the suite does not match its assignment.toml.
    """
    runner = open_runner(assignment, submission, launcher)
    try:
        return _run_suite(assignment, submission, runner, launcher, hidden, keyword, keep_references)
    finally:
        runner.graded.discard()


def _run_suite(assignment: Assignment, submission: Path, runner, launcher: Launcher, hidden: bool,
               keyword: str | None, keep_references: bool) -> Report:
    runner.start()  # the child imports torch while this process does the same
    import pytest

    from . import plugin
    from .reference import persisted, store_path

    session = plugin.KitSession(submission, assignment, runner)
    # rooted at "/", pytest names each suite module after its full path: two suites never share a module
    args = [*PYTEST_ARGS, "--rootdir", "/", "--confcutdir", str(assignment.suite_dir), "-c", os.devnull,
            *map(str, assignment.suite_files(hidden))]
    if keyword:
        args += ["-k", keyword]
    os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    out = io.StringIO()
    store = store_path(assignment.suite_dir) if keep_references and not hidden else None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), persisted(store):
            code = pytest.main(args, plugins=[plugin, session])
    finally:
        runner.close()
    if session.config_error is not None:
        raise session.config_error
    if code not in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED) or not session.complete:
        if code == pytest.ExitCode.NO_TESTS_COLLECTED and keyword:
            raise NotGraded(f"no check matches -k {keyword!r}")
        raise NotGraded(f"the checks did not run to their end (pytest exit {int(code)}):\n"
                        + clean_text(out.getvalue()[-3000:]))
    report = session.report()
    if launcher.warning:
        report.notes.append(Note(SANDBOX, launcher.warning))
    return report
