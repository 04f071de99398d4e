"""hw4 public checks: AdamOptimizer against torch.optim.Adam(foreach=False), in float64.

Two kinds of checks. Trajectory checks compare parameters with torch.optim.Adam step by
step: they are about the update itself (moments, bias correction, eps, AMSGrad). Feature
checks (weight decay, param groups, None gradients, state_dict, schedulers, closures)
compare the student's optimizer with *itself* run another way (e.g. weight_decay=0.1 against
weight_decay=0 on grad + 0.1 * param), so a mistake in the update costs the trajectory checks
and not every feature on top of it. Each feature check is anchored too (`anchor`): the run it
compares with must follow torch.optim.Adam, or show only an update mistake that the trajectory
checks grade and name (no bias correction, off by one, eps misplaced, decoupled decay), so an
update that is simply wrong earns no feature point. Each check keeps the other features out
of its data (AMSGrad only in the AMSGrad checks). Gradients stay away from zero (|g| >= 0.5)
except where eps is the point, so eps=1e-8 cannot matter elsewhere.
"""

import pytest
import torch

from kit.grader.suite import CheckFailed, OnDevice, assert_close, fail, fetch, reference, sibling

ref = sibling(__file__, "adam_ref.py")
F64 = torch.float64
pytestmark = pytest.mark.component("AdamOptimizer")


# --- driving the student's optimizer in the child ----------------------------------------------

def student_adam(student, child, inits, source, steps, groups=None, **hp):
    """(params, optimizer, snapshot after each step) for the student's optimizer fed by `source`."""
    ps = [child.param(p) for p in inits]
    opt = student.AdamOptimizer(ps if groups is None else groups(ps), **hp)
    snaps = [drive(child, opt, ps, source, k) for k in range(steps)]
    return ps, opt, snaps


def drive(child, opt, ps, source, k):
    """One training step: set the gradients, opt.step(); the parameters afterwards (a proxy)."""
    if isinstance(source, ref.Quadratic):
        child.suite.quadratic_grads(ps, source.targets, source.scales)
    else:
        child.suite.set_grads(ps, source[k])
    opt.step()
    return child.suite.snapshot(ps)


def compare_steps(got, want, mistakes=None, steps=None, what="parameters"):
    """Parameters after each step (or only `steps`, 0-based) against the reference trajectory."""
    for k in steps if steps is not None else range(len(want)):
        assert_close(got[k], want[k], name=f"after step {k + 1}: {what}",
                     mistakes={cause: traj[k] for cause, traj in (mistakes or {}).items()})


def moved(before, after):
    """Fail unless step() changed the parameters at all (guards the checks that compare with itself)."""
    if all(torch.equal(a, b) for a, b in zip(before, after)):
        fail("step() left every parameter unchanged: it must update the parameters in place "
             "(p.add_/p.addcdiv_ on the parameter itself, under torch.no_grad())")


# update mistakes graded (and named) by the trajectory checks and weight_decay: a feature check accepts them
GRADED_ELSEWHERE = ("no_bias_correction", "off_by_one", "eps_in_sqrt", "eps_hat", "eps_ignored")
DECAY_MISTAKES = ("adamw", "decay_after_step")


def anchor(got, inits, source, steps, what, **hp):
    """Fail unless `got`, the student's parameters after `steps` steps from `inits`, are torch.optim.Adam's
    (or show only an update mistake graded elsewhere): a feature judged by comparing the optimizer with
    itself means something only on an update that is Adam's."""
    mistakes = GRADED_ELSEWHERE + (DECAY_MISTAKES if hp.get("weight_decay") else ())
    # Adam by hand (what torch.optim.Adam computes): torch.optim itself would import torch._dynamo here
    candidates = [ref.hand_adam(inits, source, steps, **hp)[-1]]
    candidates += [ref.hand_adam(inits, source, steps, mistake=m, **hp)[-1] for m in mistakes]
    if any(close(got, c) for c in candidates):
        return
    try:
        assert_close(got, candidates[0], name=f"{what} (against torch.optim.Adam)")
    except CheckFailed as exc:
        fail(f"{exc}\n  this check compares your optimizer with itself, which means something only when its "
             f"update is Adam's: first_steps and long_run grade the update")


