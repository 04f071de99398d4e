"""The sandbox (issue 6): hostile hw1 submissions get exactly the treatment of honest wrong answers.

Each case in tests/redteam/ is graded with the hw1 suite, hidden checks included, inside the
bubblewrap sandbox, from a fake course folder that also holds a gradebook, a solution and
another student's work. Every case must get its exact expected score and verdicts (those of
its honest twin where it names one), leave every file as it was, leave no process behind,
reach no socket, and run nothing in the grader.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
import uuid
from pathlib import Path

import pytest

from kit.grader import sandbox
from kit.grader.course import load_assignment
from kit.grader.launch import CHILD_PACKAGE, ChildCommand, Limits, PlainLauncher
from kit.grader.report import PASSED, SKIPPED
from kit.grader.runner import open_runner
from tests.conftest import grade

REPO = Path(__file__).resolve().parents[1]
HW1 = REPO / "grader" / "suites" / "hw1"
REDTEAM = Path(__file__).resolve().parent / "redteam"
CASES = sorted(p.name for p in REDTEAM.iterdir() if (p / "expected.toml").is_file())
HOSTILE = [c for c in CASES if not c.startswith("honest_")]

PROBE = sandbox.probe()
needs_bwrap = pytest.mark.skipif(
    not PROBE.ok, reason=f"no sandbox here: {PROBE.reason}; CI installs it (apt-get install -y bubblewrap)")


def test_sandbox_available_where_required():
    """CI sets KIT_REQUIRE_SANDBOX=1, so that a missing or broken bwrap fails instead of skipping."""
    if os.environ.get("KIT_REQUIRE_SANDBOX") == "1":
        assert PROBE.ok, PROBE.reason


@pytest.fixture(scope="module")
def assignment():
    return load_assignment(HW1)


@pytest.fixture(scope="module")
def launcher(assignment):
    if not PROBE.ok:
        pytest.skip(f"no sandbox here: {PROBE.reason}")
    found = sandbox.make_launcher(Limits(check_timeout=assignment.check_timeout,
                                         time_budget=assignment.time_budget), require=True)
    assert found.sandboxed
    return found


@pytest.fixture(scope="module", params=["fresh child", "fork server"])
def any_launcher(request, launcher):
    """Both ways `kit grade` starts children: a fresh sandboxed process, or a fork of one warm zygote
    (shared by every case in this module, as a grading worker shares it across a class)."""
    if request.param == "fresh child":
        yield launcher
        return
    from kit.grader.forkserver import ForkLauncher

    forked = ForkLauncher(launcher)
    yield forked
    forked.close()


# -- the fake course ------------------------------------------------------------------------------

@dataclasses.dataclass
class Course:
    """A course folder with things to protect, a student folder to grade, and sockets to phone."""

    root: Path
    token: str  # names things the hostile code looks for (processes, sockets, files)
    secret: str  # what the protected files and the grader's environment hold
    student: Path
    gradebook: Path
    secrets: list[Path]
    created: list[Path]  # paths the hostile code tries to create: none may exist afterwards
    marker: Path
    tcp: socket.socket
    udp: socket.socket
    unix: socket.socket

    def attack(self) -> dict:
        return {
            "token": self.token,
            "append": [str(p) for p in self.secrets],
            "create": [str(p) for p in self.created],
            "read": [str(p) for p in self.secrets] + [str(HW1 / "test_my_linear_hidden.py"),
                                                     str(REPO / "solutions" / "hw1" / "my_linear.py"),
                                                     *(str(self.student / name) for name in self.links(self.student))],
            "list": {str(self.root): "gradebook.db", str(self.root / "submitted"): "bob",
                     str(HW1.parent): "hw1", str(REPO): "solutions"},
            "env": "KIT_REDTEAM_SECRET",
            "gradebook": str(self.gradebook),
            "port": self.tcp.getsockname()[1],
            "udp_port": self.udp.getsockname()[1],
            "unix": self.token,
            "marker": str(self.marker),
        }

    def submit(self, case: str, folder: Path | None = None) -> Path:
        folder = folder or self.student
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(REDTEAM / case / "my_linear.py", folder / "my_linear.py")
        (folder / "attack.json").write_text(json.dumps(self.attack(), indent=1))
        for name, target in self.links(folder).items():  # a submission may hold links to anywhere
            if not (folder / name).is_symlink():
                (folder / name).symlink_to(target)
        return folder

    def links(self, folder: Path) -> dict[str, Path]:
        return {"link-to-gradebook": self.gradebook, "link-to-bob": self.secrets[2]}


@pytest.fixture
def course(tmp_path, monkeypatch):
    token, secret = f"kit-redteam-{uuid.uuid4().hex}", f"SECRET-{uuid.uuid4().hex}"
    root = tmp_path / "course"
    student = root / "submitted" / "alice" / "hw1"
    student.mkdir(parents=True)
    gradebook = root / "gradebook.db"
    db = sqlite3.connect(gradebook)
    db.execute("CREATE TABLE grade (student TEXT, assignment TEXT, score REAL)")
    db.execute("INSERT INTO grade VALUES ('alice', 'hw1', 3.0), ('bob', 'hw1', 17.0)")
    db.commit()
    db.close()
    solution = root / "source" / "hw1" / "my_linear.py"
    bob = root / "submitted" / "bob" / "hw1" / "my_linear.py"
    for path in (solution, bob):
        path.parent.mkdir(parents=True)
        path.write_text(f"# {secret}: nobody else may read this\n")
    created = [root / "planted.txt", root / "submitted" / "bob" / "hw1" / "planted.py",
               HW1 / f"test_{token.replace('-', '_')}.py", Path.home() / token, Path("/tmp") / token]
    monkeypatch.setenv("KIT_REDTEAM_SECRET", secret)
    tcp = socket.create_server(("127.0.0.1", 0))
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind("\0" + token)
    unix.listen()
    for s in (tcp, udp, unix):
        s.setblocking(False)
    course = Course(root, token, secret, student, gradebook, [gradebook, solution, bob], created, tmp_path / "marker",
                    tcp, udp, unix)
    yield course
    for s in (tcp, udp, unix):
        s.close()
    for path in created:  # in case a test failed because one got through
        if path.exists() and token in str(path):
            path.unlink()


def snapshot(root: Path) -> dict:
    """Every file and folder under root: content hash, mode and modification time."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else ""
        out[str(path.relative_to(root))] = (digest, st.st_mode, st.st_mtime_ns, st.st_size)
    return out


