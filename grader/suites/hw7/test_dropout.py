"""Public checks of hw7's MyDropout against what nn.Dropout guarantees.

Dropout draws a random mask, so its output cannot equal torch's element for element. The checks
grade, each on its own, what any correct dropout does: the share of zeros is p, every kept element
is the input times 1 / (1 - p), the gradient is the upstream gradient through the same mask and
scale, masks are drawn afresh for every element and every call, eval mode and p = 0 are the
identity and p = 1 gives zeros (all anchored to nn.Dropout's exact answer there), p outside [0, 1]
is a ValueError, and the input is left as it was.

The inputs have no zeros (|x| >= 0.5), so a zero in the output is a dropped element. The child's
random generator is seeded before every draw, so a submission gets the same grade on every run;
the bounds are chosen so that a correct implementation, whatever order it draws its random numbers
in, passes them with overwhelming probability. By Hoeffding's inequality, the share of n independent
events with probability q is further than t from q with probability at most 2 exp(-2 n t^2).
"""
from __future__ import annotations

import math

import pytest
import torch

from kit.grader.suite import fail, fetch, sibling, student_raises

C = sibling(__file__, "common.py")
F64 = C.F64

pytestmark = pytest.mark.component("MyDropout")

SHAPE = (100, 200)  # n = 20,000 elements for the statistical checks
SMALL = (20, 50)  # the exact properties (scale, gradient, eval, p = 0 and 1)
P = 0.3  # not 0.5: keeping with probability p instead of 1 - p must show
RATE_TOL = 0.025
# A correct dropout misses p by more than RATE_TOL with probability at most 2 exp(-2 * 2e4 * 0.025^2) = 2 e^-25
# < 3e-11. The slips it catches are far outside: 1 - p = 0.7, p^2 = 0.09, 1 - (1 - p)^2 = 0.51, 0.
INDEPENDENCE_MARGIN = 0.1
# With p = 0.5, two independent masks agree on half of the positions. Over 10,000 independent pairs the share
# of agreements exceeds 0.55 with probability at most e^-50; the estimate of one half from the two observed
# rates r1, r2, namely r1 r2 + (1 - r1)(1 - r2) = 1/2 + 2 (r1 - 1/2)(r2 - 1/2), is below 0.495 only if a rate is
# off by more than 0.05 (probability at most 2 e^-50 each). A correct dropout exceeds the estimate + 0.1 with
# probability below 1e-20; a repeated mask agrees everywhere (1 against 0.5).