def close(got, want) -> bool:
    """Parameters (a list of tensors) equal to `want` within float64's tolerance."""
    return (isinstance(got, list) and len(got) == len(want)
            and all(isinstance(a, torch.Tensor) and a.shape == b.shape and torch.allclose(a, b, rtol=1e-7, atol=1e-7)
                    for a, b in zip(got, want)))


def state_of(opt_state_dict, index, key, what):
    """opt.state_dict()['state'][index][key], or a failure that says what is missing."""
    state = opt_state_dict.get("state") if isinstance(opt_state_dict, dict) else None
    if not isinstance(state, dict) or index not in state:
        fail(f"{what}: state_dict()['state'] has no entry for parameter {index}: keep per-parameter state "
             f"in self.state[p] (it is what state_dict() saves)")
    if key not in state[index]:
        fail(f"{what}: the state of parameter {index} has no {key!r} (it has {sorted(state[index])}); "
             f"use torch.optim.Adam's names: step, exp_avg, exp_avg_sq, max_exp_avg_sq")
    return state[index][key]


def first_update_at(p, g, t, lr, betas=(0.9, 0.999), eps=1e-8):
    """A parameter's first Adam update (m = (1 - b1) g, v = (1 - b2) g^2) bias-corrected as if it were step t."""
    b1, b2 = betas
    m_hat, v_hat = (1 - b1) * g / (1 - b1**t), (1 - b2) * g * g / (1 - b2**t)
    return p - lr * m_hat / (v_hat.sqrt() + eps)


def as_number(value):
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return value


SHAPES = [(4, 3), (5,)]


# --- the optimizer itself -------------------------------------------------------------------------

def test_is_optimizer(student, child):
    """AdamOptimizer is a torch.optim.Optimizer (param groups, state, schedulers come from it)"""
    opt = student.AdamOptimizer([child.param(torch.zeros(3, dtype=F64))], lr=0.01)
    if not fetch(child.isinstance(opt, "torch.optim.Optimizer")):
        fail("AdamOptimizer is not a torch.optim.Optimizer: subclass torch.optim.Optimizer and call "
             "super().__init__(params, defaults)")


@reference
def first_steps() -> dict:
    """test_first_steps' inputs, torch.optim.Adam's parameters after each step, and two mistakes' parameters."""
    inits, grads, hp = ref.randn(SHAPES, seed=1), ref.bounded(SHAPES, 3, seed=2), dict(lr=0.1)
    return {"inits": inits, "grads": grads, "hp": hp, "want": ref.torch_adam(inits, grads, 3, **hp)[0],
            "no_bias_correction": ref.hand_adam(inits, grads, 3, mistake="no_bias_correction", **hp),
            "off_by_one": ref.hand_adam(inits, grads, 3, mistake="off_by_one", **hp)}


@pytest.mark.points(2)
def test_first_steps(student, child):
    """parameters after each of the first 3 steps match torch.optim.Adam"""
    case = first_steps()
    _, _, snaps = student_adam(student, child, case["inits"], case["grads"], 3, **case["hp"])
    compare_steps(fetch(*snaps), case["want"], mistakes={
        "no bias correction (m and v must be divided by 1 - beta1^t and 1 - beta2^t)": case["no_bias_correction"],
        "off by one in the step count (the first step must use t = 1 in the bias corrections)": case["off_by_one"],
    })


@reference
def long_run() -> dict:
    """test_long_run's inputs (a quadratic's targets), and the parameters after each of 120 steps of
    torch.optim.Adam and of three mistakes."""
    inits = ref.randn(SHAPES, seed=3)
    # targets 3 to 5 away: the parameters never get close, so gradients stay large
    targets = [p + torch.sign(t) * (3 + 2 * t.abs().clamp(max=1)) for p, t in zip(inits, ref.randn(SHAPES, seed=4))]
    source = ref.Quadratic(targets, [0.5, 1.5])
    hp = dict(lr=0.01, betas=(0.85, 0.99))
    return {"inits": inits, "targets": targets, "hp": hp, "want": ref.torch_adam(inits, source, 120, **hp)[0],
            "no_bias_correction": ref.hand_adam(inits, source, 120, mistake="no_bias_correction", **hp),
            "off_by_one": ref.hand_adam(inits, source, 120, mistake="off_by_one", **hp),
            "betas_ignored": ref.hand_adam(inits, source, 120, lr=0.01)}


