"""`kit grade`: a whole class into nbgrader's gradebook, right, resumable, and safe from its students.

The acceptance test builds a class of 30 hw1 submissions (correct, wrong, broken, zipped and one
hostile), collects the zipped ones with `kit collect`, grades everything with one `kit grade`
command, and checks every score, the summary, and that `nbgrader export` on the resulting database
lists the same totals. The interruption test kills `kit grade` with SIGKILL in the middle of a
run, checks that the gradebook is consistent and that nothing was left running, and that running it
again ends with the same gradebook as an uninterrupted run.

These tests take about a minute and a half on two cores (each submission's child imports torch);
they are marked `slow`.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import tomllib
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest

from kit.grader.batch import find_submissions
from kit.grader.course import load_assignment
from kit.grader.files import content_hash
from kit.grader.pool import Job, WorkerPool
from kit.grader.report import CheckResult, Report
from kit.grader.stats import summarize
from tests.conftest import ROOT

KIT = str(Path(sys.executable).with_name("kit"))
NBGRADER = str(Path(sys.executable).with_name("nbgrader"))
HW1 = ROOT / "grader" / "suites" / "hw1"
CASES = ROOT / "tests" / "submissions" / "hw1"
REDTEAM = ROOT / "tests" / "redteam"
SOLUTION = ROOT / "solutions" / "hw1" / "my_linear.py"
STUB = ROOT / "assignments" / "hw1" / "my_linear.py"
FILE = "my_linear.py"


def sandbox_ok() -> bool:
    try:
        from kit.grader.sandbox import probe
    except ImportError:
        return False
    return probe().ok


SANDBOX = sandbox_ok()
slow = pytest.mark.slow  # needs a few dozen child processes that import torch
GRADE_FLAGS = [] if SANDBOX else ["--unsafe-no-sandbox"]

# A student who attacks the grader at import time, then hands in an honest mistake (the bias is never
# added: the twin of tests/submissions/hw1/bias_ignored). Every attack is caught so the import goes on:
# inside the sandbox none of them can succeed, and the student must get exactly the twin's score.
HOSTILE = '''"""Attacks the grading run: rewrites the gradebook, overwrites classmates, plants files, fakes results."""
import glob
import math
import os
import sqlite3

import torch
from torch import nn

HERE = os.path.dirname(os.path.abspath(__file__))
COURSE = os.path.abspath(os.path.join(HERE, "..", "..", ".."))


def attack():
    try:
        db = sqlite3.connect(os.path.join(COURSE, "gradebook.db"))
        db.execute("UPDATE grade SET auto_score = 100")
        db.execute("UPDATE kit_result SET score = 100")
        db.commit()
    except Exception:
        pass
    for path in glob.glob(os.path.join(COURSE, "submitted", "*", "hw1", "my_linear.py")):
        if os.path.dirname(path) != HERE:
            try:
                with open(path, "w") as f:
                    f.write("raise SystemExit('pwned')\\n")
            except Exception:
                pass
    for target in (os.path.join(COURSE, "PWNED"), os.path.join(HERE, "PWNED"), "/tmp/kit-PWNED"):
        try:
            with open(target, "w") as f:
                f.write("pwned")
        except Exception:
            pass
    print("20 passed in 0.01s")
    print('{"assignment": "hw1", "score": 20.0, "max_score": 20.0, "checks": []}')


attack()


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x):
        return x @ self.weight.T
'''


@dataclass
class Member:
    student: str
    source: Path | str | None  # a file to hand in, the text of one, or None (an empty folder)
    score: float
    failing: set[str] | None  # None: every check that runs without a GPU
    zipped: str = ""  # "", "top" (the file at the top of the zip) or "folder" (inside hw1/)
    max_score: float = 21.0  # FULL: hw1's full marks without a GPU, the same for every student

    def failing_of(self, everything: set[str]) -> set[str]:
        return everything if self.failing is None else self.failing


def expected(folder: Path) -> tuple[float, set[str]]:
    data = tomllib.loads((folder / "expected.toml").read_text())
    return data["score"], set(data["failing"])


FULL = 21.0  # hw1's full marks without a GPU


def class_of_30() -> list[Member]:
    members = []
    for case in ("alt_correct", "bias_grad_dropped", "bias_ignored", "crash_forward", "exit_at_import",
                 "fake_output", "forbidden_obfuscated", "forbidden_plain", "forbidden_runtime", "missing_class",
                 "syntax_error", "tamper_allclose", "transposed_weight"):
        score, failing = expected(CASES / case)
        members.append(Member(case.replace("_", "-"), CASES / case / FILE, score, failing))
    for case in ("honest_plus_one", "honest_raise_7"):
        score, failing = expected(REDTEAM / case)
        members.append(Member(case.replace("_", "-"), REDTEAM / case / FILE, score, failing))
    for i in range(1, 7):
        members.append(Member(f"correct{i:02d}", SOLUTION, FULL, set()))
    members += [Member("stub1", STUB, 0.0, None), Member("stub2", STUB, 0.0, None), Member("empty", None, 0.0, None)]
    score, failing = expected(CASES / "bias_ignored")
    members += [
        Member("zip-correct1", SOLUTION, FULL, set(), zipped="folder"),
        Member("zip-correct2", SOLUTION, FULL, set(), zipped="top"),
        Member("zip-alt", CASES / "alt_correct" / FILE, FULL, set(), zipped="folder"),
        Member("zip-bias", CASES / "bias_ignored" / FILE, score, failing, zipped="top"),
        Member("zip-syntax", CASES / "syntax_error" / FILE, 0.0, None, zipped="top"),
    ]
    if SANDBOX:  # without a sandbox a hostile submission would really do harm: leave it out
        members.append(Member("hostile", HOSTILE, score, failing))
    else:
        members.append(Member("correct07", SOLUTION, FULL, set()))
    assert len(members) == 30
    return members


def text_of(member: Member) -> str:
    if isinstance(member.source, Path):
        return member.source.read_text() + f"\n# handed in by {member.student}\n"
    return member.source


def make_course(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "kit.toml").write_text(f'[course]\nname = "test course"\nsuites = "{ROOT / "grader" / "suites"}"\n')
    return root


def hand_in(course: Path, members: list[Member], downloads: Path | None = None) -> None:
    for m in members:
        if m.zipped:
            assert downloads is not None
            downloads.mkdir(exist_ok=True)
            name = f"hw1/{FILE}" if m.zipped == "folder" else FILE
            with zipfile.ZipFile(downloads / f"{m.student}_hw1.zip", "w") as zf:
                zf.writestr(zipfile.ZipInfo(name, date_time=(2024, 3, 1, 12, 0, 0)), text_of(m))
            downloaded(downloads / f"{m.student}_hw1.zip", "2024-03-01T12:00:00+00:00")
            continue
        folder = course / "submitted" / m.student / "hw1"
        folder.mkdir(parents=True)
        if m.source is not None:
            (folder / FILE).write_text(text_of(m))


def downloaded(path: Path, when: str) -> None:
    """Date the download: kit collect takes a zip's submission time from it, never from the dates inside."""
    t = datetime.fromisoformat(when).timestamp()
    os.utime(path, (t, t))


