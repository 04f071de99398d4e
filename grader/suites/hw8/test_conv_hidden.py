"""Hidden checks of hw8: the public checks' properties on sizes the public checks do not show.

They reuse the public files' references and helpers (loaded by path). Each targets what the public
checks could miss: a batch or channel count of one, 1x1 kernels and kernels as large as the input,
strides, paddings and dilations above 2, depthwise and channel-multiplying groups, the initialisation
bound with groups, global and 1x1 pooling, and padding 2. Shapes stay small: each check runs in
milliseconds.
"""
from __future__ import annotations

import math

import pytest

from kit.grader.suite import fetch, sibling

CONV = sibling(__file__, "test_conv.py")
POOL = sibling(__file__, "test_pool.py")

pytestmark = pytest.mark.hidden
conv_component = pytest.mark.component("MyConv2d")
pool_component = pytest.mark.component("MyMaxPool2d")


def compare_conv(student, child, what: str, shape: tuple[int, ...], out_channels: int, seed: int, **kwargs) -> None:
    """Output, input gradient and parameter gradients of MyConv2d(shape[1], out_channels, **kwargs)."""
    kwargs.setdefault("kernel_size", 3)
    ref = CONV.conv(shape=shape, out_channels=out_channels, seed=seed, **kwargs)
    m, xs, out = CONV.run_case(student, child, ref, **kwargs)
    CONV.close(fetch(out), ref["output"], f"output of {what}")
    (out * ref["g"]).sum().backward()
    grad, grads = fetch(xs.grad, child.grads(m))
    CONV.close(grad, ref["input.grad"], f"input.grad of {what}")
    CONV.close(grads, ref["grads"], f"parameter gradients of {what}")


@conv_component
@pytest.mark.parametrize("shape,out_channels,kernel_size", [
    ((1, 5, 4, 6), 3, 1), ((3, 1, 5, 5), 2, 3), ((2, 2, 4, 4), 3, 4), ((2, 8, 5, 4), 16, 3)],
    ids=["batch_one_1x1", "one_channel", "kernel_covers_input", "wide"])
def test_hidden_conv_shapes(student, child, shape, out_channels, kernel_size):
    """a batch of one with a 1x1 kernel; one input channel; a kernel as large as the input; 8 -> 16 channels"""
    compare_conv(student, child, f"MyConv2d({shape[1]}, {out_channels}, {kernel_size}) on {shape}", shape,
                 out_channels, 11, kernel_size=kernel_size)


@conv_component
def test_hidden_conv_stride(student, child):
    """stride=3 on a 10x11 input"""
    compare_conv(student, child, "stride=3", (2, 3, 10, 11), 4, 12, stride=3)


@conv_component
def test_hidden_conv_padding(student, child):
    """a 5x5 kernel with padding=2 (the output keeps the input's size)"""
    compare_conv(student, child, "kernel_size=5, padding=2", (2, 3, 6, 7), 4, 13, kernel_size=5, padding=2)


@conv_component
def test_hidden_conv_dilation(student, child):
    """a 2x2 kernel with dilation=3"""
    compare_conv(student, child, "kernel_size=2, dilation=3", (2, 3, 8, 9), 4, 14, kernel_size=2, dilation=3)


@conv_component
@pytest.mark.parametrize("in_channels,out_channels,groups", [(4, 4, 4), (2, 6, 2)], ids=["depthwise", "multiplier"])
def test_hidden_conv_groups(student, child, in_channels, out_channels, groups):
    """depthwise (4 -> 4 channels, groups=4) and a channel multiplier (2 -> 6, groups=2)"""
    compare_conv(student, child, f"MyConv2d({in_channels}, {out_channels}, 3, groups={groups})",
                 (2, in_channels, 5, 6), out_channels, 15, groups=groups)


@conv_component
def test_hidden_conv_init_groups(student):
    """MyConv2d(16, 256, 3, groups=4) starts uniform in ±1/sqrt(fan_in), fan_in = 16/4·3·3 = 36"""
    m = student.MyConv2d(16, 256, 3, groups=4)
    weight, bias = fetch(m.weight, m.bias)
    text = "fan_in = in_channels // groups · kernel_height · kernel_width = 16/4·3·3 = 36"
    # 9,216 weights: the 10% margin is 20 standard errors of the sample standard deviation
    CONV.spread_check("weight", weight, 1 / math.sqrt(36), 0.1, text)
    CONV.spread_check("bias", bias, 1 / math.sqrt(36), 0.25, text)


def compare_pool(student, child, what: str, args: tuple, **kwargs) -> None:
    """Output and input gradient of MyMaxPool2d(*args) on POOL.pool(**kwargs)'s input."""
    ref = POOL.pool(**kwargs)
    xs, out = POOL.run_case(student, child, ref, *args)
    POOL.close(fetch(out), ref["output"], f"output of {what}")
    (out * ref["g"]).sum().backward()
    POOL.close(fetch(xs.grad), ref["input.grad"], f"input.grad of {what}")


@pool_component
def test_hidden_pool_global(student, child):
    """MyMaxPool2d(6) on a 6x6 input: one window, the whole image"""
    compare_pool(student, child, "MyMaxPool2d(6)", (6,), shape=(2, 3, 6, 6), seed=21, kernel_size=6, stride=None)


@pool_component
def test_hidden_pool_kernel_one(student, child):
    """MyMaxPool2d(1, 1): the identity"""
    compare_pool(student, child, "MyMaxPool2d(1, 1)", (1, 1), shape=(1, 2, 3, 4), seed=22, kernel_size=1, stride=1)


@pool_component
def test_hidden_pool_large_kernel(student, child):
    """MyMaxPool2d(4, 3) on an 11x9 input (a remainder that no window covers)"""
    compare_pool(student, child, "MyMaxPool2d(4, 3)", (4, 3), shape=(1, 2, 11, 9), seed=23, kernel_size=4, stride=3)


@pool_component
def test_hidden_pool_padding(student, child):
    """MyMaxPool2d(5, 2, 2) on negative inputs: padding 2"""
    compare_pool(student, child, "MyMaxPool2d(5, 2, 2)", (5, 2, 2), shape=(2, 2, 7, 8), seed=24, kernel_size=5,
                 stride=2, padding=2, data="negative")