@pytest.mark.points(2)
def test_long_run(student, child):
    """120 steps on a quadratic loss (betas=(0.85, 0.99)) stay on torch.optim.Adam's trajectory"""
    case = long_run()
    source = ref.Quadratic(case["targets"], [0.5, 1.5])
    _, _, snaps = student_adam(student, child, case["inits"], source, 120, **case["hp"])
    got = fetch(snaps[59], snaps[119])
    mistakes = {
        "no bias correction": case["no_bias_correction"],
        "off by one in the step count": case["off_by_one"],
        "betas ignored (the defaults 0.9, 0.999 were used instead of the betas given)": case["betas_ignored"],
    }
    compare_steps({59: got[0], 119: got[1]}, case["want"], mistakes, steps=[59, 119])


def test_step_count(student, child):
    """each parameter counts its own updates in state['step'] (None grads skipped) and bias-corrects with it"""
    shapes = [(3,), (2, 2), (4,)]
    inits = ref.randn(shapes, seed=5)
    grads = ref.bounded(shapes, 4, seed=6)
    for k in (0, 1):
        grads[k][2] = None  # the third parameter gets gradients only from step 3 on
    _, opt, snaps = student_adam(student, child, inits, grads, 4, lr=0.01)
    # the late parameter's first update must be a first step (t = 1), like in a fresh optimizer;
    # checked before the state_dict, so a shared counter is named even where state_dict() fails
    _, _, alone = student_adam(student, child, inits[2:], [grads[2][2:]], 1, lr=0.01)
    late, first = fetch(snaps[2], alone[0])
    anchor(first, inits[2:], [grads[2][2:]], 1, "a fresh optimizer's first step", lr=0.01)
    assert_close(late[2], first[0], name="a parameter's first update at the optimizer's step 3",
                 mistakes={"one step counter shared by all parameters: the bias correction must use each "
                           "parameter's own count of updates, state[p]['step']":
                           first_update_at(inits[2], grads[2][2], t=3, lr=0.01)})
    sd = fetch(opt.state_dict(), finite=False)
    for index, want in ((0, 4), (1, 4), (2, 2)):
        got = as_number(state_of(sd, index, "step", "step count"))
        if not isinstance(got, (int, float)) or got != want:
            hint = " (off by one: 'step' must be 1 after the first update)" if got == want + 1 else ""
            fail(f"parameter {index} had {want} updates but its state 'step' is {got!r}{hint}")


@reference
def moments() -> dict:
    """test_moments' inputs, torch.optim.Adam's state after 3 steps, and the moments with swapped betas."""
    inits, grads = ref.randn(SHAPES, seed=7), ref.bounded(SHAPES, 3, seed=8)
    m_sw, v_sw, _ = ref.moments_by_hand(grads, 3, inits, mistake="swapped_betas")
    return {"inits": inits, "grads": grads, "state": ref.torch_adam(inits, grads, 3, lr=0.05)[1].state_dict()["state"],
            "swapped": (m_sw, v_sw)}


def test_moments(student, child):
    """state 'exp_avg' and 'exp_avg_sq' (the raw moments m and v) match torch.optim.Adam"""
    case = moments()
    inits, want, (m_sw, v_sw) = case["inits"], case["state"], case["swapped"]
    _, opt, _ = student_adam(student, child, inits, case["grads"], 3, lr=0.05)
    sd = fetch(opt.state_dict())
    for i in range(len(inits)):
        for key, swapped in (("exp_avg", m_sw), ("exp_avg_sq", v_sw)):
            assert_close(state_of(sd, i, key, "moments"), want[i][key], name=f"state[{i}][{key!r}]",
                         mistakes={"beta and 1 - beta swapped in the moving average": swapped[i]})


