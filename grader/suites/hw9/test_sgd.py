"""hw9 public checks: SGDMomentum against torch.optim.SGD(foreach=False), in float64.

Plain SGD (p -= lr * grad) is the core: checks that need it compare with torch.optim.SGD
directly. Every feature on top of it gets its own check, and keeps the others out of its
data:

- momentum, maximize, the first steps of dampening and Nesterov, and weight decay without
  momentum are compared with torch.optim.SGD step by step;
- what dampening and Nesterov do after the first step is compared with the student's own
  plain momentum (dampening 0.3 = momentum fed (1 - 0.3) * grad; Nesterov's update is
  grad + momentum * the velocity the plain run moved by), and weight decay with momentum
  with the student's own optimizer fed grad + weight_decay * param; so a mistake in momentum
  itself costs the momentum check, not every feature built on it;
- each of those relative comparisons is anchored to torch.optim.SGD by the part that does
  not depend on another feature (the first step, the run without momentum), and a check
  fails when step() moved nothing.

Gradients stay in [0.5, 1.5] in magnitude, with random signs.
"""

import pytest
import torch

from kit.grader.suite import CheckFailed, OnDevice, assert_close, fail, fetch, reference, sibling, student_raises

ref = sibling(__file__, "sgd_ref.py")
F64 = torch.float64
pytestmark = pytest.mark.component("SGDMomentum")

SHAPES = [(4, 3), (5,)]


# --- driving the student's optimizer in the child ----------------------------------------------

def student_sgd(student, child, inits, source, steps, groups=None, **hp):
    """(params, optimizer, snapshot after each step) for the student's optimizer fed by `source`."""
    ps = [child.param(p) for p in inits]
    opt = student.SGDMomentum(ps if groups is None else groups(ps), **hp)
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
             "(p.add_(update, alpha=-lr) on the parameter itself, under torch.no_grad())")


def state_of(opt_state_dict, index, key, what):
    """opt.state_dict()['state'][index][key], or a failure that says what is missing."""
    state = opt_state_dict.get("state") if isinstance(opt_state_dict, dict) else None
    if not isinstance(state, dict) or index not in state:
        fail(f"{what}: state_dict()['state'] has no entry for parameter {index}: keep per-parameter state "
             f"in self.state[p] (it is what state_dict() saves)")
    if key not in state[index]:
        fail(f"{what}: the state of parameter {index} has no {key!r} (it has {sorted(state[index])}); "
             f"use torch.optim.SGD's name: momentum_buffer")
    return state[index][key]


def first_step(inits, grads, lr, factor=1.0):
    """Parameters after one step p -= lr * factor * g (the first step of any momentum variant)."""
    return [p - lr * factor * g for p, g in zip(inits, grads)]


# --- the optimizer itself -------------------------------------------------------------------------

def test_is_optimizer(student, child):
    """SGDMomentum is a torch.optim.Optimizer (param groups, state, schedulers come from it)"""
    opt = student.SGDMomentum([child.param(torch.zeros(3, dtype=F64))], lr=0.01)
    if not fetch(child.isinstance(opt, "torch.optim.Optimizer")):
        fail("SGDMomentum is not a torch.optim.Optimizer: subclass torch.optim.Optimizer and call "
             "super().__init__(params, defaults)")


@reference
def plain(device: str = "cpu") -> dict:
    """test_plain_steps' inputs, torch.optim.SGD's parameters after each step, and two mistakes'."""
    inits, grads = ref.randn(SHAPES, seed=1, device=device), ref.bounded(SHAPES, 3, seed=2, device=device)
    return {"inits": inits, "grads": grads, "want": ref.torch_sgd(inits, grads, 3, lr=0.1)[0],
            "ascent": ref.torch_sgd(inits, grads, 3, lr=0.1, maximize=True)[0],
            "default_lr": ref.torch_sgd(inits, grads, 3, lr=1e-3)[0]}


@pytest.mark.points(2)
def test_plain_steps(student, child):
    """momentum=0: each step is p -= lr * grad, as torch.optim.SGD"""
    case = plain()
    _, _, snaps = student_sgd(student, child, case["inits"], case["grads"], 3, lr=0.1)
    compare_steps(fetch(*snaps), case["want"], mistakes={
        "the parameters moved along the gradient (p += lr * grad): SGD descends, p -= lr * grad": case["ascent"],
        "the lr given was not used (1e-3, the default, was)": case["default_lr"],
    })


