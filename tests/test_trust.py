"""The trust model attacked through the protocol and through the text kit shows (issue 20, items 4-15).

The hostile submissions are in tests/redteam/ (tests/test_sandbox.py also grades each one alone,
with and without the fork server, inside a fake course). Here they meet `kit grade` as a class
would: each attacker followed by a correct victim in the same worker (`-j 1`), graded once with
the fork server and once without, into real SQLite gradebooks; then graded again (a rerun),
listed with `kit grade -v`, checked with `kit check -v`, and turned into feedback pages. Every
attacker must get exactly its expected.toml, every victim full marks, both runs the same
verdicts, and nothing an attacker wrote may reach a terminal, a feedback page or the gradebook
past the grader's caps. The other tests need no class: a forged hello, a suite that stops early,
bytecode, the reply schema.

The class tests take about three minutes on two cores (two `kit grade` runs side by side); they
are marked `slow`.
"""
from __future__ import annotations

import hashlib
import html.parser
import json
import os
import py_compile
import socket
import sqlite3
import subprocess
import sys
import tomllib
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from kit.grader import replies
from kit.grader.course import load_assignment
from kit.grader.forkserver import ForkLauncher
from kit.grader.launch import Limits
from kit.grader.report import PASSED, SKIPPED
from kit.grader.runner import open_runner
from kit.grader.sandbox import make_launcher, probe
from tests.conftest import ROOT, grade

KIT = str(Path(sys.executable).with_name("kit"))
HW1 = ROOT / "grader" / "suites" / "hw1"
REDTEAM = ROOT / "tests" / "redteam"
SOLUTION = ROOT / "solutions" / "hw1" / "my_linear.py"
CASES = ["forged_types", "tensor_attributes", "huge_tensor", "hash_collisions", "output_flood", "nan_in_init",
         "bytecode", "terminal_escapes", "lone_surrogate", "markdown_injection", "named_pipe"]
SANDBOX = probe().ok
GRADE_FLAGS = [] if SANDBOX else ["--unsafe-no-sandbox"]  # these attacks aim at the protocol, not the machine
CONTROL = [b"\x1b", b"\x9b", b"\r", b"\x07", b"\x08"]  # what would move a terminal's cursor or recolour it
slow = pytest.mark.slow


def expected_of(case: str) -> dict:
    return tomllib.loads((REDTEAM / case / "expected.toml").read_text())


def failing(checks: list[dict]) -> set[str]:
    return {c["id"] for c in checks if c["status"] not in (PASSED, SKIPPED)}


def no_control_characters(data: bytes, what: str) -> None:
    found = [c for c in CONTROL if c in data]
    assert not found, f"{what} holds {found}: {data[max(0, data.find(found[0]) - 200):][:400]!r}"


# -- submissions as the attacks need them ----------------------------------------------------------

def hand_in(case: str, folder: Path) -> None:
    """The case's files in `folder`, plus what cannot live in git: bytecode, named pipes, a socket."""
    folder.mkdir(parents=True)
    (folder / "my_linear.py").write_bytes((REDTEAM / case / "my_linear.py").read_bytes())
    if case == "bytecode":
        add_bytecode(folder)
    if case == "named_pipe":
        add_special_files(folder)