# --- eps, weight decay, AMSGrad --------------------------------------------------------------------

@reference
def eps_outside_sqrt() -> dict:
    """test_eps_outside_sqrt's inputs, torch.optim.Adam's parameters after each step, and two mistakes'."""
    inits, grads = ref.randn(SHAPES, seed=9), ref.bounded(SHAPES, 3, seed=10, scale=1e-3)
    # betas=(0, 0) make m = g and v = g^2 with no bias correction at all: only eps's place matters
    hp = dict(lr=0.1, betas=(0.0, 0.0), eps=1e-2)
    return {"inits": inits, "grads": grads, "hp": hp, "want": ref.torch_adam(inits, grads, 3, **hp)[0],
            "eps_in_sqrt": ref.hand_adam(inits, grads, 3, mistake="eps_in_sqrt", **hp),
            "eps_ignored": ref.hand_adam(inits, grads, 3, mistake="eps_ignored", **hp)}


def test_eps_outside_sqrt(student, child):
    """eps is added after the square root: sqrt(v_hat) + eps (eps=1e-2, gradients around 1e-3)"""
    case = eps_outside_sqrt()
    _, _, snaps = student_adam(student, child, case["inits"], case["grads"], 3, **case["hp"])
    compare_steps(fetch(*snaps), case["want"], mistakes={
        "eps inside the square root: use sqrt(v_hat) + eps, not sqrt(v_hat + eps)": case["eps_in_sqrt"],
        "eps is not used": case["eps_ignored"],
    })


@pytest.mark.points(2)
def test_weight_decay(student, child):
    """weight_decay is L2: same as weight_decay=0 with grad + weight_decay * param (not AdamW)"""
    inits = ref.randn(SHAPES, seed=11)
    grads = ref.bounded(SHAPES, 5, seed=12)
    lr, wd = 0.05, 0.1
    got_ps, _, snaps = student_adam(student, child, inits, grads, 5, lr=lr, weight_decay=wd)
    # the same optimizer without weight decay, fed grad + wd * param: what L2 decay means
    l2_ps = [child.param(p) for p in inits]
    l2 = student.AdamOptimizer(l2_ps, lr=lr)
    # ... and AdamW's decoupled decay (param *= 1 - lr * wd, then the plain step), to name that mistake
    dec_ps = [child.param(p) for p in inits]
    dec = student.AdamOptimizer(dec_ps, lr=lr)
    # ... and decay applied to the parameters after the step
    after_ps = [child.param(p) for p in inits]
    after = student.AdamOptimizer(after_ps, lr=lr)
    for k in range(5):
        child.suite.l2_grads(l2_ps, grads[k], wd)
        l2.step()
        child.suite.scale_params(dec_ps, 1 - lr * wd)
        child.suite.set_grads(dec_ps, grads[k])
        dec.step()
        child.suite.set_grads(after_ps, grads[k])
        after.step()
        child.suite.scale_params(after_ps, 1 - lr * wd)
    got, want, decoupled, decayed_after = fetch(snaps[4], child.suite.snapshot(l2_ps), child.suite.snapshot(dec_ps),
                                                child.suite.snapshot(after_ps))
    moved(inits, got)
    anchor(want, inits, grads, 5, "parameters after 5 steps fed grad + 0.1 * param", lr=lr, weight_decay=wd)
    assert_close(got, want, name="parameters after 5 steps with weight_decay=0.1", mistakes={
        "decoupled (AdamW-style) weight decay: torch.optim.Adam adds weight_decay * param to the gradient "
        "before the moments": decoupled,
        "weight decay applied to the parameters after the step: torch.optim.Adam adds weight_decay * param "
        "to the gradient before the moments": decayed_after,
    })


