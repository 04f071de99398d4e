"""The fork server: forking after `import torch` is safe, and every forked child starts clean.

Same verdicts with and without it: tests/test_submissions.py (every wrong submission),
tests/test_sandbox.py (every red-team case, one zygote shared by all), tests/test_grade.py
(a class graded both ways).
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading

import pytest

from kit.grader.child import zygote as child_zygote
from kit.grader.course import load_assignment
from kit.grader.forkserver import ForkLauncher, submission_files
from kit.grader.launch import CHILD_PACKAGE, Limits, child_env
from kit.grader.runner import open_runner
from kit.grader.sandbox import make_launcher
from tests.conftest import ROOT

HW1 = ROOT / "grader" / "suites" / "hw1"

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


def call(runner, name: str):
    """Run `student.<name>()` in the child and fetch what it returns."""
    reply = runner.request_batch({"reset": True, "seed": 0, "forbidden": [], "fetch": [3], "ops": [
        {"op": "getattr", "target": 0, "name": name, "result": 2},
        {"op": "call", "target": 2, "args": [], "kwargs": {}, "result": 3}]})
    assert reply["error"] is None, reply["error"]
    return reply["values"][0]


def test_the_zygote_refuses_to_fork_with_a_second_thread(tmp_path):
    """A thread pool would be copied without its threads: forking then can deadlock the child."""
    ours, theirs = socket.socketpair()
    zygote = child_zygote.Zygote(theirs, str(tmp_path), None, own_pid_namespace=False)
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
    if fork_launcher.sandboxed:  # its own pid namespace: bwrap (1), the zygote, and this child only
        assert len(seen_after["pids"]) == 3, seen_after["pids"]


def test_a_child_that_kills_the_zygote_costs_only_itself(fork_launcher, tmp_path):
    assignment = load_assignment(HW1)
    folder = tmp_path / "killer"
    folder.mkdir()
    (folder / "my_linear.py").write_text("import os, signal\n\ndef kill_parent():\n"
                                         "    os.kill(os.getppid(), signal.SIGKILL)\n    return 1\n\n"
                                         "def ok():\n    return 2\n")
    runner = open_runner(assignment, folder, fork_launcher)
    try:
        assert call(runner, "kill_parent") == 1
    finally:
        runner.close()
    runner = open_runner(assignment, folder, fork_launcher)  # a new zygote serves the next one
    try:
        assert call(runner, "ok") == 2
    finally:
        runner.close()


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