def add_bytecode(folder: Path) -> None:
    """helper.py (output + 1), an unchecked-hash __pycache__/helper.*.pyc and a sourceless sneaky.pyc
    compiled from a correct forward."""
    (folder / "helper.py").write_bytes((REDTEAM / "bytecode" / "helper.py").read_bytes())
    correct = folder.parent / "correct.py"
    correct.write_bytes((REDTEAM / "bytecode" / "correct.py.txt").read_bytes())
    cached = folder / "__pycache__" / f"helper.{sys.implementation.cache_tag}.pyc"
    py_compile.compile(str(correct), cfile=str(cached), dfile=str(folder / "helper.py"), doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    py_compile.compile(str(correct), cfile=str(folder / "sneaky.pyc"), doraise=True)
    correct.unlink()


def add_special_files(folder: Path) -> None:
    """Named pipes (one of them where nbgrader's timestamp.txt goes, one in a sub-folder) and a socket:
    opening any of them for reading blocks until someone writes, which nobody will."""
    os.mkfifo(folder / "data.txt")
    os.mkfifo(folder / "timestamp.txt")
    (folder / "sub").mkdir()
    os.mkfifo(folder / "sub" / "notes.py")
    if len(str(folder / "sock")) < 100:  # AF_UNIX paths are short
        with socket.socket(socket.AF_UNIX) as s:
            s.bind(str(folder / "sock"))


def bytecode_is_live(folder: Path) -> bool:
    """Whether plain Python, importing from `folder`, runs the bytecode instead of helper.py: without
    that, the bytecode case would test nothing."""
    probe_code = ("import torch, helper, sneaky; from types import SimpleNamespace as N; "
                  "layer = N(weight=torch.eye(2), bias=None); x = torch.ones(1, 2); "
                  "print(helper.forward(layer, x).sum().item(), sneaky.forward(layer, x).sum().item())")
    out = subprocess.run([sys.executable, "-c", probe_code], cwd=folder, capture_output=True, text=True, timeout=120)
    return out.returncode == 0 and out.stdout.split() == ["2.0", "2.0"]  # + 1 would give 4.0


# -- the class ----------------------------------------------------------------------------------------

@dataclass
class Run:
    course: Path
    args: list[str]
    proc: subprocess.CompletedProcess | None = None

    @property
    def doc(self) -> dict:
        return json.loads(self.proc.stdout)

    def by_student(self) -> dict[str, dict]:
        return {s["student"]: s for s in self.doc["submissions"]}


def attacker(i: int, case: str) -> str:
    return f"{i:02d}-{case}"


def victim(i: int, case: str) -> str:
    return f"{i:02d}-{case}-victim"  # sorts right after its attacker: the next job of the only worker


PIPE_AS_FILE = "99-pipe-as-file"


def make_class(root: Path) -> Path:
    course = root / "course"
    course.mkdir(parents=True)
    (course / "kit.toml").write_text(f'[course]\nname = "trust"\nsuites = "{ROOT / "grader" / "suites"}"\n')
    for i, case in enumerate(CASES):
        hand_in(case, course / "submitted" / attacker(i, case) / "hw1")
        folder = course / "submitted" / victim(i, case) / "hw1"
        folder.mkdir(parents=True)
        (folder / "my_linear.py").write_text(SOLUTION.read_text())
    folder = course / "submitted" / PIPE_AS_FILE / "hw1"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "my_linear.py")
    return course


def cpu_only() -> dict[str, str]:
    """The environment of a kit command: no GPU (the expected scores are a CPU's), a wide terminal."""
    return {**os.environ, "CUDA_VISIBLE_DEVICES": "", "COLUMNS": "200"}


def kit(*args: str, cwd: Path, timeout: float = 900) -> subprocess.CompletedProcess:
    """A kit command as bytes (so that any control character shows), killed if it hangs."""
    return subprocess.run([KIT, *args], cwd=cwd, capture_output=True, timeout=timeout, env=cpu_only())


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, Run]:
    """The class graded twice side by side: through the fork server, and with a fresh child each time."""
    runs = {"fork server": Run(make_class(tmp_path_factory.mktemp("fork")), []),
            "fresh children": Run(make_class(tmp_path_factory.mktemp("fresh")), ["--no-fork-server"])}
    started = {name: subprocess.Popen([KIT, "grade", "hw1", "-j", "1", "--json", *GRADE_FLAGS, *run.args],
                                      cwd=run.course, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=cpu_only())
               for name, run in runs.items()}
    try:
        for name, proc in started.items():
            out, err = proc.communicate(timeout=900)  # a named pipe that hangs kit grade fails here
            runs[name].proc = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    finally:
        for proc in started.values():
            proc.kill()
    for run in runs.values():
        assert run.proc.returncode == 1, run.proc.stderr[-3000:]  # some checks failed; nothing else went wrong
    return runs