def test_grad_not_modified(student, child):
    """step() leaves p.grad as it was (weight decay must not be added to p.grad in place)"""
    inits = ref.randn(SHAPES, seed=13)
    grads = ref.bounded(SHAPES, 2, seed=14)
    ps, _, snaps = student_adam(student, child, inits, grads, 2, lr=0.05, weight_decay=0.1)
    got, before, after = fetch(child.list([p.grad for p in ps]), snaps[0], snaps[1], finite=False)
    anchor(after, inits, grads, 2, "parameters after 2 steps", lr=0.05, weight_decay=0.1)
    for i, (g, want) in enumerate(zip(got, grads[1])):
        if g is None:
            fail(f"parameter {i}: step() set p.grad to None")
        assert_close(g, want, name=f"param {i}'s .grad after step()", rtol=0, atol=0,
                     mistakes={"weight decay added to p.grad in place (use grad = grad.add(p, alpha=wd))":
                               want + 0.1 * before[i]})


AMSGRAD_BETAS = (0.9, 0.9)


@reference
def amsgrad_max() -> dict:
    """test_amsgrad_max's inputs, and v, its running maximum and the maximum of v_hat after 6 steps, by hand."""
    inits = ref.randn(SHAPES, seed=15)
    # large gradients, then small ones: v rises then falls, so its maximum lags behind it
    grads = ref.bounded(SHAPES, 2, seed=16, scale=2.0) + ref.bounded(SHAPES, 4, seed=17, scale=0.2)
    _, v, vmax = ref.moments_by_hand(grads, 6, inits, AMSGRAD_BETAS)
    _, _, vmax_hat = ref.moments_by_hand(grads, 6, inits, AMSGRAD_BETAS, mistake="corrected_max")
    return {"inits": inits, "grads": grads, "v": v, "vmax": vmax, "vmax_hat": vmax_hat}


def test_amsgrad_max(student, child):
    """amsgrad: state 'max_exp_avg_sq' is the running maximum of the raw exp_avg_sq"""
    case = amsgrad_max()
    inits, v, vmax, vmax_hat = case["inits"], case["v"], case["vmax"], case["vmax_hat"]
    _, opt, _ = student_adam(student, child, inits, case["grads"], 6, lr=0.05, betas=AMSGRAD_BETAS, amsgrad=True)
    sd = fetch(opt.state_dict())
    for i in range(len(inits)):
        assert_close(state_of(sd, i, "max_exp_avg_sq", "amsgrad=True"), vmax[i], name=f"state[{i}]['max_exp_avg_sq']",
                     mistakes={"the maximum is taken over the bias-corrected v_hat; take it over the raw "
                               "exp_avg_sq": vmax_hat[i],
                               "max_exp_avg_sq is just the current exp_avg_sq (no running maximum)": v[i],
                               "max_exp_avg_sq is never updated": torch.zeros_like(v[i])})


@reference
def amsgrad_step() -> dict:
    """test_amsgrad_step's inputs, torch.optim.Adam's parameters after each step, and four mistakes'."""
    inits = ref.randn(SHAPES, seed=18)
    grads = ref.bounded(SHAPES, 3, seed=19, scale=2.0) + ref.bounded(SHAPES, 5, seed=20, scale=0.1)
    hp = dict(lr=0.05, betas=AMSGRAD_BETAS, amsgrad=True)
    mistakes = ("amsgrad_ignored", "amsgrad_corrected_max", "amsgrad_uncorrected", "no_bias_correction")
    return {"inits": inits, "grads": grads, "hp": hp, "want": ref.torch_adam(inits, grads, 8, **hp)[0],
            **{m: ref.hand_adam(inits, grads, 8, mistake=m, **hp) for m in mistakes}}


def test_amsgrad_step(student, child):
    """amsgrad: the update divides by the bias-corrected running maximum, as torch.optim.Adam"""
    case = amsgrad_step()
    _, _, snaps = student_adam(student, child, case["inits"], case["grads"], 8, **case["hp"])
    compare_steps(fetch(*snaps), case["want"], mistakes={
        "amsgrad ignored (the update must use max_exp_avg_sq instead of exp_avg_sq)": case["amsgrad_ignored"],
        "the maximum is taken over the bias-corrected v_hat instead of the raw exp_avg_sq":
            case["amsgrad_corrected_max"],
        "the maximum is not divided by 1 - beta2^t (bias correction missing in the amsgrad branch)":
            case["amsgrad_uncorrected"],
        "no bias correction": case["no_bias_correction"],
    })


