"""Shared helpers for kit's own tests."""
from pathlib import Path

import pytest

from kit.grader.course import Course, load_course

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def course() -> Course:
    return load_course(ROOT)


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory):
    """`kit check` keeps references under $XDG_CACHE_HOME: the tests' runs use a folder of their own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache-home")))
        yield


def grade(assignment, folder: Path, *, hidden: bool = True, launcher=None, limits=None, keyword=None):
    """`grade_submission` of `folder`, with the launcher `kit check` would use unless one is given."""
    from kit.grader.grade import grade_submission
    from kit.grader.launch import Limits
    from kit.grader.sandbox import make_launcher

    if launcher is None:
        limits = limits or Limits(check_timeout=assignment.check_timeout, time_budget=assignment.time_budget)
        launcher = make_launcher(limits, require=False)
    return grade_submission(assignment, folder, launcher=launcher, hidden=hidden, keyword=keyword)
