"""hw7 device checks: every component on the GPU, or an emulated one (see docs/authoring.md, "Device checks")."""
from __future__ import annotations

import pytest

from kit.grader.suite import OnDevice


def component(name: str):
    return pytest.param(name, marks=pytest.mark.component(name), id=name)


@pytest.mark.points(1)
@pytest.mark.parametrize("component", [component("MyLayerNorm"), component("MyGroupNorm"), component("MyDropout")])
def test_device_placement(student, child, component):
    """on the GPU (emulated without one): forward and backward keep outputs, gradients and parameters there"""
    dev = OnDevice(child)
    if component == "MyLayerNorm":
        cases = [("defaults", student.MyLayerNorm(6), (4, 3, 6)),
                 ("normalized_shape=(3, 6), bias=False", student.MyLayerNorm((3, 6), bias=False), (4, 3, 6)),
                 ("elementwise_affine=False", student.MyLayerNorm(6, elementwise_affine=False), (4, 6))]
    elif component == "MyGroupNorm":
        cases = [("defaults", student.MyGroupNorm(3, 6), (2, 6, 3, 4)),
                 ("affine=False", student.MyGroupNorm(2, 6, affine=False), (2, 6, 5))]
    else:
        cases = [("p=0.3, training", student.MyDropout(0.3), (4, 5))]
    for setting, m, shape in cases:
        m = m.to(dev.name)
        x = dev.randn(*shape, requires_grad=True)
        y = m(x * 1.0)  # an activation, as the layer sees one: changing it in place keeps autograd working
        y.backward(dev.randn(*shape))
        dev.expect(f"forward and backward ({setting})", output=y, **{"x.grad": x.grad, component: m})
    if component == "MyDropout":  # p = 1 may give zeros that are not part of a graph: forward only
        dev.expect("forward (p=1, training)", output=student.MyDropout(1.0).to(dev.name)(dev.randn(4, 5)))
        m.eval()
        dev.expect("eval mode", eval_output=m(dev.randn(4, 5)))