# --- the Optimizer interface ------------------------------------------------------------------------

@pytest.mark.points(2)
def test_param_groups(student, child):
    """several param groups, each with its own lr/betas/eps/weight_decay; defaults fill the rest"""
    inits = ref.randn([(3,), (2, 2), (4,)], seed=21)
    grads = ref.bounded([(3,), (2, 2), (4,)], 4, seed=22)
    defaults = dict(lr=0.02, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)  # amsgrad: the AMSGrad checks
    specs = [dict(lr=0.1, betas=(0.8, 0.9)), dict(eps=1e-6, weight_decay=0.05)]

    def groups(ps):
        return [{"params": [ps[0]], **specs[0]}, {"params": [ps[1], ps[2]], **specs[1]}]

    ps, opt, snaps = student_adam(student, child, inits, grads, 4, groups=groups, lr=0.02)
    # the same updates from one optimizer per group, each built with that group's settings
    alone = [child.param(p) for p in inits]
    one = student.AdamOptimizer([alone[0]], **{**defaults, **specs[0]})
    two = student.AdamOptimizer([alone[1], alone[2]], **{**defaults, **specs[1]})
    # ... and one optimizer ignoring the groups' settings, to name that mistake
    flat = [child.param(p) for p in inits]
    plain = student.AdamOptimizer(flat, lr=0.02)
    for k in range(4):
        child.suite.set_grads(alone, grads[k])
        child.suite.set_grads(flat, grads[k])
        one.step()
        two.step()
        plain.step()
    got_groups, got, want, ignored = fetch(opt.param_groups, snaps[3], child.suite.snapshot(alone),
                                           child.suite.snapshot(flat))
    if not isinstance(got_groups, list) or len(got_groups) != 2:
        fail(f"param_groups should hold the 2 groups given, not {got_groups!r:.80}")
    for i, (group, spec) in enumerate(zip(got_groups, specs)):
        for key, value in {**defaults, **spec}.items():
            have = group.get(key) if isinstance(group, dict) else None
            if (tuple(have) if isinstance(have, (list, tuple)) else have) != value:
                fail(f"param_groups[{i}][{key!r}] is {have!r}, expected {value!r} "
                     f"(a group's own setting, else the constructor's default)")
    moved(inits, got)
    anchor(want[:1], inits[:1], [g[:1] for g in grads], 4, "a group's parameters, alone in an optimizer with its "
           "settings", **{**defaults, **specs[0]})
    anchor(want[1:], inits[1:], [g[1:] for g in grads], 4, "a group's parameters, alone in an optimizer with its "
           "settings", **{**defaults, **specs[1]})
    assert_close(got, want, name="parameters after 4 steps with two param groups",
                 mistakes={"every group was updated with the optimizer's defaults instead of its own "
                           "lr/betas/eps/weight_decay (read them from `group`)": ignored})


def test_none_grad_skipped(student, child):
    """parameters whose grad is None are not updated (even with momentum and weight decay)"""
    shapes = [(3,), (4,), (2, 2)]
    inits = ref.randn(shapes, seed=23)
    grads = ref.bounded(shapes, 4, seed=24)
    for k in range(4):
        grads[k][2] = None  # never has a gradient
    for k in (2, 3):
        grads[k][1] = None  # has momentum from steps 1-2, then no gradient
    _, _, snaps = student_adam(student, child, inits, grads, 4, lr=0.05, weight_decay=0.1)
    after2, after4 = fetch(snaps[1], snaps[3])
    moved(inits[:1], after4[:1])
    anchor(after4[:1], inits[:1], [g[:1] for g in grads], 4, "a parameter that always has a gradient",
           lr=0.05, weight_decay=0.1)
    if not torch.equal(after4[2], inits[2]):
        fail("a parameter whose grad is None was changed: skip parameters with p.grad is None")
    if not torch.equal(after4[1], after2[1]):
        fail("a parameter whose grad became None kept moving (momentum or weight decay): torch.optim.Adam "
             "skips a parameter with p.grad is None entirely")


