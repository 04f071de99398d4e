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
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by "
                             f"groups ({groups})")
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        kh, kw = self.kernel_size
        # nn.Conv2d: kaiming_uniform_(a=sqrt(5)) is uniform in ±1/sqrt(fan_in); the bias uses the same bound
        fan_in = in_channels // groups * kh * kw
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, kh, kw).uniform_(-bound, bound))
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels).uniform_(-bound, bound))
        else:
            self.register_parameter("bias", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, height, width = x.shape
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = self.kernel_size, self.stride, self.padding, self.dilation
        out_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
        out_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
        # (N, C·kh·kw, L): column l holds window l, channel-major, so each group's rows are consecutive
        cols = F.unfold(x, self.kernel_size, dilation=self.dilation, padding=self.padding, stride=self.stride)
        cols = cols.view(n, self.groups, -1, out_h * out_w)
        weight = self.weight.view(self.groups, self.out_channels // self.groups, -1)
        y = (weight @ cols).reshape(n, self.out_channels, out_h, out_w)  # (G, O/G, K) @ (N, G, K, L)
        bias = self.bias if self.bias is not None else torch.zeros(self.out_channels, dtype=x.dtype)
        return y + bias.view(1, -1, 1, 1)

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}, "
                f"padding={self.padding}, dilation={self.dilation}, groups={self.groups}, bias={self.bias is not None}")


class MyMaxPool2d(nn.Module):
    """out[n, c, y, x] = the largest value of the window of x (padded with -inf) that starts at
    (y · stride_h - padding_h, x · stride_w - padding_w); the gradient goes to that value."""

    def __init__(self, kernel_size: int | tuple[int, int], stride: int | tuple[int, int] | None = None,
                 padding: int | tuple[int, int] = 0) -> None:
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = self.kernel_size if stride is None else _pair(stride)
        self.padding = _pair(padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        # -inf, not 0: a padded position must never be the maximum
        x = F.pad(x, (pw, pw, ph, ph), value=-math.inf)
        windows = x.unfold(2, kh, sh).unfold(3, kw, sw)  # (N, C, H_out, W_out, kh, kw)
        # max(dim) sends the gradient to one maximum of each window (amax would split it among ties)
        return windows.flatten(-2).max(dim=-1).values

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
