"""Public checks of hw8's MyConv2d against nn.Conv2d, outputs and every gradient in float64.

Each check loads the reference's random weights into the student's layer and grades one property
on data where only that property matters: the plain convolution, its gradients, then stride,
padding, dilation and groups one at a time (each with an int argument), the parameters, their
initialisation, bias=False and the group-count error. `conv_tuple_args` grades reading (height,
width) pairs; it tries each argument's pair only where the student's int form of that argument
is right, so a broken stride costs `conv_stride`'s points, not these too.
"""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kit.grader.suite import CheckFailed, assert_close, fail, fetch, reference, student_raises

pytestmark = pytest.mark.component("MyConv2d")

F64 = torch.float64
SHAPE = (2, 3, 6, 7)  # height != width: swapping them cannot go unnoticed
OUT = 4
SIZE_RULE = "H_out = (H + 2·padding - dilation·(kernel_size - 1) - 1) // stride + 1, and the same for W"


def options(kernel_size=3, stride=1, padding=0, dilation=1, groups=1, bias=True) -> dict:
    """nn.Conv2d's keyword arguments, defaults filled in (the memo's key is the same however a check names them)."""
    return {"kernel_size": kernel_size, "stride": stride, "padding": padding, "dilation": dilation,
            "groups": groups, "bias": bias}


@reference
def conv(shape: tuple[int, ...] = SHAPE, out_channels: int = OUT, seed: int = 0, device: str = "cpu",
         **kwargs) -> dict:
    """nn.Conv2d(shape[1], out_channels, **options(**kwargs)) in float64 holding random weights, on an input and
    with an upstream gradient drawn from `seed`: its state_dict, the output, and the gradients of
    sum(output * g) for the input and the parameters."""
    gen = torch.Generator().manual_seed(seed)
    ref = nn.Conv2d(shape[1], out_channels, dtype=F64, **options(**kwargs))
    state = {k: torch.randn(v.shape, generator=gen, dtype=F64) * (0.5 if k == "weight" else 1.0)
             for k, v in ref.state_dict().items()}
    ref.load_state_dict(state)
    x = torch.randn(shape, generator=gen, dtype=F64)
    ref.to(device)
    leaf = x.to(device).requires_grad_()
    out = ref(leaf)
    g = torch.randn(out.shape, generator=gen, dtype=F64).to(device)
    (out * g).sum().backward()
    return {"state": ref.state_dict(), "x": x.to(device), "g": g, "output": out.detach(), "input.grad": leaf.grad,
            "grads": {k: p.grad for k, p in ref.named_parameters()}}


def student_copy(student, ref: dict, dtype: torch.dtype = F64, **kwargs):
    """The student's layer holding the reference's state_dict, on its device, in `dtype`."""
    in_channels, out_channels = ref["x"].shape[1], ref["state"]["weight"].shape[0]
    kwargs = dict(kwargs)
    m = student.MyConv2d(in_channels, out_channels, kwargs.pop("kernel_size", 3), **kwargs)
    m = m.to(device=ref["x"].device, dtype=dtype)
    m.load_state_dict(ref["state"])
    return m


def close(actual, expected, name: str, mistakes=None, rule: str = SIZE_RULE, **tolerances) -> None:
    """assert_close; a wrong output shape names the size `rule`, and the known mistakes (a function returning
    {cause: value}) are computed only on failure."""
    try:
        assert_close(actual, expected, name=name, **tolerances)
        return
    except CheckFailed:
        known = mistakes() if mistakes else {}
    if isinstance(actual, torch.Tensor) and isinstance(expected, torch.Tensor) and actual.shape != expected.shape \
            and name.startswith("output"):
        text = f"{name}: shape {tuple(actual.shape)} but expected {tuple(expected.shape)}: {rule}"
        cause = next((cause for cause, wrong in known.items()
                      if matches(actual, wrong, check_dtype=False, check_device=False)), None)
        fail(text + (f"\n  likely cause: {cause}" if cause else ""))
    assert_close(actual, expected, name=name, mistakes=known, **tolerances)


def matches(actual, expected, **checks) -> bool:
    """Whether assert_close(actual, expected, **checks) would pass."""
    try:
        assert_close(actual, expected, name="", **checks)
    except CheckFailed:
        return False
    return True


