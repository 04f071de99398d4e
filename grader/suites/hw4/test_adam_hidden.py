"""hw4 hidden checks: more of torch.optim.Adam's trajectory (other betas, lr=0, longer runs, odd
shapes, eps with bias correction, every option at once)."""
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from kit.grader.suite import assert_close, fail, fetch


def _load(name, filename):
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(filename))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


ref = _load("kit_hw4_adam_ref", "adam_ref.py")
pytestmark = [pytest.mark.hidden, pytest.mark.component("AdamOptimizer")]


def run_student(student, child, inits, source, steps, groups=None, **hp):
    ps = [child.param(p) for p in inits]
    opt = student.AdamOptimizer(ps if groups is None else groups(ps), **hp)
    snaps = []
    for k in range(steps):
        if isinstance(source, ref.Quadratic):
            child.suite.quadratic_grads(ps, source.targets, source.scales)
        else:
            child.suite.set_grads(ps, source[k])
        opt.step()
        snaps.append(child.suite.snapshot(ps))
    return snaps


def far_quadratic(shapes, seed):
    """A quadratic whose minimum is 3 to 5 away from the start, so gradients stay large."""
    inits = ref.randn(shapes, seed=seed)
    directions = ref.randn(shapes, seed=seed + 1)
    targets = [p + torch.sign(d) * (3 + 2 * d.abs().clamp(max=1)) for p, d in zip(inits, directions)]
    return inits, ref.Quadratic(targets, [0.5 + 0.25 * i for i in range(len(shapes))])


def test_hidden_other_betas(student, child):
    """betas (0.5, 0.9) and (0.95, 0.9999) match torch.optim.Adam"""
    shapes = [(6,), (2, 3)]
    inits = ref.randn(shapes, seed=101)
    grads = ref.bounded(shapes, 10, seed=102)
    for betas in ((0.5, 0.9), (0.95, 0.9999)):
        hp = dict(lr=0.03, betas=betas)
        snaps = run_student(student, child, inits, grads, 10, **hp)
        want, _ = ref.torch_adam(inits, grads, 10, **hp)
        got = fetch(*snaps)
        for k in range(10):
            assert_close(got[k], want[k], name=f"betas={betas}, after step {k + 1}: parameters")


def test_hidden_lr_zero(student, child):
    """lr=0 leaves the parameters exactly where they were (weight decay and amsgrad on)"""
    shapes = [(4,), (3, 2)]
    inits = ref.randn(shapes, seed=103)
    grads = ref.bounded(shapes, 5, seed=104)
    snaps = run_student(student, child, inits, grads, 5, lr=0.0, weight_decay=0.1, amsgrad=True)
    want, _ = ref.torch_adam(inits, grads, 5, lr=0.0, weight_decay=0.1, amsgrad=True)
    got = fetch(snaps[4])
    assert_close(got, want[4], name="parameters after 5 steps with lr=0", rtol=0, atol=0)


def test_hidden_many_steps(student, child):
    """300 steps with lr=1e-3 on a quadratic stay on torch.optim.Adam's trajectory"""
    shapes = [(5,), (3, 3)]
    inits, source = far_quadratic(shapes, seed=105)
    snaps = run_student(student, child, inits, source, 300, lr=1e-3)
    want, _ = ref.torch_adam(inits, source, 300, lr=1e-3)
    got = fetch(snaps[99], snaps[299])
    assert_close(got[0], want[99], name="after step 100: parameters")
    assert_close(got[1], want[299], name="after step 300: parameters")


def test_hidden_mixed_shapes(student, child):
    """0-d, 1-element and 4-D parameters in one optimizer"""
    shapes = [(), (1,), (7,), (3, 4, 5), (2, 1, 3, 1)]
    inits = ref.randn(shapes, seed=107)
    grads = ref.bounded(shapes, 5, seed=108)
    snaps = run_student(student, child, inits, grads, 5, lr=0.05)
    want, _ = ref.torch_adam(inits, grads, 5, lr=0.05)
    got = fetch(*snaps)
    for k in range(5):
        assert_close(got[k], want[k], name=f"after step {k + 1}: parameters")


def test_hidden_eps_bias_corrected(student, child):
    """eps=1e-3 with gradients around 1e-3: eps goes after sqrt(v) / sqrt(1 - beta2^t)"""
    shapes = [(6,), (2, 2)]
    inits = ref.randn(shapes, seed=109)
    grads = ref.bounded(shapes, 4, seed=110, scale=1e-3)
    hp = dict(lr=0.05, eps=1e-3)
    snaps = run_student(student, child, inits, grads, 4, **hp)
    want, _ = ref.torch_adam(inits, grads, 4, **hp)
    got = fetch(*snaps)
    for k in range(4):
        assert_close(got[k], want[k], name=f"after step {k + 1}: parameters", mistakes={
            "eps inside the square root": ref.hand_adam(inits, grads, 4, mistake="eps_in_sqrt", **hp)[k],
            "eps added before dividing by sqrt(1 - beta2^t)": ref.hand_adam(inits, grads, 4, mistake="eps_hat",
                                                                             **hp)[k]})


def test_hidden_all_options(student, child):
    """two groups with their own betas, weight decay and amsgrad, 20 steps, against torch.optim.Adam"""
    shapes = [(4,), (3, 2), (5,)]
    inits, source = far_quadratic(shapes, seed=111)

    def groups(ps):
        return [{"params": [ps[0]], "betas": (0.8, 0.95), "weight_decay": 0.02},
                {"params": [ps[1], ps[2]], "lr": 0.02, "amsgrad": True}]

    hp = dict(lr=0.05, weight_decay=0.01)
    snaps = run_student(student, child, inits, source, 20, groups=groups, **hp)
    want, _ = ref.torch_adam(inits, source, 20, groups=groups, **hp)
    got = fetch(snaps[9], snaps[19])
    if got[1] is None:
        fail("no parameters came back")
    assert_close(got[0], want[9], name="after step 10: parameters")
    assert_close(got[1], want[19], name="after step 20: parameters")
