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