@reference
def momentum_case(device: str = "cpu") -> dict:
    """test_momentum's inputs, torch.optim.SGD's parameters after each step, and two mistakes'."""
    inits, grads = ref.randn(SHAPES, seed=3, device=device), ref.bounded(SHAPES, 5, seed=4, device=device)
    hp = dict(lr=0.1, momentum=0.9)
    return {"inits": inits, "grads": grads, "hp": hp, "want": ref.torch_sgd(inits, grads, 5, **hp)[0],
            "ignored": ref.torch_sgd(inits, grads, 5, lr=0.1)[0],
            "ema": ref.hand_sgd(inits, grads, 5, mistake="ema", **hp)}


@pytest.mark.points(2)
def test_momentum(student, child):
    """momentum=0.9: buf = grad at the first step, then buf = 0.9 * buf + grad; p -= lr * buf"""
    case = momentum_case()
    _, _, snaps = student_sgd(student, child, case["inits"], case["grads"], 5, **case["hp"])
    compare_steps(fetch(*snaps), case["want"], mistakes={
        "momentum ignored (plain SGD)": case["ignored"],
        "an Adam-style average (buf = momentum * buf + (1 - momentum) * grad from zero): torch.optim.SGD "
        "starts with buf = grad and adds (1 - dampening) * grad": case["ema"],
    })


DAMPENING = 0.3


@reference
def dampening_case(device: str = "cpu") -> dict:
    """test_dampening's inputs, torch.optim.SGD's parameters after the first step, and the first step
    of a buffer that starts at zero (so the first gradient is dampened too)."""
    inits, grads = ref.randn(SHAPES, seed=5, device=device), ref.bounded(SHAPES, 5, seed=6, device=device)
    hp = dict(lr=0.1, momentum=0.9, dampening=DAMPENING)
    return {"inits": inits, "grads": grads, "hp": hp, "first": ref.torch_sgd(inits, grads, 1, **hp)[0][0],
            "zero_init": ref.hand_sgd(inits, grads, 1, mistake="zero_init", **hp)[0]}


@pytest.mark.points(2)
def test_dampening(student, child):
    """dampening=0.3: the first buffer is the gradient itself, later gradients are added times 1 - 0.3"""
    case = dampening_case()
    inits, grads, d = case["inits"], case["grads"], DAMPENING
    _, _, snaps = student_sgd(student, child, inits, grads, 5, **case["hp"])
    # dampening only scales the gradients added to an existing buffer: the same optimizer without
    # dampening, fed g1, (1 - d) g2, (1 - d) g3, ..., must take the same steps
    def fed(factor):
        return [grads[0]] + [[factor * g for g in step] for step in grads[1:]]
    runs = [student_sgd(student, child, inits, source, 5, lr=0.1, momentum=0.9)[2]
            for source in (fed(1 - d), fed(d), grads)]
    got, want, swapped, ignored = fetch(child.list(snaps), *(child.list(run) for run in runs))
    assert_close(got[0], case["first"], name="after step 1: parameters", mistakes={
        "the first gradient was dampened (buffer started at zero): torch.optim.SGD's first buffer is the "
        "gradient itself, buf = grad.clone(), without dampening": case["zero_init"]})
    for k in range(1, 5):
        assert_close(got[k], want[k], name=f"after step {k + 1}: parameters (against your optimizer with "
                     f"dampening=0 fed (1 - dampening) * grad)", mistakes={
                         "dampening and 1 - dampening swapped: buf = momentum * buf + (1 - dampening) * grad":
                             swapped[k],
                         "dampening ignored": ignored[k]})


@reference
def nesterov_case(device: str = "cpu") -> dict:
    """test_nesterov's inputs, and torch.optim.SGD's parameters after its first Nesterov step."""
    inits, grads = ref.randn(SHAPES, seed=7, device=device), ref.bounded(SHAPES, 5, seed=8, device=device)
    hp = dict(lr=0.1, momentum=0.9, nesterov=True)
    return {"inits": inits, "grads": grads, "hp": hp, "first": ref.torch_sgd(inits, grads, 1, **hp)[0][0]}


