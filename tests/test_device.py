"""Device checks without a GPU (issue 13): the emulated device refuses exactly the mixes CUDA refuses,
explains them by the student's line, says "not run" for what it cannot run, and never costs a correct
submission a point; and what a GPU machine needs of the child (no CUDA before a fork, TF32 off, the
device nodes in the sandbox) holds on this one.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from kit.grader.forkserver import ForkLauncher
from kit.grader.launch import BOOT, Limits, PlainLauncher, gpu_nodes
from kit.grader.remote import HELPERS, STUDENT, Remote, fetch
from kit.grader.report import NOT_EMULATED, PASSED, SKIPPED
from kit.grader.runner import open_runner
from kit.grader.sandbox import BwrapLauncher, gpu_binds, probe
from tests.conftest import ROOT, grade

CASES = sorted((ROOT / "tests" / "submissions").glob("hw*/*/expected.toml"))
GPU_ONLY = [p for p in CASES if "gpu" in tomllib.loads(p.read_text())]

# -- the rules: which mixes the emulated device refuses ---------------------------------------------------

RULES = r"""
import json, sys, torch
sys.path.insert(0, sys.argv[1])
from child.device import DeviceMismatch, DeviceMode, prepare
prepare()
M = "meta"
cases = {
    "cat with a CPU tensor": lambda: torch.cat([torch.ones(2, 3, device=M), torch.ones(2, 1)], 1),
    "CPU buffer updated in place from the device": lambda: torch.zeros(3).add_(torch.ones(3, device=M)),
    "CPU @ device": lambda: torch.ones(2, 3) @ torch.ones(3, 2, device=M),
    "device tensor updated in place from the CPU": lambda: torch.ones(3, device=M).add_(torch.ones(3)),
    "a 0-dim CPU tensor with a device tensor": lambda: torch.ones(3, device=M) * torch.tensor(2.0),
    "a 0-dim device tensor with a CPU tensor": lambda: torch.ones(3) * torch.tensor(2.0, device=M),
    "device tensor indexed with CPU indices": lambda: torch.ones(4, device=M)[torch.tensor([0, 2])],
    "CPU tensor indexed with device indices": lambda: torch.ones(4)[torch.tensor([0, 2], device=M)],
    "CPU values put into a device tensor": lambda: torch.ones(4, device=M).index_put_(
        (torch.tensor([0, 2]),), torch.ones(2)),
    "a 0-dim CPU value put into a device tensor": lambda: torch.ones(4, device=M).index_put_(
        (torch.tensor([0, 2]),), torch.tensor(5.0)),
    "copy from the CPU into a device tensor": lambda: torch.ones(3, device=M).copy_(torch.ones(3)),
    "moving a CPU tensor to the device": lambda: torch.ones(3).to(M) + torch.ones(3, device=M),
    "masked_fill with a CPU mask": lambda: torch.ones(2, 2, device=M).masked_fill(torch.ones(2, 2).bool(), 0.0),
    "optimizer state made with torch.zeros(p.shape)": lambda: torch.zeros(3).mul_(0.9).add_(
        torch.ones(3, device=M), alpha=0.1),
    "CPU tensors only": lambda: torch.ones(3) + torch.ones(3),
    "boolean-mask indexing on the device": lambda: torch.ones(4, device=M)[torch.ones(4, device=M) > 0],
    "item() on the device": lambda: torch.ones(3, device=M).sum().item(),
}
# on a real GPU the mode refuses nothing itself and explains CUDA's refusal; the meta device refuses this
# out-of-place mix on its own, as CUDA does, so it shows that path here
explained = {"a mix the device itself refuses, explained": lambda: torch.ones(3, device=M) + torch.ones(3)}
out = {}
for name, case in [*cases.items(), *explained.items()]:
    try:
        with DeviceMode("/nonexistent", reject=name not in explained):
            case()
        out[name] = "ran"
    except DeviceMismatch:
        out[name] = "mismatch"
    except Exception as exc:
        out[name] = type(exc).__name__
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def rules() -> dict[str, str]:
    """Each case run under the emulated device in a fresh interpreter, as the child runs it."""
    run = subprocess.run([sys.executable, "-c", RULES, str(ROOT / "grader")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout)


@pytest.mark.parametrize("case", [
    "cat with a CPU tensor", "CPU buffer updated in place from the device", "CPU @ device",
    "device tensor updated in place from the CPU", "a 0-dim device tensor with a CPU tensor",
    "CPU tensor indexed with device indices", "CPU values put into a device tensor", "masked_fill with a CPU mask",
    "optimizer state made with torch.zeros(p.shape)", "a mix the device itself refuses, explained"])
def test_refuses_what_cuda_refuses(rules, case):
    assert rules[case] == "mismatch"


@pytest.mark.parametrize("case", [
    "a 0-dim CPU tensor with a device tensor", "device tensor indexed with CPU indices",
    "a 0-dim CPU value put into a device tensor", "copy from the CPU into a device tensor",
    "moving a CPU tensor to the device", "CPU tensors only"])
def test_allows_what_cuda_allows(rules, case):
    assert rules[case] == "ran"


@pytest.mark.parametrize("case", ["boolean-mask indexing on the device", "item() on the device"])
def test_what_needs_values_is_no_mismatch(rules, case):
    assert rules[case] not in ("ran", "mismatch")


# -- the checks, graded --------------------------------------------------------------------------------------

def test_every_assignment_has_a_gpu_only_fixture():
    assert sorted({p.parent.parent.name for p in GPU_ONLY}) == sorted(f"hw{i}" for i in range(1, 13))


@pytest.mark.parametrize("expected_file", GPU_ONLY, ids=[f"{p.parent.parent.name}/{p.parent.name}" for p in GPU_ONLY])
def test_gpu_only_mistake_costs_its_device_checks_and_nothing_else(course, expected_file):
    """Right on the CPU: only device_placement fails there, and on a GPU (bench/gpu.py) those and GPU checks."""
    expected = tomllib.loads(expected_file.read_text())
    assert expected["failing"] and all(c.startswith("device_placement") for c in expected["failing"])
    assert set(expected["failing"]) <= set(expected["gpu"]["failing"])
    report = grade(course.assignment(expected_file.parent.parent.name), expected_file.parent)
    failed = {c.id: c for c in report.checks if c.status not in (PASSED, SKIPPED)}
    assert sorted(failed) == sorted(expected["failing"])
    assert report.score == report.max_score - sum(c.max_points for c in failed.values())
    for check in failed.values():  # the line that made the tensor, and what to do instead
        assert "creates a tensor on the CPU" in check.message and "line " in check.message, check.message


def test_what_the_emulation_cannot_run_is_not_run(course):
    """hw3's alt_correct selects with a boolean mask: no values on the emulated device, so "not run"."""
    report = grade(course.assignment("hw3"), ROOT / "tests" / "submissions" / "hw3" / "alt_correct")
    check = next(c for c in report.checks if c.id == "device_placement")
    assert (check.status, check.reason, check.counts) == (SKIPPED, NOT_EMULATED, False)
    assert check.message.startswith("not run: could not emulate a device here (focal_loss.py, line ")
    assert "boolean-mask indexing" in check.message
    assert report.score == report.max_score == sum(c.max_points for c in report.checks if c.counts)
    assert any("device check(s) not run" in n.text for n in report.notes)


def test_cuda_on_a_machine_without_it_says_so(course):
    """.cuda() in __init__: every check that builds the layer says why; the others still run and pass."""
    report = grade(course.assignment("hw1"), ROOT / "tests" / "submissions" / "hw1" / "cuda_in_init")
    failed = [c for c in report.checks if c.status not in (PASSED, SKIPPED)]
    assert failed and all("this machine has no CUDA device" in c.message for c in failed), \
        [c.message for c in failed]


# -- the device mode beside the forbidden-API guard ----------------------------------------------------------

ON_DEVICE_ONLY = """
import math

import torch
from torch import nn


class MyLinear(nn.Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        bound = 1 / math.sqrt(in_features)
        self.weight = nn.Parameter(torch.empty(out_features, in_features).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(out_features).uniform_(-bound, bound)) if bias else None

    def forward(self, x):
        if x.device.type != "cpu":  # only in the device check
            {on_device}
        y = x @ self.weight.T
        return y + self.bias if self.bias is not None else y
"""


def on_device_only(tmp_path: Path, code: str) -> Path:
    (tmp_path / "my_linear.py").write_text(ON_DEVICE_ONLY.format(on_device=code))
    return tmp_path


def test_forbidden_api_used_only_on_the_device_is_caught(course, tmp_path):
    """The device mode sits above the guard's: a forbidden call that only the device check makes (a name
    built at run time, which the static scan cannot see) still trips the guard, and costs the component."""
    code = 'return getattr(torch.nn.functional, "".join(reversed("raenil")))(x, self.weight, self.bias)'
    folder = on_device_only(tmp_path, code)
    report = grade(course.assignment("hw1"), folder)
    assert report.score == 0.0
    assert any("torch.nn.functional.linear" in p.message and "called while your code ran" in p.message
               for p in report.problems), report.problems
    assert "device_placement" in {c.id for c in report.checks if c.status != PASSED}


def test_removing_the_device_mode_is_tampering(course, tmp_path):
    """Student code that takes the emulated device's mode off (to mix devices unseen) breaks the guard's
    stack of modes: the guard says it was changed, as for its own mode."""
    code = 'getattr(torch._C, "".join(reversed("kcats_hctapsid_hcrot_pop_")))(None)'  # unseen by the static scan
    folder = on_device_only(tmp_path, code)
    report = grade(course.assignment("hw1"), folder)
    assert report.score == 0.0
    assert any("kit's guard" in p.message for p in report.problems), report.problems


def test_the_device_mode_is_no_tampering(course):
    """A correct solution's device check runs under both modes: passed, and the guard saw nothing."""
    report = grade(course.assignment("hw1"), ROOT / "solutions" / "hw1")
    check = next(c for c in report.checks if c.id == "device_placement")
    assert check.status == PASSED, check.message
    assert report.score == report.max_score and not report.problems


# -- what a GPU machine needs of the child, provable here ----------------------------------------------------

def hw1_remote(launcher) -> tuple:
    assignment = __import__("kit.grader.course", fromlist=["load_assignment"]).load_assignment(
        ROOT / "grader" / "suites" / "hw1")
    runner = open_runner(assignment, ROOT / "solutions" / "hw1", launcher)
    remote = Remote(runner, assignment.module, [])
    return runner, remote


def test_child_computes_in_full_float32_precision():
    """TF32 off in the child (CUDA's matmul and cuDNN), as for the grader's references on a GPU."""
    runner, remote = hw1_remote(PlainLauncher(Limits()))
    try:
        child = remote.root(HELPERS, "child")
        assert fetch(child.torch.backends.cuda.matmul.allow_tf32, child.torch.backends.cudnn.allow_tf32) == \
            (False, False)
    finally:
        runner.close()


# the functions of torch.cuda that reach the CUDA driver or NVML (torch.cuda's import, its classes and its
# lazy-call queue do not)
DRIVER = {"is_available", "device_count", "_lazy_init", "init", "current_device", "set_device", "synchronize",
          "get_device_properties", "get_device_name", "get_device_capability", "mem_get_info", "is_bf16_supported",
          "get_arch_list", "_raw_device_count_nvml", "_device_count_nvml", "_raw_device_uuid_nvml",
          "_check_capability", "_check_cubins"}

# Runs as the fork server: records every call into torch.cuda and every CUDA or NVML builtin of torch._C
# from its start until it forks, and writes them (and whether CUDA was initialised) to a file at the fork.
WATCHED_BOOT = r"""
import json, os, sys
calls = []
def profile(frame, event, arg):
    if event == "call" and "/torch/cuda/" in frame.f_code.co_filename:
        calls.append(frame.f_code.co_filename.rsplit("/torch/", 1)[1] + ":" + frame.f_code.co_name)
    elif event == "c_call" and getattr(arg, "__name__", "").startswith(("_cuda_", "_nvml", "_cuda")):
        calls.append("torch._C." + arg.__name__)
def at_fork():
    import torch
    with open(OUT, "w") as f:
        json.dump({"calls": calls, "initialized": torch.cuda.is_initialized(),
                   "nvml": os.environ.get("PYTORCH_NVML_BASED_CUDA_CHECK")}, f)
os.register_at_fork(before=at_fork)
sys.setprofile(profile)
""" + BOOT.replace("; ", "\n")


class WatchedLauncher(PlainLauncher):
    """Starts the child package with WATCHED_BOOT in place of the usual boot line."""

    def __init__(self, limits: Limits, out: Path) -> None:
        super().__init__(limits)
        self.out = out

    def wrap(self, argv, scratch, command, staging):
        boot = f"OUT = {str(self.out)!r}\n" + WATCHED_BOOT
        return [argv[0], "-P", "-s", "-c", boot, *argv[5:]] if argv[4] == BOOT else argv


def test_fork_server_never_touches_cuda_before_it_forks(tmp_path):
    """Nothing in the zygote calls into torch.cuda or the CUDA driver, and CUDA is not initialised when it
    forks: a child forked from it may use the GPU (CUDA cannot be used in a fork of a process that
    initialised it). Its children check CUDA through NVML, which is fork-safe."""
    out = tmp_path / "zygote.json"
    launcher = ForkLauncher(WatchedLauncher(Limits(), out))
    try:
        runner, remote = hw1_remote(launcher)
        student = remote.root(STUDENT, "my_linear")
        assert fetch(student.torch.cuda.is_initialized()) is False
        runner.close()
    finally:
        launcher.close()
    seen = json.loads(out.read_text())
    assert seen["initialized"] is False and seen["nvml"] == "1"
    touched = [call for call in seen["calls"] if call.startswith("torch._C.") or call.split(":")[1] in DRIVER]
    assert touched == [], touched
    assert "cuda/__init__.py:<module>" in seen["calls"]  # the watch saw torch.cuda being imported


def worker_facts(suite_dir: str, submission: str, require_sandbox: bool) -> tuple[dict, str]:
    """A grading worker's task that reports how the worker was started and what it did to CUDA."""
    import torch

    cmdline = Path("/proc/self/cmdline").read_bytes().replace(b"\0", b" ").decode()
    return {"spawned": "spawn_main" in cmdline, "cuda_initialized": torch.cuda.is_initialized()}, "here"


def test_grading_workers_are_fresh_interpreters():
    """Workers are spawned (a new interpreter, nothing inherited from the driver) and have not initialised
    CUDA when they start their fork server (which they start by exec, see launch.PlainLauncher)."""
    from kit.grader.course import load_assignment
    from kit.grader.pool import Job, WorkerPool

    pool = WorkerPool(1, require_sandbox=False, task=worker_facts)
    try:
        outcomes = list(pool.grade(load_assignment(ROOT / "grader" / "suites" / "hw1"), [Job("a", ROOT)]))
    finally:
        pool.close()
    assert [o.report for o in outcomes] == [{"spawned": True, "cuda_initialized": False}]


# -- the device nodes a sandboxed child needs for CUDA ----------------------------------------------------

# what nvidia-container-toolkit gives a container for CUDA compute (MIG capabilities included)
TOOLKIT_NODES = ["nvidia0", "nvidia1", "nvidiactl", "nvidia-uvm", "nvidia-uvm-tools", "nvidia-modeset",
                 "nvidia-caps/nvidia-cap1", "nvidia-caps/nvidia-cap2"]


@pytest.fixture
def fake_dev(tmp_path) -> Path:
    """A /dev with the NVIDIA nodes as plain files anyone may read and write (as the real nodes are, 0666)."""
    dev = tmp_path / "dev"
    for name in TOOLKIT_NODES + ["null", "sda"]:
        (dev / name).parent.mkdir(parents=True, exist_ok=True)
        (dev / name).write_text(name)
        (dev / name).chmod(0o666)
    for folder in (dev, dev / "nvidia-caps"):
        folder.chmod(0o755)
    return dev


def test_every_toolkit_node_is_bound(fake_dev):
    binds = dict((dest, src) for src, dest in gpu_binds(str(fake_dev)))
    assert {f"/dev/{name}" for name in TOOLKIT_NODES} <= {
        dest + rest for dest in binds for rest in ("", "/nvidia-cap1", "/nvidia-cap2")}
    assert "/dev/null" not in binds and "/dev/sda" not in binds
    assert gpu_nodes(str(fake_dev)) == sorted(str(fake_dev / n) for n in os.listdir(fake_dev) if n.startswith("nvidia"))


SANDBOXED = probe().ok


@pytest.mark.skipif(not SANDBOXED, reason="bubblewrap cannot run here")
def test_sandboxed_child_can_open_every_gpu_node(fake_dev, tmp_path):
    """Inside bubblewrap, every node sits where CUDA looks for it and opens for reading and writing;
    sysfs (where CUDA and NVML find the devices) is there too."""
    script = ("import os, json\n"
              f"names = {TOOLKIT_NODES!r}\n"
              "ok = {}\n"
              "for n in names:\n"
              "    with open('/dev/' + n, 'r+') as f:\n"
              "        ok[n] = f.read()\n"
              "print(json.dumps({'nodes': ok, 'sys': os.path.isdir('/sys/bus'), 'sda': os.path.exists('/dev/sda')}))\n")
    launcher = BwrapLauncher(Limits(), gpu_dev=str(fake_dev))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    command = launcher.bwrap_args(str(scratch), []) + launcher.trampoline([sys.executable, "-P", "-s", "-c", script])
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, preexec_fn=launcher.apply_limits,
                         cwd=scratch)
    assert run.returncode == 0, run.stderr[-2000:]
    seen = json.loads(run.stdout)
    assert seen == {"nodes": {n: n for n in TOOLKIT_NODES}, "sys": True, "sda": False}
