"""The pytest plugin that turns a suite into a grader.

Loaded by `grade_submission` (kit.grader.grade), and by plain pytest through its entry point,
so an instructor can run `pytest grader/suites/hw1 --submission PATH` and see the same
verdicts. It supplies the `student` and `child` fixtures, checks and reads the points,
component, gpu and hidden markers, turns each check's outcome into a `CheckResult`, and
says once what is wrong with the submission as a whole (a file that cannot be used, a
forbidden API) instead of on every check.
"""
from __future__ import annotations

import ast
import functools
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest

from .course import Assignment, ConfigError, is_hidden_file, load_assignment
from .device import NotEmulated
from .files import read_regular, within
from .forbidden import scan_files, why
from .problems import Use, forbidden, missing_name
from .remote import HELPERS, STUDENT, CheckFailed, MissingName, Remote
from .report import (
    ERROR,
    FAILED,
    FORBIDDEN,
    GPU,
    NO_CUDA,
    NOT_EMULATED,
    PASSED,
    SANDBOX,
    SKIPPED,
    UNUSABLE,
    CheckResult,
    Note,
    Problem,
    Report,
)
from .runner import ChildError, Runner, SubmissionBroken, open_runner

SESSION = "kit-session"
NO_CUDA_MESSAGE = "not run: no CUDA device"
MAX_MESSAGE = 8_000  # characters of one check's message or one problem kept (what the child sent is in it)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kit", "kit grading")
    group.addoption("--submission", metavar="DIR", help="grade the student files in DIR against this suite")


def pytest_configure(config: pytest.Config) -> None:
    for line in ("points(n): points a check is worth (default 1)",
                 "component(name): the graded component a check belongs to (assignment.toml's [components])",
                 "gpu: needs a CUDA device; reported as not run without one",
                 "hidden: held back from students; only in *_hidden.py files"):
        config.addinivalue_line("markers", line)
    submission = config.getoption("submission", None)
    if submission and _session_key not in config.stash:
        config.pluginmanager.register(KitSession(Path(submission)), SESSION)


def _session(request: pytest.FixtureRequest) -> KitSession:
    session = request.config.stash.get(_session_key, None)
    if session is None:
        pytest.fail("this is a kit suite: run it with --submission DIR (or use `kit check`)", pytrace=False)
    return session


@pytest.fixture
def student(request: pytest.FixtureRequest):
    """Proxy of the student's module, living in the sandboxed child."""
    remote = _session(request).remote_for(request.node)
    return remote.root(STUDENT, remote.module_name)


@pytest.fixture
def child(request: pytest.FixtureRequest):
    """Proxy of kit's trusted helpers in the child (`child.torch`, `child.leaf`, ...)."""
    remote = _session(request).remote_for(request.node)
    return remote.root(HELPERS, "child")


def check_id(item: pytest.Item) -> str:
    return item.name.removeprefix("test_")


