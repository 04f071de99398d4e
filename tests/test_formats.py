"""Reports in other formats (JUnit XML, Gradescope, GitHub Classroom, CSV) and student feedback pages:
right numbers, valid documents, and nothing of a hidden check beyond its name, points and verdict."""
from __future__ import annotations

import base64
import csv
import io
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

from kit.grader.feedback import render_html, render_markdown, write_feedback
from kit.grader.formats import classroom_results, gradescope_results, junit_xml, main, scores_csv, scores_wide_csv
from kit.grader.report import GPU, CheckResult, Note, Report
from tests.conftest import ROOT

SECRET = "SECRET_HIDDEN_INPUT_4242"
PRINTED = "student printed this"


def sample() -> Report:
    return Report("hw1", [
        CheckResult("forward", "MyLinear", "passed", 2, 2, "", "output matches", output=PRINTED, duration=0.01),
        CheckResult("weight_grad", "MyLinear", "failed", 0, 2,
                    "weight.grad: values differ\n  likely cause: <transposed> & \x1b[31mred\x1b[0m\x00",
                    "weight gradient", output=PRINTED),
        CheckResult("bias_grad", "MyLinear", "error", 0, 1, "RuntimeError: boom", "bias gradient"),
        CheckResult("cuda_forward", "MyLinear", "skipped", 0, 1, "not run: no CUDA device", gpu=True),
        CheckResult("hidden_big", "MyLinear", "failed", 0, 1, f"values differ at x={SECRET}", "big values",
                    hidden=True, output=f"printed {SECRET}"),
        CheckResult("hidden_zero", "MyLinear", "passed", 1, 1, "", "zero rows", hidden=True, output=SECRET),
    ], notes=[Note(GPU, "2 GPU check(s) not run: no CUDA device")])


# -- JUnit -------------------------------------------------------------------------------------------------

def test_junit_counts_and_points():
    root = ET.fromstring(junit_xml(sample()))
    assert root.tag == "testsuite"
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("6", "2", "1", "1")
    props = {p.get("name"): p.get("value") for p in root.find("properties")}
    assert props["score"] == "3" and props["max_score"] == "7"
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["weight_grad"].find("failure").get("message") == "weight.grad: values differ"
    assert "likely cause: <transposed> & red" in cases["weight_grad"].find("failure").text
    assert cases["bias_grad"].find("error") is not None
    assert cases["cuda_forward"].find("skipped").get("message") == "not run: no CUDA device"
    assert cases["forward"].find("system-out").text == PRINTED
    points = {p.get("name"): p.get("value") for p in cases["weight_grad"].find("properties")}
    assert points["points"] == "0" and points["max_points"] == "2"


def test_junit_hides_hidden_checks():
    text = junit_xml(sample())
    assert SECRET not in text
    cases = {c.get("name"): c for c in ET.fromstring(text).iter("testcase")}
    assert cases["hidden_big (hidden)"].find("failure").get("message") == "hidden check failed"
    assert cases["hidden_zero (hidden)"].find("system-out") is None
    assert "big values" not in text and "zero rows" not in text
    assert SECRET in junit_xml(sample(), public=False)  # an instructor may ask for everything


def test_kit_check_writes_junit(tmp_path):
    out = tmp_path / "report.xml"
    kit = str(Path(sys.executable).with_name("kit"))
    run = subprocess.run([kit, "check", "hw1", "--path", str(ROOT / "tests/submissions/hw1/bias_ignored"),
                          "--junit-xml", str(out), "--json", "--course", str(ROOT)], capture_output=True, text=True)
    assert run.returncode == 1, run.stderr
    doc = json.loads(run.stdout)
    root = ET.parse(out).getroot()
    props = {p.get("name"): p.get("value") for p in root.find("properties")}
    assert float(props["score"]) == doc["score"] and float(props["max_score"]) == doc["max_score"]
    failed = {c.get("name") for c in root.iter("testcase") if c.find("failure") is not None}
    assert failed == {c["id"] for c in doc["checks"] if c["status"] == "failed"}


# -- Gradescope -----------------------------------------------------------------------------------------

def test_gradescope_results():
    results = gradescope_results(sample(), execution_time=1.5)
    assert results["score"] == 3 and results["execution_time"] == 1.5
    tests = {t["name"]: t for t in results["tests"]}
    assert tests["MyLinear: forward"] == {**tests["MyLinear: forward"], "score": 2, "max_score": 2,
                                          "status": "passed", "visibility": "visible"}
    assert tests["MyLinear: weight_grad"]["status"] == "failed"
    assert PRINTED in tests["MyLinear: weight_grad"]["output"]
    hidden = tests["MyLinear: hidden_big (hidden)"]
    assert hidden["visibility"] == "after_published" and hidden["output"] == "hidden check failed"
    assert hidden["max_score"] == 1
    skipped = tests["MyLinear: cuda_forward"]
    assert skipped["max_score"] == 0 and "status" not in skipped and "no CUDA" in skipped["output"]
    assert sum(t["max_score"] for t in results["tests"]) == sample().max_score
    assert sum(t["score"] for t in results["tests"]) == results["score"]
    assert SECRET not in json.dumps(results)
    assert "zero rows" not in json.dumps(results) and "big values" not in json.dumps(results)