def alive(text: str) -> list[str]:
    """Live (not zombie) processes whose command line contains text."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if text.encode() in cmdline and state not in ("Z", "X"):
            shown = cmdline.replace(b"\0", b" ").decode(errors="replace")[:200]
            found.append(f"{pid}: {shown}")
    return found


def verdicts(report) -> dict[str, tuple[str, float]]:
    return {c.id: (c.status, c.points) for c in report.checks}


def expected_of(case: str) -> dict:
    return tomllib.loads((REDTEAM / case / "expected.toml").read_text())


_twins: dict[str, dict] = {}


def twin_verdicts(case: str, course: Course, assignment, launcher) -> dict:
    if case not in _twins:
        folder = course.submit(case, course.root.parent / "twin" / case)
        _twins[case] = verdicts(grade(assignment, folder, launcher=launcher))
    return _twins[case]


# -- the red team ---------------------------------------------------------------------------------

@needs_bwrap
@pytest.mark.parametrize("case", CASES)
def test_redteam(case, course, assignment, any_launcher, capfd):
    launcher = any_launcher
    expected = expected_of(case)
    submission = course.submit(case)
    before = snapshot(course.root)
    protected = {p: hashlib.sha256(p.read_bytes()).hexdigest()
                 for p in [*HW1.iterdir(), REPO / "solutions" / "hw1" / "my_linear.py"] if p.is_file()}

    zygote = getattr(launcher, "zygote", None)  # the fork server the earlier cases shared
    report = grade(assignment, submission, launcher=launcher)
    if zygote is not None:
        assert launcher.zygote is zygote and zygote.alive, "the case cost the fork server: it was replaced"

    failing = sorted(c.id for c in report.checks if c.status not in (PASSED, SKIPPED))
    summary = "\n".join(f"{c.id}: {c.status} {c.message[:300]}" for c in report.checks if c.status != PASSED)
    assert failing == sorted(expected["failing"]), summary
    assert report.score == expected["score"], summary
    assert report.max_score == 21.0  # hw1 without a GPU: every check but the two GPU ones
    for check_id, text in expected.get("messages", {}).items():  # a list: any one of them
        message = next(c.message for c in report.checks if c.id == check_id)
        assert any(t in message for t in ([text] if isinstance(text, str) else text)), \
            f"{check_id}: {message!r} lacks {text!r}"
    if "twin" in expected:
        twin = twin_verdicts(expected["twin"], course, assignment, launcher)
        assert verdicts(report) == twin

    # nothing changed, nothing leaked, nothing ran in the grader, nothing is left running
    assert snapshot(course.root) == before
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in protected} == protected
    assert [p for p in course.created if p.exists()] == []
    assert not course.marker.exists()
    for listener in (course.tcp, course.unix):
        with pytest.raises(BlockingIOError):
            listener.accept()
    with pytest.raises(BlockingIOError):
        course.udp.recv(100)
    text = json.dumps(report.to_json())
    assert course.secret not in text and "LEAKED" not in text
    assert alive(str(submission)) == []
    assert alive(course.token) == []
    out, err = capfd.readouterr()
    assert "passed in" not in out + err and "score: 20" not in out + err


@needs_bwrap
def test_daemon_runs_while_grading_and_dies_with_the_child(course, assignment, any_launcher):
    launcher = any_launcher
    runner = open_runner(assignment, course.submit("daemon"), launcher)
    try:
        runner.request_batch({"reset": True, "seed": 0, "forbidden": [], "ops": [], "fetch": []})
        deadline = time.monotonic() + 5
        while not alive(course.token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(course.token), "the daemon never started: the case tests nothing"
    finally:
        runner.close()
    assert alive(course.token) == []
    assert alive(str(course.student)) == []


@needs_bwrap
def test_killing_the_grader_kills_the_sandbox(course, tmp_path):
    """--die-with-parent: a grader that dies (kill -9) takes its sandboxed child along."""
    submission = course.submit("daemon")
    script = tmp_path / "grader.py"
    script.write_text(textwrap.dedent(f"""
        import time
        from pathlib import Path
        from kit.grader.course import load_assignment
        from kit.grader.launch import Limits
        from kit.grader.runner import open_runner
        from kit.grader.sandbox import make_launcher

        assignment = load_assignment(Path({str(HW1)!r}))
        runner = open_runner(assignment, Path({str(submission)!r}), make_launcher(Limits(), require=True))
        runner.request_batch({{"reset": True, "seed": 0, "forbidden": [], "ops": [], "fetch": []}})
        print("ready", flush=True)
        time.sleep(600)
    """))
    grader = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert grader.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 5
        while not alive(course.token) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert alive(course.token)
    finally:
        grader.kill()
        grader.wait()
    deadline = time.monotonic() + 5
    while (alive(course.token) or alive(str(submission))) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive(course.token) == [] and alive(str(submission)) == []


@needs_bwrap
def test_a_submission_only_root_can_read_is_graded_from_a_copy(course, assignment, launcher, tmp_path,
                                                               monkeypatch):
    """A root grader's child runs as nobody: it gets a readable copy of a 0700/0600 submission."""
    if launcher.mode.drop_uid is None:
        pytest.skip("the child runs as the grader's own user here")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    folder = course.submit("honest_raise_7")
    for path in folder.iterdir():
        if not path.is_symlink():
            path.chmod(0o600)
    folder.chmod(0o700)
    report = grade(assignment, folder, keyword="forward and not leading and not cuda", launcher=launcher)
    assert [(c.id, c.status) for c in report.checks] == [("forward", PASSED)], report.checks[0].message
    assert list((tmp_path / "tmp").iterdir()) == []  # the copy went with the child


