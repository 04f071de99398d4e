"""2-D convolution and max-pooling, written with tensor operations.

    MyConv2d     nn.Conv2d      cross-correlation with stride, padding, dilation and groups
    MyMaxPool2d  nn.MaxPool2d   the largest value of every window

Both take (N, C, H, W) inputs. Sizes may be given as an int (the same for height and width)
or as a pair (height, width). `F.unfold` (im2col), `Tensor.unfold` and `Tensor.as_strided`
cut the input into windows; a matrix product or a max over each window does the rest, and
autograd the backward pass.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    """An int v as (v, v); a pair as a tuple of two ints."""
    if isinstance(value, int):
        return (value, value)
    height, width = value
    return (int(height), int(width))


class MyConv2d(nn.Module):
    """out[n, o] = bias[o] + sum over the input channels c of o's group and the kernel positions (i, j) of
    weight[o, c, i, j] * x_padded[n, c, y * stride_h + i * dilation_h, x * stride_w + j * dilation_w]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 stride: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 dilation: int | tuple[int, int] = 1, groups: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.groups = groups
        raise NotImplementedError('raise ValueError unless groups divides both channel counts; store the sizes as pairs; create weight (out, in/groups, kh, kw) and bias (out,) or None, uniform in ±1/sqrt(fan_in) with fan_in = in/groups·kh·kw')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("cut x into windows (F.unfold), multiply every group's windows by its weights, add the bias, reshape to (N, out, H_out, W_out)")

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, bias={self.bias is not None}")


class MyMaxPool2d(nn.Module):
    """out[n, c, y, x] = the largest value of the window of x (padded with -inf) that starts at
    (y · stride_h - padding_h, x · stride_w - padding_w); the gradient goes to that value."""

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        raise NotImplementedError('store kernel_size, stride (kernel_size when None) and padding as pairs')

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError("pad with -inf, cut into windows (Tensor.unfold), take each window's max")

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