@pytest.mark.points(2)
def test_nesterov(student, child):
    """nesterov=True: the update is grad + momentum * buf, with buf already updated by this step"""
    case = nesterov_case()
    inits, grads, m, lr = case["inits"], case["grads"], 0.9, 0.1
    _, _, snaps = student_sgd(student, child, inits, grads, 5, **case["hp"])
    _, _, plain_snaps = student_sgd(student, child, inits, grads, 5, lr=lr, momentum=m)
    got, heavy = fetch(child.list(snaps), child.list(plain_snaps))
    assert_close(got[0], case["first"], name="after step 1: parameters", mistakes={
        "the Nesterov term is missing at the first step (the buffer is grad there, so the update is "
        "grad + momentum * grad)": first_step(inits, grads[0], lr)})
    # the velocities buf_t of your plain momentum run (p_{t-1} - p_t = lr * buf_t), and what Nesterov
    # makes of them: p_t = p_{t-1} - lr * (g_t + momentum * buf_t); as a mistake, the previous step's
    # buffer (at the first step the buffer just made from g_1, so the mistake shows from step 2 on)
    velocity = [[(a - b) / lr for a, b in zip(before, after)] for before, after in zip([inits, *heavy], heavy)]
    want, stale = [], []
    p_want, p_stale = inits, inits
    for k in range(5):
        p_want = [p - lr * (g + m * v) for p, g, v in zip(p_want, grads[k], velocity[k])]
        p_stale = [p - lr * (g + m * v) for p, g, v in zip(p_stale, grads[k], velocity[k - 1] if k else grads[0])]
        want.append(p_want)
        stale.append(p_stale)
    for k in range(1, 5):
        assert_close(got[k], want[k], name=f"after step {k + 1}: parameters (against grad + momentum * buf, "
                     f"buf from your optimizer with nesterov=False)", mistakes={
                         "nesterov ignored": heavy[k],
                         "the Nesterov term uses the buffer of the previous step: update the buffer first, "
                         "then use grad + momentum * buf": stale[k]})


# --- weight decay, maximize, the gradient ------------------------------------------------------------

WD = 0.1


@reference
def weight_decay_case(device: str = "cpu") -> dict:
    """test_weight_decay's inputs, and torch.optim.SGD's parameters after each step without momentum,
    with weight decay and without."""
    inits, grads = ref.randn(SHAPES, seed=9, device=device), ref.bounded(SHAPES, 5, seed=10, device=device)
    return {"inits": inits, "grads": grads,
            "want": ref.torch_sgd(inits, grads, 3, lr=0.1, weight_decay=WD)[0],
            "ignored": ref.torch_sgd(inits, grads, 3, lr=0.1)[0]}


@pytest.mark.points(2)
def test_weight_decay(student, child):
    """weight_decay=0.1 is L2: grad + 0.1 * param, before momentum and Nesterov (not decoupled)"""
    case = weight_decay_case()
    inits, grads, lr = case["inits"], case["grads"], 0.1
    # without momentum: against torch.optim.SGD
    _, _, alone = student_sgd(student, child, inits, grads, 3, lr=lr, weight_decay=WD)
    # with momentum (and Nesterov): against the same optimizer without decay fed grad + 0.1 * param,
    # and, to name that mistake, fed grad after param *= 1 - lr * 0.1 (decoupled decay)
    runs = {}
    for name, extra in (("momentum", {}), ("nesterov", {"nesterov": True})):
        _, _, runs[name] = student_sgd(student, child, inits, grads, 5, lr=lr, momentum=0.9, weight_decay=WD, **extra)
        l2_ps, dec_ps = [child.param(p) for p in inits], [child.param(p) for p in inits]
        l2 = student.SGDMomentum(l2_ps, lr=lr, momentum=0.9, **extra)
        dec = student.SGDMomentum(dec_ps, lr=lr, momentum=0.9, **extra)
        for k in range(5):
            child.suite.l2_grads(l2_ps, grads[k], WD)
            l2.step()
            child.suite.scale_params(dec_ps, 1 - lr * WD)
            child.suite.set_grads(dec_ps, grads[k])
            dec.step()
        runs[name + " l2"], runs[name + " decoupled"] = child.suite.snapshot(l2_ps), child.suite.snapshot(dec_ps)
    got, mom, mom_l2, mom_dec, nes, nes_l2, nes_dec = fetch(
        child.list(alone), runs["momentum"][4], runs["momentum l2"], runs["momentum decoupled"],
        runs["nesterov"][4], runs["nesterov l2"], runs["nesterov decoupled"])
    compare_steps(got, case["want"], what="parameters (momentum=0, weight_decay=0.1)",
                  mistakes={"weight decay ignored": case["ignored"]})
    decoupled = ("decoupled weight decay (param *= 1 - lr * weight_decay outside the momentum): torch.optim.SGD "
                 "adds weight_decay * param to the gradient before the momentum buffer")
    moved(inits, mom)
    assert_close(mom, mom_l2, name="after 5 steps with momentum=0.9, weight_decay=0.1: parameters (against your "
                 "optimizer without weight decay fed grad + 0.1 * param)", mistakes={decoupled: mom_dec})
    assert_close(nes, nes_l2, name="after 5 steps with Nesterov momentum, weight_decay=0.1: parameters (against "
                 "your optimizer without weight decay fed grad + 0.1 * param)", mistakes={
                     decoupled: nes_dec,
                     "(with Nesterov) the update grad + momentum * buf must use the decayed gradient too": mom})