# -- honest submissions do not notice the sandbox -------------------------------------------------

HONEST = [REPO / "solutions" / "hw1", REPO / "tests" / "submissions" / "hw1" / "transposed_weight"]


@needs_bwrap
@pytest.mark.parametrize("submission", HONEST, ids=[p.name for p in HONEST])
def test_honest_scores_identical_with_and_without_sandbox(submission, assignment, any_launcher):
    plain = grade(assignment, submission, launcher=PlainLauncher(any_launcher.limits))
    boxed = grade(assignment, submission, launcher=any_launcher)
    assert [(c.id, c.status, c.points, c.message) for c in boxed.checks] == \
           [(c.id, c.status, c.points, c.message) for c in plain.checks]
    assert boxed.score == plain.score


# -- choosing a launcher ---------------------------------------------------------------------------

def fake_bwrap(tmp_path: Path, message: str) -> str:
    path = tmp_path / "bwrap"
    path.write_text(f"#!/bin/sh\necho 'usage: bwrap --size --perms'\necho '{message}' >&2\nexit 1\n")
    path.chmod(0o755)
    return str(path)


def test_without_bwrap_the_plain_launcher_warns(tmp_path):
    launcher = sandbox.make_launcher(Limits(), require=False, bwrap=str(tmp_path / "missing" / "bwrap"))
    assert not launcher.sandboxed
    assert isinstance(launcher, PlainLauncher)
    assert launcher.warning.startswith("no sandbox: bubblewrap not installed; your code runs with resource limits")
    assert "\n" not in launcher.warning


