"""The child's forbidden-API guard (issue 20, item 10): what it catches, what it lets torch do, and victims.

The scenarios (tests/guard_scenarios.py) run the real guard in a fresh fork each. The red-team
submissions (tests/submissions/hwN/forbidden_*) are graded through one fork server, each followed
by the assignment's solution in that same fork server: the attacker scores what it deserves
(tests/test_submissions.py asserts that too, with and without the fork server) and the correct
victim graded right after it keeps full marks.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kit.grader.forkserver import ForkLauncher
from kit.grader.launch import Limits
from kit.grader.sandbox import make_launcher
from tests.conftest import ROOT
from tests.conftest import grade as grade_folder
from tests.test_submissions import assert_deserved, grade

EXPECTED = {
    # allowed: honest code, student modes, what torch does for itself
    "honest_linear": "ok",
    "own_modes": "ok",
    "other_component": "ok",
    "honest_autocast": "ok",
    "honest_vmap": "ok",
    "torch_imports_its_own": "ok",
    # every spelling of a forbidden API
    "method_form": "tripped: torch.Tensor.addmm",
    "in_place_method": "tripped: torch.Tensor.addmm_",
    "tensor_base_method": "tripped: torch.Tensor.addmm",
    "aten_out_overload": "tripped: aten.addmm",
    "decomposed": "tripped: torch.nn.functional.linear",
    "vmapped": "tripped: torch.addmm",
    "in_backward": "tripped: aten.native_batch_norm",
    "forbidden_class": "tripped: torch.nn.Linear",
    # turning the guard off, or running code where it cannot see
    "disable_torch_function": "tripped: torch._C.DisableTorchFunction",
    "exclude_python_key": "tripped: torch._C._ExcludeDispatchKeyGuard",
    "no_dispatch_alias": "tripped: torch._C._DisableTorchDispatch",
    "pop_through_overrides": "tripped: torch._C._pop_torch_function_stack",
    "pop_dispatch_mode": "tripped: torch._C._pop_torch_dispatch_stack",
    "thread_pool": "tripped: _thread.start_new_thread",
    "script_function": "tripped: torch.jit.script",
    "custom_op": "tripped: torch.library.custom_op",
    "custom_op_through_torch": "tripped: torch.library.Library",
    "native_library": "tripped: ctypes.CDLL",
    "memory_search": "tripped: gc.get_referrers",
    # changing the guard
    "unwired": "tripped: kit's guard",
    "mode_left_on": "tripped: kit's guard",
    "handler_patched": "tripped: kit's guard",
    "switched_off_from_inside": "tripped: kit's guard",
    "list_changed_from_inside": "tripped: kit's guard",
    "refuses_after_a_change": "tripped: kit's guard",
}


@pytest.fixture(scope="module")
def outcomes() -> dict[str, str]:
    """Every scenario, run once in a subprocess (a guard rewires torch: never in the test process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(ROOT / "tests" / "guard_scenarios.py"), *EXPECTED],
                          capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.parametrize("name", list(EXPECTED))
def test_scenario(outcomes, name):
    assert outcomes[name] == EXPECTED[name]


ATTACKS = sorted(Path(__file__).parent.glob("submissions/hw*/forbidden*/expected.toml"))


@pytest.fixture(scope="module")
def fork_launchers():
    """One fork server per (assignment, limits), shared by every attacker and victim, as a worker shares it."""
    made: dict = {}

    def get(limits):
        if limits not in made:
            made[limits] = ForkLauncher(make_launcher(limits, require=False))
        return made[limits]

    yield get
    for launcher in made.values():
        launcher.close()


@pytest.mark.parametrize("expected_file", ATTACKS, ids=[f"{p.parent.parent.name}/{p.parent.name}" for p in ATTACKS])
def test_victim_after_attacker_keeps_full_marks(course, expected_file, fork_launchers):
    expected, attacker = grade(course, expected_file, fork_launchers)
    assert_deserved(expected, attacker)
    hw = expected_file.parent.parent.name
    spec = course.assignment(hw)
    launcher = fork_launchers(Limits(check_timeout=spec.check_timeout, time_budget=spec.time_budget))
    victim = grade_folder(spec, ROOT / "solutions" / hw, launcher=launcher)
    assert victim.score == victim.max_score and not victim.problems, \
        [(c.id, c.message[:200]) for c in victim.checks if c.points < c.max_points]
