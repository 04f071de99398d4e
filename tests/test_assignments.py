"""Every assignment's solution scores full marks and its released stub scores zero."""
import pytest

from kit.grader.report import PASSED, SKIPPED
from tests.conftest import ROOT, grade

ASSIGNMENTS = sorted(p.parent.name for p in (ROOT / "grader" / "suites").glob("*/assignment.toml"))


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_scores_full_marks(course, name):
    spec = course.assignment(name)
    report = grade(spec, course.solutions / name, hidden=True)
    bad = [f"{c.id}: {c.message}" for c in report.checks if c.status not in (PASSED, SKIPPED)]
    assert not bad, "\n".join(bad)
    assert report.score == report.max_score > 0


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_stub_scores_zero_with_a_useful_message(course, name):
    spec = course.assignment(name)
    report = grade(spec, course.assignments / name, hidden=True)
    assert report.score == 0
    ran = [c for c in report.checks if c.status != SKIPPED]
    assert ran and all(c.message for c in ran)
    assert not any("internal error" in c.message for c in ran), [c.message for c in ran]
