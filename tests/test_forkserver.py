"""The fork server: forking after `import torch` is safe, every forked child starts clean, and no
child can reach the zygote or leave anything for the next one.

Same verdicts with and without it: tests/test_submissions.py (every wrong submission),
tests/test_sandbox.py (every red-team case, one zygote shared by all), tests/test_grade.py
(a class graded both ways). Here: the red-team cases that go for the fork server itself
(tests/redteam/limit_fork_server, stop_fork_server, kill_parent, ipc_leave), each followed by
a child that looks at what it was given and by a correct victim, through the same fork server.
"""
from __future__ import annotations

import dataclasses
import errno
import os
import resource
import shutil
import socket
import subprocess
import sys
import threading
import tomllib

import pytest

from kit.grader import sandbox
from kit.grader.child import zygote as child_zygote
from kit.grader.course import load_assignment
from kit.grader.forkserver import ForkLauncher, submission_files
from kit.grader.launch import CHILD_PACKAGE, Limits, child_env
from kit.grader.report import PASSED, SKIPPED
from kit.grader.runner import open_runner
from kit.grader.sandbox import make_launcher
from tests.conftest import ROOT, grade

HW1 = ROOT / "grader" / "suites" / "hw1"
REDTEAM = ROOT / "tests" / "redteam"
SOLUTION = ROOT / "solutions" / "hw1"
PROBE = sandbox.probe()
needs_bwrap = pytest.mark.skipif(
    not PROBE.ok, reason=f"no sandbox here: {PROBE.reason}; CI installs it (apt-get install -y bubblewrap)")

# Looks at the world it was forked into, then leaves a mess for whoever comes next: a file in
# the scratch area, one in HOME, and a daemon in its own session.
LEAVER = '''
import os, subprocess, sys, tempfile, torch

def look():
    here = os.getcwd()
    others = sorted(p for p in os.listdir(os.path.dirname(here)) if p != os.path.basename(here))
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    return {"others": others, "home_files": sorted(os.listdir(os.environ["HOME"])), "pids": pids,
            "threads": torch.get_num_threads(), "cuda_lazy": not torch.cuda.is_initialized(),
            "tmp": tempfile.gettempdir() == here, "first": ("MARK" + "-first") in open(__file__).read()}

def leave_mess():
    open(os.path.join(os.path.dirname(os.getcwd()), "left-behind"), "w").write("x")
    open(os.path.join(os.environ["HOME"], "left-in-home"), "w").write("x")
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    return os.getpid()
'''


@pytest.fixture
def fork_launcher():
    launcher = ForkLauncher(make_launcher(Limits(), require=False))
    yield launcher
    launcher.close()


@pytest.fixture(scope="module")
def hw1():
    return load_assignment(HW1)


@pytest.fixture(scope="module")
def fresh(hw1):
    """The sandboxed launcher `kit grade` wraps: a freshly started child per submission."""
    if not PROBE.ok:
        pytest.skip(f"no sandbox here: {PROBE.reason}")
    return make_launcher(Limits(check_timeout=hw1.check_timeout, time_budget=hw1.time_budget), require=True)


@pytest.fixture(scope="module")
def forked(fresh):
    """One sandboxed fork server shared by the attacks and victims of this module, as a worker shares it."""
    launcher = ForkLauncher(fresh)
    yield launcher
    launcher.close()


def call(runner, name: str):
    """Run `student.<name>()` in the child and fetch what it returns."""
    reply = runner.request_batch({"reset": True, "seed": 0, "forbidden": [], "fetch": [3], "ops": [
        {"op": "getattr", "target": 0, "name": name, "result": 2},
        {"op": "call", "target": 2, "args": [], "kwargs": {}, "result": 3}]})
    assert reply["error"] is None, reply["error"]
    return reply["values"][0]


def test_a_worker_starts_its_fork_server_before_it_imports_torch():
    """The zygote imports torch while the worker does (kit.grader.pool.init_worker): nothing the worker
    needs to start it may import torch first, or the two second-long imports run one after the other."""
    code = ("import sys; from kit.grader.pool import assignment_launcher; import kit.grader.forkserver; "
            "assert 'torch' not in sys.modules, 'starting a fork server imports torch'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_the_zygote_refuses_to_fork_with_a_second_thread(tmp_path):
    """A thread pool would be copied without its threads: forking then can deadlock the child."""
    ours, theirs = socket.socketpair()
    zygote = child_zygote.Zygote(theirs, str(tmp_path), None, None)
    release = threading.Event()
    helper = threading.Thread(target=release.wait)
    helper.start()
    r, w = os.pipe()
    try:
        reply = zygote.spawn({"forbidden": []}, [r, w])
    finally:
        release.set()
        helper.join()
        ours.close()
        theirs.close()
    assert "threads" in reply["error"] and "not safe" in reply["error"]
    assert zygote.pid is None
    for fd in (r, w):  # the zygote closed the child's ends it was given
        with pytest.raises(OSError):
            os.fstat(fd)


def test_the_zygote_refuses_to_fork_once_its_own_limits_changed(tmp_path):
    """Defence in depth behind the walls: a zygote whose limits, priority or CPUs changed forks no more."""
    ours, theirs = socket.socketpair()
    zygote = child_zygote.Zygote(theirs, str(tmp_path), None, None)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft - 1, hard))
    r, w = os.pipe()
    try:
        reply = zygote.spawn({"forbidden": []}, [r, w])
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        ours.close()
        theirs.close()
    assert reply == {"error": "the fork server's own RLIMIT_NOFILE changed since it started"}
    assert zygote.pid is None
    assert zygote.refusal() is None or "threads" in zygote.refusal()  # as it was, it would fork again