@slow
def test_every_attacker_gets_what_its_code_earns_and_every_victim_full_marks(graded):
    for name, run in graded.items():
        assert run.doc["not_graded"] == [], name
        subs = run.by_student()
        assert len(subs) == 2 * len(CASES) + 1, f"{name}: {sorted(subs)}"
        for i, case in enumerate(CASES):
            want = expected_of(case)
            got = subs[attacker(i, case)]
            details = "\n".join(f"{c['id']}: {c['status']}: {c['message'][:300]}" for c in got["checks"]
                                if c["status"] not in (PASSED, SKIPPED))
            assert failing(got["checks"]) == set(want["failing"]), f"{name}, {case}:\n{details}"
            assert (got["score"], got["max_score"]) == (want["score"], 21.0), f"{name}, {case}:\n{details}"
            messages = {c["id"]: c["message"] for c in got["checks"]}
            for check, text in want.get("messages", {}).items():
                assert any(t in messages[check] for t in ([text] if isinstance(text, str) else text)), \
                    f"{name}, {case}: {check}: {messages[check][:500]!r}"
            after = subs[victim(i, case)]
            assert (after["score"], after["max_score"], failing(after["checks"])) == (21.0, 21.0, set()), \
                f"{name}: the victim graded right after {case}: {failing(after['checks'])}"
            assert not any(c["output"] for c in after["checks"]), f"{name}: {case}'s output reached its victim"
        pipe = subs[PIPE_AS_FILE]
        assert pipe["score"] == 0 and "my_linear.py in " in pipe["problems"][0]["message"]
        assert "is a named pipe, not a regular file" in pipe["problems"][0]["message"]


@slow
def test_with_and_without_the_fork_server_the_same_verdicts(graded):
    fork, fresh = graded.values()
    assert sorted(fork.by_student()) == sorted(fresh.by_student())
    for student in fork.by_student():
        verdicts = [[(c["id"], c["status"], c["points"], c["message"].replace(str(run.course), "COURSE"))
                     for c in run.by_student()[student]["checks"]] for run in (fork, fresh)]
        assert verdicts[0] == verdicts[1], student


@slow
def test_the_gradebook_keeps_bounded_reports_and_a_rerun_completes(graded):
    for name, run in graded.items():
        db = run.course / "gradebook.db"
        con = sqlite3.connect(db)
        try:
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            sizes = dict(con.execute("SELECT student, length(report) FROM kit_result WHERE assignment = 'hw1'"))
        finally:
            con.close()
        assert sorted(sizes) == sorted(run.by_student()), name
        assert max(sizes.values()) < 1_000_000, f"{name}: {sorted(sizes.items(), key=lambda kv: -kv[1])[:3]}"
        flood = run.by_student()[attacker(CASES.index("output_flood"), "output_flood")]
        assert sum(len(c["output"]) for c in flood["checks"]) <= 200_100
        assert max(len(c["message"]) for c in flood["checks"]) < 8_100
        no_control_characters(run.proc.stdout + run.proc.stderr, f"kit grade ({name})")
    rerun = kit("grade", "hw1", "-j", "1", "--json", *GRADE_FLAGS, cwd=graded["fork server"].course)
    assert rerun.returncode == 1, rerun.stderr[-3000:]
    doc = json.loads(rerun.stdout)
    assert doc["not_graded"] == [] and all(s["cached"] for s in doc["submissions"])
    assert {s["student"]: s["score"] for s in doc["submissions"]} == \
           {s: v["score"] for s, v in graded["fork server"].by_student().items()}


@slow
def test_no_escape_reaches_the_instructors_terminal(graded, tmp_path):
    course = graded["fork server"].course
    listed = kit("grade", "hw1", "-j", "1", "-v", *GRADE_FLAGS, cwd=course)  # every student, with their problem
    assert listed.returncode == 1, listed.stderr[-3000:]
    assert b"could not import my_linear.py: ImportError: score: 20 / 20" in listed.stdout  # shown, inert
    no_control_characters(listed.stdout + listed.stderr, "kit grade -v")
    folder = course / "submitted" / attacker(CASES.index("terminal_escapes"), "terminal_escapes") / "hw1"
    checked = kit("check", "hw1", "--course", str(ROOT), "--path", str(folder), "-v", timeout=300, cwd=tmp_path)
    assert checked.returncode == 1 and b"could not import my_linear.py" in checked.stdout
    no_control_characters(checked.stdout + checked.stderr, "kit check -v of an import error")


