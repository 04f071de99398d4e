"""Public checks of hw2: MyBatchNorm2d against nn.BatchNorm2d.

Every check builds the student's module in the child, runs it, fetches plain data and
compares it with nn.BatchNorm2d (float64) or with the formula computed here. The
batches are small on purpose: with N·H·W = 8 values per channel the unbiased variance
is 8/7 of the biased one, so using the wrong one cannot hide in the tolerance.

Each check grades one property. Where a check needs a value that another check
already grades (e.g. running_var inside the momentum=None check), a value showing only
that other mistake is accepted here (`graded_elsewhere`), so one mistake costs its own
points once.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from kit.grader.suite import CheckFailed, OnDevice, assert_close, fail, fetch, reference, student_raises

pytestmark = pytest.mark.component("MyBatchNorm2d")

F64 = torch.float64
C = 3
SHAPE = (2, C, 2, 2)  # N·H·W = 8 values per channel: unbiased variance = 8/7 · biased variance
BIASED = "running_var uses the unbiased batch variance (n/(n-1) · biased variance, n = N·H·W)"
GRAD_MODE = ("the mode is chosen with torch.is_grad_enabled() instead of self.training: whether autograd is on "
             "says nothing about training; model.train() and model.eval() set self.training")

# --- data and references (all float64, computed here in the grader) -----------------------------


def batches(steps: int = 3, shape: tuple[int, ...] = SHAPE, seed: int = 0, loc: float = 0.0,
            scale: float = 1.0) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """`steps` inputs whose channels have different means and spreads, and upstream gradients."""
    gen = torch.Generator().manual_seed(seed)
    c = shape[1]
    offset = (torch.randn(c, generator=gen, dtype=F64) * 2 + loc).view(1, c, 1, 1)
    spread = (torch.rand(c, generator=gen, dtype=F64) * 1.5 + 0.5).view(1, c, 1, 1) * scale
    xs = [torch.randn(shape, generator=gen, dtype=F64) * spread + offset for _ in range(steps)]
    gs = [torch.randn(shape, generator=gen, dtype=F64) for _ in range(steps)]
    return xs, gs


def affine_params(c: int = C, seed: int = 1) -> dict[str, torch.Tensor]:
    """A weight and bias far from the 1/0 defaults, so their use shows in every output."""
    gen = torch.Generator().manual_seed(seed)
    return {"weight": torch.rand(c, generator=gen, dtype=F64) + 0.5,
            "bias": torch.randn(c, generator=gen, dtype=F64)}


@reference
def torch_steps(steps: int = 3, shape: tuple[int, ...] = SHAPE, seed: int = 0, loc: float = 0.0, scale: float = 1.0,
                *, affine_seed: int | None = None, **kwargs: Any) -> dict:
    """nn.BatchNorm2d(**kwargs) in training mode over batches(steps, shape, seed, loc, scale), holding
    affine_params(seed=affine_seed) if given: outputs, input gradients, parameter gradients and state_dict."""
    xs, gs = batches(steps, shape, seed, loc, scale)
    ref = nn.BatchNorm2d(shape[1], **kwargs).double()
    if affine_seed is not None:
        ref.load_state_dict(affine_params(shape[1], affine_seed), strict=False)
    outs, grads = [], []
    for x, g in zip(xs, gs):
        leaf = x.clone().requires_grad_()
        y = ref(leaf)
        (y * g).sum().backward()
        outs.append(y.detach())
        grads.append(leaf.grad)
    return {"outputs": outs, "input_grads": grads, "grads": {k: p.grad for k, p in ref.named_parameters()},
            "state": ref.state_dict()}


@reference
def eval_without_stats(seed: int = 7, shift: float = 1.0) -> torch.Tensor:
    """nn.BatchNorm2d(track_running_stats=False) holding affine_params() in eval mode (where it still
    normalises with the batch statistics) on batches(steps=1, seed=seed)[0][0] + shift."""
    ref = nn.BatchNorm2d(C, track_running_stats=False).double()
    ref.load_state_dict(affine_params(), strict=False)
    ref.eval()
    return ref(batches(steps=1, seed=seed)[0][0] + shift).detach()


def on_student(student, child, xs: list[torch.Tensor], gs: list[torch.Tensor], params: dict | None = None,
               device: str | None = None, dtype: torch.dtype = F64, **kwargs: Any):
    """The same training steps on the student's module (proxies: nothing runs until fetch)."""
    m = student.MyBatchNorm2d(xs[0].shape[1], **kwargs).to(dtype=dtype)
    if device is not None:
        m = m.to(device)
    if params:
        # strict=False and parameters only: the buffers are graded by their own checks
        m.load_state_dict(params, strict=False)
    outs, grads = [], []
    for x, g in zip(xs, gs):
        leaf = child.leaf(x.to(device=device or "cpu", dtype=dtype))
        y = m(leaf)
        (y * g.to(device=device or "cpu", dtype=dtype)).sum().backward()
        outs.append(y)
        grads.append(leaf.grad)
    return m, outs, grads


