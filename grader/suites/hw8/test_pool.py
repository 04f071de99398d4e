"""Public checks of hw8's MyMaxPool2d against nn.MaxPool2d, outputs and input gradients in float64.

Random inputs have no ties, so the gradient must reach exactly torch's elements (each window's maximum,
summed where windows overlap). Where a window holds several equal maxima, torch sends the gradient to
the first of them; any way of passing the window's gradient on to its maxima is accepted instead: all
to one of them, or shared among them with weights in [0, 1] that add up to 1 (an even split, as
`amax` gives, included). `pool_ties` grades that on windows that do not overlap; the other checks
have no ties. Padding is checked on negative inputs, where padding with 0 instead of -inf shows.
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kit.grader.suite import fail, fetch, reference, sibling

CONV = sibling(__file__, "test_conv.py")
F64 = torch.float64

pytestmark = pytest.mark.component("MyMaxPool2d")

SHAPE = (2, 3, 7, 9)
DEFAULT_STRIDE = "stride=None means stride = kernel_size (windows side by side), not 1"
SIZE_RULE = "H_out = (H + 2·padding - kernel_size) // stride + 1, and the same for W"


def close(actual, expected, name: str, mistakes=None) -> None:
    """test_conv.close with pooling's size rule."""
    CONV.close(actual, expected, name, mistakes, rule=SIZE_RULE)


@reference
def pool(shape: tuple[int, ...] = SHAPE, seed: int = 0, kernel_size=3, stride=2, padding=0, *,
         data: str = "normal", device: str = "cpu") -> dict:
    """nn.MaxPool2d(kernel_size, stride, padding) on an input drawn from `seed` ("normal"; "negative": every
    value below -0.1; "ties": integers 0, 1, 2) and its output and input gradient for an upstream gradient g."""
    gen = torch.Generator().manual_seed(seed)
    if data == "ties":
        x = torch.randint(0, 3, shape, generator=gen).to(F64)
    else:
        x = torch.randn(shape, generator=gen, dtype=F64)
        if data == "negative":
            x = -(x.abs() + 0.1)
    ref = nn.MaxPool2d(kernel_size, stride, padding)
    leaf = x.to(device).requires_grad_()
    out = ref(leaf)
    g = torch.randn(out.shape, generator=gen, dtype=F64).to(device)
    (out * g).sum().backward()
    return {"x": x.to(device), "g": g, "output": out.detach(), "input.grad": leaf.grad}


def run_case(student, child, ref: dict, *args, **kwargs):
    """The student's layer, the input leaf and the output (proxies) on the reference's input."""
    xs = child.leaf(ref["x"])
    return xs, student.MyMaxPool2d(*args, **kwargs)(xs)


def zero_padded(ref: dict, kernel_size, stride, padding) -> torch.Tensor:
    """The output of max-pooling the input padded with zeros: the classic slip."""
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return F.max_pool2d(F.pad(ref["x"], (pw, pw, ph, ph)), kernel_size, stride)


# --- the pooling ---------------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_pool_forward(student, child):
    """MyMaxPool2d(3, stride=2) on a (2, 3, 7, 9) input (overlapping windows): output matches nn.MaxPool2d"""
    ref = pool()
    xs, out = run_case(student, child, ref, 3, stride=2)
    close(fetch(out), ref["output"], "output")


@pytest.mark.points(2)
def test_pool_input_grad(student, child):
    """gradient of the input: each window's upstream gradient reaches its maximum, summed where windows overlap"""
    ref = pool(seed=1)
    xs, out = run_case(student, child, ref, 3, stride=2)
    close(fetch(out), ref["output"], "output")
    (out * ref["g"]).sum().backward()
    got = fetch(xs.grad)
    if got is None:
        fail("the input has no gradient after backward(): build the output from x with tensor operations "
             "(no .detach(), .data or numpy)")
    close(got, ref["input.grad"], "input.grad")


@pytest.mark.points(1)
def test_pool_default_stride(student, child):
    """MyMaxPool2d(2) and MyMaxPool2d(3), stride left out: windows side by side (stride = kernel_size)"""
    for kernel_size, shape in ((2, (2, 3, 6, 8)), (3, (1, 2, 9, 7))):
        ref = pool(shape=shape, seed=2, kernel_size=kernel_size, stride=None)
        out = fetch(student.MyMaxPool2d(kernel_size)(ref["x"]))
        if isinstance(out, torch.Tensor) and out.shape != ref["output"].shape:
            fail(f"MyMaxPool2d({kernel_size}) on a {shape} input gave shape {tuple(out.shape)}; expected "
                 f"{tuple(ref['output'].shape)}: {DEFAULT_STRIDE}")
        close(out, ref["output"], f"output of MyMaxPool2d({kernel_size})",
                   lambda ref=ref, k=kernel_size: {DEFAULT_STRIDE: F.max_pool2d(ref["x"], k, 1)})


