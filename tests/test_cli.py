"""Every command's exit codes and messages, in-process with click's CliRunner."""
from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from kit.cli.main import cli
from tests.conftest import ROOT

SOLUTION = ROOT / "solutions" / "hw1"


def kit(*args: str, env: dict | None = None):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env=env)


def usage_error(result, *texts: str) -> None:
    assert result.exit_code == 2, result.output
    for text in texts:
        assert text in result.output, result.output


# -- kit check ----------------------------------------------------------------------------------------------

def test_check_scores_a_solution_and_exits_0():
    result = kit("check", "hw1", "--course", str(ROOT), "--path", str(SOLUTION), "--json", "-k", "forward")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["assignment"] == "hw1" and doc["score"] == doc["max_score"] > 0
    assert {"id", "component", "status", "points", "max_points", "message"} <= set(doc["checks"][0])


def test_check_of_a_stub_exits_1_and_says_what_to_write():
    result = kit("check", "hw1", "--course", str(ROOT), "--path", str(ROOT / "assignments" / "hw1"), "-k", "forward")
    assert result.exit_code == 1
    assert "score: 0 /" in result.output and "not implemented yet" in result.output


def test_check_usage_errors_exit_2(tmp_path, monkeypatch):
    usage_error(kit("check", "hw99", "--course", str(ROOT)), "no assignment 'hw99'", "known: hw1")
    usage_error(kit("check", "hw1", "--course", str(ROOT), "--path", str(tmp_path / "nope")), "no folder")
    usage_error(kit("check", "hw1", "--course", str(tmp_path / "missing")), "does not exist")
    monkeypatch.chdir(tmp_path)
    usage_error(kit("check", "hw1"), "no kit.toml")
    usage_error(kit("check", "hw1", "--course", str(ROOT), "--path", str(SOLUTION), "-k", "no_such_check"),
                "no check matches")


def test_check_reports_a_syntax_error_once(tmp_path):
    (tmp_path / "my_linear.py").write_text("class MyLinear(\n")
    result = kit("check", "hw1", "--course", str(ROOT), "--path", str(tmp_path))
    assert result.exit_code == 1
    assert result.output.count("SyntaxError") == 1, result.output
    assert "checks not run" in result.output


# -- kit release ----------------------------------------------------------------------------------------------

def test_release_usage_errors(tmp_path):
    usage_error(kit("release", "hw99", "--course", str(ROOT)), "no assignment")
    course = tmp_path / "course"
    shutil.copytree(ROOT / "grader" / "suites" / "hw1", course / "suites" / "hw1")
    (course / "kit.toml").write_text('[course]\nname = "c"\nsuites = "suites"\n')
    usage_error(kit("release", "hw1", "--course", str(course)), "names no solutions folder")


def test_release_writes_a_bundle(tmp_path):
    result = kit("release", "hw1", "--course", str(ROOT), "--no-verify", "--out", str(tmp_path / "b"))
    assert result.exit_code == 0 and "released hw1" in result.output
    assert (tmp_path / "b" / "hw1" / "my_linear.py").is_file() and (tmp_path / "b" / "kit.toml").is_file()


# -- kit collect, grade, export, feedback ------------------------------------------------------------------

def test_collect_usage_errors(tmp_path):
    usage_error(kit("collect", "hw1", str(tmp_path), "--course", str(ROOT), "--pattern", "(?P<x>.*)"),
                "named group (?P<student>")
    usage_error(kit("collect", "hw1", str(tmp_path), "--course", str(ROOT), "--pattern", "("), "bad --pattern")
    usage_error(kit("collect", "hw1", str(tmp_path / "missing"), "--course", str(ROOT)), "does not exist")


def test_collect_of_an_empty_folder_exits_0(tmp_path):
    (tmp_path / "in").mkdir()
    result = kit("collect", "hw1", str(tmp_path / "in"), "--course", str(ROOT), "--dest", str(tmp_path / "out"),
                 "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["entries"] == []


def test_grade_usage_errors(tmp_path):
    usage_error(kit("grade", "hw1", str(tmp_path / "missing"), "--course", str(ROOT)), "no folder")
    usage_error(kit("grade", "hw1", str(tmp_path), "--course", str(ROOT)), "no submissions of hw1")
    (tmp_path / "ann" / "hw1").mkdir(parents=True)
    usage_error(kit("grade", "hw1", str(tmp_path), "--course", str(ROOT), "--student", "bob"),
                "no submission of hw1 for: bob")
    usage_error(kit("grade", "hw1", str(tmp_path), "--course", str(ROOT), env={"PATH": str(tmp_path)}),
                "no sandbox for student code", "--unsafe-no-sandbox")


def test_export_and_feedback_need_a_gradebook(tmp_path):
    usage_error(kit("export", "--db", str(tmp_path / "none.db")), "no gradebook at")
    usage_error(kit("feedback", "hw1", "--course", str(ROOT), "--db", str(tmp_path / "none.db")),
                "no gradebook at", "kit grade hw1")


# -- kit gradescope ---------------------------------------------------------------------------------------------

def test_gradescope_writes_results(tmp_path):
    out = tmp_path / "results.json"
    result = kit("gradescope", "hw1", "--course", str(ROOT), "--path", str(SOLUTION), "--out", str(out),
                 "--public-only")
    assert result.exit_code == 0, result.output
    results = json.loads(out.read_text())
    assert results["score"] > 0 and all("status" in t or t["max_score"] == 0 for t in results["tests"])


def test_gradescope_usage_errors(tmp_path):
    usage_error(kit("gradescope", "hw1", "--course", str(ROOT), "--path", str(tmp_path / "nope")), "no folder")


@pytest.mark.parametrize("command", ["check", "release", "collect", "grade", "late", "extend", "export", "feedback",
                                     "report", "gradescope", "similarity"])
def test_every_command_has_help(command):
    result = kit(command, "--help")
    assert result.exit_code == 0 and "Usage:" in result.output