@reference
def maximize_case(device: str = "cpu") -> dict:
    """test_maximize's inputs, torch.optim.SGD's parameters after each step with maximize, and without."""
    inits, grads = ref.randn(SHAPES, seed=11, device=device), ref.bounded(SHAPES, 3, seed=12, device=device)
    return {"inits": inits, "grads": grads, "want": ref.torch_sgd(inits, grads, 3, lr=0.1, maximize=True)[0],
            "ignored": ref.torch_sgd(inits, grads, 3, lr=0.1)[0]}


def test_maximize(student, child):
    """maximize=True: the parameters climb the gradient (p += lr * grad)"""
    case = maximize_case()
    _, _, snaps = student_sgd(student, child, case["inits"], case["grads"], 3, lr=0.1, maximize=True)
    compare_steps(fetch(*snaps), case["want"], mistakes={"maximize ignored": case["ignored"]})


def test_grad_not_modified(student, child):
    """step() leaves p.grad as it was (no in-place weight decay or negation, the buffer is a copy)"""
    inits = ref.randn(SHAPES, seed=13)
    grads = ref.bounded(SHAPES, 2, seed=14)
    m = 0.9
    # the same gradient for two steps (as when a loop forgets zero_grad): the buffer must not be p.grad itself
    ps = [child.param(p) for p in inits]
    opt = student.SGDMomentum(ps, lr=0.1, momentum=m)
    child.suite.set_grads(ps, grads[0])
    opt.step()
    opt.step()
    kept = child.suite.grads_of(ps)
    # fresh gradients, with weight decay and maximize
    ps2, _, snaps = student_sgd(student, child, inits, grads, 2, lr=0.1, momentum=m, weight_decay=WD, maximize=True)
    got_kept, got, before = fetch(kept, child.suite.grads_of(ps2), snaps[0])
    for what, values, want, mistakes in (
            ("the same gradient for two steps", got_kept, grads[0],
             [{"the momentum buffer is p.grad itself (buf = p.grad, then buf.mul_(...) changes p.grad): start "
               "it with a copy, p.grad.clone()": 2 * m * g} for g in grads[0]]),
            ("weight_decay=0.1, maximize=True", got, grads[1],
             [{"weight decay added to p.grad in place (use grad = grad.add(p, alpha=wd))": g + WD * b,
               "p.grad negated in place for maximize (use grad = -p.grad)": -g,
               "p.grad negated and decayed in place": -g + WD * b} for g, b in zip(grads[1], before)])):
        for i, (g, w, mis) in enumerate(zip(values, want, mistakes)):
            if g is None:
                fail(f"parameter {i}: step() set p.grad to None ({what})")
            assert_close(g, w, name=f"param {i}'s .grad after step(), {what}", rtol=0, atol=0, mistakes=mis)


# --- the Optimizer interface ------------------------------------------------------------------------

GROUP_DEFAULTS = dict(lr=0.02, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False)
GROUP_SPECS = [dict(lr=0.1), dict(momentum=0.9, dampening=0.2, weight_decay=0.05, maximize=True),
               dict(lr=0.05, momentum=0.8, nesterov=True)]
GROUP_SHAPES = [(3,), (2, 2), (4,), (3, 1)]