def test_importing_torch_starts_no_thread_with_the_child_environment():
    """What makes the fork safe: the zygote's environment keeps torch, OpenMP and BLAS single-threaded."""
    code = "import os, torch, numpy; print(len(os.listdir('/proc/self/task')))"
    out = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "1", out.stderr


def test_each_forked_child_starts_clean(fork_launcher, tmp_path):
    assignment = load_assignment(HW1)
    folders = []
    for name in ("first", "second"):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "my_linear.py").write_text(LEAVER + f"# MARK-{name}\n")
        folders.append(folder)

    first = open_runner(assignment, folders[0], fork_launcher)
    try:
        seen = call(first, "look")
        assert seen["first"] and seen["tmp"] and seen["cuda_lazy"] and seen["threads"] == 1
        call(first, "leave_mess")
    finally:
        first.close()

    second = open_runner(assignment, folders[1], fork_launcher)
    try:
        seen_after = call(second, "look")
    finally:
        second.close()
    assert seen_after["others"] == [], seen_after  # nothing left in the scratch area
    assert seen_after["home_files"] == [".output", "submission"], seen_after
    assert not seen_after["first"]
    if fork_launcher.sandboxed:  # in the sandbox: bwrap (1), the zygote, and this child's keeper, init and self
        assert len(seen_after["pids"]) == 5, seen_after["pids"]


def expected_of(case: str) -> dict:
    return tomllib.loads((REDTEAM / case / "expected.toml").read_text())


def assert_expected(case: str, report) -> None:
    expected = expected_of(case)
    failing = sorted(c.id for c in report.checks if c.status not in (PASSED, SKIPPED))
    summary = "\n".join(f"{c.id}: {c.status} {c.message[:300]}" for c in report.checks if c.status != PASSED)
    assert failing == sorted(expected["failing"]) and report.score == expected["score"], summary


def assert_victim_keeps_full_marks(hw1, launcher) -> None:
    report = grade(hw1, SOLUTION, launcher=launcher)
    assert report.score == report.max_score == 21.0, [(c.id, c.message[:200]) for c in report.checks
                                                      if c.status not in (PASSED, SKIPPED)]


def reached(results: dict) -> list[str]:
    """The attacks that worked; the only process a forked child can name besides itself is its own
    init (pid 1 of its own pid namespace), and renicing its own user touches only its own processes."""
    done = sorted(what for what, outcome in results.items() if outcome == "done")
    assert done and all(what.endswith(" 1") or what == "renice my user" for what in done), done
    return done


@needs_bwrap
def test_a_child_cannot_limit_renice_pin_or_stop_the_zygote(hw1, forked, tmp_path):
    attackers = {}
    for case in ("limit_fork_server", "stop_fork_server"):
        attackers[case] = tmp_path / case
        shutil.copytree(REDTEAM / case, attackers[case])
    runner = open_runner(hw1, attackers["limit_fork_server"], forked)
    try:
        before = call(runner, "look")
        zygote = forked.zygote
        reached(call(runner, "attack"))
    finally:
        runner.close()
    runner = open_runner(hw1, attackers["stop_fork_server"], forked)
    try:
        reached(call(runner, "attack"))
    finally:
        runner.close()
    for case, folder in attackers.items():
        assert_expected(case, grade(hw1, folder, launcher=forked))
    runner = open_runner(hw1, attackers["limit_fork_server"], forked)
    try:
        assert call(runner, "look") == before  # the same priority, limits, CPUs and scheduling as before
    finally:
        runner.close()
    assert forked.zygote is zygote and zygote.alive  # never stopped or replaced: it served them all
    assert_victim_keeps_full_marks(hw1, forked)


