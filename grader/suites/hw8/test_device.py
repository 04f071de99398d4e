"""hw8 device checks: both components on the GPU, or an emulated one (see docs/authoring.md, "Device checks")."""
from __future__ import annotations

import pytest

from kit.grader.suite import OnDevice


def component(name: str):
    return pytest.param(name, marks=pytest.mark.component(name), id=name)


@pytest.mark.points(1)
@pytest.mark.parametrize("component", [component("MyConv2d"), component("MyMaxPool2d")])
def test_device_placement(student, child, component):
    """on the GPU (emulated without one): forward and backward keep outputs, gradients and parameters there"""
    dev = OnDevice(child)
    # settings every correct size computation agrees on (no dilation, explicit strides), and a backward that
    # takes any output shape: a wrong size costs the checks of sizes, not this one
    if component == "MyConv2d":
        cases = [("3x3, padding=1", student.MyConv2d(4, 6, 3, padding=1), (2, 4, 7, 7)),
                 ("stride=2, groups=2, bias=False", student.MyConv2d(4, 6, (3, 2), stride=2, groups=2, bias=False),
                  (2, 4, 9, 8))]
    else:
        cases = [("kernel_size=2, stride=2", student.MyMaxPool2d(2, stride=2), (2, 3, 6, 6)),
                 ("kernel_size=3, stride=2, padding=1", student.MyMaxPool2d(3, stride=2, padding=1), (2, 3, 7, 7))]
    for setting, m, shape in cases:
        m = m.to(dev.name)
        x = dev.randn(*shape, requires_grad=True)
        y = m(x)
        y.sum().backward()
        dev.expect(f"forward and backward ({setting})", output=y, **{"x.grad": x.grad, component: m})