def output_mistakes(ref: dict, **kwargs):
    """{cause: output} of the usual slips, by F.conv2d here in the grader (computed only when a check fails)."""
    def made() -> dict:
        o = options(**kwargs)
        args = {k: o[k] for k in ("stride", "padding", "dilation", "groups")}
        x, w, b = ref["x"], ref["state"]["weight"], ref["state"].get("bias")
        out = {"the kernel is flipped (a true convolution): nn.Conv2d computes a cross-correlation, use the weight "
               "as it is": F.conv2d(x, w.flip(-2, -1), b, **args)}
        if b is not None:
            out["the bias is not added"] = F.conv2d(x, w, None, **args)
        return out
    return made


def run_case(student, child, ref: dict, **kwargs):
    """The student's layer (proxy), the input leaf and the output on the reference's input."""
    m = student_copy(student, ref, **kwargs)
    xs = child.leaf(ref["x"])
    return m, xs, m(xs)


def output_check(student, child, what: str, **kwargs) -> None:
    """Output, then input gradient, of one option against nn.Conv2d."""
    ref = conv(**kwargs)
    m, xs, out = run_case(student, child, ref, **kwargs)
    close(fetch(out), ref["output"], f"output with {what}", output_mistakes(ref, **kwargs))
    (out * ref["g"]).sum().backward()
    close(fetch(xs.grad), ref["input.grad"], f"input.grad with {what}")


# --- parameters ----------------------------------------------------------------------------------


@pytest.mark.points(1)
def test_conv_parameters(student, child):
    """MyConv2d(3, 4, 3): weight (4, 3, 3, 3) and bias (4,) are parameters; loads nn.Conv2d's state_dict (strict)"""
    m = student.MyConv2d(3, 4, 3)
    shapes = fetch(child.suite.shapes(child.named_parameters(m)))
    want = {"weight": (4, 3, 3, 3), "bias": (4,)}
    if shapes != want:
        fail(f"named_parameters() gives {shapes}; expected {want}: create weight and bias as nn.Parameter(...), "
             "weight of shape (out_channels, in_channels // groups, kernel_height, kernel_width)")
    state = conv()["state"]
    m = student.MyConv2d(3, 4, 3).double()
    m.load_state_dict(state)
    close(fetch(m.state_dict()), state, "state_dict() after load_state_dict")


INIT_IN, INIT_OUT = 16, 256
INIT_BOUND = 1 / math.sqrt(INIT_IN * 3 * 3)
# MyConv2d(16, 256, 3): 36,864 weights and 256 biases uniform in ±1/12, standard deviation 1/12/sqrt(3). For a
# uniform sample the relative standard error of the sample standard deviation is sqrt(0.8 / n) / 2: 0.23% for
# the weights and 2.8% for the biases, so the 10% and 25% margins below are 40 and 9 standard errors wide.


def spread_check(name: str, values, bound: float, margin: float, fan_in_text: str) -> None:
    """`values` lie in ±bound and spread like a uniform distribution over it (standard deviation bound/sqrt(3))."""
    if values is None:
        fail(f"{name} is None")
    values = values.double().flatten()
    top = float(values.abs().max())
    if top > bound * (1 + 1e-6):
        fail(f"initial {name} values reach {top:.4g}, outside ±1/sqrt(fan_in) = ±{bound:.4g} ({fan_in_text})"
             + ("\n  likely cause: kaiming_uniform_ with its default a=0 (bound sqrt(6/fan_in)): nn.Conv2d uses "
                "a=sqrt(5), which is uniform in ±1/sqrt(fan_in)" if top > 2 * bound else ""))
    std, want = float(values.std()), bound / math.sqrt(3)
    if std == 0:
        fail(f"all initial {name} values are {float(values[0]):g}: nn.Conv2d draws them uniform in ±1/sqrt(fan_in) "
             f"({fan_in_text})")
    if not (1 - margin) * want < std < (1 + margin) * want:
        fail(f"initial {name} values have standard deviation {std:.4g}; uniform in ±{bound:.4g} gives {want:.4g} "
             f"({fan_in_text})")


@pytest.mark.points(1)
def test_conv_init(student):
    """MyConv2d(16, 256, 3) starts like nn.Conv2d: weight and bias uniform in ±1/sqrt(fan_in), fan_in = 16·3·3"""
    m = student.MyConv2d(INIT_IN, INIT_OUT, 3)
    weight, bias = fetch(m.weight, m.bias)
    text = f"fan_in = in_channels // groups · kernel_height · kernel_width = {INIT_IN}·3·3"
    spread_check("weight", weight, INIT_BOUND, 0.1, text)
    spread_check("bias", bias, INIT_BOUND, 0.25, text)


