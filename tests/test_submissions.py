"""Deliberately wrong submissions get exactly the score their mistake deserves, for the right reason.

Each case under tests/submissions/hwN/<case>/ holds the student's file and expected.toml:
the exact score (hidden checks included, no GPU), the exact set of checks that must not pass,
and substrings their messages must contain.
"""
import tomllib
from pathlib import Path

import pytest

from kit.grader.forkserver import ForkLauncher
from kit.grader.launch import Limits
from kit.grader.report import PASSED, SKIPPED
from kit.grader.sandbox import make_launcher
from tests.conftest import grade as grade_folder

CASES = sorted(Path(__file__).parent.glob("submissions/hw*/*/expected.toml"))
IDS = [f"{p.parent.parent.name}/{p.parent.name}" for p in CASES]


@pytest.fixture(scope="module")
def fork_launchers():
    """One fork server per (assignment, limits), shared by every case, as a grading worker shares it."""
    made: dict = {}

    def get(limits: Limits):
        if limits not in made:
            made[limits] = ForkLauncher(make_launcher(limits, require=False))
        return made[limits]

    yield get
    for launcher in made.values():
        launcher.close()


def grade(course, expected_file: Path, launcher_for=None):
    expected = tomllib.loads(expected_file.read_text())
    spec = course.assignment(expected_file.parent.parent.name)
    limits = Limits(**expected["limits"]) if "limits" in expected else \
        Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget)
    launcher = launcher_for(limits) if launcher_for else None
    return expected, grade_folder(spec, expected_file.parent, limits=limits, launcher=launcher)


def assert_deserved(expected: dict, report) -> None:
    by_id = {c.id: c for c in report.checks}
    failing = sorted(c.id for c in report.checks if c.status not in (PASSED, SKIPPED))
    details = "\n".join(f"{c.id}: {c.status}: {c.message[:300]}" for c in report.checks if c.id in failing)
    assert failing == sorted(expected["failing"]), details
    assert report.score == pytest.approx(expected["score"]), details
    for check_id, text in expected.get("messages", {}).items():
        assert text in by_id[check_id].message, by_id[check_id].message


@pytest.mark.parametrize("expected_file", CASES, ids=IDS)
def test_submission_scores_what_it_deserves(course, expected_file):
    assert_deserved(*grade(course, expected_file))


@pytest.mark.parametrize("expected_file", CASES, ids=IDS)
def test_fork_server_grades_it_the_same(course, expected_file, fork_launchers):
    """`kit grade` forks children from a warm zygote: same verdicts, same messages, case after case."""
    expected, report = grade(course, expected_file, fork_launchers)
    assert_deserved(expected, report)
    if expected_file.parent.parent.name == "hw1":  # the adversarial cases: every message must match too
        _, fresh = grade(course, expected_file)
        assert [(c.id, c.status, c.points, c.message) for c in report.checks] == \
               [(c.id, c.status, c.points, c.message) for c in fresh.checks]