def three_groups(ps):
    return [{"params": [ps[0]], **GROUP_SPECS[0]}, {"params": [ps[1], ps[2]], **GROUP_SPECS[1]},
            {"params": [ps[3]], **GROUP_SPECS[2]}]


@reference
def first_group(device: str = "cpu") -> dict:
    """test_param_groups' inputs, and torch.optim.SGD's steps of the first group's parameter (lr=0.1,
    no momentum) and of the same parameter with the defaults' lr=0.02."""
    inits, grads = ref.randn(GROUP_SHAPES, seed=15, device=device), ref.bounded(GROUP_SHAPES, 4, seed=16, device=device)
    first = [[step[0]] for step in grads]
    return {"inits": inits, "grads": grads, "want": ref.torch_sgd(inits[:1], first, 4, lr=0.1)[0],
            "default_lr": ref.torch_sgd(inits[:1], first, 4, lr=0.02)[0]}


@pytest.mark.points(2)
def test_param_groups(student, child):
    """three param groups, each with its own lr/momentum/dampening/weight_decay/nesterov/maximize"""
    case = first_group()
    inits, grads = case["inits"], case["grads"]
    _, opt, snaps = student_sgd(student, child, inits, grads, 4, groups=three_groups, lr=0.02)
    # the same updates from one optimizer per group, each built with that group's settings
    alone = [child.param(p) for p in inits]
    members = ([alone[0]], [alone[1], alone[2]], [alone[3]])
    singles = [student.SGDMomentum(ps, **{**GROUP_DEFAULTS, **spec}) for ps, spec in zip(members, GROUP_SPECS)]
    # ... and one optimizer ignoring the groups' settings, to name that mistake
    flat = [child.param(p) for p in inits]
    plain_opt = student.SGDMomentum(flat, lr=0.02)
    for k in range(4):
        child.suite.set_grads(alone, grads[k])
        child.suite.set_grads(flat, grads[k])
        for single in (*singles, plain_opt):
            single.step()
    got_groups, got, want, ignored = fetch(opt.param_groups, child.list(snaps), child.suite.snapshot(alone),
                                           child.suite.snapshot(flat))
    if not isinstance(got_groups, list) or len(got_groups) != 3:
        fail(f"param_groups should hold the 3 groups given, not {got_groups!r:.80}")
    for i, (group, spec) in enumerate(zip(got_groups, GROUP_SPECS)):
        for key, value in {**GROUP_DEFAULTS, **spec}.items():
            have = group.get(key) if isinstance(group, dict) else None
            if have != value:
                fail(f"param_groups[{i}][{key!r}] is {have!r}, expected {value!r} "
                     f"(a group's own setting, else the constructor's default)")
    compare_steps([s[:1] for s in got], case["want"], what="the first group's parameter (lr=0.1, no momentum)",
                  mistakes={"every group was updated with the optimizer's defaults (read lr from `group`)":
                            case["default_lr"]})
    moved(inits, got[3])
    assert_close(got[3], want, name="parameters after 4 steps with three param groups (against one of your "
                 "optimizers per group)", mistakes={
                     "every group was updated with the optimizer's defaults instead of its own settings (read "
                     "them from `group`)": ignored})


def test_none_grad_skipped(student, child):
    """parameters whose grad is None are not updated (even with momentum and weight decay)"""
    shapes = [(3,), (4,), (2, 2)]
    inits = ref.randn(shapes, seed=17)
    grads = ref.bounded(shapes, 4, seed=18)
    for k in range(4):
        grads[k][2] = None  # never has a gradient
    for k in (2, 3):
        grads[k][1] = None  # has a momentum buffer from steps 1-2, then no gradient
    _, _, snaps = student_sgd(student, child, inits, grads, 4, lr=0.05, momentum=0.9, weight_decay=WD)
    after2, after4 = fetch(snaps[1], snaps[3])
    moved(inits[:1], after4[:1])
    if not torch.equal(after4[2], inits[2]):
        fail("a parameter whose grad is None was changed: skip parameters with p.grad is None")
    if not torch.equal(after4[1], after2[1]):
        fail("a parameter whose grad became None kept moving (momentum or weight decay): torch.optim.SGD "
             "skips a parameter with p.grad is None entirely")