@needs_bwrap
def test_a_child_cannot_kill_the_zygote(hw1, forked):
    """kill_parent: SIGKILL to its parent, pid 1, everyone (kill(-1)) and its process group."""
    assert_victim_keeps_full_marks(hw1, forked)
    zygote = forked.zygote
    assert_expected("kill_parent", grade(hw1, REDTEAM / "kill_parent", launcher=forked))
    assert forked.zygote is zygote and zygote.alive
    assert_victim_keeps_full_marks(hw1, forked)


@needs_bwrap
def test_nothing_a_child_leaves_reaches_the_next(hw1, forked, tmp_path):
    """System V shared memory, message queues and semaphores, POSIX message queues, keyrings."""
    leaver = tmp_path / "leaver"
    shutil.copytree(REDTEAM / "ipc_leave", leaver)
    runner = open_runner(hw1, leaver, forked)
    try:
        assert call(runner, "look") == []
        call(runner, "leave")
        left = call(runner, "look")
    finally:
        runner.close()
    assert len(left) >= 5, left  # what it left, as its own process sees it: the test can fail
    runner = open_runner(hw1, leaver, forked)
    try:
        assert call(runner, "look") == []
    finally:
        runner.close()
    assert_expected("ipc_leave", grade(hw1, leaver, launcher=forked))
    assert_expected("ipc_leave", grade(hw1, leaver, launcher=forked))  # it looks first: nothing from the last one
    assert_victim_keeps_full_marks(hw1, forked)


def processes_below(pid: int) -> list[dict]:
    """Every process under `pid` (read from /proc here): its parent, uid, capabilities, command line."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                status = dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
        except OSError:
            continue
        caps = 0
        for key in ("CapEff", "CapPrm", "CapAmb"):
            caps |= int(status[key], 16)
        table[int(entry)] = {"pid": int(entry), "ppid": int(status["PPid"]), "uid": int(status["Uid"].split()[0]),
                             "caps": caps, "bwrap": cmdline[0].endswith(b"bwrap"), "zygote": b"--zygote" in cmdline}
    below, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = [info for info in table.values() if info["ppid"] == parent]
        below += children
        frontier += [info["pid"] for info in children]
    return below


@needs_bwrap
@pytest.mark.parametrize("how", ["fresh child", "fork server"])
def test_student_code_runs_without_capabilities_and_as_nobody_under_root(hw1, fresh, forked, how):
    """And a root grader's zygote keeps root with CAP_SETUID and CAP_SETGID only: another uid than its children."""
    launcher = fresh if how == "fresh child" else forked
    runner = open_runner(hw1, SOLUTION, launcher)
    try:
        runner.request_batch({"reset": True, "seed": 0, "forbidden": [], "ops": [], "fetch": []})
        sandbox_process = forked.zygote.process if how == "fork server" else runner.child
        below = processes_below(sandbox_process.proc.pid)
    finally:
        runner.close()
    bwraps = {p["pid"] for p in below if p["bwrap"]}
    zygotes = [p for p in below if p["zygote"] and not p["bwrap"] and p["ppid"] in bwraps]
    students = [p for p in below if not p["bwrap"] and p not in zygotes]
    assert students and all(p["caps"] == 0 for p in students), students
    if fresh.mode.drop_uid is not None:
        assert {p["uid"] for p in students} == {fresh.mode.drop_uid}, students
    if how == "fork server":
        (zygote,) = zygotes
        assert zygote["caps"] & ~0xC0 == 0, hex(zygote["caps"])  # at most CAP_SETGID (6) and CAP_SETUID (7)
        assert len(students) == 3  # the child's keeper, its init and the child itself
        if fresh.mode.drop_uid is not None:
            assert zygote["uid"] == 0


KEYS_PROBE = """
import ctypes, json, os, platform
add_key, keyctl = {"x86_64": (248, 250), "aarch64": (217, 219)}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
outcomes = {}
for what, call in [("session keyring", lambda: libc.syscall(keyctl, 0, -3, 1)),  # KEYCTL_GET_KEYRING_ID
                   ("new session keyring", lambda: libc.syscall(keyctl, 1, None)),  # KEYCTL_JOIN_SESSION_KEYRING
                   ("a key", lambda: libc.syscall(add_key, b"user", b"kit", b"x", 1, -4))]:
    outcomes[what] = os.strerror(ctypes.get_errno()) if call() < 0 else "done"
print(json.dumps(outcomes))
"""
# The probe runs in a new interpreter, where kit's guard (which refuses ctypes) is not: the sandbox's
# system-call filter is inherited, and must hold for everything a child runs, not only what the guard sees.
KEYS = f"""
import json, subprocess, sys

def keys():
    done = subprocess.run([sys.executable, "-I", "-c", {KEYS_PROBE!r}], capture_output=True, text=True, timeout=30)
    return json.loads(done.stdout) if done.returncode == 0 else done.stderr
"""