def test_kit_check_shows_escapes_in_messages_and_output_inert(tmp_path):
    """The escapes of terminal_escapes, printed by forward and raised by a check instead of at import."""
    folder = tmp_path / "hw1"
    folder.mkdir()
    source = SOLUTION.read_text().replace(
        "        y = x @ self.weight.T\n",
        "        print(FAKE)\n        y = x @ self.weight.T\n").replace(
        "        super().__init__()\n",
        "        super().__init__()\n        if in_features == 7:\n            raise ValueError(FAKE)\n")
    fake = "\x1b[2J\x1b[H\x1b[1;32mscore: 20 / 20\x1b[0m\x1b]0;graded\x07\x9b2J\rall passed\x08"
    (folder / "my_linear.py").write_text(source + f"\n\nFAKE = {fake!r}\n")
    checked = kit("check", "hw1", "--course", str(ROOT), "--path", str(folder), "-v", "-k",
                  "forward and not leading and not cuda or loads_state_dict", timeout=300, cwd=tmp_path)
    assert checked.returncode == 1, checked.stderr[-2000:]
    assert b"raised ValueError: score: 20 / 20" in checked.stdout and b"output of forward" in checked.stdout
    no_control_characters(checked.stdout + checked.stderr, "kit check -v")


class Tags(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)


def tags_of(page: str) -> set[str]:
    parser = Tags()
    parser.feed(page)
    return set(parser.tags)


@slow
def test_feedback_for_every_student_survives_and_stays_text(graded, tmp_path):
    from markdown_it import MarkdownIt

    run = graded["fork server"]
    out = tmp_path / "feedback"
    made = kit("feedback", "hw1", "--out", str(out), cwd=run.course)
    assert made.returncode == 0, made.stderr[-2000:]
    template_tags = tags_of((ROOT / "grader" / "templates" / "feedback.html.j2").read_text())
    for student in run.by_student():
        md = (out / student / "hw1" / "feedback.md").read_bytes().decode("utf-8")  # strict: valid UTF-8
        page = (out / student / "hw1" / "feedback.html").read_bytes().decode("utf-8")
        no_control_characters((md + page).encode(), f"feedback of {student}")
        rendered = MarkdownIt("commonmark").enable("table").render(md)
        assert not {"img", "a", "script", "iframe"} & tags_of(rendered), f"{student}: {rendered[:3000]}"
        assert tags_of(page) <= template_tags, f"{student}: {sorted(tags_of(page) - template_tags)}"
    injected = attacker(CASES.index("markdown_injection"), "markdown_injection")
    md = (out / injected / "hw1" / "feedback.md").read_text()
    rendered = MarkdownIt("commonmark").enable("table").render(md)
    for text in ("![pixel](https://evil.example/track.png?student=me)", "&lt;script&gt;alert(1)&lt;/script&gt;",
                 "# Score: 20 / 20", "&lt;/pre&gt;&lt;h1&gt;pwned&lt;/h1&gt;"):
        assert text in rendered, f"{text!r} is not shown as text:\n{rendered}"
    surrogate = (out / attacker(CASES.index("lone_surrogate"), "lone_surrogate") / "hw1" / "feedback.md").read_text()
    assert "raised ValueError: ? half a pair ? and ?" in surrogate


# -- item 4: what the child says is checked, and a suite that stops early is no report ---------------

HELLO_FORGER = '''
import importlib

runtime = importlib.import_module("child.runtime")  # not sys.modules: the static scan charges that
original = runtime.write_message


def forged_hello(fd, value):
    runtime.write_message = original
    original(fd, {**value, **CHANGES})


runtime.write_message = forged_hello
'''


def forge_hello(folder: Path, changes: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "my_linear.py").write_text(SOLUTION.read_text() + HELLO_FORGER.replace("CHANGES", changes))
    return folder