@reference
def first_buffer(device: str = "cpu") -> dict:
    """test_state_dict's inputs, and torch.optim.SGD's state_dict()['state'] after one step with momentum."""
    inits, grads = ref.randn(SHAPES, seed=19, device=device), ref.bounded(SHAPES, 6, seed=20, device=device)
    return {"inits": inits, "grads": grads,
            "state": ref.torch_sgd(inits, grads, 1, lr=0.1, momentum=0.9)[1].state_dict()["state"]}


@pytest.mark.points(2)
def test_state_dict(student, child):
    """state 'momentum_buffer' as torch.optim.SGD keeps it; state_dict() -> load_state_dict() continues the run"""
    case = first_buffer()
    inits, grads = case["inits"], case["grads"]
    _, one, _ = student_sgd(student, child, inits, grads, 1, lr=0.1, momentum=0.9)
    hp = dict(lr=0.05, momentum=0.9, dampening=0.2, weight_decay=0.01)
    _, _, snaps = student_sgd(student, child, inits, grads, 6, **hp)
    _, first, half = student_sgd(student, child, inits, grads, 3, **hp)
    # through the grader: the state_dict must be plain data
    after_one, saved, at3 = fetch(one.state_dict(), first.state_dict(), half[2])
    for i in range(len(inits)):
        want = case["state"][i]["momentum_buffer"]
        assert_close(state_of(after_one, i, "momentum_buffer", "momentum=0.9"), want,
                     name=f"state[{i}]['momentum_buffer'] after the first step", mistakes={
                         "lr folded into the buffer (buf = momentum * buf + lr * grad; p -= buf): torch.optim.SGD "
                         "keeps the velocity without lr and multiplies by lr in the update": 0.1 * want})
    resumed = [child.param(p) for p in at3]
    second = student.SGDMomentum(resumed, **hp)
    second.load_state_dict(saved)
    fresh = [child.param(p) for p in at3]
    third = student.SGDMomentum(fresh, **hp)
    for k in range(3, 6):
        child.suite.set_grads(resumed, grads[k])
        second.step()
        child.suite.set_grads(fresh, grads[k])
        third.step()
    want, got, restarted = fetch(snaps[5], child.suite.snapshot(resumed), child.suite.snapshot(fresh))
    moved(inits, want)
    assert_close(got, want, name="parameters after 3 steps, save, load, 3 more steps", mistakes={
        "the loaded optimizer starts from scratch: keep the buffer in self.state[p]['momentum_buffer'], "
        "which state_dict() saves and load_state_dict() restores": restarted})


@reference
def scheduled(device: str = "cpu") -> dict:
    """test_lr_scheduler's inputs, and torch.optim.SGD's parameters after each step under StepLR(2, 0.5),
    and with the lr kept constant."""
    inits, grads = ref.randn(SHAPES, seed=21, device=device), ref.bounded(SHAPES, 6, seed=22, device=device)
    return {"inits": inits, "grads": grads, "want": ref.torch_sgd(inits, grads, 6, lr=0.1, step_lr=(2, 0.5))[0],
            "constant": ref.torch_sgd(inits, grads, 6, lr=0.1)[0]}


