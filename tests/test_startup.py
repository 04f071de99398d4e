"""What a `kit check` imports beyond torch: the heavy modules torch loads lazily stay unloaded.

Speed itself is measured by bench/run.py; these tests pin down the reasons it is fast, which
can fail deterministically: the grader of a repeated `kit check` loads its references instead
of importing sympy or torch._dynamo to compute them, and the child lets a student's optimizer
skip torch._dynamo.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

KIT = str(Path(sys.executable).with_name("kit"))
LAZY = {"sympy", "torch._dynamo"}


def kit_check(*args: str, cache_home: Path) -> tuple[dict, set[str]]:
    """`kit check ... --json`'s document (without timings), and the modules the grader imported."""
    env = {**os.environ, "XDG_CACHE_HOME": str(cache_home), "PYTHONPROFILEIMPORTTIME": "1"}
    run = subprocess.run([KIT, "check", *args, "--json", "--course", str(ROOT)], capture_output=True, text=True,
                         env=env)
    assert run.returncode in (0, 1), run.stderr[-3000:]
    imported = {line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    report = json.loads(run.stdout)
    for check in report["checks"]:
        del check["duration"]
    return report, imported


@pytest.mark.parametrize("name", [f"hw{i}" for i in range(1, 13)])
def test_second_check_loads_references_instead_of_importing(name, tmp_path):
    solution = str(ROOT / "solutions" / name)
    first, _ = kit_check(name, "--path", solution, cache_home=tmp_path)
    assert first["score"] == first["max_score"] > 0
    assert len(list((tmp_path / "kit" / "references").glob(f"{name}-*.pt"))) == 1
    second, imported = kit_check(name, "--path", solution, cache_home=tmp_path)
    assert second == first
    assert not imported & LAZY


def test_hidden_checks_are_never_stored(tmp_path):
    report, _ = kit_check("hw1", "--path", str(ROOT / "solutions" / "hw1"), "--hidden", cache_home=tmp_path)
    assert any(check["hidden"] for check in report["checks"])
    assert not (tmp_path / "kit" / "references").exists()


STUDENT_OPTIMIZER = """
import sys
sys.path[:0] = [{grader!r}, {solution!r}]
from child.startup import defer_dynamo_import
defer_dynamo_import()
import torch
from adam import AdamOptimizer

p = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
opt = AdamOptimizer([p], lr=0.1, amsgrad=True)
sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1)
for _ in range(3):
    opt.zero_grad()
    opt.step(lambda: (p * p).sum().backward())
    sched.step()
opt.load_state_dict(opt.state_dict())
assert "torch._dynamo" not in sys.modules, "creating or using the optimizer imported torch._dynamo"

import torch._dynamo  # from now on torch's own disabled functions are used, as without kit
opt.add_param_group({{"params": [torch.nn.Parameter(torch.zeros(1))]}})
fn = torch.optim.Optimizer.add_param_group.__wrapped__
assert getattr(fn.__dynamo_disable, "_torchdynamo_disable", False), fn.__dynamo_disable
print("ok")
"""


def test_student_optimizer_skips_dynamo_until_something_imports_it():
    script = STUDENT_OPTIMIZER.format(grader=str(ROOT / "grader"), solution=str(ROOT / "solutions" / "hw4"))
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stderr[-3000:]