@pytest.mark.points(2)
def test_state_dict_roundtrip(student, child):
    """state_dict() -> load_state_dict() into a new optimizer continues the same trajectory (weight decay on)"""
    inits = ref.randn(SHAPES, seed=25)
    grads = ref.bounded(SHAPES, 6, seed=26)
    hp = dict(lr=0.05, weight_decay=0.01)
    _, _, snaps = student_adam(student, child, inits, grads, 6, **hp)
    _, first, half = student_adam(student, child, inits, grads, 3, **hp)
    # through the grader: the state_dict must be plain data
    saved, at3 = fetch(first.state_dict(), half[2], finite=False)
    resumed = [child.param(p) for p in at3]
    second = student.AdamOptimizer(resumed, **hp)
    second.load_state_dict(saved)
    fresh = [child.param(p) for p in at3]
    third = student.AdamOptimizer(fresh, **hp)
    for k in range(3, 6):
        child.suite.set_grads(resumed, grads[k])
        second.step()
        child.suite.set_grads(fresh, grads[k])
        third.step()
    want, got, restarted = fetch(snaps[5], child.suite.snapshot(resumed), child.suite.snapshot(fresh))
    moved(inits, want)
    anchor(want, inits, grads, 6, "parameters after 6 steps without saving", **hp)
    assert_close(got, want, name="parameters after 3 steps, save, load, 3 more steps", mistakes={
        "the loaded optimizer starts from scratch: keep step, exp_avg, exp_avg_sq (and max_exp_avg_sq) "
        "in self.state[p], which state_dict() saves and load_state_dict() restores": restarted})


