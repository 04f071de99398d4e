"""hw10 device checks: both losses on the GPU, or an emulated one (see docs/authoring.md, "Device checks")."""
from __future__ import annotations

import pytest

from kit.grader.suite import OnDevice

N, C = 4, 5


def component(name: str):
    return pytest.param(name, marks=pytest.mark.component(name), id=name)


@pytest.mark.points(1)
@pytest.mark.parametrize("component", [component("LabelSmoothingCrossEntropy"), component("HuberLoss")])
def test_device_placement(student, child, component):
    """on the GPU (emulated without one): the loss and the input's gradient stay there, for every reduction"""
    dev = OnDevice(child)
    for reduction in ("mean", "sum", "none"):
        if component == "LabelSmoothingCrossEntropy":
            loss_fn = student.LabelSmoothingCrossEntropy(smoothing=0.1, reduction=reduction, ignore_index=2)
            x, target, out_shape = dev.randn(N, C, requires_grad=True), dev.randint(C, N), (N,)
        else:
            loss_fn = student.HuberLoss(delta=0.5, reduction=reduction)
            x, target, out_shape = dev.randn(N, 3, requires_grad=True), dev.randn(N, 3), (N, 3)
        loss = loss_fn.to(dev.name)(x, target)
        loss.backward(dev.randn(*out_shape) if reduction == "none" else dev.randn())
        dev.expect(f"the loss and its backward (reduction={reduction!r})", loss=loss, **{"input.grad": x.grad})