# expected scores are those of a machine without CUDA (GPU checks skipped): hide any GPU
CPU_ONLY = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}


def kit(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([KIT, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=CPU_ONLY)


def gradebook_state(db: Path) -> dict[str, dict]:
    """Per student: nbgrader's total and per-component auto scores, and kit's hash and score."""
    con = sqlite3.connect(db)
    try:
        state: dict[str, dict] = {}
        for student, cell, auto in con.execute(
                "SELECT sa.student_id, bc.name, g.auto_score FROM grade g "
                "JOIN submitted_notebook sn ON g.notebook_id = sn.id "
                "JOIN submitted_assignment sa ON sn.assignment_id = sa.id "
                "JOIN base_cell bc ON g.cell_id = bc.id"):
            state.setdefault(student, {"components": {}})["components"][cell] = auto
        for student, chash, score, max_score in con.execute(
                "SELECT student, content_hash, score, max_score FROM kit_result WHERE assignment = 'hw1'"):
            state.setdefault(student, {"components": {}}).update(hash=chash, score=score, max_score=max_score)
        return state
    finally:
        con.close()


def consistent(db: Path) -> None:
    """SQLite is intact, and kit's records and nbgrader's grades describe the same submissions."""
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        con.close()
    for student, s in gradebook_state(db).items():
        assert "hash" in s and s["components"], f"{student}: grades and kit's record disagree: {s}"
        assert sum(s["components"].values()) == pytest.approx(s["score"]), student


# -- the class of 30 --------------------------------------------------------------------------------

@dataclass
class Graded:
    course: Path
    members: list[Member]
    collect: subprocess.CompletedProcess
    grade: subprocess.CompletedProcess
    doc: dict = field(default_factory=dict)
    seconds: float = 0.0


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Graded:
    course = make_course(tmp_path_factory.mktemp("class") / "course")
    members = class_of_30()
    downloads = course.parent / "downloads"
    hand_in(course, members, downloads)
    # an older download of zip-alt (superseded) and a hostile archive (rejected)
    with zipfile.ZipFile(downloads / "zip-alt_hw1_old.zip", "w") as zf:
        zf.writestr(zipfile.ZipInfo(FILE, date_time=(2024, 2, 1, 12, 0, 0)), STUB.read_text())
    downloaded(downloads / "zip-alt_hw1_old.zip", "2024-02-01T12:00:00+00:00")
    with zipfile.ZipFile(downloads / "mallory_hw1.zip", "w") as zf:
        zf.writestr("../../../evil.py", "print('escaped')\n")
        zf.writestr(FILE, SOLUTION.read_text())
    collected = kit("collect", "hw1", str(downloads), "--json", cwd=course)
    started = time.monotonic()
    run = kit("grade", "hw1", "-j", "2", "--json", *GRADE_FLAGS, cwd=course)
    result = Graded(course, members, collected, run, seconds=time.monotonic() - started)
    assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-4000:]
    result.doc = json.loads(run.stdout)
    return result


def all_checks(doc: dict) -> set[str]:
    """Every check that runs here (GPU ones are skipped without CUDA)."""
    sub = next(s for s in doc["submissions"] if s["student"] == "correct01")
    return {c["id"] for c in sub["checks"] if c["status"] != "skipped"}


@slow
def test_collect_took_the_zips_and_refused_the_hostile_one(graded):
    assert graded.collect.returncode == 1  # something was rejected
    entries = {e["source"]: e for e in json.loads(graded.collect.stdout)["entries"]}
    assert entries["mallory_hw1.zip"]["status"] == "rejected"
    assert entries["zip-alt_hw1_old.zip"]["status"] == "superseded"
    assert all(entries[f"{m.student}_hw1.zip"]["status"] == "collected" for m in graded.members if m.zipped)
    assert not (graded.course / "submitted" / "mallory").exists()
    assert not list(graded.course.parent.rglob("evil.py"))


@slow
def test_every_student_gets_exactly_their_score(graded):
    doc = graded.doc
    assert doc["assignment"] == "hw1" and not doc["not_graded"]
    by_student = {s["student"]: s for s in doc["submissions"]}
    assert sorted(by_student) == sorted(m.student for m in graded.members)
    everything = all_checks(doc)
    for m in graded.members:
        sub = by_student[m.student]
        assert set(sub) >= {"student", "score", "max_score", "checks"}
        failing = {c["id"] for c in sub["checks"] if c["status"] not in ("passed", "skipped")}
        details = "\n".join(f"{c['id']}: {c['message'][:200]}" for c in sub["checks"] if c["id"] in failing)
        assert failing == m.failing_of(everything), f"{m.student}:\n{details}"
        assert sub["score"] == pytest.approx(m.score), f"{m.student}:\n{details}"
        assert sub["max_score"] == m.max_score
    print(f"graded 30 submissions in {graded.seconds:.1f} s")


@slow
def test_the_same_grades_without_the_fork_server(graded, tmp_path):
    """The fork server (the default) changes how fast children start, not a single verdict or message."""
    run = kit("grade", "hw1", "-j", "2", "--json", "--force", "--no-fork-server", "--db", str(tmp_path / "plain.db"),
              *GRADE_FLAGS, cwd=graded.course)
    assert run.returncode == 1, run.stderr[-4000:]

    def verdicts(doc: dict) -> dict:
        return {s["student"]: (s["score"], [(c["id"], c["status"], c["points"], c["message"]) for c in s["checks"]])
                for s in doc["submissions"]}

    assert verdicts(json.loads(run.stdout)) == verdicts(graded.doc)


@slow
def test_the_summary_is_right(graded):
    summary = graded.doc["summary"]
    scores = [m.score for m in graded.members]
    assert summary["submissions"] == 30
    assert summary["mean"] == pytest.approx(sum(scores) / 30, abs=1e-3)
    assert summary["min"] == min(scores) and summary["max"] == max(scores)
    assert summary["full_marks"] == sum(1 for m in graded.members if m.score == m.max_score)
    assert [c["component"] for c in summary["components"]] == ["MyLinear"]
    assert summary["components"][0]["mean"] == pytest.approx(sum(scores) / 30, abs=1e-3)
    assert sum(b["count"] for b in summary["distribution"]) == 30
    assert summary["distribution"][-1]["count"] == sum(1 for m in graded.members if m.score == m.max_score)
    assert summary["distribution"][0]["count"] == sum(1 for s in scores if s < 2.0)
    everything = all_checks(graded.doc)
    expected_failures: dict[str, int] = {}
    for m in graded.members:
        for check in m.failing_of(everything):
            expected_failures[check] = expected_failures.get(check, 0) + 1
    got = {f["check"]: f["failed"] + f["error"] for f in summary["failures"]}
    assert got == expected_failures


@slow
def test_nbgrader_export_lists_the_same_totals(graded, tmp_path):
    out = tmp_path / "grades.csv"
    db = graded.course / "gradebook.db"
    run = subprocess.run([NBGRADER, "export", f"--db=sqlite:///{db}", f"--to={out}"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    assert run.returncode == 0, run.stderr
    import csv

    rows = {r["student_id"]: r for r in csv.DictReader(out.open())}
    assert sorted(rows) == sorted(m.student for m in graded.members)
    for m in graded.members:
        assert float(rows[m.student]["score"]) == pytest.approx(m.score), m.student
        assert float(rows[m.student]["max_score"]) == m.max_score
        assert rows[m.student]["assignment"] == "hw1"
    # the zipped ones carry the time they were handed in
    assert rows["zip-bias"]["timestamp"].startswith("2024-03-01 12:00:00")


@slow
def test_kit_export_agrees_with_nbgrader(graded):
    run = kit("export", "--format", "csv", "--components", cwd=graded.course)
    assert run.returncode == 0, run.stderr
    import csv
    import io

    rows = {r["student_id"]: r for r in csv.DictReader(io.StringIO(run.stdout))}
    for m in graded.members:
        assert float(rows[m.student]["score"]) == pytest.approx(m.score)
        assert float(rows[m.student]["hw1:MyLinear"]) == pytest.approx(m.score)


@slow
def test_the_hostile_student_changed_nothing(graded):
    if not SANDBOX:
        pytest.skip("no sandbox here: the hostile submission was left out")
    course = graded.course
    assert not (course / "PWNED").exists() and not Path("/tmp/kit-PWNED").exists()
    assert not (course / "submitted" / "hostile" / "hw1" / "PWNED").exists()
    for m in graded.members:
        if m.source is None or m.student == "hostile":
            continue
        assert (course / "submitted" / m.student / "hw1" / FILE).read_text() == text_of(m), m.student
    state = gradebook_state(course / "gradebook.db")
    assert state["hostile"]["score"] == pytest.approx(expected(CASES / "bias_ignored")[0])
    consistent(course / "gradebook.db")


@slow
def test_a_rerun_grades_nothing_and_says_the_same(graded):
    started = time.monotonic()
    run = kit("grade", "hw1", "--json", *GRADE_FLAGS, cwd=graded.course)
    assert run.returncode == 1, run.stderr
    doc = json.loads(run.stdout)
    assert all(s["cached"] for s in doc["submissions"])
    assert [(s["student"], s["score"]) for s in doc["submissions"]] == \
           [(s["student"], s["score"]) for s in graded.doc["submissions"]]
    assert time.monotonic() - started < 20


@slow
def test_changed_submission_is_regraded(graded, tmp_path):
    course = tmp_path / "course"
    shutil.copytree(graded.course, course)
    (course / "submitted" / "stub1" / "hw1" / FILE).write_text(SOLUTION.read_text())
    run = kit("grade", "hw1", "--json", *GRADE_FLAGS, cwd=course)
    doc = json.loads(run.stdout)
    fresh = [s["student"] for s in doc["submissions"] if not s["cached"]]
    assert fresh == ["stub1"]
    assert next(s for s in doc["submissions"] if s["student"] == "stub1")["score"] == FULL
    assert gradebook_state(course / "gradebook.db")["stub1"]["score"] == FULL


@slow
def test_feedback_for_every_student(graded, tmp_path):
    out = tmp_path / "feedback"
    run = kit("feedback", "hw1", "--out", str(out), cwd=graded.course)
    assert run.returncode == 0, run.stderr
    con = sqlite3.connect(graded.course / "gradebook.db")
    reports = {s: Report.from_json(json.loads(r)) for s, r in
               con.execute("SELECT student, report FROM kit_result WHERE assignment = 'hw1'")}
    con.close()
    for m in graded.members:
        md = (out / m.student / "hw1" / "feedback.md").read_text()
        page = (out / m.student / "hw1" / "feedback.html").read_text()
        assert f"**Score: {m.score:g} / {m.max_score:g}**" in md
        report = reports[m.student]
        public_text = "\n".join(c.message + c.output for c in report.checks if not c.hidden)
        for c in report.checks:
            if not c.hidden:
                continue
            for line in (c.message + "\n" + c.output).splitlines():
                line = line.strip()
                if len(line) > 12 and line not in public_text:
                    assert line not in md and line not in page, f"{m.student}: hidden {c.id} leaked {line!r}"


# -- interrupted runs --------------------------------------------------------------------------------

def session_processes(sid: int, marker: str) -> list[str]:
    """Processes still in session `sid`, or whose command line mentions `marker` (our children)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            state, session = fields[0], int(fields[3])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, IndexError, ValueError):
            continue
        if state == "Z":
            continue
        if session == sid or marker in cmd:
            found.append(f"{entry} {cmd[:200]}")
    return found


def graded_rows(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return con.execute("SELECT count(*) FROM kit_result").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


@slow
def test_kill_9_mid_run_then_rerun_gives_the_same_gradebook(graded, tmp_path):
    members = [m for m in graded.members if not m.zipped and m.student != "hostile"][:12]
    course = make_course(tmp_path / "course")
    hand_in(course, members)
    db = course / "gradebook.db"
    proc = subprocess.Popen([KIT, "grade", "hw1", "-j", "2", *GRADE_FLAGS], cwd=course, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=CPU_ONLY)
    deadline = time.monotonic() + 240
    while graded_rows(db) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "kit grade finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = graded_rows(db)
    assert 3 <= done < len(members)
    # the workers and the children running student code go with it
    deadline = time.monotonic() + 15
    while session_processes(proc.pid, str(course)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not session_processes(proc.pid, str(course))
    consistent(db)

    run = kit("grade", "hw1", "-j", "2", "--json", *GRADE_FLAGS, cwd=course)
    assert run.returncode == 1, run.stderr[-3000:]
    doc = json.loads(run.stdout)
    assert sum(1 for s in doc["submissions"] if s["cached"]) >= done
    assert len(doc["submissions"]) == len(members) and not doc["not_graded"]
    consistent(db)
    after = gradebook_state(db)
    reference = gradebook_state(graded.course / "gradebook.db")
    assert after == {m.student: reference[m.student] for m in members}


# -- pieces -------------------------------------------------------------------------------------------

def test_content_hash_sees_content_not_timestamps(tmp_path):
    a = tmp_path / "a"
    a.mkdir()
    (a / FILE).write_text("x = 1\n")
    first = content_hash(a)
    (a / "timestamp.txt").write_text("2024-01-01 00:00:00 UTC\n")
    (a / "__pycache__").mkdir()
    (a / "__pycache__" / "m.pyc").write_bytes(b"\0")
    assert content_hash(a) == first
    (a / FILE).write_text("x = 2\n")
    assert content_hash(a) != first
    (a / FILE).write_text("x = 1\n")
    (a / "extra.py").write_text("")
    assert content_hash(a) != first


def test_find_submissions_skips_links_and_bad_ids(tmp_path):
    sub = tmp_path / "submitted"
    (sub / "ann" / "hw1").mkdir(parents=True)
    (sub / "bob" / "hw2").mkdir(parents=True)
    (sub / "bad id" / "hw1").mkdir(parents=True)
    (sub / "cy").mkdir()
    (sub / "cy" / "hw1").symlink_to(sub / "ann" / "hw1")
    found, skipped = find_submissions(sub, "hw1")
    assert [s.student for s in found] == ["ann"]
    assert len(skipped) == 2


def fake_task(suite_dir: str, submission: str, require_sandbox: bool) -> tuple[Report, str]:
    """Stands in for grade_in_worker: dies like a worker killed by the OOM killer for `crash`, else a report."""
    if submission.endswith("crash"):
        os._exit(9)
    return Report("hw1", [CheckResult("forward", "MyLinear", "passed", 1.0, 1.0)]), "here"


def test_a_dying_worker_costs_a_retry_not_the_run(tmp_path):
    spec = load_assignment(HW1)
    jobs = [Job(name, tmp_path / name) for name in ("a", "crash", "b", "c")]
    pool = WorkerPool(2, False, task=fake_task, max_attempts=2)
    outcomes = {o.job.student: o for o in pool.grade(spec, jobs)}
    assert sorted(outcomes) == ["a", "b", "c", "crash"]
    assert outcomes["crash"].report is None and "died 2 times" in outcomes["crash"].error
    assert all(outcomes[s].report.score == 1.0 and outcomes[s].node == "here" for s in "abc")


def test_summary_of_reports():
    def rep(*statuses):
        return Report("hw1", [CheckResult(f"c{i}", "A" if i < 2 else "B", s, 1.0 if s == "passed" else 0.0, 1.0)
                              for i, s in enumerate(statuses)])

    summary = summarize({"x": rep("passed", "passed", "passed"), "y": rep("failed", "passed", "error"),
                         "z": rep("failed", "failed", "skipped")})
    assert summary["submissions"] == 3 and summary["full_marks"] == 1
    assert {c["component"]: c["mean"] for c in summary["components"]} == {"A": 1.0, "B": 0.5}
    assert [(f["check"], f["failed"], f["error"]) for f in summary["failures"]] == \
           [("c0", 2, 0), ("c1", 1, 0), ("c2", 0, 1)]
    assert summary["distribution"][-1]["count"] == 1


def test_grade_refuses_to_run_without_a_sandbox(tmp_path):
    course = make_course(tmp_path / "course")
    hand_in(course, [Member("ann", SOLUTION, FULL, set())])
    empty = tmp_path / "bin"
    empty.mkdir()
    run = subprocess.run([KIT, "grade", "hw1"], cwd=course, capture_output=True, text=True,
                         env={**CPU_ONLY, "PATH": str(empty)})
    assert run.returncode == 2, run.stdout + run.stderr
    assert "--unsafe-no-sandbox" in run.stderr
    assert not (course / "gradebook.db").exists()


def test_grade_usage_errors(tmp_path):
    course = make_course(tmp_path / "course")
    assert kit("grade", "hw1", cwd=course).returncode == 2  # nothing submitted
    assert kit("grade", "hw99", cwd=course).returncode == 2
    (course / "submitted" / "ann" / "hw1").mkdir(parents=True)
    assert kit("grade", "hw1", "--student", "bob", cwd=course).returncode == 2
    assert kit("export", cwd=course).returncode == 2  # no gradebook yet
    assert kit("feedback", "hw1", cwd=course).returncode == 2


def test_gradebook_records_atomically_and_forgets_what_nbgrader_lost(tmp_path):
    from kit.grader.gradebook import Gradebook, db_url

    url = db_url(tmp_path)
    report = Report("hw1", [CheckResult("a", "MyLinear", "passed", 2.0, 2.0),
                            CheckResult("b", "Other", "failed", 0.0, 3.0)])
    with Gradebook(url) as book:
        book.record("hw1", "ann", report, content_hash="h1", suite_hash="s1")
        book.record("hw1", "bob", report, content_hash="h2", suite_hash="s1")
        assert book.scores("hw1")["ann"][:2] == (2.0, 5.0)
        report.checks[1] = CheckResult("b", "Other", "passed", 3.0, 3.0)
        book.record("hw1", "ann", report, content_hash="h3", suite_hash="s1")  # regraded in place
        assert book.scores("hw1")["ann"][:2] == (5.0, 5.0)
        assert book.stored("hw1")["ann"].content_hash == "h3"

        class Boom(Exception):
            pass

        original = book.db.commit
        book.db.commit = lambda: (_ for _ in ()).throw(Boom())  # dies just before the commit
        with pytest.raises(Boom):
            book.record("hw1", "cy", report, content_hash="h4", suite_hash="s1")
        book.db.commit = original
        assert "cy" not in book.stored("hw1") and "cy" not in book.scores("hw1")
        # what formgrader's views are built from
        dicts = {d["student"]: d for d in book.nb.submission_dicts("hw1")}
        assert dicts["ann"]["score"] == 5.0 and dicts["ann"]["max_score"] == 5.0
        assert not dicts["ann"]["needs_manual_grade"]
        cells = {d["student"]: d for d in book.nb.notebook_submission_dicts("hw1", "hw1")}
        assert cells["bob"]["failed_tests"] and cells["bob"]["score"] == 2.0
        book.nb.remove_submission("hw1", "bob")
        assert sorted(book.stored("hw1")) == ["ann"]  # bob's grades are gone: regrade him
        rows = book.export_rows()
    assert {(r["student_id"], r["score"]) for r in rows} == {("ann", 5.0), ("bob", 0.0)}
    assert next(r for r in rows if r["student_id"] == "ann")["components"] == {"MyLinear": 2.0, "Other": 3.0}


# -- the fixed cost, and Ray kept out of local grading -------------------------------------------------

def test_local_grading_never_imports_ray_nor_what_it_does_not_use(tmp_path):
    """`kit grade` without --ray: neither the driver nor its workers import Ray (`-X importtime`, which the
    spawned workers inherit, lists every module each imports); a rerun with nothing to grade starts no worker."""
    course = make_course(tmp_path / "course")
    hand_in(course, [Member("ann", SOLUTION, FULL, set())])
    code = "from kit.cli.main import main; main()"
    for first in (True, False):
        run = subprocess.run([sys.executable, "-X", "importtime", "-c", code, "grade", "hw1", "--json", *GRADE_FLAGS],
                             cwd=course, capture_output=True, text=True, timeout=300, env=CPU_ONLY)
        assert run.returncode == 0, run.stderr[-3000:]
        imported = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
        assert "nbgrader.api" in imported
        assert ("torch" in imported) == first  # the workers' imports are listed; a rerun has nothing to grade
        assert not {m for m in imported if m == "ray" or m.startswith("ray.")}
        assert "rfc3987_syntax.syntax_helpers" not in imported  # no IRI grammar compiled for nbgrader
        assert "nbgrader.server_extensions" not in imported  # nor nbgrader's Jupyter server extensions
        assert "jupyter_server" not in imported
    doc = json.loads(run.stdout)
    assert [(s["student"], s["score"], s["cached"]) for s in doc["submissions"]] == [("ann", FULL, True)]


def test_ray_is_a_usage_error_naming_the_install_when_not_installed(tmp_path):
    course = make_course(tmp_path / "course")
    hand_in(course, [Member("ann", SOLUTION, FULL, set())])
    # a None in sys.modules makes `import ray` fail as it does where Ray is not installed
    code = "import sys; sys.modules['ray'] = None; from kit.cli.main import main; main()"
    run = subprocess.run([sys.executable, "-c", code, "grade", "hw1", "--ray", "auto"], cwd=course,
                         capture_output=True, text=True, timeout=120, env=CPU_ONLY)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "pip install 'kit[ray]'" in run.stderr
    assert not (course / "gradebook.db").exists()


def test_a_new_gradebook_is_stamped_as_nbgrader_stamps_one(tmp_path, monkeypatch):
    """kit stamps a new gradebook with the head of nbgrader's migrations in-process; nbgrader asks alembic."""
    from nbgrader.api import get_alembic_version

    # nbgrader runs the `alembic` command: the one installed next to this Python (the venv may not be active)
    monkeypatch.setenv("PATH", os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]))

    from kit.grader.gradebook import Gradebook, db_url, read_stored

    url = db_url(tmp_path)
    assert read_stored(url, "hw1") == {}  # no file yet: nothing graded
    with Gradebook(url) as book:
        book.record("hw1", "ann", Report("hw1", [CheckResult("a", "MyLinear", "passed", 2.0, 2.0)]),
                    content_hash="h1", suite_hash="s1")
        stored = book.stored("hw1")
    con = sqlite3.connect(tmp_path / "gradebook.db")
    try:
        assert con.execute("SELECT version_num FROM alembic_version").fetchall() == [(get_alembic_version(),)]
    finally:
        con.close()
    assert read_stored(url, "hw1") == stored and stored["ann"].content_hash == "h1"
    assert read_stored("postgresql://nowhere/kit", "hw1") is None  # not SQLite: the caller opens the gradebook