def test_lr_scheduler(student, child):
    """works with torch.optim.lr_scheduler.StepLR: each step uses the group's current lr"""
    inits = ref.randn(SHAPES, seed=27)
    grads = ref.bounded(SHAPES, 6, seed=28)
    lr0 = 0.1
    ps = [child.param(p) for p in inits]
    opt = student.AdamOptimizer(ps, lr=lr0)
    try:
        sched = child.torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        lrs, snaps = [], []
        for k in range(6):
            snaps.append(drive(child, opt, ps, grads, k))
            lrs.append(opt.param_groups[0]["lr"])  # lr used by this step
            sched.step()
        _, _, const = student_adam(student, child, inits, grads, 6, lr=lr0)
        got_lrs, got, same = fetch(child.list(lrs), child.list(snaps), child.list(const))
    except CheckFailed as exc:
        fail(f"{exc}\n  (StepLR needs a torch.optim.Optimizer whose param_groups hold 'lr')")
    want_lrs = [lr0 * 0.5 ** (k // 2) for k in range(6)]
    assert_close([float(x) for x in got_lrs], want_lrs, name="param_groups[0]['lr'] under StepLR")
    anchor(same[5], inits, grads, 6, "parameters after 6 steps at a constant lr", lr=lr0)
    # with gradients fixed in advance, Adam's step is lr times a direction that does not depend on lr,
    # so the scheduled run moves exactly lr_k / lr0 times as far as a constant-lr run at each step
    prev_got, prev_same = inits, inits
    for k in range(6):
        step_got = [a - b for a, b in zip(got[k], prev_got)]
        step_want = [(a - b) * (want_lrs[k] / lr0) for a, b in zip(same[k], prev_same)]
        assert_close(step_got, step_want, name=f"parameter change at step {k + 1} (lr={want_lrs[k]:g})",
                     atol=1e-12, rtol=1e-9, mistakes={
                         "the lr given to the constructor was used throughout: read group['lr'] in step()":
                             [a - b for a, b in zip(same[k], prev_same)]})
        prev_got, prev_same = got[k], same[k]


def test_closure(student, child):
    """step(closure) calls the closure once, with grad enabled, uses its gradients and returns its loss"""
    inits = ref.randn(SHAPES, seed=29)
    targets = ref.randn(SHAPES, seed=30, scale=3.0)
    ps = [child.param(p) for p in inits]
    opt = student.AdamOptimizer(ps, lr=0.1)
    closure = child.suite.quadratic_closure(opt, ps, targets)
    try:
        losses = [opt.step(closure) for _ in range(3)]
        got_losses, seen, calls, got = fetch(child.list(losses), closure.losses, closure.calls,
                                             child.suite.snapshot(ps))
    except CheckFailed as exc:
        fail(f"{exc}\n  (step decorated with @torch.no_grad() must call the closure inside "
             f"`with torch.enable_grad():`)")
    if calls != 3:
        fail(f"3 calls of step(closure) called the closure {calls} times: call it exactly once per step")
    for k, (loss, want) in enumerate(zip(got_losses, seen)):
        if loss is None:
            fail("step(closure) returned None: return the loss the closure returned")
        assert_close(torch.as_tensor(loss, dtype=F64), want, name=f"loss returned by step {k + 1}")
    # the same steps with the quadratic's gradients set by hand
    source = ref.Quadratic(targets, [1.0, 1.0])
    _, _, snaps = student_adam(student, child, inits, source, 3, lr=0.1)
    moved(inits, got)
    anchor(got, inits, source, 3, "parameters after 3 steps with a closure", lr=0.1)
    assert_close(got, fetch(snaps[2]), name="parameters after 3 steps with a closure",
                 mistakes={"the closure's gradients were not used": inits})


# --- on a GPU ----------------------------------------------------------------------------------------

@reference
def cuda_step() -> dict:
    """test_cuda_step's inputs on CUDA, and torch.optim.Adam's parameters after each step there."""
    inits = [p.cuda() for p in ref.randn(SHAPES, seed=31)]
    grads = [[g.cuda() for g in step] for step in ref.bounded(SHAPES, 4, seed=32)]
    hp = dict(lr=0.05, weight_decay=0.01, amsgrad=True)
    return {"inits": inits, "grads": grads, "hp": hp, "want": ref.torch_adam(inits, grads, 4, **hp)[0]}


@pytest.mark.gpu
def test_cuda_step(student, child):
    """CUDA parameters: trajectory matches torch.optim.Adam on CUDA (weight decay, amsgrad)"""
    case = cuda_step()
    _, _, snaps = student_adam(student, child, case["inits"], case["grads"], 4, **case["hp"])
    compare_steps(fetch(*snaps), case["want"])


@pytest.mark.gpu
def test_cuda_state_on_device(student, child):
    """CUDA parameters: exp_avg, exp_avg_sq and max_exp_avg_sq live on the parameters' device"""
    inits = [p.cuda() for p in ref.randn(SHAPES, seed=33)]
    grads = [[g.cuda() for g in step] for step in ref.bounded(SHAPES, 2, seed=34)]
    _, opt, _ = student_adam(student, child, inits, grads, 2, lr=0.05, amsgrad=True)
    sd = fetch(opt.state_dict(), finite=False)
    for i in range(len(inits)):
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            value = state_of(sd, i, key, "state on CUDA")
            if not isinstance(value, torch.Tensor) or value.device.type != "cuda":
                where = value.device if isinstance(value, torch.Tensor) else type(value).__name__
                fail(f"state[{i}][{key!r}] is on {where}, not with its CUDA parameter: "
                     f"create it with torch.zeros_like(p)")


# --- on the GPU, or an emulated one ------------------------------------------------------------------

def test_device_placement(student, child):
    """on the GPU (emulated without one): parameters and every state tensor stay on the parameters' device"""
    dev = OnDevice(child)
    for hp in ({"lr": 0.1}, {"lr": 0.1, "weight_decay": 0.01, "amsgrad": True}):
        ps = [child.param(dev.randn(*shape)) for shape in SHAPES]
        opt = student.AdamOptimizer(ps, **hp)
        if "amsgrad" in hp and not dev.accepts(opt):
            continue  # an Adam without AMSGrad loses the AMSGrad checks only
        for _ in range(2):
            child.suite.set_grads(ps, [dev.randn(*shape) for shape in SHAPES])
            opt.step()
        setting = ", ".join(f"{k}={v}" for k, v in hp.items())
        dev.expect(f"two steps ({setting})", params=ps, optimizer=opt)
