"""Shared helpers for kit's own tests."""
from pathlib import Path

import pytest

from kit.grader.course import Course, load_course

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def course() -> Course:
    return load_course(ROOT)