@pytest.mark.points(1)
def test_conv_no_bias(student, child):
    """bias=False: no bias (None, not in state_dict()), output matches"""
    ref = conv(seed=1, bias=False)
    m = student.MyConv2d(3, OUT, 3, bias=False)
    bias, keys = fetch(m.bias, child.list(m.state_dict().keys()))
    if bias is not None or keys != ["weight"]:
        fail(f"with bias=False, bias must be None (register_parameter('bias', None)) and state_dict() holds only "
             f"'weight'; found keys {keys}")
    m = student_copy(student, ref, bias=False)
    close(fetch(m(ref["x"])), ref["output"], "output", output_mistakes(ref, bias=False))


@pytest.mark.points(1)
def test_conv_groups_error(student):
    """MyConv2d(4, 6, 3, groups=3) raises ValueError: 4 input channels do not split into 3 groups, like nn.Conv2d"""
    exc = student_raises(student.MyConv2d(4, 6, 3, groups=3))
    if "ValueError" not in exc.types:
        fail(f"MyConv2d(4, 6, 3, groups=3) raised {exc.type}: {exc.message!r}; raise a ValueError (like nn.Conv2d) "
             "that says in_channels must be divisible by groups (an assert disappears under python -O)")


# --- the convolution ---------------------------------------------------------------------------------


@pytest.mark.points(2)
def test_conv_forward(student, child):
    """MyConv2d(3, 4, 3) on a (2, 3, 6, 7) input: output matches nn.Conv2d"""
    ref = conv()
    m = student_copy(student, ref)
    close(fetch(m(ref["x"])), ref["output"], "output", output_mistakes(ref))


@pytest.mark.points(2)
def test_conv_input_grad(student, child):
    """gradient of the input, with a random upstream gradient"""
    ref = conv(seed=2)
    m, xs, out = run_case(student, child, ref)
    close(fetch(out), ref["output"], "output", output_mistakes(ref))
    (out * ref["g"]).sum().backward()
    got = fetch(xs.grad)
    if got is None:
        fail("the input has no gradient after backward(): build the output from x with tensor operations "
             "(no .detach(), .data or numpy)")
    close(got, ref["input.grad"], "input.grad")


@pytest.mark.points(2)
def test_conv_param_grads(student, child):
    """weight.grad and bias.grad"""
    ref = conv(seed=2)
    m, xs, out = run_case(student, child, ref)
    close(fetch(out), ref["output"], "output", output_mistakes(ref))
    (out * ref["g"]).sum().backward()
    weight, bias = fetch(m.weight.grad, m.bias.grad)
    for name, got in (("weight", weight), ("bias", bias)):
        if got is None:
            fail(f"{name}.grad is None after backward(): is {name} an nn.Parameter used in forward?")
        close(got, ref["grads"][name], f"{name}.grad")


# --- options, one at a time ------------------------------------------------------------------------------

INT_OPTIONS = {"stride": 2, "padding": 1, "dilation": 2}


@pytest.mark.points(1)
def test_conv_stride(student, child):
    """stride=2: output and input gradient"""
    output_check(student, child, "stride=2", stride=2)


@pytest.mark.points(1)
def test_conv_padding(student, child):
    """padding=1 (zeros around the input): output and input gradient"""
    output_check(student, child, "padding=1", padding=1)


@pytest.mark.points(1)
def test_conv_dilation(student, child):
    """dilation=2 (a 3x3 kernel spread over 5x5): output and input gradient"""
    output_check(student, child, "dilation=2", dilation=2)


@pytest.mark.points(2)
def test_conv_groups(student, child):
    """MyConv2d(4, 6, 3, groups=2): weight (6, 2, 3, 3); output, input and weight gradients"""
    ref = conv(shape=(2, 4, 6, 7), out_channels=6, seed=3, groups=2)
    shapes = fetch(child.suite.shapes(student.MyConv2d(4, 6, 3, groups=2).state_dict()))
    if shapes.get("weight") != (6, 2, 3, 3):
        fail(f"MyConv2d(4, 6, 3, groups=2) has a weight of shape {shapes.get('weight')}; expected (6, 2, 3, 3): "
             "every output channel sees only the in_channels // groups input channels of its group")
    m, xs, out = run_case(student, child, ref, groups=2)
    close(fetch(out), ref["output"], "output with groups=2", output_mistakes(ref, groups=2))
    (out * ref["g"]).sum().backward()
    got_x, got_w = fetch(xs.grad, m.weight.grad)
    close(got_x, ref["input.grad"], "input.grad with groups=2")
    close(got_w, ref["grads"]["weight"], "weight.grad with groups=2")