def test_lr_scheduler(student, child):
    """works with torch.optim.lr_scheduler.StepLR: each step uses the group's current lr"""
    case = scheduled()
    ps = [child.param(p) for p in case["inits"]]
    opt = student.SGDMomentum(ps, lr=0.1)
    try:
        sched = child.torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
        lrs, snaps = [], []
        for k in range(6):
            snaps.append(drive(child, opt, ps, case["grads"], k))
            lrs.append(opt.param_groups[0]["lr"])  # lr used by this step
            sched.step()
        got_lrs, got = fetch(child.list(lrs), child.list(snaps))
    except CheckFailed as exc:
        fail(f"{exc}\n  (StepLR needs a torch.optim.Optimizer whose param_groups hold 'lr')")
    assert_close([float(x) for x in got_lrs], [0.1 * 0.5 ** (k // 2) for k in range(6)],
                 name="param_groups[0]['lr'] under StepLR")
    compare_steps(got, case["want"], mistakes={
        "the lr given to the constructor was used throughout: read group['lr'] in step()": case["constant"]})


@reference
def closure_case(device: str = "cpu") -> dict:
    """test_closure's inputs (a quadratic's targets), and torch.optim.SGD's parameters after 3 steps on it."""
    inits, targets = ref.randn(SHAPES, seed=23, device=device), ref.randn(SHAPES, seed=24, scale=3.0, device=device)
    source = ref.Quadratic(targets, [1.0, 1.0])
    return {"inits": inits, "targets": targets, "want": ref.torch_sgd(inits, source, 3, lr=0.1)[0]}


def test_closure(student, child):
    """step(closure) calls the closure once, with grad enabled, uses its gradients and returns its loss"""
    case = closure_case()
    inits = case["inits"]
    ps = [child.param(p) for p in inits]
    opt = student.SGDMomentum(ps, lr=0.1)
    closure = child.suite.quadratic_closure(opt, ps, case["targets"])
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
    assert_close(got, case["want"][2], name="parameters after 3 steps with a closure",
                 mistakes={"the closure's gradients were not used": inits})


INVALID = [
    (dict(lr=-0.1), "lr=-0.1"),
    (dict(momentum=-0.5), "momentum=-0.5"),
    (dict(weight_decay=-1.0), "weight_decay=-1.0"),
    (dict(momentum=0.0, nesterov=True), "nesterov=True with momentum=0"),
    (dict(momentum=0.9, dampening=0.1, nesterov=True), "nesterov=True with dampening=0.1"),
]


def test_invalid_hyperparameters(student, child):
    """a negative lr, momentum or weight_decay, and Nesterov without momentum or with dampening, raise ValueError"""
    for kwargs, what in INVALID:
        exc = student_raises(student.SGDMomentum([child.param(torch.zeros(3, dtype=F64))], **kwargs))
        if "ValueError" not in exc.types:
            fail(f"SGDMomentum(params, {what}) raised {exc.type}: {exc.message[:200]!r}; raise ValueError, "
                 f"as torch.optim.SGD does")


# --- on a GPU ----------------------------------------------------------------------------------------

@reference
def cuda_step() -> dict:
    """test_cuda_step's inputs on CUDA, and torch.optim.SGD's parameters after each step there."""
    inits, grads = ref.randn(SHAPES, seed=25, device="cuda"), ref.bounded(SHAPES, 4, seed=26, device="cuda")
    hp = dict(lr=0.05, momentum=0.9, weight_decay=0.01, nesterov=True)
    return {"inits": inits, "grads": grads, "hp": hp, "want": ref.torch_sgd(inits, grads, 4, **hp)[0]}


@pytest.mark.gpu
def test_cuda_step(student, child):
    """CUDA parameters: trajectory matches torch.optim.SGD on CUDA (Nesterov momentum, weight decay)"""
    case = cuda_step()
    _, _, snaps = student_sgd(student, child, case["inits"], case["grads"], 4, **case["hp"])
    compare_steps(fetch(*snaps), case["want"])


@pytest.mark.gpu
def test_cuda_state_on_device(student, child):
    """CUDA parameters: the momentum buffers live on the parameters' device"""
    inits, grads = ref.randn(SHAPES, seed=27, device="cuda"), ref.bounded(SHAPES, 2, seed=28, device="cuda")
    _, opt, _ = student_sgd(student, child, inits, grads, 2, lr=0.05, momentum=0.9)
    sd = fetch(opt.state_dict())
    for i in range(len(inits)):
        value = state_of(sd, i, "momentum_buffer", "state on CUDA")
        if not isinstance(value, torch.Tensor) or value.device.type != "cuda":
            where = value.device if isinstance(value, torch.Tensor) else type(value).__name__
            fail(f"state[{i}]['momentum_buffer'] is on {where}, not with its CUDA parameter: "
                 f"make it from the gradient (grad.clone()) or with torch.zeros_like(p)")


# --- on the GPU, or an emulated one ------------------------------------------------------------------

def test_device_placement(student, child):
    """on the GPU (emulated without one): parameters and momentum buffers stay on the parameters' device"""
    dev = OnDevice(child)
    for hp in ({"lr": 0.1, "momentum": 0.9}, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01},
               {"lr": 0.1, "momentum": 0.9, "dampening": 0.5, "maximize": True}, {"lr": 0.1}):
        ps = [child.param(dev.randn(*shape)) for shape in SHAPES]
        opt = student.SGDMomentum(ps, **hp)
        for _ in range(2):
            child.suite.set_grads(ps, [dev.randn(*shape) for shape in SHAPES])
            opt.step()
        setting = ", ".join(f"{k}={v}" for k, v in hp.items())
        dev.expect(f"two steps ({setting})", params=ps, optimizer=opt)
