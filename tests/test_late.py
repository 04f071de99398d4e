"""Due dates, late penalties and extensions: the configuration, the arithmetic, and the gradebook.

The penalty lives where nbgrader keeps it (the submission's late_submission_penalty, the
assignment's duedate, the submission's extension), so the same numbers come out of
`kit export` and out of nbgrader's own `nbgrader export`, run here on the real SQLite
gradebook. A changed policy or a new extension is applied again without grading anything.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from kit.cli.main import cli
from kit.grader.course import ConfigError, LatePolicy, load_assignment, load_course
from kit.grader.gradebook import Gradebook, db_url
from kit.grader.late import CUT_OFF, LATE, NO_DUE, NO_TIME, ON_TIME, Deadlines, duration
from kit.grader.report import CheckResult, Report
from tests.conftest import ROOT

NBGRADER = str(Path(sys.executable).with_name("nbgrader"))
KIT = str(Path(sys.executable).with_name("kit"))
DUE = datetime.fromisoformat("2026-12-01T23:59:00+08:00")  # 15:59 UTC
POLICY = LatePolicy(per_day=0.1, cutoff_days=7)


def kit(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def make_course(root: Path, extra: str = "", suites: Path = ROOT / "grader" / "suites") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "kit.toml").write_text(f'[course]\nname = "test course"\nsuites = "{suites}"\n{extra}')
    return root


def deadlines(policy: LatePolicy | None = POLICY, extensions: dict | None = None) -> Deadlines:
    return Deadlines({"hw1": DUE}, policy, {"hw1": extensions or {}})


def utc(text: str) -> datetime:
    """A submission time as nbgrader records it: naive UTC."""
    return datetime.fromisoformat(text).astimezone(UTC).replace(tzinfo=None)


# -- configuration ------------------------------------------------------------------------------------

@pytest.fixture
def suites(tmp_path) -> Path:
    folder = tmp_path / "suites"
    shutil.copytree(ROOT / "grader" / "suites" / "hw1", folder / "hw1", ignore=shutil.ignore_patterns("__pycache__"))
    return folder


def add_due(suites: Path, line: str) -> Path:
    toml = suites / "hw1" / "assignment.toml"
    text = toml.read_text()
    head, sep, rest = text.partition("\n[")  # top-level keys come before the first table
    toml.write_text(f"{head}\n{line}\n{sep}{rest}")
    return toml


def test_a_due_date_in_assignment_toml_and_kit_toml_wins(tmp_path, suites):
    add_due(suites, "due = 2026-12-01T23:59:00+08:00")
    course = load_course(make_course(tmp_path / "c1", suites=suites))
    assert course.due_date(course.assignment("hw1")) == DUE
    course = load_course(make_course(tmp_path / "c2", "[due]\nhw1 = 2027-01-15T12:00:00Z\n", suites=suites))
    assert course.due_date(course.assignment("hw1")) == datetime(2027, 1, 15, 12, tzinfo=UTC)


@pytest.mark.parametrize("value, message", [
    ("2026-12-01T23:59:00", "due: 2026-12-01T23:59:00 has no time zone"),
    ("2026-12-01", "due: expected a date and time with a time zone"),
    ('"2026-12-01T23:59:00+08:00"', "due: expected a date and time with a time zone"),
])
def test_a_due_date_needs_a_date_a_time_and_a_zone(suites, value, message):
    toml = add_due(suites, f"due = {value}")
    with pytest.raises(ConfigError) as info:
        load_assignment(suites / "hw1")
    assert str(toml) in str(info.value) and message in str(info.value)


@pytest.mark.parametrize("extra, message", [
    ("[due]\nhw1 = 2026-12-01T23:59:00\n", "due.hw1: 2026-12-01T23:59:00 has no time zone"),
    ("[due]\nhw99 = 2026-12-01T23:59:00Z\n", "due.hw99: no assignment 'hw99'"),
    ("[late]\nper_day = 0.1\nper_hour = 0.01\n", "late.per_hour: give per_day or per_hour, not both"),
    ("[late]\nper_week = 0.1\n", "late.per_week: unknown key"),
    ("[late]\nper_day = 2\n", "late.per_day: 2 is not a fraction of the maximum score"),
    ('[late]\nper_day = "10%"\n', "late.per_day: expected float, not '10%'"),
    ("[late]\ncutoff_days = -1\n", "late.cutoff_days: -1 is not a number of days"),
    ("[late]\n", "late: say what a late submission loses"),
])
def test_kit_toml_errors_name_the_file_and_the_key(tmp_path, extra, message):
    root = make_course(tmp_path / "course", extra)
    with pytest.raises(ConfigError) as info:
        load_course(root)
    assert str(root / "kit.toml") in str(info.value) and message in str(info.value)


def test_extensions_toml_is_checked_too(tmp_path):
    root = make_course(tmp_path / "course")
    course = load_course(root)
    (root / "extensions.toml").write_text("[hw1]\nann = 2026-12-03T23:59:00\n")
    with pytest.raises(ConfigError, match=r"extensions\.toml: hw1\.ann: .* has no time zone"):
        Deadlines.load(course, [course.assignment("hw1")])
    (root / "extensions.toml").write_text("[hw99]\nann = 2026-12-03T23:59:00Z\n")
    with pytest.raises(ConfigError, match=r"extensions\.toml: hw99: no assignment"):
        Deadlines.load(course, [course.assignment("hw1")])


# -- the arithmetic ---------------------------------------------------------------------------------------

def test_on_time_up_to_the_second():
    d = deadlines()
    at_due = d.assess("hw1", "ann", utc("2026-12-01T23:59:00+08:00"))
    assert at_due.kind == ON_TIME and at_due.penalty(20, 20) == 0
    assert at_due.describe() == "submitted on time (due 2026-12-01 23:59 +08:00)"
    second_late = d.assess("hw1", "ann", utc("2026-12-01T23:59:01+08:00"))
    assert second_late.kind == LATE and second_late.penalty(20, 20) == 2.0


def test_late_by_minutes_is_one_started_day():
    lateness = deadlines().assess("hw1", "ann", utc("2026-12-02T00:04:00+08:00"))
    assert (lateness.kind, lateness.units, lateness.fraction) == (LATE, 1, 0.1)
    assert lateness.penalty(18, 20) == 2.0  # a fraction of the maximum, not of the raw score
    assert lateness.describe() == ("submitted 5 minutes late (due 2026-12-01 23:59 +08:00): "
                                   "-10% (1 started day at 10% a day)")


def test_late_by_days():
    lateness = deadlines().assess("hw1", "ann", utc("2026-12-04T03:00:00+08:00"))  # 2 days 3 hours 1 minute
    assert (lateness.units, lateness.fraction, lateness.penalty(20, 20)) == (3, 0.3, 6.0)
    assert "submitted 2 days 3 hours late" in lateness.describe() and "-30% (3 started days" in lateness.describe()
    assert lateness.penalty(4, 20) == 4.0  # never more than the raw score (nbgrader's rule)


def test_per_started_hour():
    lateness = deadlines(LatePolicy(per_hour=0.01)).assess("hw1", "ann", utc("2026-12-02T02:00:30+08:00"))
    assert (lateness.units, lateness.unit, lateness.penalty(20, 20)) == (3, "hour", 0.6)
    assert "-3% (3 started hours at 1% a hour)" in lateness.describe()
    capped = deadlines(LatePolicy(per_day=0.4)).assess("hw1", "ann", utc("2026-12-04T16:00:00+00:00"))
    assert capped.fraction == 1.0 and capped.penalty(17, 20) == 17


def test_the_cut_off():
    d = deadlines()
    last_day = d.assess("hw1", "ann", DUE + timedelta(days=7))
    assert last_day.kind == LATE and last_day.fraction == pytest.approx(0.7)
    after = d.assess("hw1", "ann", DUE + timedelta(days=7, minutes=1))
    assert after.kind == CUT_OFF and after.penalty(13.5, 20) == 13.5
    assert after.describe().endswith("after the 7-day cut-off: no points")
    only_cutoff = deadlines(LatePolicy(cutoff_days=2))
    assert only_cutoff.assess("hw1", "ann", DUE + timedelta(days=1)).penalty(20, 20) == 0
    assert only_cutoff.assess("hw1", "ann", DUE + timedelta(days=3)).penalty(20, 20) == 20


def test_an_extension_moves_the_due_date_and_the_cut_off():
    d = deadlines(extensions={"ann": DUE + timedelta(days=3)})
    within = d.assess("hw1", "ann", DUE + timedelta(days=2))
    assert within.kind == ON_TIME and within.extended
    assert within.describe() == "submitted on time (due 2026-12-04 23:59 +08:00 with an extension)"
    assert d.assess("hw1", "bob", DUE + timedelta(days=2)).penalty(20, 20) == 4.0  # bob has none
    hour_after = d.assess("hw1", "ann", DUE + timedelta(days=3, hours=1))
    assert hour_after.penalty(20, 20) == 2.0
    assert d.assess("hw1", "ann", DUE + timedelta(days=9)).kind == LATE  # 6 days after the extension
    assert d.assess("hw1", "ann", DUE + timedelta(days=11)).kind == CUT_OFF


def test_no_submission_time_is_flagged_not_silently_on_time():
    lateness = deadlines().assess("hw1", "ann", None)
    assert lateness.kind == NO_TIME and lateness.flagged and lateness.penalty(20, 20) == 0
    assert "no submission time recorded" in lateness.describe() and "checked by hand" in lateness.describe()


def test_no_due_date_and_no_policy():
    assert Deadlines({}, POLICY, {}).assess("hw1", "ann", utc("2030-01-01T00:00:00Z")).kind == NO_DUE
    assert Deadlines({}, POLICY, {}).assess("hw1", "ann", None).describe() == ""
    late = deadlines(None).assess("hw1", "ann", DUE + timedelta(days=2))
    assert late.kind == LATE and late.penalty(20, 20) == 0 and late.describe().endswith(": no late penalty")


def test_durations_in_words():
    assert [duration(s) for s in (30, 60, 3 * 3600 + 120, 86400, 2 * 86400 + 3 * 3600 + 59)] == [
        "under a minute", "1 minute", "3 hours 2 minutes", "1 day", "2 days 3 hours"]


# -- the gradebook, kit export and nbgrader export ------------------------------------------------------

# student -> (raw score of 20, submission time or None, expected penalty with 10% a started day, 7-day cut-off)
CLASS = {
    "ontime": (20.0, "2026-12-01T22:00:00+08:00", 0.0),
    "minutes": (20.0, "2026-12-02T00:04:00+08:00", 2.0),
    "days": (18.0, "2026-12-04T03:00:00+08:00", 6.0),
    "extended": (20.0, "2026-12-03T12:00:00+08:00", 0.0),  # late, but within an extension of 3 days
    "cutoff": (14.0, "2026-12-10T08:00:00+08:00", 14.0),
    "notime": (20.0, None, 0.0),
}


def report(raw: float) -> Report:
    return Report("hw1", [CheckResult("forward", "MyLinear", "passed", 10.0, 10.0),
                          CheckResult("grad", "MyLinear", "passed" if raw == 20 else "failed", raw - 10.0, 10.0)])


@pytest.fixture(scope="module")
def graded_once(tmp_path_factory) -> Path:
    """A course whose gradebook holds CLASS, recorded with its deadlines (no student code runs here)."""
    root = make_course(tmp_path_factory.mktemp("late") / "course", "[due]\nhw1 = 2026-12-01T23:59:00+08:00\n\n"
                                            "[late]\nper_day = 0.1\ncutoff_days = 7\n")
    (root / "extensions.toml").write_text("[hw1]\nextended = 2026-12-04T23:59:00+08:00\n")
    course = load_course(root)
    spec = course.assignment("hw1")
    with Gradebook(db_url(root), Deadlines.load(course, [spec])) as book:
        for student, (raw, when, _) in CLASS.items():
            book.record("hw1", student, report(raw), content_hash=student, suite_hash="checks",
                        timestamp=utc(when) if when else None)
    return root


@pytest.fixture
def graded(graded_once, tmp_path) -> Path:
    """A copy of that course for one test to change (a new gradebook costs seconds: nbgrader stamps it)."""
    return shutil.copytree(graded_once, tmp_path / "course")


def nbgrader_export(db: Path, tmp_path: Path) -> dict[str, dict]:
    out = tmp_path / "nbgrader.csv"
    run = subprocess.run([NBGRADER, "export", f"--db=sqlite:///{db}", f"--to={out}"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    assert run.returncode == 0, run.stderr
    return {r["student_id"]: r for r in csv.DictReader(out.open())}


def kit_export(root: Path) -> dict[str, dict]:
    result = kit("export", "--course", str(root))
    assert result.exit_code == 0, result.output
    return {r["student_id"]: r for r in csv.DictReader(io.StringIO(result.output))}


def penalties(root: Path) -> dict[str, float]:
    con = sqlite3.connect(root / "gradebook.db")
    try:
        return dict(con.execute("SELECT sa.student_id, sn.late_submission_penalty FROM submitted_notebook sn "
                                "JOIN submitted_assignment sa ON sn.assignment_id = sa.id"))
    finally:
        con.close()


def test_the_same_numbers_in_kit_export_and_nbgrader_export(graded, tmp_path):
    ours, theirs = kit_export(graded), nbgrader_export(graded / "gradebook.db", tmp_path)
    assert sorted(ours) == sorted(theirs) == sorted(CLASS)
    for student, (raw, _, penalty) in CLASS.items():
        for row in (ours, theirs):
            r = row[student]
            assert float(r["raw_score"]) == raw, student
            assert float(r["late_submission_penalty"]) == pytest.approx(penalty), student
            assert float(r["score"]) == pytest.approx(raw - penalty), student
            assert float(r["max_score"]) == 20.0
        for column in ("duedate", "timestamp"):
            assert ours[student][column] == theirs[student][column], (student, column)
    assert theirs["days"]["duedate"].startswith("2026-12-01 15:59:00")  # nbgrader keeps UTC
    assert ours["minutes"]["late"] == ("submitted 5 minutes late (due 2026-12-01 23:59 +08:00): "
                                       "-10% (1 started day at 10% a day)")
    assert "no submission time recorded" in ours["notime"]["late"]
    assert "with an extension" in ours["extended"]["late"]
    assert "cut-off" in ours["cutoff"]["late"]


def test_nbgrader_sees_the_due_date_and_the_extension(graded):
    """nbgrader's own lateness (duedate + extension) agrees with kit's, second for second."""
    from nbgrader.api import Gradebook as NbGradebook

    with Gradebook(db_url(graded)) as book:
        ours = book.late("hw1")
    nb = NbGradebook(db_url(graded))
    try:
        for student in CLASS:
            sub = nb.find_submission("hw1", student)
            assert sub.total_seconds_late == pytest.approx(ours[student].lateness.seconds), student
        assert nb.find_submission("hw1", "extended").extension == timedelta(days=3)
    finally:
        nb.close()


def test_a_new_policy_applies_without_grading_again(graded, tmp_path):
    con = sqlite3.connect(graded / "gradebook.db")
    before = con.execute("SELECT student, graded_at, report FROM kit_result ORDER BY student").fetchall()
    con.close()
    toml = graded / "kit.toml"
    toml.write_text(toml.read_text().replace("per_day = 0.1", "per_day = 0.25"))
    result = kit("late", "hw1", "--course", str(graded), "--json")
    assert result.exit_code == 1, result.output  # notime has no submission time: flagged
    doc = json.loads(result.output)
    got = {s["student"]: s for s in doc["submissions"]}
    assert got["minutes"]["late_submission_penalty"] == 5.0 and got["days"]["late_submission_penalty"] == 15.0
    assert got["days"]["score"] == 3.0 and got["notime"]["flagged"] and not got["days"]["flagged"]
    assert any("no submission time for notime" in note for note in doc["notes"])
    assert penalties(graded) == {"ontime": 0, "minutes": 5, "days": 15, "extended": 0, "cutoff": 14, "notime": 0}
    assert float(nbgrader_export(graded / "gradebook.db", tmp_path)["days"]["score"]) == 3.0
    con = sqlite3.connect(graded / "gradebook.db")
    assert con.execute("SELECT student, graded_at, report FROM kit_result ORDER BY student").fetchall() == before
    con.close()
    # no [late] table: no penalty, though lateness is still said
    toml.write_text(toml.read_text().split("[late]")[0])
    assert kit("late", "hw1", "--course", str(graded)).exit_code == 1
    assert set(penalties(graded).values()) == {0}
    assert kit_export(graded)["days"]["late"].endswith(": no late penalty")


def test_kit_extend_writes_the_table_and_applies_it(graded):
    result = kit("extend", "hw1", "days", "--days", "3", "--course", str(graded))
    assert result.exit_code == 0, result.output
    assert "submitted on time (due 2026-12-04 23:59 +08:00 with an extension)" in result.output
    assert penalties(graded)["days"] == 0
    import tomllib

    table = tomllib.loads((graded / "extensions.toml").read_text())
    assert table["hw1"]["days"] == datetime.fromisoformat("2026-12-04T23:59:00+08:00")
    assert table["hw1"]["extended"] == datetime.fromisoformat("2026-12-04T23:59:00+08:00")  # kept
    result = kit("extend", "hw1", "days", "--until", "2026-12-02T12:00:00Z", "--course", str(graded))
    assert result.exit_code == 0 and penalties(graded)["days"] == 4.0  # 1 day 19 hours after it: 2 days
    assert kit("extend", "hw1", "days", "--remove", "--course", str(graded)).exit_code == 0
    assert penalties(graded)["days"] == 6.0
    result = kit("extend", "hw1", "newbie", "--days", "1", "--course", str(graded))
    assert result.exit_code == 0 and "no graded submission of hw1 yet" in result.output


@pytest.mark.parametrize("args, message", [
    (["--until", "2026-12-03T23:59:00"], "has no time zone"),
    (["--until", "next week"], "is not a date and time"),
    (["--until", "2026-11-30T00:00:00Z"], "is not after the due date"),
    ([], "say one of --until DATETIME, --days N or --remove"),
    (["--days", "1", "--remove"], "say one of"),
])
def test_kit_extend_usage_errors(graded, args, message):
    result = kit("extend", "hw1", "ann", *args, "--course", str(graded))
    assert result.exit_code == 2 and message in result.output, result.output
    assert "ann" not in (graded / "extensions.toml").read_text()


def test_feedback_shows_raw_score_penalty_final_score_and_why(graded, tmp_path):
    result = kit("feedback", "hw1", "--course", str(graded), "--out", str(tmp_path / "fb"))
    assert result.exit_code == 0, result.output
    md = (tmp_path / "fb" / "days" / "hw1" / "feedback.md").read_text()
    assert "| raw score | 18 / 20 |" in md and "| late penalty | -6 |" in md
    assert "| **final score** | **12 / 20** |" in md
    assert "submitted 2 days 3 hours late (due 2026-12-01 23:59 +08:00): -30% (3 started days at 10% a day)" in md
    page = (tmp_path / "fb" / "days" / "hw1" / "feedback.html").read_text()
    assert "<th>late penalty</th><td>-6</td>" in page and '<td class="score">12 / 20</td>' in page
    notime = (tmp_path / "fb" / "notime" / "hw1" / "feedback.md").read_text()
    assert "**Note:** no submission time recorded" in notime and "late penalty" not in notime
    ontime = (tmp_path / "fb" / "ontime" / "hw1" / "feedback.md").read_text()
    assert "submitted on time" in ontime and "late penalty" not in ontime


# -- kit grade: applied to every submission, unchanged ones too ---------------------------------------------

CPU_ONLY = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


@pytest.mark.slow
def test_kit_grade_applies_the_deadlines_even_to_unchanged_submissions(tmp_path):
    from kit.grader.sandbox import probe

    flags = [] if probe().ok else ["--unsafe-no-sandbox"]  # every submission is the instructor's solution
    root = make_course(tmp_path / "course", "[due]\nhw1 = 2026-12-01T23:59:00+08:00\n\n[late]\nper_day = 0.1\n")
    solution = (ROOT / "solutions" / "hw1" / "my_linear.py").read_text()
    for student, stamp in (("early", "2026-12-01 10:00:00.000000 UTC"), ("late", "2026-12-03 16:30:00.000000 UTC"),
                           ("unknown", None)):
        folder = root / "submitted" / student / "hw1"
        folder.mkdir(parents=True)
        (folder / "my_linear.py").write_text(solution)
        if stamp:
            (folder / "timestamp.txt").write_text(stamp + "\n")

    def grade() -> dict:
        run = subprocess.run([KIT, "grade", "hw1", "-j", "1", "--json", *flags], cwd=root, capture_output=True,
                             text=True, timeout=600, env=CPU_ONLY)
        assert run.returncode == 0, run.stderr[-3000:]
        return json.loads(run.stdout)

    doc = grade()
    late = {s["student"]: s["late"] for s in doc["submissions"]}
    # hw1's 21 points (the device check included): 3 started days at 10%
    assert late["early"]["penalty"] == 0 and late["late"]["penalty"] == pytest.approx(6.3)
    assert late["late"]["score_after_penalty"] == pytest.approx(14.7)
    assert late["late"]["reason"].startswith("submitted 2 days")
    assert late["unknown"]["flagged"] and late["unknown"]["kind"] == NO_TIME
    assert any("no submission time for unknown" in n for n in doc["notes"])
    assert any("1 submission of hw1 late: late" in n for n in doc["notes"])
    # a new policy and a new extension: nothing is graded again, every penalty follows
    (root / "kit.toml").write_text((root / "kit.toml").read_text().replace("per_day = 0.1", "per_hour = 0.01"))
    (root / "extensions.toml").write_text("[hw1]\nearly = 2026-12-05T00:00:00Z\n")
    (root / "submitted" / "early" / "hw1" / "timestamp.txt").write_text("2026-12-04 12:00:00.000000 UTC\n")
    doc = grade()
    assert all(s["cached"] for s in doc["submissions"])
    late = {s["student"]: s["late"] for s in doc["submissions"]}
    assert late["late"]["penalty"] == pytest.approx(10.29)  # 2 days 31 minutes: 49 started hours at 1% of 21
    assert late["early"]["kind"] == ON_TIME and late["early"]["penalty"] == 0  # handed in again, within the extension
    assert penalties(root) == {"early": 0, "late": pytest.approx(10.29), "unknown": 0}


def test_a_policy_without_a_due_date_is_said(graded):
    toml = graded / "kit.toml"
    toml.write_text(toml.read_text().replace("[due]\nhw1 = 2026-12-01T23:59:00+08:00\n", ""))
    (graded / "extensions.toml").unlink()
    result = kit("late", "hw1", "--course", str(graded), "--json")
    assert result.exit_code == 0, result.output  # no due date: nothing is late, nothing to flag
    doc = json.loads(result.output)
    assert doc["notes"] == ["hw1 has no due date (assignment.toml's `due` or kit.toml's [due]): no late penalties"]
    assert {s["kind"] for s in doc["submissions"]} == {NO_DUE} and set(penalties(graded).values()) == {0}


def test_kit_grade_stops_on_a_bad_extensions_file_before_grading(graded):
    (graded / "extensions.toml").write_text("[hw1]\nann = 2026-12-04\n")
    (graded / "submitted" / "ann" / "hw1").mkdir(parents=True)
    result = kit("grade", "hw1", "--course", str(graded))
    assert result.exit_code == 2 and "extensions.toml: hw1.ann: expected a date and time" in result.output