def test_without_bwrap_require_raises_with_the_fix(tmp_path):
    with pytest.raises(sandbox.SandboxUnavailable) as info:
        sandbox.make_launcher(Limits(), require=True, bwrap=str(tmp_path / "missing" / "bwrap"))
    assert "apt-get install -y bubblewrap" in str(info.value)
    assert "--unsafe-no-sandbox" in str(info.value)


def test_broken_bwrap_is_probed_not_trusted(tmp_path):
    bwrap = fake_bwrap(tmp_path, "bwrap: No permissions to create new namespace")
    found = sandbox.probe(bwrap)
    assert not found.ok and "No permissions to create new namespace" in found.reason
    assert sandbox.probe(bwrap) is found  # probed once
    launcher = sandbox.make_launcher(Limits(), require=False, bwrap=bwrap)
    assert not launcher.sandboxed and "bubblewrap cannot run here" in launcher.warning
    with pytest.raises(sandbox.SandboxUnavailable, match="No permissions to create new namespace"):
        sandbox.make_launcher(Limits(), require=True, bwrap=bwrap)


def test_kit_check_remembers_a_working_sandbox_while_nothing_it_depends_on_changes(tmp_path, monkeypatch):
    bwrap = Path(fake_bwrap(tmp_path, "never run"))
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    features = frozenset({"--size"})
    works = sandbox.Probe(str(bwrap), sandbox.candidate_modes(os.geteuid(), features)[-1], features)
    probed = []
    monkeypatch.setattr(sandbox, "probe", lambda path: probed.append(path) or works)
    assert sandbox.remembered_probe() == works and probed == [str(bwrap)]
    assert sandbox.remembered_probe() == works and len(probed) == 1  # from sandbox.json
    os.utime(bwrap, ns=(0, 0))  # another bwrap
    assert sandbox.remembered_probe() == works and len(probed) == 2
    (tmp_path / "cache" / "kit" / "sandbox.json").write_text("{not json")
    assert sandbox.remembered_probe() == works and len(probed) == 3
    broken = sandbox.Probe(str(bwrap), None, features, reason="no namespaces")
    monkeypatch.setattr(sandbox, "probe", lambda path: probed.append(path) or broken)
    os.utime(bwrap, ns=(1, 1))
    assert sandbox.remembered_probe() == broken and sandbox.remembered_probe() == broken
    assert len(probed) == 5  # a sandbox that does not work is never remembered


@needs_bwrap
def test_a_folder_holding_the_suite_shows_only_the_student_file(launcher, tmp_path):
    """`--path` at the course root must not show the hidden checks: then only the file is mounted."""
    root = tmp_path / "course"
    helpers = root / "suites" / "hw4" / "remote.py"
    helpers.parent.mkdir(parents=True)
    helpers.write_text("def helper(): pass\n")
    (root / "my_linear.py").write_text("class MyLinear: pass\n")
    argv = [sys.executable, "-P", "-s", "-c", "pass"]
    command = ChildCommand((), (), helpers, root / "my_linear.py")
    cmd = launcher.wrap(argv, str(tmp_path), command, [])
    dests = [cmd[i + 2] for i, a in enumerate(cmd) if a == "--ro-bind"]
    assert str(root) not in dests
    assert str(root / "my_linear.py") in dests and str(helpers) in dests and str(CHILD_PACKAGE) in dests
    for flag in ("--unshare-net", "--unshare-pid", "--die-with-parent", "--new-session"):
        assert flag in cmd
    # the usual case: the student's own folder
    (tmp_path / "alice").mkdir()
    (tmp_path / "alice" / "my_linear.py").write_text("class MyLinear: pass\n")
    cmd = launcher.wrap(argv, str(tmp_path), ChildCommand((), (), helpers, tmp_path / "alice" / "my_linear.py"), [])
    assert str(tmp_path / "alice") in [cmd[i + 2] for i, a in enumerate(cmd) if a == "--ro-bind"]


def kit_check_notes(path_env: str) -> list[str]:
    cmd = [sys.executable, "-c", "from kit.cli.main import main; main()", "check", "hw1", "--course", str(REPO),
           "--path", str(REPO / "solutions" / "hw1"), "--json", "-k", "test_forward and not leading"]
    env = {**os.environ, "PATH": path_env}
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return [n["text"] for n in json.loads(out.stdout)["notes"]]


def test_kit_check_reports_a_missing_sandbox(tmp_path):
    notes = kit_check_notes(str(tmp_path))  # a PATH without bwrap
    assert any(n.startswith("no sandbox: bubblewrap not installed; your code runs with resource limits only")
               for n in notes), notes


@needs_bwrap
def test_kit_check_is_sandboxed_when_it_can_be():
    notes = kit_check_notes(os.environ["PATH"])
    assert not any("sandbox" in n for n in notes), notes
