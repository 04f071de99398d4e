"""hw1 public checks: MyLinear against nn.Linear, outputs and every gradient."""
import math

import pytest
import torch
from torch import nn

from kit.grader.suite import OnDevice, assert_close, fail, fetch, reference

pytestmark = pytest.mark.component("MyLinear")
F64 = torch.float64


@reference
def linear(in_features=5, out_features=3, bias=True, seed=0, device="cpu", x_shape=(4,), grad_seed=1) -> dict:
    """nn.Linear in float64 after torch.manual_seed(seed), an input x drawn right after it, and the output;
    then, after torch.manual_seed(grad_seed), an upstream gradient g and the gradients of sum(output * g)."""
    torch.manual_seed(seed)
    ref = nn.Linear(in_features, out_features, bias=bias, dtype=F64, device=device)
    x = torch.randn(*x_shape, in_features, dtype=F64, device=device)
    out = ref(x).detach()
    torch.manual_seed(grad_seed)
    g = torch.randn(*x_shape, out_features, dtype=F64, device=device)
    xr = x.clone().requires_grad_(True)
    (ref(xr) * g).sum().backward()
    return {"state": ref.state_dict(), "x": x, "g": g, "output": out, "input.grad": xr.grad,
            "weight.grad": ref.weight.grad, "bias.grad": ref.bias.grad if bias else None}


NO_BIAS = "with bias=False, `bias` must be None (self.register_parameter('bias', None))"


def copy_of(student, state):
    """The student's layer holding the reference's weights (a state_dict), in float64.

    With bias=False, `bias` must be None before anything is loaded: otherwise the strict
    load_state_dict would fail on a missing 'bias' key, which names a symptom, not the mistake.
    """
    out_features, in_features = state["weight"].shape
    m = student.MyLinear(in_features, out_features, bias="bias" in state)
    if "bias" not in state and fetch(m.bias, finite=False) is not None:
        fail(NO_BIAS)
    m = m.to(device=state["weight"].device, dtype=F64)
    m.load_state_dict(state)
    return m


def grads_of(student, child, ref):
    """(input, weight, bias) gradients of sum(y * g) for the student's layer and the reference `linear(...)`."""
    m = copy_of(student, ref["state"])
    xs = child.leaf(ref["x"])
    (m(xs) * ref["g"]).sum().backward()
    got = fetch(xs.grad, m.weight.grad, m.bias.grad if ref["bias.grad"] is not None else m.weight, finite=False)
    return got, (ref["input.grad"], ref["weight.grad"], ref["bias.grad"])


@pytest.mark.points(2)
def test_forward(student):
    """output on a (batch, in_features) input matches nn.Linear"""
    ref = linear()
    x = ref["x"]
    assert_close(fetch(copy_of(student, ref["state"])(x)), ref["output"], name="output",
                 mistakes={"the bias is not added": x @ ref["state"]["weight"].T})


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 1, 3, 5)], ids=["3d", "4d"])
def test_forward_leading_dims(student, shape):
    """any number of leading dimensions, like nn.Linear"""
    ref = linear(x_shape=shape[:-1])
    assert_close(fetch(copy_of(student, ref["state"])(ref["x"])), ref["output"], name="output")


def test_input_grad(student, child):
    """gradient with respect to the input"""
    (got, _, _), (want, _, _) = grads_of(student, child, linear())
    assert_close(got, want, name="input.grad")


@pytest.mark.points(2)
def test_weight_grad(student, child):
    """gradient with respect to the weight"""
    (_, got, _), (_, want, _) = grads_of(student, child, linear(x_shape=(2, 4)))
    if got is None:
        fail("weight.grad is None after backward: the weight does not take part in the output's graph")
    assert_close(got, want, name="weight.grad",
                 mistakes={"the weight gradient is the transpose of the expected one": want.T})


def test_bias_grad(student, child):
    """gradient with respect to the bias"""
    (_, _, got), (_, _, want) = grads_of(student, child, linear(x_shape=(2, 4)))
    if got is None:
        fail("bias.grad is None after backward: the bias never reaches the output "
             "(is it added? is it detached, or a plain tensor instead of an nn.Parameter?)")
    assert_close(got, want, name="bias.grad",
                 mistakes={"the bias gradient is summed over the last batch dimension only": want / 2})


def test_no_bias(student, child):
    """bias=False: no bias parameter, output is x @ weight.T"""
    ref = linear(bias=False)
    m = copy_of(student, ref["state"])
    keys, out = fetch(child.list(m.state_dict()), m(ref["x"]))
    if keys != ["weight"]:
        fail(f"with bias=False, state_dict() should hold only 'weight', not {keys}")
    assert_close(out, ref["output"], name="output")


def test_loads_state_dict(student):
    """loads an nn.Linear state_dict (non-square, non-symmetric weight)"""
    want = linear(7, 3, seed=3)["state"]
    m = student.MyLinear(7, 3).double()
    before = fetch(m.state_dict(), finite=False)
    assert_close({k: v.shape for k, v in before.items()},
                 {k: v.shape for k, v in want.items()}, name="state_dict shapes")
    m.load_state_dict(want)
    assert_close(fetch(m.state_dict()), want, name="state_dict")