def test_kit_gradescope_command(tmp_path):
    upload = tmp_path / "submission" / "nested"
    upload.mkdir(parents=True)
    (upload / "my_linear.py").write_bytes((ROOT / "solutions/hw1/my_linear.py").read_bytes())
    out = tmp_path / "results" / "results.json"
    kit = str(Path(sys.executable).with_name("kit"))
    run = subprocess.run([kit, "gradescope", "hw1", "--path", str(tmp_path / "submission"), "--out", str(out),
                          "--course", str(ROOT)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(out.read_text())
    assert results["score"] == sum(t["max_score"] for t in results["tests"]) > 0
    assert any(t["visibility"] == "after_published" for t in results["tests"])  # hidden checks ran


# -- GitHub Classroom -----------------------------------------------------------------------------------

def test_classroom_payload(tmp_path, capsys):
    data = classroom_results(sample())
    assert data["max_score"] == 7 and data["status"] == "error"
    assert sum(t["score"] for t in data["tests"]) == 3
    assert "MyLinear: cuda_forward" not in {t["name"] for t in data["tests"]}
    assert SECRET not in json.dumps(data)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(sample().to_json()))
    assert main(["classroom", str(path)]) == 0
    decoded = json.loads(base64.b64decode(capsys.readouterr().out))
    assert decoded == json.loads(json.dumps(data))


# -- CSV -------------------------------------------------------------------------------------------------

ROWS = [
    {"assignment": "hw1", "student_id": "ann", "last_name": "=HYPERLINK(\"x\")", "first_name": "Ann", "email": "",
     "timestamp": "", "raw_score": 18.0, "late_submission_penalty": 0.0, "score": 18.0, "max_score": 20.0,
     "components": {"MyLinear": 18.0}},
    {"assignment": "hw2", "student_id": "ann", "last_name": "=HYPERLINK(\"x\")", "first_name": "Ann", "email": "",
     "timestamp": "", "raw_score": 5.0, "late_submission_penalty": 0.0, "score": 5.0, "max_score": 10.0,
     "components": {"BN": 5.0}},
    {"assignment": "hw1", "student_id": "bob", "last_name": "B", "first_name": "Bob", "email": "",
     "timestamp": "", "raw_score": 0.0, "late_submission_penalty": 0.0, "score": 0.0, "max_score": 20.0,
     "components": {"MyLinear": 0.0}},
]


def test_scores_csv_long_and_wide():
    rows = list(csv.DictReader(io.StringIO(scores_csv(ROWS, components=True))))
    assert [(r["student_id"], r["assignment"], r["score"]) for r in rows] == [("ann", "hw1", "18"),
                                                                              ("ann", "hw2", "5"), ("bob", "hw1", "0")]
    assert rows[0]["hw1:MyLinear"] == "18" and rows[0]["hw2:BN"] == "" and rows[1]["hw2:BN"] == "5"
    assert rows[0]["last_name"].startswith("'=")  # no formula injection into spreadsheets
    wide = list(csv.DictReader(io.StringIO(scores_wide_csv(ROWS))))
    assert wide[0]["hw1"] == "18" and wide[0]["hw2"] == "5" and wide[0]["total"] == "23"
    assert wide[1]["hw2"] == "0" and wide[1]["max_total"] == "30"


# -- feedback ------------------------------------------------------------------------------------------

def test_feedback_markdown_shows_public_details_and_hides_hidden_ones():
    md = render_markdown(sample(), "ann", title="MyLinear", final_score=(4.0, 7.0))
    assert "**Score: 3 / 7**" in md and "4 / 7" in md
    assert "weight.grad: values differ" in md and "likely cause" in md
    assert PRINTED in md
    assert "hidden_big (hidden)" in md and "hidden check failed" in md
    assert SECRET not in md and "big values" not in md  # no message, output or description of hidden checks
    assert "1 of 2 hidden checks passed" in md
    assert "not run: no CUDA device" in md


def test_feedback_html_is_escaped_and_hides_hidden_ones(tmp_path):
    report = sample()
    report.checks[1] = replace(report.checks[1], output="<script>alert(1)</script>")
    page = render_html(report, "ann")
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert "&lt;transposed&gt; &amp;" in page
    assert SECRET not in page
    written = write_feedback(report, "ann", tmp_path / "ann" / "hw1")
    assert [p.name for p in written] == ["feedback.md", "feedback.html"]
    assert all(SECRET not in p.read_text() for p in written)


# -- the GitHub Classroom workflow -------------------------------------------------------------------------

def test_classroom_workflow_grades_a_bundle(course, tmp_path):
    """Runs the workflow's `kit check` step, as written, in a released bundle holding the solution."""
    import os
    import shutil

    import yaml

    from kit.grader.release import write_bundle

    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "classroom.yml").read_text())
    steps = {s.get("id"): s for s in workflow["jobs"]["autograding"]["steps"]}
    reporter = next(s for s in workflow["jobs"]["autograding"]["steps"] if "grading-reporter" in s.get("uses", ""))
    assert reporter["with"]["runners"] == "kit" and "KIT_RESULTS" in reporter["env"]

    spec = course.assignment("hw1")
    repo = tmp_path / "repo"
    write_bundle(course, spec, repo)
    shutil.copyfile(ROOT / "solutions" / "hw1" / spec.file, repo / "hw1" / spec.file)
    output, summary = tmp_path / "output", tmp_path / "summary.md"
    env = {**os.environ, "ASSIGNMENT": "hw1", "GITHUB_OUTPUT": str(output), "GITHUB_STEP_SUMMARY": str(summary),
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", "-e", "-c", steps["kit"]["run"]], cwd=repo, env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    result = output.read_text().strip().removeprefix("result=")
    data = json.loads(base64.b64decode(result))
    assert data["status"] == "pass" and data["max_score"] > 0
    assert sum(t["score"] for t in data["tests"]) == data["max_score"]
    assert "**Score: " in summary.read_text()
    ET.parse(repo / "kit-junit.xml")