def inputs(seed: int, shape: tuple[int, ...] = SHAPE, dtype: torch.dtype = F64,
           device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """An input with no zeros (|x| in [0.5, 1.5)) and an upstream gradient."""
    gen = torch.Generator().manual_seed(seed)
    x = (torch.rand(shape, generator=gen, dtype=F64) + 0.5) * torch.randn(shape, generator=gen, dtype=F64).sign()
    g = torch.randn(shape, generator=gen, dtype=F64)
    return x.to(device=device, dtype=dtype), g.to(device=device, dtype=dtype)


def activation(child, x: torch.Tensor):
    """(leaf, input): a leaf copy of x in the child that collects the gradient, and x computed from it (x * 1),
    as dropout sees a layer's activations: changing it in place does not break autograd."""
    leaf = child.leaf(x)
    return leaf, leaf * 1.0


def trained(student, child, p: float, seed: int):
    """MyDropout(p) in training mode, with the child's random generator seeded."""
    m = student.MyDropout(p)
    m.train()
    child.torch.manual_seed(seed)
    return m


def kept_scaled(out: torch.Tensor, x: torch.Tensor, p: float, name: str) -> None:
    """Every element of `out` is 0 or x / (1 - p), with the usual slips named."""
    kept = out != 0
    if not kept.any():
        fail(f"{name}: every element is zero with p={p}, so no kept element shows its scale")
    where = lambda scale: torch.where(kept, x * scale, torch.zeros_like(x))  # noqa: E731
    C.close(out, where(1 / (1 - p)), f"{name} (each element 0 or x / (1 - p))", lambda: {
        "the kept elements are not scaled: multiply them by 1 / (1 - p), so that the expected output is the input":
            where(1.0),
        "the kept elements are multiplied by (1 - p): divide them by (1 - p) instead": where(1 - p),
        "the kept elements are divided by p: divide them by (1 - p), the probability of keeping one": where(1 / p),
    })


def drop_rate(out: torch.Tensor, p: float, name: str) -> None:
    """The share of zeros in `out` is p within RATE_TOL."""
    rate = float((out == 0).double().mean())
    if abs(rate - p) <= RATE_TOL:
        return
    text = f"{name}: {100 * rate:.2f}% of the elements are zero with p={p}; expected {100 * p:g}% ± {100 * RATE_TOL:g}"
    if rate == 0:
        text += "\n  likely cause: nothing is dropped in training mode (is self.training tested the right way round?)"
    elif abs(rate - (1 - p)) <= RATE_TOL:
        text += ("\n  likely cause: elements are kept with probability p: p is the probability of dropping one "
                 "(keep where torch.rand_like(x) >= p)")
    fail(text)


# --- training mode ----------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_dropout_rate(student, child):
    """training mode, p=0.3, 20,000 elements: 30% ± 2.5% of them are zeroed"""
    x, _ = inputs(seed=0)
    out = C.tensor_like(fetch(trained(student, child, P, seed=0)(x)), x, "output")
    drop_rate(out, P, "output")


@pytest.mark.points(2)
def test_dropout_scale(student, child):
    """training mode, p=0.3: every kept element is the input times 1 / (1 - p), the others are 0"""
    x, _ = inputs(seed=1, shape=SMALL)
    out = C.tensor_like(fetch(trained(student, child, P, seed=1)(x)), x, "output")
    kept_scaled(out, x, P, "output")


@pytest.mark.points(2)
def test_dropout_grad(student, child):
    """training mode, p=0.3: the input gradient is the upstream gradient times 1 / (1 - p) where the element was
    kept, 0 where it was dropped"""
    x, g = inputs(seed=2, shape=SMALL)
    m = trained(student, child, P, seed=2)
    xs, inp = activation(child, x)
    out_proxy = m(inp)
    out = C.tensor_like(fetch(out_proxy), x, "output")
    (out_proxy * g).sum().backward()
    grad = fetch(xs.grad)
    if grad is None:
        fail("the input has no gradient after backward(): build the output from x with tensor operations "
             "(no .detach(), .data or numpy)")
    kept = out != 0
    zero = torch.zeros_like(g)
    want = torch.where(kept, g / (1 - P), zero)
    if not C.matches(grad, want):
        # a wrong scale of the kept elements loses its points in dropout_scale: a gradient that follows the
        # output's own (wrong) scale through the same mask is right here
        for scale in (1.0, 1 - P, 1 / P):
            if C.matches(out, torch.where(kept, x * scale, zero)):
                want = torch.where(kept, g * scale, zero)
                break
    C.close(grad, want, "input.grad", lambda: {
        "the gradient reaches the dropped elements too: multiply by the mask in forward, so that autograd "
        "sends nothing through a dropped element": g / (1 - P),
        "the gradient is not scaled by 1 / (1 - p)": torch.where(kept, g, zero),
    })


@pytest.mark.points(1)
def test_dropout_fresh_masks(student, child):
    """training mode, p=0.5: a new mask at every call, drawn independently for every element (rows and columns
    do not share one)"""
    x, _ = inputs(seed=3)
    m = trained(student, child, 0.5, seed=3)
    first, second = fetch(m(x), m(x))
    first = C.tensor_like(first, x, "output of the first call") == 0
    second = C.tensor_like(second, x, "output of the second call") == 0
    rows, cols = SHAPE[0] // 2, SHAPE[1] // 2
    for a, b, cause in (
        (first, second, "the same mask at every call: draw a new one in every forward (not once in __init__, "
                        "and without re-seeding the random generator)"),
        (first[:rows], first[rows:], "the rows share one mask: draw one random number per element (a mask of "
                                     "x's full shape)"),
        (first[:, :cols], first[:, cols:], "the columns share one mask: draw one random number per element (a mask "
                                           "of x's full shape)"),
    ):
        agree = float((a == b).double().mean())
        ra, rb = float(a.double().mean()), float(b.double().mean())
        independent = ra * rb + (1 - ra) * (1 - rb)
        if agree > independent + INDEPENDENCE_MARGIN:
            fail(f"two sets of positions that should be dropped independently have the same mask at "
                 f"{100 * agree:.1f}% of them (independent masks: about {100 * independent:.1f}%)\n"
                 f"  likely cause: {cause}")


@pytest.mark.points(1)
def test_dropout_keeps_input(student, child):
    """training mode: the input tensor is left as it was (nn.Dropout returns a new tensor)"""
    x, _ = inputs(seed=4, shape=SMALL)
    held = child.torch.clone(x)
    out = trained(student, child, P, seed=4)(held)
    out, after = fetch(out, held)
    C.tensor_like(out, x, "output")
    in_place = ("the input was changed in place (x[mask] = 0, x.mul_(...)): compute a new tensor, "
                "e.g. x * mask / (1 - p)")
    C.close(after, x, "the input after forward", lambda: {
        in_place: out, f"{in_place} (its dropped elements zeroed)": torch.where(out == 0, torch.zeros_like(x), x)})


# --- eval mode and the edges of p ---------------------------------------------------------------------


@pytest.mark.points(1)
def test_dropout_eval(student, child):
    """eval mode, p=0.5: output equal to the input at every call, gradient equal to the upstream gradient"""
    x, g = inputs(seed=5, shape=SMALL)
    m = student.MyDropout(0.5)
    m.eval()
    xs, inp = activation(child, x)
    first_proxy = m(inp)
    first, second = fetch(first_proxy, m(inp))
    first = C.tensor_like(first, x, "output in eval mode")
    if bool((first == 0).any()):
        fail(f"{int((first == 0).sum())} of {x.numel()} elements are zero in eval mode: drop elements only when "
             "self.training is True (model.eval() sets it to False)")
    C.close(first, x, "output in eval mode (nn.Dropout: the input itself)", lambda: {
        "eval mode multiplies by (1 - p): with inverted dropout the scaling happens in training and eval mode is "
        "the identity": x * 0.5})
    C.close(second, x, "output of a second call in eval mode")
    (first_proxy * g).sum().backward()
    C.close(fetch(xs.grad), g, "input.grad in eval mode")


@pytest.mark.points(1)
def test_dropout_p_zero(student, child):
    """p=0 in training mode: output equal to the input, gradient equal to the upstream gradient"""
    x, g = inputs(seed=6, shape=SMALL)
    m = trained(student, child, 0.0, seed=6)
    xs, inp = activation(child, x)
    out = m(inp)
    C.close(C.tensor_like(fetch(out), x, "output"), x, "output with p=0 (nn.Dropout: the input itself)")
    (out * g).sum().backward()
    C.close(fetch(xs.grad), g, "input.grad with p=0")


@pytest.mark.points(1)
def test_dropout_p_one(student, child):
    """p=1 in training mode: output all zeros (no NaN), gradient zero"""
    x, g = inputs(seed=7, shape=SMALL)
    m = trained(student, child, 1.0, seed=7)
    xs, inp = activation(child, x)
    out = m(inp)
    # finite=False: the NaN of 0 / 0 is the mistake this check names
    C.close(C.tensor_like(fetch(out, finite=False), x, "output"), torch.zeros_like(x), "output with p=1", lambda: {
        "0 / 0 = NaN: with p=1 the scale 1 / (1 - p) is infinite; return zeros (e.g. x * 0) for p=1":
            torch.full_like(x, math.nan)})
    # `+ (x * 0).sum()`: an output that does not depend on x (torch.zeros_like) is accepted, with a zero gradient
    ((out * g).sum() + (xs * 0.0).sum()).backward()
    C.close(fetch(xs.grad), torch.zeros_like(g), "input.grad with p=1")


@pytest.mark.points(1)
def test_dropout_invalid_p(student):
    """p=-0.1 and p=1.5 raise ValueError when the layer is created, like nn.Dropout"""
    for p in (-0.1, 1.5):
        exc = student_raises(student.MyDropout(p))
        if "ValueError" not in exc.types:
            fail(f"MyDropout({p}) raised {exc.type}: {exc.message!r}; raise a ValueError (like nn.Dropout) that says "
                 "p must be between 0 and 1")


# --- GPU ----------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.points(1)
def test_dropout_cuda(student, child):
    """on CUDA, float32: the output stays on the GPU, 30% ± 2.5% of it is zero, kept elements are scaled by
    1 / (1 - p); eval mode is the identity"""
    x, _ = inputs(seed=8, dtype=torch.float32, device="cuda")
    m = trained(student, child, P, seed=8)
    out = m(x)
    m.eval()
    out, same = fetch(out, m(x))
    out = C.tensor_like(out, x, "output on CUDA")
    drop_rate(out, P, "output on CUDA")
    kept_scaled(out, x, P, "output on CUDA")
    C.close(same, x, "output on CUDA in eval mode")