def test_init_bounds(student):
    """initial weight and bias lie in ±1/sqrt(in_features), like nn.Linear"""
    in_features = 400
    weight, bias = fetch(student.MyLinear(in_features, 50).weight, student.MyLinear(in_features, 50).bias)
    bound = 1 / math.sqrt(in_features)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is None:
            fail(f"{name} is None")
        if t.abs().max() > bound * (1 + 1e-6):
            fail(f"{name} has values up to {t.abs().max():.4g}, outside ±1/sqrt(in_features) = ±{bound:.4g}")


def uniform_problem(name: str, t: torch.Tensor, bound: float) -> str | None:
    """What keeps `t` from looking uniform in ±bound: its spread first (a normal draw is far too wide,
    a constant has none), then its mean, then empty ranges; None if nothing."""
    t = t.double().flatten()
    want_std = bound / math.sqrt(3)
    if t.std() == 0:
        return (f"all initial {name} values are equal ({t[0].item():.4g}): initialise them randomly, "
                f"uniform in ±1/sqrt(in_features)")
    if not 0.9 * want_std < t.std() < 1.1 * want_std:
        ratio = t.std().item() / want_std
        hint = (f" ({ratio:.0f}× too wide: drawn from a normal distribution (randn)? use uniform_(-bound, bound))"
                if ratio > 3 else "")
        return (f"initial {name} values have standard deviation {t.std():.3g}; uniform in ±{bound:.3g} gives "
                f"{want_std:.3g}{hint}")
    if abs(t.mean()) > 0.05 * bound:
        return f"initial {name} values have mean {t.mean():.3g}, expected about 0"
    counts = torch.histc(t, bins=10, min=-bound, max=bound)
    if counts.min() < 0.7 * counts.mean():
        return f"initial {name} values are not uniform in ±1/sqrt(in_features) (some ranges are nearly empty)"
    return None


def test_init_uniform(student):
    """initial weight and bias are spread uniformly in ±1/sqrt(in_features) (not constant, not normal, not zeros)"""
    weight, bias = fetch(student.MyLinear(400, 50).weight, student.MyLinear(100, 4000).bias)
    for name, t, bound in (("weight", weight, 1 / math.sqrt(400)), ("bias", bias, 1 / math.sqrt(100))):
        if t is None:
            fail(f"{name} is None")
        problem = uniform_problem(name, t, bound)
        if problem:
            fail(problem)


def test_parameters_registered(student, child):
    """weight and bias are nn.Parameters: in parameters(), state_dict() and moved by .to()"""
    m = student.MyLinear(5, 3)
    names = fetch(child.list(m.named_parameters()), finite=False)
    names = [n for n, _ in names]
    if sorted(names) != ["bias", "weight"]:
        fail(f"parameters() yields {names}; expected 'weight' and 'bias' (wrap them in nn.Parameter)")
    m.to(torch.float64)
    weight_dtype, bias_dtype = fetch(m.weight.dtype, m.bias.dtype)
    if (weight_dtype, bias_dtype) != (torch.float64, torch.float64):
        fail(f".to(torch.float64) left weight as {weight_dtype} and bias as {bias_dtype}")


@reference
def autocast_case() -> dict:
    """linear(device="cuda") turned float32, a float32 input drawn right after its init, and its output
    under autocast(float16)."""
    torch.manual_seed(0)
    ref = nn.Linear(5, 3, dtype=F64, device="cuda").float()
    x = torch.randn(4, 5, device="cuda")
    with torch.autocast("cuda", dtype=torch.float16):
        want = ref(x).detach()
    return {"state": ref.state_dict(), "x": x, "output": want}


@pytest.mark.gpu
def test_cuda_forward_backward(student, child):
    """on CUDA: output and gradients match nn.Linear on CUDA"""
    ref = linear(device="cuda")
    m = copy_of(student, ref["state"])
    out = m(ref["x"])
    assert_close(fetch(out), ref["output"], name="output")
    (gx, gw, gb), (wx, ww, wb) = grads_of(student, child, ref)
    assert_close(gx, wx, name="input.grad")
    assert_close(gw, ww, name="weight.grad")
    assert_close(gb, wb, name="bias.grad")


@pytest.mark.gpu
def test_cuda_autocast(student, child):
    """under autocast(float16) on CUDA the layer runs and matches loosely"""
    ref = autocast_case()
    m = student.MyLinear(5, 3).cuda()
    m.load_state_dict(ref["state"])
    out = fetch(child.autocast(m, ref["x"], device_type="cuda", dtype=torch.float16))
    assert_close(out, ref["output"], name="output under autocast", rtol=1e-2, atol=1e-2)


# --- on the GPU, or an emulated one ------------------------------------------------------------------------


def test_device_placement(student, child):
    """on the GPU (emulated without one): forward and backward keep every tensor on the input's device"""
    dev = OnDevice(child)
    for bias in (True, False):
        m = student.MyLinear(5, 3, bias=bias).to(dev.name)
        x = dev.randn(2, 4, 5, requires_grad=True)
        y = m(x)
        y.backward(dev.randn(2, 4, 3))
        dev.expect(f"forward and backward (bias={bias})", output=y, **{"x.grad": x.grad, "MyLinear": m})