@pytest.fixture(scope="module")
def launchers():
    """The launcher `kit check` uses here, and a fork server on top of it."""
    spec = load_assignment(HW1)
    base = make_launcher(Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget), require=False)
    forked = ForkLauncher(base)
    yield {"fresh child": base, "fork server": forked}
    forked.close()


def test_a_forged_hello_makes_the_submission_unusable(launchers, tmp_path):
    spec = load_assignment(HW1)
    folder = forge_hello(tmp_path / "hello", '{"ready": 1, "imported": "my_linear.py"}')
    for name, launcher in launchers.items():
        report = grade(spec, folder, launcher=launcher, keyword="forward and not leading and not cuda")
        assert report.score == 0 and report.checks[0].status != PASSED, name
        assert "sent unreadable data while importing my_linear.py" in report.problems[0].message, name


def test_the_child_cannot_make_the_grader_read_outside_the_submission(launchers, tmp_path):
    """The forbidden-API scan reads the files the child says it imported: only those inside the folder."""
    spec = load_assignment(HW1)
    outside = tmp_path / "outside.py"
    outside.write_text("import torch.nn.functional as F\nlinear = F.linear\n")
    lies = [["../outside.py", "0" * 64], [str(outside), "0" * 64], ["up/outside.py", "0" * 64],
            ["../../" * 20 + str(outside)[1:], "0" * 64]]
    folder = forge_hello(tmp_path / "lies", json.dumps({"imported": lies}))
    (folder / "up").symlink_to("..")
    for name, launcher in launchers.items():
        report = grade(spec, folder, launcher=launcher, keyword="forward and not leading and not cuda")
        assert report.problems == [] and report.score == 2.0, (name, report.problems)
    # control: a file inside the folder that the child claims is scanned (and costs the points)
    folder_with_claim = forge_hello(tmp_path / "claim", json.dumps({"imported": [["helper.py", "0" * 64]]}))
    (folder_with_claim / "helper.py").write_text(outside.read_text())
    report = grade(spec, folder_with_claim, launcher=launchers["fork server"],
                   keyword="forward and not leading and not cuda")
    assert report.score == 0 and "helper.py, line 2" in report.problems[0].message


@pytest.mark.parametrize("reply, why", [
    ({"values": [], "error": None, "output": 5, "forbidden": []}, "output is not text"),
    ({"values": [], "error": None, "output": "", "forbidden": [1]}, "forbidden is not text"),
    ({"values": [], "error": None, "output": "", "forbidden": "F.linear"}, "forbidden is not a short list"),
    ({"values": [], "error": None, "output": ""}, "expected the fields"),
    ({"values": [], "error": None, "output": "", "forbidden": [], "score": 20}, "expected the fields"),
    ({"values": [1], "error": None, "output": "", "forbidden": []}, "number of values"),
    ({"values": [], "error": {"op": 3}, "output": "", "forbidden": []}, "expected the fields"),
    ({"values": [], "output": "", "forbidden": [], "error": {"op": 5, "fetch": None, "type": "E", "types": [],
                                                             "message": "", "traceback": "", "where": ""}},
     "names no operation"),
    ({"values": [], "output": "", "forbidden": [], "error": {"op": True, "fetch": None, "type": "E", "types": [],
                                                             "message": "", "traceback": "", "where": ""}},
     "not an index"),
    ([], "expected the fields"),
])
def test_a_reply_that_does_not_fit_the_schema_is_refused(reply, why):
    with pytest.raises(replies.BadReply, match=why):
        replies.batch(reply, ops=2, fetched=0)


def test_replies_keep_bounded_text_and_honest_file_names():
    long = "x" * 10**6
    got = replies.batch({"values": [], "output": long, "forbidden": [], "error": {
        "op": 0, "fetch": None, "type": long, "types": [long], "message": long, "traceback": long, "where": long}},
        ops=1, fetched=0)
    assert len(got["output"]) == replies.MAX_OUTPUT
    assert [len(got["error"][k]) for k in ("message", "traceback", "where", "type")] == [2000, 4000, 200, 100]
    hello = replies.hello({"ready": True, "error": None, "output": "", "forbidden": [], "cuda": False, "imported": [
        ["a.py", "a" * 64], ["pkg/b.py", "b" * 64], ["../c.py", "c" * 64], ["/etc/passwd", "d" * 64],
        ["x.py", "not a hash"], ["C:\\x.py", "e" * 64], ["..\\y.py", "f" * 64], ["", "0" * 64]]})
    assert hello["imported"] == [("a.py", "a" * 64), ("pkg/b.py", "b" * 64)]


