"""Deliberately wrong submissions get exactly the score their mistake deserves, for the right reason.

Each case under tests/submissions/hwN/<case>/ holds the student's file and expected.toml:
the exact score (hidden checks included, no GPU), the exact set of checks that must not pass,
and substrings their messages must contain.
"""
import tomllib
from pathlib import Path

import pytest

from kit.grader.report import PASSED, SKIPPED
from kit.grader.runner import Limits
from kit.grader.session import run_suite

CASES = sorted(Path(__file__).parent.glob("submissions/hw*/*/expected.toml"))


@pytest.mark.parametrize("expected_file", CASES, ids=[f"{p.parent.parent.name}/{p.parent.name}" for p in CASES])
def test_submission_scores_what_it_deserves(course, expected_file):
    expected = tomllib.loads(expected_file.read_text())
    spec = course.assignment(expected_file.parent.parent.name)
    limits = None
    if "limits" in expected:
        limits = Limits(**expected["limits"])
    report = run_suite(spec, expected_file.parent, hidden=True, limits=limits)
    by_id = {c.id: c for c in report.checks}
    failing = sorted(c.id for c in report.checks if c.status not in (PASSED, SKIPPED))
    details = "\n".join(f"{c.id}: {c.status}: {c.message[:300]}" for c in report.checks if c.id in failing)
    assert failing == sorted(expected["failing"]), details
    assert report.score == pytest.approx(expected["score"]), details
    for check_id, text in expected.get("messages", {}).items():
        assert text in by_id[check_id].message, by_id[check_id].message
