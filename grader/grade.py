"""Grading one submission: the one function every front end calls.

`kit check` (and, through it, the notebook magic `%kit check`), `kit gradescope`, `kit release`'s
self-check and the grading workers of `kit grade` (local or on a Ray cluster) all call `grade_submission`; the pytest
plugin's plain `pytest --submission` mode uses kit.grader.runner.open_runner, its first half. Nothing else
puts a launcher, a runner and a suite together. A process configures pytest and collects a suite once
(`CollectedSuite`), and runs its checks again for every submission it grades.
"""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

from .child.wire import clean_text
from .course import Assignment, ConfigError
from .launch import Launcher
from .report import SANDBOX, Note, Report
from .runner import open_runner

PYTEST_ARGS = ["-p", "no:cacheprovider", "-p", "no:stepwise", "-p", "no:junitxml", "-p", "no:doctest",
               "-p", "no:unraisableexception", "-p", "no:threadexception", "-p", "no:logging", "-p", "no:terminal",
               "-p", "no:faulthandler", "--capture=no", "--import-mode=importlib", "-o", "addopts=",
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
        runner.start()  # the child imports torch while this process does the same
        try:
            from . import plugin
            from .reference import persisted, store_path

            session = plugin.KitSession(submission, assignment, runner)
            suite = collected_suite(assignment, hidden, keyword)
            with persisted(store_path(assignment.suite_dir) if keep_references and not hidden else None):
                suite.run(session)
        finally:
            runner.close()
        if not session.complete:
            raise NotGraded("the checks did not run to their end")
        report = session.report()
        if launcher.warning:
            report.notes.append(Note(SANDBOX, launcher.warning))
        return report
    finally:
        runner.graded.discard()


class CollectedSuite:
    """pytest configured, and a suite collected, once per process: every submission graded here runs the same
    checks again (pytest re-runs an item as pytest-rerunfailures does, with a fresh request), which spares each
    submission pytest's start-up and collection (about 17 ms). Spent once anything in it raised."""

    def __init__(self, assignment: Assignment, hidden: bool, keyword: str | None) -> None:
        import pytest
        from _pytest.config import _prepareconfig  # pytest.main's first half, which has no public name

        from . import plugin

        # rooted at "/", pytest names each suite module after its full path: two suites never share a module
        args = [*PYTEST_ARGS, "--rootdir", "/", "--confcutdir", str(assignment.suite_dir), "-c", os.devnull,
                *map(str, assignment.suite_files(hidden)), *(["-k", keyword] if keyword else [])]
        os.environ.setdefault("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
        self.errors: list[str] = []  # what went wrong while collecting (a suite file that does not import)
        with _quiet():
            self.config = _prepareconfig(args, plugins=[plugin, self])
            # what --tb=native would set (the terminal plugin that owns --tb is off): a failing check's
            # traceback formatted as Python does, not pytest's long style, which parses every file on the stack
            self.config.option.tbstyle = "native"
            try:
                self.config._do_configure()
                self.session = pytest.Session.from_config(self.config)
                self.config.hook.pytest_sessionstart(session=self.session)
                self.config.hook.pytest_collection(session=self.session)
            except Exception as exc:  # noqa: BLE001 - a -k pytest cannot read, a hook of the suite's that raised
                self.errors.append(f"{type(exc).__name__}: {exc}")
        if self.errors or not self.session.items:
            with _quiet():
                self.config._ensure_unconfigure()
            if self.errors:
                raise NotGraded("the checks could not be collected:\n" + clean_text("\n".join(self.errors))[-3000:])
            raise NotGraded(f"no check matches -k {keyword!r}" if keyword else "the suite has no checks")
        self.items = self.session.items

    def pytest_collectreport(self, report) -> None:
        if report.failed:
            self.errors.append(str(report.longrepr))

    def run(self, session) -> None:
        """Run every check for `session` (a kit.grader.plugin.KitSession); ConfigError when the suite does
        not match its assignment.toml, NotGraded when anything else stopped the run."""
        from .plugin import SESSION

        manager = self.config.pluginmanager
        manager.register(session, SESSION)
        try:
            with _quiet():
                session.check_collected(self.items)
                for index, item in enumerate(self.items):
                    following = self.items[index + 1] if index + 1 < len(self.items) else None
                    item.ihook.pytest_runtest_protocol(item=item, nextitem=following)
        except ConfigError:
            raise
        except KeyboardInterrupt:  # Ctrl-C stops kit check (--watch too), as it would anywhere else
            self.close()
            raise
        except Exception as exc:  # a hook, or the suite itself, failed
            self.close()
            raise NotGraded(f"the checks did not run to their end ({type(exc).__name__}: "
                            f"{clean_text(str(exc))[:2000]})") from exc
        finally:
            manager.unregister(session)

    def close(self) -> None:
        """Forget this suite (the next submission collects it again) and let pytest clean up after it."""
        for key, suite in list(_suites.items()):
            if suite is self:
                del _suites[key]
        with _quiet():
            self.config._ensure_unconfigure()


_suites: dict[tuple, CollectedSuite] = {}


def collected_suite(assignment: Assignment, hidden: bool, keyword: str | None) -> CollectedSuite:
    """This process's collected suite for these checks (its modules, like any, are imported once a process)."""
    key = (str(assignment.suite_dir), hidden, keyword)
    if key not in _suites:
        _suites[key] = CollectedSuite(assignment, hidden, keyword)
    return _suites[key]


@contextlib.contextmanager
def _quiet():
    """Whatever pytest or a suite prints goes nowhere: the report says what counts."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        yield
