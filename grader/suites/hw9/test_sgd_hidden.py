"""hw9 hidden checks: more of torch.optim.SGD's trajectory (other momenta, long runs on a quadratic,
odd shapes, lr=0), dampening without momentum, and maximize together with weight decay."""

import pytest

from kit.grader.suite import assert_close, fetch, reference, sibling

ref = sibling(__file__, "sgd_ref.py")
public = sibling(__file__, "test_sgd.py")
pytestmark = [pytest.mark.hidden, pytest.mark.component("SGDMomentum")]


@reference
def on_torch(shapes: tuple, init_seed: int, steps: int, grad_seed: int | None = None, device: str = "cpu",
             **hp) -> dict:
    """Inputs drawn from the seeds, and torch.optim.SGD's parameters after each step: gradients from
    ref.bounded(shapes, steps, grad_seed), or from ref.far_quadratic(shapes, init_seed) when grad_seed is None."""
    if grad_seed is None:
        inits, source = ref.far_quadratic(shapes, init_seed, device=device)
        data = {"inits": inits, "targets": source.targets, "scales": source.scales}
    else:
        inits = ref.randn(shapes, seed=init_seed, device=device)
        source = ref.bounded(shapes, steps, seed=grad_seed, device=device)
        data = {"inits": inits, "grads": source}
    return {**data, "want": ref.torch_sgd(inits, source, steps, **hp)[0]}


def source_of(case: dict):
    """The gradient source of an `on_torch` case, for the student's optimizer."""
    return case["grads"] if "grads" in case else ref.Quadratic(case["targets"], case["scales"])


def test_hidden_momentum_values(student, child):
    """momentum 0.5 and 0.99 match torch.optim.SGD over 10 steps"""
    shapes = ((6,), (2, 3))
    for momentum in (0.5, 0.99):
        hp = dict(lr=0.03, momentum=momentum)
        case = on_torch(shapes, 101, 10, grad_seed=102, **hp)
        _, _, snaps = public.student_sgd(student, child, case["inits"], case["grads"], 10, **hp)
        got = fetch(*snaps)
        for k in range(10):
            assert_close(got[k], case["want"][k], name=f"momentum={momentum}, after step {k + 1}: parameters")


def test_hidden_many_steps(student, child):
    """200 steps with momentum=0.9 on a quadratic stay on torch.optim.SGD's trajectory"""
    hp = dict(lr=0.01, momentum=0.9)
    case = on_torch(((5,), (3, 3)), 103, 200, **hp)
    _, _, snaps = public.student_sgd(student, child, case["inits"], source_of(case), 200, **hp)
    got = fetch(snaps[99], snaps[199])
    assert_close(got[0], case["want"][99], name="after step 100: parameters")
    assert_close(got[1], case["want"][199], name="after step 200: parameters")


def test_hidden_nesterov_quadratic(student, child):
    """60 steps of Nesterov momentum on a quadratic stay on torch.optim.SGD's trajectory"""
    hp = dict(lr=0.02, momentum=0.8, nesterov=True)
    case = on_torch(((4,), (2, 3)), 105, 60, **hp)
    _, _, snaps = public.student_sgd(student, child, case["inits"], source_of(case), 60, **hp)
    got = fetch(snaps[19], snaps[59])
    assert_close(got[0], case["want"][19], name="after step 20: parameters")
    assert_close(got[1], case["want"][59], name="after step 60: parameters")


def test_hidden_mixed_shapes(student, child):
    """0-d, 1-element and 4-D parameters in one optimizer with momentum"""
    hp = dict(lr=0.05, momentum=0.9)
    case = on_torch(((), (1,), (7,), (3, 4, 5), (2, 1, 3, 1)), 107, 5, grad_seed=108, **hp)
    _, _, snaps = public.student_sgd(student, child, case["inits"], case["grads"], 5, **hp)
    got = fetch(*snaps)
    for k in range(5):
        assert_close(got[k], case["want"][k], name=f"after step {k + 1}: parameters")


def test_hidden_lr_zero(student, child):
    """lr=0 leaves the parameters exactly where they were (momentum, Nesterov and weight decay on)"""
    hp = dict(lr=0.0, momentum=0.9, weight_decay=0.1, nesterov=True)
    case = on_torch(((4,), (3, 2)), 109, 5, grad_seed=110, **hp)
    _, _, snaps = public.student_sgd(student, child, case["inits"], case["grads"], 5, **hp)
    assert_close(fetch(snaps[4]), case["want"][4], name="parameters after 5 steps with lr=0", rtol=0, atol=0)


def test_hidden_dampening_without_momentum(student, child):
    """momentum=0 with dampening=0.5: no buffer, so dampening changes nothing (plain SGD, as torch.optim.SGD)"""
    hp = dict(lr=0.1, dampening=0.5)
    case = on_torch(((4,), (3, 2)), 111, 4, grad_seed=112, **hp)
    _, _, snaps = public.student_sgd(student, child, case["inits"], case["grads"], 4, **hp)
    got = fetch(*snaps)
    for k in range(4):
        assert_close(got[k], case["want"][k], name=f"after step {k + 1}: parameters")


def test_hidden_maximize_weight_decay(student, child):
    """maximize with weight_decay: the gradient is negated first, then weight_decay * param added
    (the same as maximize=False fed -grad)"""
    inits, grads = ref.randn(public.SHAPES, seed=113), ref.bounded(public.SHAPES, 4, seed=114)
    hp = dict(lr=0.1, weight_decay=0.1)
    _, _, snaps = public.student_sgd(student, child, inits, grads, 4, maximize=True, **hp)
    negated = [[-g for g in step] for step in grads]
    _, _, want = public.student_sgd(student, child, inits, negated, 4, **hp)
    got, want = fetch(snaps[3], want[3])
    public.moved(inits, got)
    # negating the whole update instead: p -= lr * -(grad + weight_decay * p)
    flipped = inits
    for step in grads:
        flipped = [p + 0.1 * (g + 0.1 * p) for p, g in zip(flipped, step)]
    assert_close(got, want, name="parameters after 4 steps with maximize=True, weight_decay=0.1 (against your "
                 "optimizer with maximize=False fed -grad)", mistakes={
                     "the update was negated after adding weight decay: maximize negates the gradient first, "
                     "then weight_decay * param is added": flipped})