class KitSession:
    """Grades one submission: owns its runner and collects a result per check."""

    def __init__(self, submission: Path, assignment: Assignment | None = None, runner: Runner | None = None) -> None:
        self.submission = submission
        self.assignment = assignment
        self.runner = runner
        self.results: list[CheckResult] = []
        self.expected: list[str] = []  # the check ids the suite holds, known before any student code runs
        self.remotes: dict[str, Remote] = {}
        self.runtime_hits: dict[str, list[str]] = {}  # component -> names
        self.missing: dict[str, set[str]] = {}  # component -> names its checks found the student's module lacks
        self.notes: list[Note] = []
        self._cuda: bool | None = None

    # -- set-up, lazily at the first check, so plain `pytest --submission` works too -----------

    def prepare(self, item: pytest.Item) -> None:
        if self.assignment is None:
            self.assignment = load_assignment(Path(item.path).parent)
        if self.runner is None:  # plain `pytest --submission`: the launcher kit check would use
            from .sandbox import make_launcher

            launcher = make_launcher(_limits(self.assignment), require=False)
            self.runner = open_runner(self.assignment, self.submission, launcher)
            if launcher.warning:
                self.notes.append(Note(SANDBOX, launcher.warning))

    def remote_for(self, item: pytest.Item) -> Remote:
        key = item.nodeid
        if key not in self.remotes:
            forbidden = list(self.assignment.forbidden(component_of(item)))
            self.remotes[key] = Remote(self.runner, self.assignment.module, forbidden)
        return self.remotes[key]

    @property
    def cuda(self) -> bool:
        if self._cuda is None:
            import torch

            self._cuda = torch.cuda.is_available()
            if self._cuda:  # before a GPU check computes its reference: full float32 precision, as in the child
                torch.backends.cuda.matmul.allow_tf32 = False
                torch.backends.cudnn.allow_tf32 = False
        return self._cuda

    # -- hooks ---------------------------------------------------------------------------------

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[_session_key] = self

    def check_collected(self, items: list[pytest.Item]) -> None:
        """Check every marker against assignment.toml before any student code runs (ConfigError if one is
        wrong), and remember which checks the report must have."""
        if not items:
            return
        if self.assignment is None:
            self.assignment = load_assignment(Path(items[0].path).parent)
        self.assignment.check_forbidden_names()
        for item in items:
            validate(item, self.assignment)
        self.expected = [check_id(item) for item in items]

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Plain `pytest --submission`: a suite that does not match its assignment.toml stops pytest."""
        try:
            self.check_collected(session.items)
        except ConfigError as exc:
            raise pytest.UsageError(str(exc)) from None

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.prepare(item)
        item.stash[_started] = time.monotonic()
        if item.get_closest_marker("gpu") and not self.cuda:
            pytest.skip(NO_CUDA_MESSAGE)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        if call.when == "setup" and report.passed:
            return
        if call.when == "teardown":
            remote = self.remotes.pop(item.nodeid, None)
            if remote is not None:
                self.runtime_hits.setdefault(component_of(item), []).extend(remote.hits)
            return
        if call.excinfo is not None and isinstance(call.excinfo.value, MissingName):
            self.missing.setdefault(component_of(item), set()).add(call.excinfo.value.name)
        self.results.append(self.result(item, call, report))

    def result(self, item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> CheckResult:
        points_marker = item.get_closest_marker("points")
        max_points = float(points_marker.args[0]) if points_marker else 1.0
        doc = (getattr(item, "function", None).__doc__ or "").strip().splitlines()
        status, message, reason = outcome_of(call, report)
        if status == SKIPPED and item.get_closest_marker("gpu") and not self.cuda:
            reason = NO_CUDA
        elif status == SKIPPED and call.excinfo is not None and isinstance(call.excinfo.value, NotEmulated):
            reason = NOT_EMULATED  # a device check the emulated device could not run (kit.grader.device)
        elif status == SKIPPED:  # only those two rules may take a check out of the maximum score, never a run
            status, message = ERROR, (f"{message}: a check is not run only when it needs CUDA and there is none, "
                                      "or when the emulated device cannot run it")
        output = self.runner.take_output() if self.runner else ""
        if self.runner:  # a device check's message names the student's line: in a notebook, its cell
            message = self.runner.graded.relocate_text(message)
        return CheckResult(
            id=check_id(item), component=component_of(item), status=status,
            points=max_points if status == PASSED else 0.0, max_points=max_points, message=kept(message),
            description=doc[0] if doc else "", hidden=item.get_closest_marker("hidden") is not None,
            gpu=item.get_closest_marker("gpu") is not None, output=output,
            duration=round(time.monotonic() - item.stash.get(_started, 0), 4), reason=reason,
        )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.runner is not None:
            self.runner.close()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.complete:
            return
        report = self.report()
        terminalreporter.write_sep("=", f"kit: {report.assignment} score {report.score:g} / {report.max_score:g}")
        for problem in report.problems:
            terminalreporter.write_line(problem.message, red=True)
        for check in report.checks:
            if check.status != PASSED and not check.reason:  # a check a problem costs: the problem says it
                first = check.message.splitlines()[0] if check.message else ""
                terminalreporter.write_line(f"{check.status:>7}  {check.id}: {first}")
        for note in report.notes:
            terminalreporter.write_line(f"note: {note.text}", yellow=True)

    # -- the verdict -------------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        """Whether every check of the suite has a result: anything less is no report at all."""
        return bool(self.expected) and sorted(r.id for r in self.results) == sorted(self.expected)

    def report(self) -> Report:
        problems = self.problems()
        checks = [apply_problems(r, problems) for r in self.results]
        notes = list(self.notes) + (self.runner.notes if self.runner else [])
        not_run = sum(1 for c in checks if c.reason == NO_CUDA)
        if not_run:
            notes.append(Note(GPU, f"{not_run} GPU check(s) not run: no CUDA device"))
        not_emulated = sum(1 for c in checks if c.reason == NOT_EMULATED)
        if not_emulated:
            notes.append(Note(GPU, f"{not_emulated} device check(s) not run: the emulated device could not run "
                                   "your code (see each check); a GPU would"))
        graded = self.runner.filename if self.runner else ""
        return Report(self.assignment.name, checks, notes, problems, graded)

    def problems(self) -> list[Problem]:
        """What is wrong with the whole submission or a whole component, each said once."""
        out = []
        if self.runner is not None and self.runner.unusable:
            out.append(Problem(UNUSABLE, kept(self.runner.unusable)))
        for component in self.assignment.components:  # a component's class (or function) that is not there
            if component in self.missing.get(component, ()) and self.runner is not None:
                defined = defined_names(self.runner.request.student_file)
                out.append(Problem(UNUSABLE, kept(missing_name(self.runner.filename, component, defined)), component))
        whole = len(self.assignment.components) == 1
        for component, uses in self.forbidden_by_component().items():
            who = self.assignment.name if component == "*" or whole else component
            out.append(Problem(FORBIDDEN, kept(forbidden(who, self.assignment.name, uses)),
                               None if component == "*" else component))
        return out

    @functools.cached_property
    def static_uses(self) -> list[tuple[str, Use]]:
        """(component or "*", use) for each forbidden API the static scan finds in the files that ran (the
        report is made more than once: scanned once)."""
        runner = self.runner
        if runner is None:
            return []
        folder = runner.request.student_file.parent
        scanned = [runner.filename, *(file for file, _ in runner.imported if within(folder, file))]
        uses = []
        for hit in scan_files(folder, scanned, self.assignment.all_forbidden()):
            file, at = runner.graded.place(hit.file, hit.line)
            uses.append((hit.component or "*", Use(hit.name, why(hit.name), hit.spelled, file, at,
                                                   source_line(folder / hit.file, hit.line))))
        return uses

    def forbidden_by_component(self) -> dict[str, list[Use]]:
        """component -> the uses of forbidden APIs that make it score zero ("*" for every component)."""
        found: dict[str, list[Use]] = {}
        static: set[tuple[str, str]] = set()  # (component, name) the scan found: said once, where it is
        for component, use in self.static_uses:
            found.setdefault(component, []).append(use)
            static.add((component, use.name))
        runner = self.runner
        for component, names in self.runtime_hits.items():
            for name in dict.fromkeys(names):
                if (component, name) not in static:
                    found.setdefault(component, []).append(Use(name, why(name), when="while your code ran"))
        if runner is not None:
            for name in runner.import_hits:
                found.setdefault("*", []).append(Use(name, why(name), when="while importing your file"))
        return found


_started = pytest.StashKey[float]()
_session_key = pytest.StashKey["KitSession"]()


def _limits(assignment: Assignment):
    from .launch import Limits

    return Limits(check_timeout=assignment.check_timeout, time_budget=assignment.time_budget)


def validate(item: pytest.Item, assignment: Assignment) -> None:
    """A check's component must be one of assignment.toml's, and it is hidden exactly when its file is."""
    file = Path(item.path)
    marker = item.get_closest_marker("component")
    if marker is None or not marker.args:
        raise ConfigError(file, check_id(item), "no component marker (pytest.mark.component(NAME))")
    if marker.args[0] not in assignment.components:
        raise ConfigError(file, check_id(item), f"component {marker.args[0]!r} is not one of assignment.toml's "
                                                f"[components] ({', '.join(assignment.components)})")
    marked = item.get_closest_marker("hidden") is not None
    if marked != is_hidden_file(file):
        raise ConfigError(file, check_id(item), "hidden checks live in *_hidden.py files and carry "
                                                "pytest.mark.hidden; this one has only one of the two")


def source_line(path: Path, line: int) -> str:
    """Line `line` of a file of the submission ("" if it cannot be read)."""
    try:
        lines = re.split(r"\r\n?|\n", read_regular(path, 1 << 20).decode("utf-8", "replace"))
    except OSError:
        return ""
    return lines[line - 1] if 0 < line <= len(lines) else ""


def defined_names(path: Path) -> list[str]:
    """The classes and functions the top level of the graded file defines, in order (what a misspelt
    component would be); none if it cannot be read or parsed."""
    try:
        tree = ast.parse(read_regular(path, 1 << 20))
    except (OSError, SyntaxError, ValueError):
        return []
    kinds = (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return list(dict.fromkeys(node.name for node in tree.body if isinstance(node, kinds)))


def component_of(item: pytest.Item) -> str:
    return str(item.get_closest_marker("component").args[0])


def kept(message: str) -> str:
    """A message cut to MAX_MESSAGE characters: a check may quote what the child sent, which can be huge."""
    if len(message) <= MAX_MESSAGE:
        return message
    return message[:MAX_MESSAGE] + f"\n[... {len(message) - MAX_MESSAGE} more characters not kept]"


def outcome_of(call: pytest.CallInfo, report: pytest.TestReport) -> tuple[str, str, str]:
    """(status, message, reason) of a check's run."""
    if report.skipped:
        reason = call.excinfo.value.msg if call.excinfo is not None else "skipped"
        return SKIPPED, str(reason), ""
    if call.excinfo is None:
        return PASSED, "", ""
    exc = call.excinfo.value
    if isinstance(exc, SubmissionBroken):
        return ERROR, str(exc), ""
    if isinstance(exc, ChildError):
        return ERROR, str(exc), ""
    if isinstance(exc, CheckFailed):
        return FAILED, str(exc), ""
    if isinstance(exc, AssertionError):
        return FAILED, str(exc) or "assertion failed", ""
    if isinstance(exc, pytest.fail.Exception):
        return FAILED, str(exc.msg), ""
    return ERROR, f"internal error in this check ({type(exc).__name__}: {exc}); please tell your instructor", ""


def apply_problems(result: CheckResult, problems: list[Problem]) -> CheckResult:
    """A check of a component that cannot score (unusable file, forbidden API) fails with a pointer to why."""
    if not result.counts:
        return result
    for problem in problems:
        if problem.component in (None, result.component):
            summary = problem.message.splitlines()[0]
            return replace(result, status=FAILED, points=0.0, message=summary, reason=problem.kind)
    return result