def stats(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-channel mean, biased variance and count of an (N, C, H, W) batch."""
    mean = x.mean(dim=(0, 2, 3))
    var = (x - mean.view(1, -1, 1, 1)).square().mean(dim=(0, 2, 3))
    return mean, var, x.numel() // x.shape[1]


def normalise(x: torch.Tensor, mean: torch.Tensor, var: torch.Tensor, eps: float = 1e-5,
              params: dict | None = None, eps_outside: bool = False) -> torch.Tensor:
    """(x - mean) / sqrt(var + eps) * weight + bias, per channel; eps_outside: the common slip."""
    shape = (1, -1, 1, 1)
    denom = var.view(shape).sqrt() + eps if eps_outside else (var.view(shape) + eps).sqrt()
    y = (x - mean.view(shape)) / denom
    if params:
        y = y * params["weight"].view(shape) + params["bias"].view(shape)
    return y


def running_stats(xs: list[torch.Tensor], factor: Callable[[int], float] = lambda k: 0.1,
                  unbiased: bool = True, swapped: bool = False, channels: int = C) -> tuple[torch.Tensor, torch.Tensor]:
    """running_mean and running_var after the batches; `factor(k)` is the k-th batch's weight (k from 1).

    `unbiased=False` and `swapped=True` (momentum applied to the old value) give wrong variants.
    """
    c = xs[0].shape[1] if xs else channels
    rm, rv = torch.zeros(c, dtype=F64), torch.ones(c, dtype=F64)
    for k, x in enumerate(xs, start=1):
        mean, var, n = stats(x)
        if unbiased:
            var = var * n / (n - 1)
        f = factor(k)
        if swapped:
            f = 1 - f
        rm, rv = (1 - f) * rm + f * mean, (1 - f) * rv + f * var
    return rm, rv


def _tolerance(t: torch.Tensor) -> tuple[float, float]:
    return {torch.float64: (1e-7, 1e-7), torch.float32: (1.3e-6, 1e-5)}.get(t.dtype, (1e-3, 1e-5))


def matches(actual: Any, value: torch.Tensor) -> bool:
    """True when `actual` is a tensor equal to `value` within the usual tolerance."""
    if not isinstance(actual, torch.Tensor) or actual.shape != value.shape or not actual.is_floating_point():
        return False
    rtol, atol = _tolerance(value)
    return torch.allclose(actual.detach().cpu().double(), value.cpu().double(), rtol=rtol, atol=atol)


def assert_close_here(actual: Any, expected: torch.Tensor, *, name: str, mistakes: dict | None = None,
                      graded_elsewhere: dict[str, torch.Tensor] | None = None) -> None:
    """assert_close, but a value that shows only a mistake graded by another check passes here."""
    if any(matches(actual, value) for value in (graded_elsewhere or {}).values()):
        return
    assert_close(actual, expected, name=name, mistakes=mistakes)


# --- construction ---------------------------------------------------------------------------------


@pytest.mark.points(1)
def test_initial_state(student):
    """a new layer starts like nn.BatchNorm2d: weight 1, bias 0, running stats 0 and 1, count 0"""
    ref = nn.BatchNorm2d(5)
    m = student.MyBatchNorm2d(5)
    got = fetch(m.weight, m.bias, m.running_mean, m.running_var, m.num_batches_tracked)
    names = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    for name, value in zip(names, got):
        mistakes = {"running_var starts at ones, not zeros": torch.zeros(5)} if name == "running_var" else None
        assert_close(value, getattr(ref, name).detach(), name=name, mistakes=mistakes)


# --- training mode ---------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_train_output(student, child):
    """three training steps on 8 values per channel: outputs match (normalised with the biased variance)"""
    xs, gs = batches()
    params = affine_params()
    ref_outs = torch_steps(affine_seed=1)["outputs"]
    _, outs, _ = on_student(student, child, xs, gs, params)
    got = fetch(*outs)
    for step, (y, x, expected) in enumerate(zip(got, xs, ref_outs), start=1):
        mean, var, n = stats(x)
        assert_close(y, expected, name=f"output of training step {step}", mistakes={
            "normalised with the unbiased variance: training mode divides by sqrt(biased variance + eps)":
                normalise(x, mean, var * n / (n - 1), params=params),
            "eps added outside the square root: use sqrt(var + eps)":
                normalise(x, mean, var, params=params, eps_outside=True),
            "weight and bias not applied": normalise(x, mean, var),
            "normalised with the running statistics: training mode uses the batch statistics":
                normalise(x, *running_stats(xs[:step - 1]), params=params),
        })


def _input_grad_mistakes(x: torch.Tensor, g: torch.Tensor, params: dict) -> dict[str, torch.Tensor]:
    """Input gradients of the usual slips, by autograd on the slip itself."""
    out = {}
    for cause, detach, unbiased in (
        ("the batch mean and variance were detached: the gradient must flow through them too", True, False),
        ("normalised with the unbiased variance: training mode uses the biased variance", False, True),
    ):
        leaf = x.clone().requires_grad_()
        mean, var, n = stats(leaf)
        if unbiased:
            var = var * n / (n - 1)
        if detach:
            mean, var = mean.detach(), var.detach()
        (normalise(leaf, mean, var, params=params) * g).sum().backward()
        out[cause] = leaf.grad
    return out


@pytest.mark.points(2)
def test_train_input_grad(student, child):
    """input gradients of three training steps match, with a random upstream gradient"""
    xs, gs = batches()
    params = affine_params()
    ref_grads = torch_steps(affine_seed=1)["input_grads"]
    _, _, grads = on_student(student, child, xs, gs, params)
    got = fetch(*grads)
    for step, (grad, x, g, expected) in enumerate(zip(got, xs, gs, ref_grads), start=1):
        assert_close(grad, expected, name=f"input gradient of training step {step}",
                     mistakes=_input_grad_mistakes(x, g, params))


@pytest.mark.points(1)
def test_train_param_grads(student, child):
    """weight.grad and bias.grad after three training steps (accumulated) match"""
    xs, gs = batches()
    params = affine_params()
    want = torch_steps(affine_seed=1)["grads"]
    m, _, _ = on_student(student, child, xs, gs, params)
    weight_grad, bias_grad = fetch(m.weight.grad, m.bias.grad)
    if weight_grad is None or bias_grad is None:
        fail("weight.grad or bias.grad is None after backward(): are weight and bias nn.Parameters "
             "used in forward?")
    assert_close(weight_grad, want["weight"], name="weight.grad")
    assert_close(bias_grad, want["bias"], name="bias.grad")


@pytest.mark.points(1)
def test_running_mean(student, child):
    """running_mean after three training steps (momentum 0.1)"""
    xs, gs = batches()
    want = torch_steps()["state"]["running_mean"]
    m, _, _ = on_student(student, child, xs, gs)
    assert_close(fetch(m.running_mean), want, name="running_mean", mistakes={
        "momentum applied the wrong way round: running = (1 - momentum) * running + momentum * batch_mean":
            running_stats(xs, swapped=True)[0],
        "running_mean never updated in training mode": torch.zeros(C, dtype=F64),
        "running_mean replaced by the last batch mean": stats(xs[-1])[0],
    })


@pytest.mark.points(2)
def test_running_var(student, child):
    """running_var after three training steps uses the unbiased batch variance"""
    xs, gs = batches()
    want = torch_steps()["state"]["running_var"]
    m, _, _ = on_student(student, child, xs, gs)
    assert_close(fetch(m.running_var), want, name="running_var", mistakes={
        f"updated with the biased variance: {BIASED}": running_stats(xs, unbiased=False)[1],
        "momentum applied the wrong way round: running = (1 - momentum) * running + momentum * batch_var":
            running_stats(xs, swapped=True)[1],
        "running_var never updated in training mode": torch.ones(C, dtype=F64),
    })


@pytest.mark.points(1)
def test_num_batches_tracked(student, child):
    """num_batches_tracked counts the three training steps (an int64 tensor)"""
    xs, gs = batches()
    m, _, _ = on_student(student, child, xs, gs)
    got = fetch(m.num_batches_tracked)
    if not isinstance(got, torch.Tensor):
        fail(f"num_batches_tracked should be a 0-dim int64 tensor buffer, got {type(got).__name__} {got!r}")
    assert_close(got, torch.tensor(3), name="num_batches_tracked")


# --- evaluation mode ---------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_eval_output(student, child):
    """eval mode normalises with running_mean/running_var, so the same input gives another output than in training"""
    xs, gs = batches()
    params = affine_params()
    x = batches(steps=1, seed=7)[0][0] * 1.5 + 0.5  # batch statistics far from the running ones
    m, _, _ = on_student(student, child, xs, gs, params)
    rm, rv = m.running_mean.clone(), m.running_var.clone()  # the student's own, graded elsewhere
    m.eval()
    y = m(x)
    rm, rv, y = fetch(rm, rv, y, finite=False)
    if not isinstance(rm, torch.Tensor) or not isinstance(rv, torch.Tensor):
        fail("running_mean and running_var should be tensors after training steps")
    mean, var, _ = stats(x)
    batch_stats = normalise(x, mean, var, params=params)
    cause = ("eval mode normalised with the batch statistics: when not self.training, use running_mean and "
             "running_var")
    if matches(y, batch_stats):  # the same layer in eval mode without autograd: does its output change?
        try:
            y_grad, y_no_grad = fetch(m(x), child.suite.call_without_grad(m, x), finite=False)
        except CheckFailed:
            y_grad = y_no_grad = None
        if isinstance(y_no_grad, torch.Tensor) and not matches(y_no_grad, y_grad):
            cause = f"{GRAD_MODE} (in eval mode with autograd on, the batch statistics were used)"
    assert_close(y, normalise(x, rm.cpu().double(), rv.cpu().double(), params=params),
                 name="output in eval mode", mistakes={cause: batch_stats})


@pytest.mark.points(1)
def test_eval_keeps_buffers(student, child):
    """forward in eval mode (with and without autograd) changes none of running_mean, running_var,
    num_batches_tracked, which training changed"""
    xs, gs = batches()
    x = batches(steps=1, seed=7)[0][0] + 1.0
    m, _, _ = on_student(student, child, xs, gs)
    names = ["running_mean", "running_var", "num_batches_tracked"]
    before = [getattr(m, name).clone() for name in names]
    m.eval()
    child.suite.call_without_grad(m, x)
    middle = [getattr(m, name).clone() for name in names]
    m(x)
    m(x)
    after = [getattr(m, name) for name in names]
    got = fetch(*before, *middle, *after)
    if not isinstance(got[0], torch.Tensor) or torch.equal(got[0].cpu(), torch.zeros_like(got[0].cpu())):
        fail("running_mean did not change in three training steps, so keeping it in eval mode proves nothing: "
             "update the running statistics in training mode (running_mean grades the update)")
    for name, old, mid, new in zip(names, got[:3], got[3:6], got[6:]):
        if not isinstance(new, torch.Tensor) or not torch.equal(new.cpu(), old.cpu()):
            only_grad = isinstance(mid, torch.Tensor) and torch.equal(mid.cpu(), old.cpu())
            hint = f" (it changes only when autograd is on: {GRAD_MODE})" if only_grad else ""
            fail(f"{name} changed in eval mode (before: {old}, after: {new}): update the running statistics "
                 f"only when self.training is True{hint}")


@pytest.mark.points(1)
def test_train_no_grad(student, child):
    """training mode under torch.no_grad() still normalises with the batch statistics"""
    xs, _ = batches(steps=1)
    params = affine_params()
    want = torch_steps(1, affine_seed=1)["outputs"][0]
    m = student.MyBatchNorm2d(C).to(dtype=F64)
    m.load_state_dict(params, strict=False)
    m.train()
    y = fetch(child.suite.call_without_grad(m, xs[0]))
    assert_close(y, want, name="output in training mode under torch.no_grad()", mistakes={
        f"normalised with the running statistics under torch.no_grad(): {GRAD_MODE}":
            normalise(xs[0], torch.zeros(C, dtype=F64), torch.ones(C, dtype=F64), params=params),
    })


# --- constructor options ---------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_momentum_none(student, child):
    """momentum=None keeps a cumulative average: the k-th batch gets weight 1/k"""
    xs, gs = batches()
    want = torch_steps(momentum=None)["state"]
    m, _, _ = on_student(student, child, xs, gs, momentum=None)
    rm, rv = fetch(m.running_mean, m.running_var)
    none_means = "None means a cumulative average, factor 1/num_batches_tracked"
    factors = {
        f"momentum=None treated as momentum 0.1: {none_means}": lambda k: 0.1,
        f"momentum=None left the running statistics unchanged: {none_means}": lambda k: 0.0,
        "cumulative average off by one: the k-th batch gets weight 1/k, counting it first": lambda k: 1 / (k + 1),
    }
    for index, (name, got) in enumerate((("running_mean", rm), ("running_var", rv))):
        wrong = {cause: running_stats(xs, f)[index] for cause, f in factors.items()}
        # running_var updated with the biased variance loses its points in test_running_var, not here
        elsewhere = {"biased": running_stats(xs, lambda k: 1 / k, unbiased=False)[1]} if index == 1 else None
        assert_close_here(got, want[name], name=f"{name} with momentum=None", mistakes=wrong,
                          graded_elsewhere=elsewhere)


@pytest.mark.points(1)
def test_affine_false(student, child):
    """affine=False: no parameters (weight and bias are None), outputs and input gradients still match"""
    xs, gs = batches(steps=2)
    want = torch_steps(2, affine=False)
    m, outs, grads = on_student(student, child, xs, gs, affine=False)
    weight, bias, params = fetch(m.weight, m.bias, child.named_parameters(m))
    if weight is not None or bias is not None or params:
        fail(f"with affine=False weight and bias must be None and the layer has no parameters "
             f"(register_parameter('weight', None)); found parameters {sorted(params or {})}")
    got = fetch(*outs, *grads)
    for step in range(2):
        assert_close(got[step], want["outputs"][step], name=f"output of training step {step + 1}")
        assert_close(got[2 + step], want["input_grads"][step], name=f"input gradient of training step {step + 1}")


@pytest.mark.points(2)
def test_no_running_stats(student, child):
    """track_running_stats=False: buffers are None, and eval mode still normalises with the batch statistics"""
    xs, gs = batches(steps=2)
    params = affine_params()
    ref_outs = torch_steps(2, affine_seed=1, track_running_stats=False)["outputs"]
    m, outs, _ = on_student(student, child, xs, gs, params, track_running_stats=False)
    got = fetch(m.running_mean, m.running_var, m.num_batches_tracked, child.named_buffers(m))
    if any(v is not None for v in got[:3]) or got[3]:
        fail("with track_running_stats=False, running_mean, running_var and num_batches_tracked must be None "
             f"(register_buffer(name, None)); the layer has buffers {sorted(got[3] or {})}")
    for step, y in enumerate(fetch(*outs)):
        assert_close(y, ref_outs[step], name=f"output of training step {step + 1}")
    x = batches(steps=1, seed=7)[0][0] + 1.0
    m.eval()
    y = fetch(m(x))
    assert_close(y, eval_without_stats(), name="output in eval mode with track_running_stats=False", mistakes={
        "eval mode without running statistics must normalise with the batch statistics":
            normalise(x, torch.zeros(C, dtype=F64), torch.ones(C, dtype=F64), params=params),
    })


@pytest.mark.points(1)
def test_eps(student, child):
    """a large eps (0.5) with small-variance inputs: training and eval outputs use sqrt(var + eps)"""
    eps = 0.5
    xs, gs = batches(steps=2, scale=0.3)
    params = affine_params()
    ref_outs = torch_steps(2, scale=0.3, affine_seed=1, eps=eps)["outputs"]
    m, outs, _ = on_student(student, child, xs, gs, params, eps=eps)
    x = batches(steps=1, seed=7, scale=0.3)[0][0] + 0.2
    rm, rv = m.running_mean.clone(), m.running_var.clone()
    m.eval()
    y_eval = m(x)
    *got, rm, rv, y_eval = fetch(*outs, rm, rv, y_eval, finite=False)
    for step, (y, x_step) in enumerate(zip(got, xs)):
        mean, var, _ = stats(x_step)
        assert_close(y, ref_outs[step], name=f"output of training step {step + 1} with eps={eps}", mistakes={
            "eps ignored: the constructor's eps must be used": normalise(x_step, mean, var, 1e-5, params),
            "eps added outside the square root: use sqrt(var + eps)":
                normalise(x_step, mean, var, eps, params, eps_outside=True),
        })
    if not isinstance(rm, torch.Tensor) or not isinstance(rv, torch.Tensor):
        fail("running_mean and running_var should be tensors")
    rm, rv = rm.cpu().double(), rv.cpu().double()
    mean, var, _ = stats(x)
    assert_close_here(y_eval, normalise(x, rm, rv, eps, params), name=f"output in eval mode with eps={eps}",
                      mistakes={"eps ignored in eval mode": normalise(x, rm, rv, 1e-5, params),
                                "eps added outside the square root in eval mode":
                                    normalise(x, rm, rv, eps, params, eps_outside=True)},
                      graded_elsewhere={"eval with batch statistics": normalise(x, mean, var, eps, params)})


# --- buffers and state_dict -------------------------------------------------------------------------------


BUFFER_HINT = ("running_mean, running_var and num_batches_tracked must be registered with "
               "self.register_buffer(...): plain tensor attributes are missing from state_dict() "
               "and are not moved by .to()/.cuda()/.double()")


@pytest.mark.points(1)
def test_buffers_registered(student, child):
    """the running statistics are buffers: listed by named_buffers() and converted by .to(float64)"""
    ref = nn.BatchNorm2d(4).double()
    m = student.MyBatchNorm2d(4)
    names = fetch(child.list(m.state_dict().keys()))
    expected = list(ref.state_dict().keys())
    if sorted(names) != sorted(expected):
        fail(f"state_dict() keys are {sorted(names)}, expected {sorted(expected)}. {BUFFER_HINT}")
    m.to(F64)
    assert_close(fetch(child.named_buffers(m)), dict(ref.named_buffers()), name="named_buffers() after .to(float64)")


@pytest.mark.points(1)
def test_load_state_dict(student, child):
    """loads a state_dict taken from nn.BatchNorm2d (strict) and holds exactly its values"""
    state = torch_steps(affine_seed=1)["state"]
    state["num_batches_tracked"].fill_(5)
    m = student.MyBatchNorm2d(C).double()
    m.load_state_dict(state)
    try:
        got = fetch(m.state_dict())
    except AssertionError as exc:
        fail(f"{exc}\n{BUFFER_HINT}")
    assert_close(dict(got), dict(state), name="state_dict()")


@pytest.mark.points(1)
def test_non_4d_error(student):
    """a 2-D, 3-D or 5-D input raises ValueError, like nn.BatchNorm2d"""
    m = student.MyBatchNorm2d(C)
    gen = torch.Generator().manual_seed(0)
    for shape in ((4, C), (2, C, 5), (2, C, 2, 2, 2)):
        exc = student_raises(m(torch.randn(shape, generator=gen)))
        if "ValueError" not in exc.types:
            fail(f"an input of shape {shape} raised {exc.type}: {exc.message!r}; raise a ValueError that says "
                 "a 4D input (N, C, H, W) is expected")


# --- GPU ----------------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.points(2)
def test_gpu_train_steps(student, child):
    """on CUDA: three training steps give the outputs, input gradients and running statistics of nn.BatchNorm2d"""
    xs, gs = batches()
    params = affine_params()
    want = torch_steps(affine_seed=1)
    m, outs, grads = on_student(student, child, xs, gs, params, device="cuda", dtype=torch.float32)
    got = fetch(*outs, *grads, m.running_mean, m.running_var)
    cuda = lambda t: t.float().cuda()  # noqa: E731
    for step in range(3):
        assert_close(got[step], cuda(want["outputs"][step]), name=f"output of CUDA training step {step + 1}")
        assert_close(got[3 + step], cuda(want["input_grads"][step]),
                     name=f"input gradient of CUDA training step {step + 1}")
    assert_close(got[6], cuda(want["state"]["running_mean"]), name="running_mean on CUDA")
    assert_close(got[7], cuda(want["state"]["running_var"]), name="running_var on CUDA")


@pytest.mark.gpu
@pytest.mark.points(1)
def test_gpu_buffers_on_device(student, child):
    """after .cuda() the buffers live on the GPU, stay there through training and eval, and .cpu() brings them back"""
    xs, gs = batches(steps=2)
    m, _, _ = on_student(student, child, xs, gs, device="cuda", dtype=torch.float32)
    m.eval()
    m(xs[0].float().cuda())
    on_gpu = fetch(child.named_buffers(m), finite=False)
    m.cpu()
    on_cpu = fetch(child.named_buffers(m), finite=False)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        if name not in on_gpu:
            fail(f"{name} is not a buffer. {BUFFER_HINT}")
        if on_gpu[name].device.type != "cuda":
            fail(f"{name} is on {on_gpu[name].device} after .cuda() and training: update buffers in place "
                 "or with tensors on the input's device")
        if on_cpu[name].device.type != "cpu":
            fail(f"{name} is on {on_cpu[name].device} after .cpu()")


# --- on the GPU, or an emulated one ---------------------------------------------------------------------------


@pytest.mark.points(1)
def test_device_placement(student, child):
    """on the GPU (emulated without one): training, backward and eval keep outputs, gradients and buffers there"""
    dev = OnDevice(child)
    for kwargs in ({}, {"affine": False}, {"track_running_stats": False}):
        m = student.MyBatchNorm2d(C, **kwargs).to(dev.name)
        x = dev.randn(*SHAPE, requires_grad=True)
        y = m(x)
        y.backward(dev.randn(*SHAPE))
        m(dev.randn(*SHAPE))
        m.eval()
        z = m(dev.randn(*SHAPE))
        setting = ", ".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"
        dev.expect(f"two training steps, backward and eval ({setting})", output=y, eval_output=z,
                   **{"x.grad": x.grad, "MyBatchNorm2d": m})