@needs_bwrap
@pytest.mark.parametrize("how", ["fresh child", "fork server"])
def test_no_child_gets_a_kernel_keyring(hw1, fresh, forked, how, tmp_path):
    """A key could be left for the next student, or (non-root grader) put in the grader's own user keyring."""
    if not sandbox.seccomp_filter():
        pytest.skip("no seccomp filter for this machine's system call numbers")
    (tmp_path / "my_linear.py").write_text(KEYS)
    runner = open_runner(hw1, tmp_path, fresh if how == "fresh child" else forked)
    try:
        assert call(runner, "keys") == dict.fromkeys(["session keyring", "new session keyring", "a key"],
                                                     os.strerror(errno.EPERM))
    finally:
        runner.close()


@needs_bwrap
def test_where_children_cannot_be_walled_off_they_are_started_afresh(hw1, tmp_path):
    """A zygote that cannot give its children their own namespaces is not used: the grades stay the same."""

    class Unwallable(sandbox.BwrapLauncher):
        def fork_isolation(self) -> dict:  # a process limit no child may be given
            return {**super().fork_isolation(), "nproc": resource.RLIM_INFINITY - 1}

    launcher = ForkLauncher(Unwallable(Limits(check_timeout=hw1.check_timeout, time_budget=hw1.time_budget)))
    try:
        report = grade(hw1, SOLUTION, launcher=launcher, keyword="forward and not leading and not cuda")
        assert "cannot wall its children off" in launcher.unavailable
        assert launcher.zygote is None
    finally:
        launcher.close()
    assert [(c.id, c.status) for c in report.checks] == [("forward", PASSED)]


@needs_bwrap
def test_a_fork_server_works_where_bwrap_is_too_old_for_a_scratch_tmpfs(hw1):
    """bwrap older than 0.7 (no --size): the scratch area is a folder of the grader's, bind-mounted."""
    old = dataclasses.replace(PROBE, features=PROBE.features - {"--size"})
    launcher = ForkLauncher(sandbox.BwrapLauncher(Limits(check_timeout=hw1.check_timeout,
                                                         time_budget=hw1.time_budget), old))
    try:
        for _ in range(2):  # the second child proves the first was cleaned up after
            report = grade(hw1, SOLUTION, launcher=launcher, keyword="forward and not leading and not cuda")
            assert [(c.id, c.status) for c in report.checks] == [("forward", PASSED)], report.checks[0].message
        assert launcher.unavailable is None and launcher.zygote is not None
    finally:
        launcher.close()


def test_an_empty_file_is_sent_like_any_other(hw1, tmp_path):
    """An honest submission with a package whose __init__.py is empty: the same grades either way."""
    folder = tmp_path / "alice"
    (folder / "mathutils").mkdir(parents=True)
    (folder / "mathutils" / "__init__.py").write_bytes(b"")
    (folder / "notes.txt").write_bytes(b"")
    (folder / "my_linear.py").write_text("import mathutils  # noqa: F401\n" + (SOLUTION / "my_linear.py").read_text())
    assert submission_files(folder / "my_linear.py", [str(CHILD_PACKAGE)])["mathutils/__init__.py"] == b""
    base = make_launcher(Limits(check_timeout=hw1.check_timeout, time_budget=hw1.time_budget), require=False)
    forked = ForkLauncher(base)
    try:
        through_fork = grade(hw1, folder, launcher=forked)
        assert forked.zygote is not None  # it was forked, not started afresh
    finally:
        forked.close()
    fresh = grade(hw1, folder, launcher=base)
    assert through_fork.score == fresh.score == 21.0
    assert [(c.id, c.status, c.message) for c in through_fork.checks] == \
           [(c.id, c.status, c.message) for c in fresh.checks]


def test_a_submission_is_sent_as_the_sandbox_would_show_it(tmp_path):
    kit_file = str(CHILD_PACKAGE)
    folder = tmp_path / "alice"
    (folder / "pkg").mkdir(parents=True)
    (folder / "my_linear.py").write_text("x = 1\n")
    (folder / "pkg" / "util.py").write_text("y = 2\n")
    (folder / "link.py").symlink_to("/etc/passwd")
    assert submission_files(folder / "my_linear.py", [kit_file]) == {
        "my_linear.py": b"x = 1\n", os.path.join("pkg", "util.py"): b"y = 2\n"}
    (folder / "kit.toml").write_text("[course]\n")  # a course folder: only the student's file
    assert submission_files(folder / "my_linear.py", [kit_file]) == {"my_linear.py": b"x = 1\n"}
    (folder / "kit.toml").unlink()
    for i in range(70):
        (folder / f"f{i}.txt").write_text("z")
    assert submission_files(folder / "my_linear.py", [kit_file]) is None  # over the caps: a fresh child
