"""Bad configuration is an error that names the file and the key, never a setting silently ignored."""
from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from kit.grader.course import ConfigError, load_assignment, load_course
from kit.grader.grade import grade_submission
from kit.grader.launch import Limits
from kit.grader.release import write_bundle
from kit.grader.sandbox import make_launcher
from tests.conftest import ROOT

HW1 = ROOT / "grader" / "suites" / "hw1"


@pytest.fixture
def suite(tmp_path) -> Path:
    """A copy of hw1's suite to break."""
    folder = tmp_path / "suites" / "hw1"
    shutil.copytree(HW1, folder, ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_unknown_key_names_the_file_the_key_and_the_likely_one(suite):
    edit(suite / "assignment.toml", "check_timeout", "check_timout")
    with pytest.raises(ConfigError) as info:
        load_assignment(suite)
    assert str(suite / "assignment.toml") in str(info.value)
    assert "check_timout: unknown key (did you mean 'check_timeout'?)" in str(info.value)


def test_unknown_key_in_a_component(suite):
    edit(suite / "assignment.toml", "forbidden = [", "forbiden = [")
    with pytest.raises(ConfigError, match=r"components\.MyLinear\.forbiden: unknown key"):
        load_assignment(suite)


def test_wrong_type_and_missing_key(suite):
    edit(suite / "assignment.toml", "time_budget = 60", 'time_budget = "sixty"')
    with pytest.raises(ConfigError, match=r"time_budget: expected float, not 'sixty'"):
        load_assignment(suite)
    edit(suite / "assignment.toml", 'time_budget = "sixty"', "time_budget = 60")
    edit(suite / "assignment.toml", 'file = "my_linear.py"\n', "")
    with pytest.raises(ConfigError, match="file: required key is missing"):
        load_assignment(suite)


def test_malformed_toml_is_a_config_error_not_a_traceback(suite):
    (suite / "assignment.toml").write_text("title = 'unclosed\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_assignment(suite)


def test_unknown_course_key(tmp_path):
    (tmp_path / "kit.toml").write_text('[course]\nname = "x"\nsuits = "s"\n')
    with pytest.raises(ConfigError, match=r"kit\.toml: course\.suits: unknown key \(did you mean 'suites'\?\)"):
        load_course(tmp_path)
    (tmp_path / "kit.toml").write_text('[course]\nname = "x"\n[grading]\n')
    with pytest.raises(ConfigError, match="grading: unknown key"):
        load_course(tmp_path)


def grade_with(suite: Path):
    assignment = load_assignment(suite)
    launcher = make_launcher(Limits(), require=False)
    return grade_submission(assignment, ROOT / "solutions" / "hw1", launcher=launcher, hidden=True)


def test_unknown_component_marker_is_refused_before_any_student_code_runs(suite):
    edit(suite / "test_my_linear.py", 'pytest.mark.component("MyLinear")', 'pytest.mark.component("MyLinaer")')
    with pytest.raises(ConfigError) as info:
        grade_with(suite)
    assert "test_my_linear.py" in str(info.value) and "'MyLinaer' is not one of" in str(info.value)


def test_unknown_forbidden_api_is_refused(suite):
    edit(suite / "assignment.toml", '"torch.nn.functional.linear",', '"torch.nn.functinal.linear",')
    with pytest.raises(ConfigError, match=r"components\.MyLinear\.forbidden: 'torch\.nn\.functinal\.linear' is not"):
        grade_with(suite)
    edit(suite / "assignment.toml", '"torch.nn.functinal.linear",', '"aten.linaer",')
    with pytest.raises(ConfigError, match="'aten.linaer' is not"):
        grade_with(suite)


def test_a_hidden_file_check_without_the_hidden_marker_is_refused(suite):
    edit(suite / "test_my_linear_hidden.py", "pytestmark = [pytest.mark.hidden, ", "pytestmark = [")
    with pytest.raises(ConfigError, match="hidden checks live in"):
        grade_with(suite)


def test_a_hidden_marker_in_a_public_file_is_refused(suite):
    edit(suite / "test_my_linear.py", 'pytestmark = pytest.mark.component("MyLinear")',
         'pytestmark = [pytest.mark.hidden, pytest.mark.component("MyLinear")]')
    with pytest.raises(ConfigError, match="hidden checks live in"):
        grade_with(suite)


def test_a_course_name_with_quotes_survives_a_released_bundle(tmp_path):
    course = load_course(ROOT)
    course.name = 'Deep "Learning" \\ with \'quotes\''
    out = write_bundle(course, course.assignment("hw1"), tmp_path / "bundle")
    written = tomllib.loads((out / "kit.toml").read_text())
    assert written["course"]["name"] == course.name
    assert load_course(out).name == course.name