@pytest.mark.points(2)
def test_pool_padding(student, child):
    """padding=1 on an input whose values are all negative: a padded position is never the maximum (output and
    input gradient)"""
    ref = pool(seed=3, padding=1, data="negative")
    xs, out = run_case(student, child, ref, 3, stride=2, padding=1)
    close(fetch(out), ref["output"], "output with padding=1", lambda: {
        "padded with zeros: pad with -inf (F.pad(x, ..., value=-math.inf)), so that padding is never the maximum":
            zero_padded(ref, 3, 2, 1)})
    (out * ref["g"]).sum().backward()
    close(fetch(xs.grad), ref["input.grad"], "input.grad with padding=1")


TUPLES = {"kernel_size": ((2, 3), {"stride": 1}), "stride": ((2, 1), {"kernel_size": 2}),
          "padding": ((1, 0), {"kernel_size": 2, "stride": 1})}


@pytest.mark.points(1)
def test_pool_tuple_args(student, child):
    """(height, width) pairs: kernel_size=(2, 3), stride=(2, 1), padding=(1, 0), one at a time"""
    # the int forms, graded by pool_forward and pool_padding: a pair is tried only where its int form is right
    int_forms = {"stride": ((3, 2, 0), pool()), "padding": ((3, 2, 1), pool(seed=3, padding=1, data="negative"))}
    for argument, (pair, others) in TUPLES.items():
        if argument in int_forms:
            args, ref = int_forms[argument]
            if not CONV.works(student.MyMaxPool2d(*args)(ref["x"]), ref["output"]):
                continue
        kwargs = {"kernel_size": 3, "stride": 2, **others, argument: pair}
        ref = pool(seed=4, data="negative" if argument == "padding" else "normal", **kwargs)

        def mistakes(kwargs=kwargs, argument=argument, ref=ref) -> dict:
            pair = kwargs[argument]
            swapped = {**kwargs, argument: pair[::-1]}
            first = {**kwargs, argument: (pair[0], pair[0])}
            out = {}
            for cause, wrong in ((f"{argument}'s pair read as (width, height): it is (height, width)", swapped),
                                 (f"only {argument}[0] used: apply {argument}[1] to the width", first)):
                ph, pw = wrong["padding"] if isinstance(wrong.get("padding"), tuple) else (0, 0)
                kernel = wrong["kernel_size"]
                kh, kw = kernel if isinstance(kernel, tuple) else (kernel, kernel)
                if 2 * ph <= kh and 2 * pw <= kw:  # torch refuses padding over half the kernel
                    out[cause] = F.max_pool2d(ref["x"], **wrong)
            return out

        close(fetch(student.MyMaxPool2d(**kwargs)(ref["x"])), ref["output"],
                   f"output with {argument}={pair}", mistakes)


@pytest.mark.points(1)
def test_pool_ties(student, child):
    """windows side by side holding equal maxima (inputs 0, 1, 2): output matches; each window's gradient goes to
    its maxima (to one of them, or shared with weights in [0, 1] adding up to 1)"""
    ref = pool(shape=(2, 3, 6, 8), seed=5, kernel_size=2, stride=2, data="ties")
    xs, out = run_case(student, child, ref, 2, stride=2)
    close(fetch(out), ref["output"], "output")
    (out * ref["g"]).sum().backward()
    grad = fetch(xs.grad)
    if grad is None:
        fail("the input has no gradient after backward()")
    close(grad.shape, ref["x"].shape, "input.grad's shape")
    tie_check(ref["x"], ref["g"], grad, 2)


def tie_check(x: torch.Tensor, g: torch.Tensor, grad: torch.Tensor, k: int, tol: float = 1e-7) -> None:
    """`grad` passes each k x k window's upstream gradient (g) on to the window's maxima only, in shares in
    [0, 1] that add up to 1. Windows side by side (stride k), covering x."""
    windows = lambda t: t.unfold(2, k, k).unfold(3, k, k).flatten(-2)  # noqa: E731 - (N, C, H/k, W/k, k·k)
    xw, gw = windows(x), windows(grad.to(x.dtype))
    top = xw == xw.amax(dim=-1, keepdim=True)
    ties = int((top.sum(-1) > 1).sum())
    off = (gw * ~top).abs()
    if off.max() > tol:
        fail(f"an element that is not the maximum of its window got gradient {off.max():.4g}: the gradient of a "
             f"window goes to its maximum (windows with tied maxima: {ties})")
    share = gw / g.unsqueeze(-1)  # each maximum's share of its window's upstream gradient
    total = share.sum(-1)
    if (total - 1).abs().max() > 1e-6:
        fail(f"a window passes on {float(total.flatten()[(total - 1).abs().argmax()]):.4g} times its upstream "
             f"gradient to its maxima; expected all of it, once ({ties} windows have tied maxima)")
    if share.min() < -1e-6 or share.max() > 1 + 1e-6:
        fail("tied maxima got shares of their window's gradient outside [0, 1] (they must add up to 1, each "
             "between 0 and 1)")


# --- GPU ----------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.points(1)
def test_pool_cuda(student, child):
    """on CUDA: MyMaxPool2d(3, stride=2, padding=1) output and input gradient match nn.MaxPool2d"""
    ref = pool(seed=6, padding=1, device="cuda")
    xs, out = run_case(student, child, ref, 3, stride=2, padding=1)
    close(fetch(out), ref["output"], "output on CUDA")
    (out * ref["g"]).sum().backward()
    close(fetch(xs.grad), ref["input.grad"], "input.grad on CUDA")