TUPLES = {"kernel_size": (2, 3), "stride": (2, 1), "padding": (1, 2), "dilation": (2, 1)}


def tuple_mistakes(ref: dict, argument: str, pair: tuple[int, int]):
    def made() -> dict:
        args = {"stride": 1, "padding": 0, "dilation": 1}
        x, w, b = ref["x"], ref["state"]["weight"], ref["state"]["bias"]
        out = {}
        if argument != "kernel_size":
            hint = (": F.pad takes (left, right, top, bottom), the width's padding first"
                    if argument == "padding" else "")
            out[f"{argument}'s pair read as (width, height): it is (height, width){hint}"] = \
                F.conv2d(x, w, b, **{**args, argument: pair[::-1]})
            out[f"only {argument}[0] used: apply {argument}[1] to the width"] = \
                F.conv2d(x, w, b, **{**args, argument: (pair[0], pair[0])})
        return out
    return made


def works(value, expected: torch.Tensor) -> bool:
    """Whether the student's `value` (a proxy, fetched alone: record nothing else before) matches `expected`;
    raising counts as not."""
    try:
        return matches(fetch(value), expected)
    except CheckFailed:
        return False


@pytest.mark.points(2)
def test_conv_tuple_args(student, child):
    """(height, width) pairs: kernel_size=(2, 3), stride=(2, 1), padding=(1, 2), dilation=(2, 1), one at a time"""
    for argument, pair in TUPLES.items():
        if argument in INT_OPTIONS:
            # a pair is tried only where the int form is right: conv_stride, conv_padding, conv_dilation grade that
            value = INT_OPTIONS[argument]
            ref = conv(**{argument: value})
            if not works(student_copy(student, ref, **{argument: value})(ref["x"]), ref["output"]):
                continue
        ref = conv(**{argument: pair})
        close(fetch(student_copy(student, ref, **{argument: pair})(ref["x"])), ref["output"],
              f"output with {argument}={pair}", tuple_mistakes(ref, argument, pair))


# --- GPU ----------------------------------------------------------------------------------------------


@pytest.mark.gpu
@pytest.mark.points(1)
def test_conv_cuda(student, child):
    """on CUDA: output, input and parameter gradients of MyConv2d(4, 6, 3, padding=1, groups=2) match nn.Conv2d"""
    kwargs = {"padding": 1, "groups": 2}
    ref = conv(shape=(2, 4, 6, 7), out_channels=6, seed=4, device="cuda", **kwargs)
    m, xs, out = run_case(student, child, ref, **kwargs)
    close(fetch(out), ref["output"], "output on CUDA")
    (out * ref["g"]).sum().backward()
    got_x, got_p = fetch(xs.grad, child.grads(m))
    close(got_x, ref["input.grad"], "input.grad on CUDA")
    close(got_p, ref["grads"], "parameter gradients on CUDA")


@reference
def autocast_case(seed: int = 5) -> dict:
    """conv(...) on CUDA in float32, and its output under autocast(float16) (torch's: float16)."""
    torch.manual_seed(seed)
    ref = conv(seed=seed, device="cuda", padding=1)
    layer = nn.Conv2d(SHAPE[1], OUT, 3, padding=1, device="cuda")
    layer.load_state_dict({k: v.float() for k, v in ref["state"].items()})
    x = ref["x"].float()
    with torch.autocast("cuda", dtype=torch.float16):
        out = layer(x).detach()
    return {"state": {k: v.float() for k, v in ref["state"].items()}, "x": x, "output": out}


@pytest.mark.gpu
@pytest.mark.points(1)
def test_conv_cuda_autocast(student, child):
    """on CUDA under autocast(float16): the output matches nn.Conv2d's to 1e-2 (float16 or float32 accepted)"""
    ref = autocast_case()
    m = student.MyConv2d(SHAPE[1], OUT, 3, padding=1).cuda()
    m.load_state_dict(ref["state"])
    out = fetch(child.autocast(m, ref["x"], device_type="cuda", dtype=torch.float16))
    if not isinstance(out, torch.Tensor) or out.dtype not in (torch.float16, torch.float32):
        fail(f"under autocast(float16) the output should be a float16 or float32 tensor, got {out!r:.80}")
    close(out.float(), ref["output"].float(), "output under autocast", rtol=1e-2, atol=1e-2)
