"""The pytest plugin that turns a suite into a grader.

Loaded by `kit check`/`kit grade`, and by plain pytest through its entry point, so an
instructor can run `pytest grader/suites/hw1 --submission PATH` and see the same
verdicts. It supplies the `student` and `child` fixtures, reads the points,
component, gpu and hidden markers, turns each check's outcome into a `CheckResult`,
and zeroes every component that used a forbidden API.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from .course import Assignment, load_assignment
from .forbidden import Hit, scan_file
from .remote import HELPERS, STUDENT, CheckFailed, Remote
from .report import ERROR, FAILED, PASSED, SKIPPED, CheckResult, Report
from .runner import ChildError, Limits, Runner, make_runner

SESSION = "kit-session"
NO_CUDA = "not run: no CUDA device"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("kit", "kit grading")
    group.addoption("--submission", metavar="DIR", help="grade the student files in DIR against this suite")


def pytest_configure(config: pytest.Config) -> None:
    for line in ("points(n): points a check is worth (default 1)",
                 "component(name): the graded component a check belongs to",
                 "gpu: needs a CUDA device; reported as not run without one",
                 "hidden: held back from students; only in kit grade and kit check --hidden"):
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

    def __init__(self, submission: Path, assignment: Assignment | None = None, runner: Runner | None = None,
                 limits: Limits | None = None) -> None:
        self.submission = submission
        self.assignment = assignment
        self.runner = runner
        self.limits = limits
        self.results: list[CheckResult] = []
        self.remotes: dict[str, Remote] = {}
        self.static_hits: list[Hit] | None = None  # the AST scan, once per submission
        self.runtime_hits: dict[str, list[str]] = {}  # component -> names
        self.notes: list[str] = []
        self._cuda: bool | None = None

    # -- set-up, lazily at the first check, so plain `pytest --submission` works too -----------

    def prepare(self, item: pytest.Item) -> None:
        if self.assignment is None:
            self.assignment = load_assignment(Path(item.path).parent)
        if self.runner is None:  # plain `pytest --submission`: say what kit check says about the sandbox
            self.runner = make_runner(self.submission, self.assignment, self.limits)
            warning = getattr(self.runner.launcher, "warning", None)
            if warning:
                self.notes.append(warning)
        if self.static_hits is None:
            student_file = self.runner.student_file
            self.static_hits = scan_file(student_file, self.assignment.all_forbidden()) if student_file.exists() else []

    def remote_for(self, item: pytest.Item) -> Remote:
        key = item.nodeid
        if key not in self.remotes:
            component = component_of(item)
            forbidden = self.assignment.forbidden.get(component, [])
            self.remotes[key] = Remote(self.runner, self.assignment.module, forbidden, None)
        return self.remotes[key]

    @property
    def cuda(self) -> bool:
        if self._cuda is None:
            import torch

            self._cuda = torch.cuda.is_available()
        return self._cuda

    # -- hooks ---------------------------------------------------------------------------------

    def pytest_configure(self, config: pytest.Config) -> None:
        config.stash[_session_key] = self

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.prepare(item)
        item.stash[_started] = time.monotonic()
        if item.get_closest_marker("gpu") and not self.cuda:
            pytest.skip(NO_CUDA)

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
        self.results.append(self.result(item, call, report))

    def result(self, item: pytest.Item, call: pytest.CallInfo, report: pytest.TestReport) -> CheckResult:
        hidden = item.get_closest_marker("hidden") is not None
        points_marker = item.get_closest_marker("points")
        max_points = float(points_marker.args[0]) if points_marker else 1.0
        doc = (getattr(item, "function", None).__doc__ or "").strip().splitlines()
        status, message = outcome_of(call, report)
        output = self.runner.take_output() if self.runner else ""
        return CheckResult(
            id=check_id(item), component=component_of(item), status=status,
            points=max_points if status == PASSED else 0.0, max_points=max_points, message=message,
            description=doc[0] if doc else "", hidden=hidden, gpu=item.get_closest_marker("gpu") is not None,
            output="" if hidden else output, duration=round(time.monotonic() - item.stash.get(_started, 0), 4),
        )

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.runner is not None:
            self.runner.close()

    def pytest_terminal_summary(self, terminalreporter) -> None:
        report = self.report()
        terminalreporter.write_sep("=", f"kit: {report.assignment} score {report.score:g} / {report.max_score:g}")
        for check in report.checks:
            if check.status != PASSED:
                first = check.message.splitlines()[0] if check.message else ""
                terminalreporter.write_line(f"{check.status:>7}  {check.id}: {first}")
        for note in report.notes:
            terminalreporter.write_line(f"note: {note}", yellow=True)

    # -- the verdict -------------------------------------------------------------------------------

    def report(self) -> Report:
        name = self.assignment.name if self.assignment else "?"
        checks = apply_forbidden(self.results, self.forbidden_by_component())
        notes = list(self.notes)
        skipped_gpu = sum(1 for c in checks if c.status == SKIPPED and c.message == NO_CUDA)
        if skipped_gpu:
            notes.append(f"{skipped_gpu} GPU check(s) not run: no CUDA device")
        return Report(name, checks, notes)

    def forbidden_by_component(self) -> dict[str, list[str]]:
        """component -> why it scores zero ("*" for every component)."""
        found: dict[str, list[str]] = {}
        for hit in self.static_hits or []:
            where = f"{hit.name} (line {hit.line}: {hit.spelled})"
            found.setdefault(hit.component or "*", []).append(where)
        for component, names in self.runtime_hits.items():
            for name in dict.fromkeys(names):
                if not any(w.startswith(name + " ") for w in found.get(component, [])):
                    found.setdefault(component, []).append(f"{name} (called while your code ran)")
        if self.runner is not None:
            for name in self.runner.import_hits:
                found.setdefault("*", []).append(f"{name} (called while importing your file)")
        return found


_started = pytest.StashKey[float]()
_session_key = pytest.StashKey["KitSession"]()


def component_of(item: pytest.Item) -> str:
    marker = item.get_closest_marker("component")
    return str(marker.args[0]) if marker else "main"


def outcome_of(call: pytest.CallInfo, report: pytest.TestReport) -> tuple[str, str]:
    if report.skipped:
        reason = call.excinfo.value.msg if call.excinfo is not None else "skipped"
        return SKIPPED, str(reason)
    if call.excinfo is None:
        return PASSED, ""
    exc = call.excinfo.value
    if isinstance(exc, ChildError):
        return ERROR, str(exc)
    if isinstance(exc, CheckFailed):
        return FAILED, str(exc)
    if isinstance(exc, AssertionError):
        return FAILED, str(exc) or "assertion failed"
    if isinstance(exc, pytest.fail.Exception):
        return FAILED, str(exc.msg)
    return ERROR, f"internal error in this check ({type(exc).__name__}: {exc}); please tell your instructor"


def apply_forbidden(results: list[CheckResult], found: dict[str, list[str]]) -> list[CheckResult]:
    """A component that used a forbidden API scores zero on every check, saying which API."""
    if not found:
        return list(results)
    out = []
    for r in results:
        why = found.get(r.component, []) + found.get("*", [])
        if why and r.status != SKIPPED:
            message = (f"uses a forbidden API: {'; '.join(why)}. {r.component} must compute this itself; "
                       f"every check of {r.component} scores 0.")
            r = CheckResult(r.id, r.component, FAILED, 0.0, r.max_points, message, r.description, r.hidden,
                            r.gpu, r.output, r.duration)
        out.append(r)
    return out