def test_a_suite_that_stops_early_is_not_graded(monkeypatch, launchers):
    """Whatever happens inside pytest, a report is either complete or does not exist."""
    from kit.grader import plugin
    from kit.grader.grade import NotGraded

    spec = load_assignment(HW1)
    keyword = "forward and not cuda"  # forward, forward_leading_dims[3d] and [4d]
    original = plugin.KitSession.result

    def crash_on_4d(self, item, call, report):
        if item.name.endswith("[4d]"):
            raise TypeError("a hook that raises")
        return original(self, item, call, report)

    monkeypatch.setattr(plugin.KitSession, "result", crash_on_4d)
    with pytest.raises(NotGraded, match="did not run to their end"):
        grade(spec, SOLUTION.parent, launcher=launchers["fork server"], keyword=keyword)

    def misfile_4d(self, item, call, report):  # a result under another check's id: one check has none
        result = original(self, item, call, report)
        return replace(result, id="forward") if item.name.endswith("[4d]") else result

    monkeypatch.setattr(plugin.KitSession, "result", misfile_4d)
    with pytest.raises(NotGraded, match="did not run to their end"):
        grade(spec, SOLUTION.parent, launcher=launchers["fork server"], keyword=keyword)

    monkeypatch.setattr(plugin.KitSession, "result", original)  # the next submission is graded whole
    report = grade(spec, SOLUTION.parent, launcher=launchers["fork server"], keyword=keyword)
    assert [c.id for c in report.checks] == ["forward", "forward_leading_dims[3d]", "forward_leading_dims[4d]"]
    assert report.score == report.max_score > 0


def test_only_the_cuda_rule_takes_a_check_out_of_the_maximum(monkeypatch, launchers):
    """A check skipped for any other reason is an error: what the child sends cannot lower max_score."""
    from kit.grader import remote

    spec = load_assignment(HW1)
    original, calls = remote.Remote.flush, []

    def skip_the_first(self, handles):  # forward_leading_dims[3d]'s only round trip
        calls.append(handles)
        if len(calls) == 1:
            pytest.skip("the reply looked odd")
        return original(self, handles)

    monkeypatch.setattr(remote.Remote, "flush", skip_the_first)
    report = grade(spec, SOLUTION.parent, launcher=launchers["fork server"], keyword="leading")
    assert report.max_score == 2.0 and report.score == 1.0
    assert [c.status for c in report.checks] == ["error", PASSED]
    assert "a check is not run only when it needs CUDA" in report.checks[0].message


def not_graded_task(suite_dir: str, submission: str, require_sandbox: bool):
    """Stands in for grade_in_worker: every submission named 'stuck' never runs to its end."""
    from kit.grader.grade import NotGraded
    from kit.grader.report import CheckResult, Report

    with open(Path(submission).parent / "attempts", "a") as f:
        f.write(Path(submission).name + "\n")
    if Path(submission).name == "stuck":
        raise NotGraded("the checks did not run to their end (pytest exit 3)")
    return Report("hw1", [CheckResult("forward", "MyLinear", PASSED, 2.0, 2.0)]), "here"


def test_not_graded_is_retried_then_reported_and_never_recorded(tmp_path):
    from kit.grader.batch import Submission, grade_class
    from kit.grader.gradebook import Gradebook, db_url
    from kit.grader.pool import WorkerPool

    spec = load_assignment(HW1)
    subs = [Submission(name, tmp_path / name, f"hash-{name}") for name in ("ann", "stuck", "zoe")]
    with Gradebook(db_url(tmp_path)) as book:
        run = grade_class(spec, subs, book, WorkerPool(1, False, task=not_graded_task, max_attempts=2))
        stored = book.stored("hw1")
    assert sorted(stored) == ["ann", "zoe"] and "stuck" not in run.reports
    assert "did not run to their end" in run.errors["stuck"]
    assert (tmp_path / "attempts").read_text().split().count("stuck") == 2


