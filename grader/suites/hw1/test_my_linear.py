"""hw1 public checks: MyLinear against nn.Linear, outputs and every gradient."""
import math

import pytest
import torch
from torch import nn

from kit.grader.suite import assert_close, fail, fetch

pytestmark = pytest.mark.component("MyLinear")


def reference(in_features=5, out_features=3, bias=True, seed=0, device="cpu"):
    torch.manual_seed(seed)
    return nn.Linear(in_features, out_features, bias=bias, dtype=torch.float64, device=device)


def copy_of(student, ref):
    """The student's layer holding the reference's weights, in float64."""
    m = student.MyLinear(ref.in_features, ref.out_features, bias=ref.bias is not None)
    m = m.to(device=ref.weight.device, dtype=torch.float64)
    m.load_state_dict(ref.state_dict())
    return m


def grads_of(student, child, ref, x, seed=1):
    """(input, weight, bias) gradients of sum(y * g) for the student's layer and the reference."""
    m = copy_of(student, ref)
    torch.manual_seed(seed)
    g = torch.randn(*x.shape[:-1], ref.out_features, dtype=torch.float64, device=x.device)
    xs = child.leaf(x)
    (m(xs) * g).sum().backward()
    xr = x.clone().requires_grad_(True)
    (ref(xr) * g).sum().backward()
    got = fetch(xs.grad, m.weight.grad, m.bias.grad if ref.bias is not None else m.weight)
    return got, (xr.grad, ref.weight.grad, ref.bias.grad if ref.bias is not None else None)


@pytest.mark.points(2)
def test_forward(student):
    """output on a (batch, in_features) input matches nn.Linear"""
    ref = reference()
    x = torch.randn(4, 5, dtype=torch.float64)
    assert_close(fetch(copy_of(student, ref)(x)), ref(x).detach(), name="output",
                 mistakes={"the bias is not added": (x @ ref.weight.T).detach()})


@pytest.mark.parametrize("shape", [(2, 3, 5), (2, 1, 3, 5)], ids=["3d", "4d"])
def test_forward_leading_dims(student, shape):
    """any number of leading dimensions, like nn.Linear"""
    ref = reference()
    x = torch.randn(*shape, dtype=torch.float64)
    assert_close(fetch(copy_of(student, ref)(x)), ref(x).detach(), name="output")


def test_input_grad(student, child):
    """gradient with respect to the input"""
    ref = reference()
    (got, _, _), (want, _, _) = grads_of(student, child, ref, torch.randn(4, 5, dtype=torch.float64))
    assert_close(got, want, name="input.grad")


@pytest.mark.points(2)
def test_weight_grad(student, child):
    """gradient with respect to the weight"""
    ref = reference()
    x = torch.randn(2, 4, 5, dtype=torch.float64)
    (_, got, _), (_, want, _) = grads_of(student, child, ref, x)
    if got is None:
        fail("weight.grad is None after backward: the weight does not take part in the output's graph")
    assert_close(got, want, name="weight.grad",
                 mistakes={"the weight gradient is the transpose of the expected one": want.T})


def test_bias_grad(student, child):
    """gradient with respect to the bias"""
    ref = reference()
    (_, _, got), (_, _, want) = grads_of(student, child, ref, torch.randn(2, 4, 5, dtype=torch.float64))
    if got is None:
        fail("bias.grad is None after backward: the bias never reaches the output "
             "(is it added? is it detached, or a plain tensor instead of an nn.Parameter?)")
    assert_close(got, want, name="bias.grad",
                 mistakes={"the bias gradient is summed over the last batch dimension only": want / 2})


def test_no_bias(student, child):
    """bias=False: no bias parameter, output is x @ weight.T"""
    ref = reference(bias=False)
    m = copy_of(student, ref)
    x = torch.randn(4, 5, dtype=torch.float64)
    bias, keys, out = fetch(m.bias, child.list(m.state_dict()), m(x))
    if bias is not None:
        fail("with bias=False, self.bias should be None (register_parameter('bias', None))")
    if keys != ["weight"]:
        fail(f"with bias=False, state_dict() should hold only 'weight', not {keys}")
    assert_close(out, ref(x).detach(), name="output")


def test_loads_state_dict(student):
    """loads an nn.Linear state_dict (non-square, non-symmetric weight)"""
    ref = reference(7, 3, seed=3)
    m = student.MyLinear(7, 3).double()
    before = fetch(m.state_dict())
    want = {k: v.detach() for k, v in ref.state_dict().items()}
    assert_close({k: v.shape for k, v in before.items()},
                 {k: v.shape for k, v in want.items()}, name="state_dict shapes")
    m.load_state_dict(ref.state_dict())
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


def test_init_uniform(student):
    """initial weights are spread uniformly (not constant, not normal)"""
    in_features = 400
    weight = fetch(student.MyLinear(in_features, 50).weight).double()
    bound = 1 / math.sqrt(in_features)
    if weight.std() == 0:
        fail("all initial weights are equal: initialise them randomly, uniform in ±1/sqrt(in_features)")
    if abs(weight.mean()) > 0.05 * bound:
        fail(f"initial weights have mean {weight.mean():.3g}, expected about 0")
    want_std = bound / math.sqrt(3)
    if not 0.9 * want_std < weight.std() < 1.1 * want_std:
        fail(f"initial weights have standard deviation {weight.std():.3g}; uniform in ±{bound:.3g} gives "
             f"{want_std:.3g}")
    counts = torch.histc(weight, bins=10, min=-bound, max=bound)
    if counts.min() < 0.7 * counts.mean():
        fail("initial weights are not uniform in ±1/sqrt(in_features) (some ranges are nearly empty)")


def test_parameters_registered(student, child):
    """weight and bias are nn.Parameters: in parameters(), state_dict() and moved by .to()"""
    m = student.MyLinear(5, 3)
    names = fetch(child.list(m.named_parameters()))
    names = [n for n, _ in names]
    if sorted(names) != ["bias", "weight"]:
        fail(f"parameters() yields {names}; expected 'weight' and 'bias' (wrap them in nn.Parameter)")
    m.to(torch.float64)
    weight_dtype, bias_dtype = fetch(m.weight.dtype, m.bias.dtype)
    if (weight_dtype, bias_dtype) != (torch.float64, torch.float64):
        fail(f".to(torch.float64) left weight as {weight_dtype} and bias as {bias_dtype}")


@pytest.mark.gpu
def test_cuda_forward_backward(student, child):
    """on CUDA: output and gradients match nn.Linear on CUDA"""
    ref = reference(device="cuda")
    x = torch.randn(4, 5, dtype=torch.float64, device="cuda")
    m = copy_of(student, ref)
    out = m(x)
    assert_close(fetch(out), ref(x).detach(), name="output")
    (gx, gw, gb), (wx, ww, wb) = grads_of(student, child, ref, x)
    assert_close(gx, wx, name="input.grad")
    assert_close(gw, ww, name="weight.grad")
    assert_close(gb, wb, name="bias.grad")


@pytest.mark.gpu
def test_cuda_autocast(student, child):
    """under autocast(float16) on CUDA the layer runs and matches loosely"""
    ref = reference(device="cuda").float()
    m = student.MyLinear(5, 3).cuda()
    m.load_state_dict(ref.state_dict())
    x = torch.randn(4, 5, device="cuda")
    out = fetch(child.autocast(m, x, device_type="cuda", dtype=torch.float16))
    with torch.autocast("cuda", dtype=torch.float16):
        want = ref(x).detach()
    assert_close(out, want, name="output under autocast", rtol=1e-2, atol=1e-2)
