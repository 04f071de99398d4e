"""hw4 hidden checks: more of torch.optim.Adam's trajectory (other betas, lr=0, longer runs, odd
shapes, eps with bias correction, every option at once)."""

import pytest
import torch

from kit.grader.suite import assert_close, fail, fetch, reference, sibling

ref = sibling(__file__, "adam_ref.py")
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


def two_groups(ps):
    """test_hidden_all_options' param groups: their own betas, weight decay, lr and amsgrad."""
    return [{"params": [ps[0]], "betas": (0.8, 0.95), "weight_decay": 0.02},
            {"params": [ps[1], ps[2]], "lr": 0.02, "amsgrad": True}]


@reference
def on_torch(shapes: tuple, init_seed: int, steps: int, grad_seed: int | None = None, scale: float = 1.0,
             groups: bool = False, **hp) -> dict:
    """Inputs drawn from the seeds, and torch.optim.Adam's parameters after each step: gradients from
    ref.bounded(shapes, steps, grad_seed, scale=scale), or from far_quadratic(shapes, init_seed) when
    grad_seed is None; `groups` splits the parameters as `two_groups` does."""
    if grad_seed is None:
        inits, source = far_quadratic(shapes, init_seed)
        data = {"inits": inits, "targets": source.targets, "scales": source.scales}
    else:
        inits, source = ref.randn(shapes, seed=init_seed), ref.bounded(shapes, steps, seed=grad_seed, scale=scale)
        data = {"inits": inits, "grads": source}
    return {**data, "want": ref.torch_adam(inits, source, steps, groups=two_groups if groups else None, **hp)[0]}


def source_of(case: dict):
    """The gradient source of an `on_torch` case, for the student's optimizer."""
    return case["grads"] if "grads" in case else ref.Quadratic(case["targets"], case["scales"])


def test_hidden_other_betas(student, child):
    """betas (0.5, 0.9) and (0.95, 0.9999) match torch.optim.Adam"""
    shapes = ((6,), (2, 3))
    for betas in ((0.5, 0.9), (0.95, 0.9999)):
        hp = dict(lr=0.03, betas=betas)
        case = on_torch(shapes, 101, 10, grad_seed=102, **hp)
        snaps = run_student(student, child, case["inits"], case["grads"], 10, **hp)
        want = case["want"]
        got = fetch(*snaps)
        for k in range(10):
            assert_close(got[k], want[k], name=f"betas={betas}, after step {k + 1}: parameters")


def test_hidden_lr_zero(student, child):
    """lr=0 leaves the parameters exactly where they were (weight decay on)"""
    hp = dict(lr=0.0, weight_decay=0.1)
    case = on_torch(((4,), (3, 2)), 103, 5, grad_seed=104, **hp)
    snaps = run_student(student, child, case["inits"], case["grads"], 5, **hp)
    got = fetch(snaps[4])
    assert_close(got, case["want"][4], name="parameters after 5 steps with lr=0", rtol=0, atol=0)


def test_hidden_many_steps(student, child):
    """300 steps with lr=1e-3 on a quadratic stay on torch.optim.Adam's trajectory"""
    case = on_torch(((5,), (3, 3)), 105, 300, lr=1e-3)
    snaps = run_student(student, child, case["inits"], source_of(case), 300, lr=1e-3)
    want = case["want"]
    got = fetch(snaps[99], snaps[299])
    assert_close(got[0], want[99], name="after step 100: parameters")
    assert_close(got[1], want[299], name="after step 300: parameters")


def test_hidden_mixed_shapes(student, child):
    """0-d, 1-element and 4-D parameters in one optimizer"""
    case = on_torch(((), (1,), (7,), (3, 4, 5), (2, 1, 3, 1)), 107, 5, grad_seed=108, lr=0.05)
    snaps = run_student(student, child, case["inits"], case["grads"], 5, lr=0.05)
    want = case["want"]
    got = fetch(*snaps)
    for k in range(5):
        assert_close(got[k], want[k], name=f"after step {k + 1}: parameters")


@reference
def eps_mistakes() -> dict:
    """test_hidden_eps_bias_corrected's inputs, torch.optim.Adam's parameters after each step, and two mistakes'."""
    shapes, hp = ((6,), (2, 2)), dict(lr=0.05, eps=1e-3)
    case = on_torch(shapes, 109, 4, grad_seed=110, scale=1e-3, **hp)
    inits, grads = case["inits"], case["grads"]
    return {**case, "hp": hp, "eps_in_sqrt": ref.hand_adam(inits, grads, 4, mistake="eps_in_sqrt", **hp),
            "eps_hat": ref.hand_adam(inits, grads, 4, mistake="eps_hat", **hp)}


def test_hidden_eps_bias_corrected(student, child):
    """eps=1e-3 with gradients around 1e-3: eps goes after sqrt(v) / sqrt(1 - beta2^t)"""
    case = eps_mistakes()
    snaps = run_student(student, child, case["inits"], case["grads"], 4, **case["hp"])
    got = fetch(*snaps)
    for k in range(4):
        assert_close(got[k], case["want"][k], name=f"after step {k + 1}: parameters", mistakes={
            "eps inside the square root": case["eps_in_sqrt"][k],
            "eps added before dividing by sqrt(1 - beta2^t)": case["eps_hat"][k]})


def test_hidden_all_options(student, child):
    """two groups with their own betas, weight decay and amsgrad, 20 steps, against torch.optim.Adam"""
    hp = dict(lr=0.05, weight_decay=0.01)
    case = on_torch(((4,), (3, 2), (5,)), 111, 20, groups=True, **hp)
    snaps = run_student(student, child, case["inits"], source_of(case), 20, groups=two_groups, **hp)
    want = case["want"]
    got = fetch(snaps[9], snaps[19])
    if got[1] is None:
        fail("no parameters came back")
    assert_close(got[0], want[9], name="after step 10: parameters")
    assert_close(got[1], want[19], name="after step 20: parameters")