# -- item 11: bytecode is never what runs -------------------------------------------------------------

def test_bytecode_never_runs_and_what_ran_is_hashed(launchers, tmp_path):
    spec = load_assignment(HW1)
    folder = tmp_path / "bytecode"
    hand_in("bytecode", folder)
    assert bytecode_is_live(folder), "plain Python does not run this bytecode: the test would prove nothing"
    want = sorted((name, hashlib.sha256((folder / name).read_bytes()).hexdigest())
                  for name in ("helper.py", "my_linear.py"))
    for name, launcher in launchers.items():
        runner = open_runner(spec, folder, launcher)
        try:
            runner.request_batch({"reset": True, "seed": 0, "forbidden": [], "ops": [], "fetch": []})
        finally:
            runner.close()
        assert sorted(runner.imported) == want, name


# -- item 15: special files are never opened -----------------------------------------------------------

def test_special_files_are_left_out_of_everything_kit_reads(tmp_path):
    from kit.grader.batch import find_submissions
    from kit.grader.forkserver import submission_files

    folder = tmp_path / "submitted" / "ann" / "hw1"
    hand_in("named_pipe", folder)
    subs, passed_over = find_submissions(tmp_path / "submitted", "hw1")  # hashes the folder: must not block
    assert [s.student for s in subs] == ["ann"] and subs[0].timestamp is None and passed_over == {}
    assert sorted(submission_files(folder / "my_linear.py", [])) == ["my_linear.py"]


def test_odd_hand_ins_are_named_and_never_stop_the_class(tmp_path):
    """A hand-in that is a pipe or a file instead of a folder is named; one nested 1500 folders deep
    (a recursive walk would raise RecursionError there, before anyone is graded) is graded."""
    from kit.grader.batch import find_submissions

    submitted = tmp_path / "submitted"
    (submitted / "ann" / "hw1").mkdir(parents=True)
    (submitted / "bob").mkdir()
    os.mkfifo(submitted / "bob" / "hw1")
    (submitted / "cy").mkdir()
    (submitted / "cy" / "hw1").write_text("")
    deep = submitted / "deep" / "hw1"
    deep.mkdir(parents=True)
    fd = os.open(deep, os.O_RDONLY)
    try:
        for _ in range(1500):  # relative to a folder descriptor: the whole path is too long for one call
            os.mkdir("a", dir_fd=fd)
            inner = os.open("a", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
        os.close(os.open("x.py", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    finally:
        os.close(fd)
    try:
        subs, passed_over = find_submissions(submitted, "hw1")
    finally:
        remove_chain(deep)  # pytest's own clean-up of old temporary folders recurses, and would fail here
    assert [s.student for s in subs] == ["ann", "deep"]
    assert passed_over == {"bob": "hw1 is a named pipe, not a folder", "cy": "hw1 is a file, not a folder"}


def remove_chain(top: Path) -> None:
    """Remove top/a/a/.../a, however deep, one level at a time (shutil.rmtree recurses)."""
    while (top / "a").is_dir():
        if (top / "a" / "a").is_dir():
            os.rename(top / "a" / "a", top / "next")
        for path in (top / "a").iterdir():
            path.unlink()
        os.rmdir(top / "a")
        if (top / "next").is_dir():
            os.rename(top / "next", top / "a")


def test_kit_check_of_a_submission_next_to_named_pipes(tmp_path):
    folder = tmp_path / "hw1"
    hand_in("named_pipe", folder)
    checked = kit("check", "hw1", "--course", str(ROOT), "--path", str(folder), "--json", "-k",
                  "forward and not cuda", timeout=300, cwd=tmp_path)
    assert checked.returncode == 0, checked.stderr[-2000:]
    assert json.loads(checked.stdout)["score"] == 4.0


def test_the_redteam_readme_names_every_case():
    text = (REDTEAM / "README.md").read_text()
    assert all(f"`{case}`" in text for case in CASES)
