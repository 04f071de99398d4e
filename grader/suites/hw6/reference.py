"""The reference CIFAR ResNet of hw6, as plain functions of a state_dict (runs in the grader only).

A CIFAR ResNet is fully described by its state_dict: `layout` lists every entry with its
shape (in the order `nn.Module.state_dict()` gives them), `random_state` draws values
for it, and `forward` runs the network with `torch.nn.functional` ops, reading the
architecture off the keys. Nothing here is a module: the student's classes are
compared with these functions through the weights they share.

    stem      conv1 3x3/1 (3 -> 64, no bias), bn1, relu
    layerK    blocks; the first of layer2..4 has stride 2 and twice the channels
    block     relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)),
              stride on conv1; shortcut = identity, or 1x1 conv (stride, no bias) + BN
    head      global average pool, fc
"""
from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F

from kit.grader.suite import reference, sibling

F64 = torch.float64
STAGES = ((64, 1), (128, 2), (256, 2), (512, 2))  # (channels, stride of the first block)
BN_EPS, BN_MOMENTUM = 1e-5, 0.1

Layout = "OrderedDict[str, tuple[int, ...]]"


# --- the state_dict ----------------------------------------------------------------------------

def _bn(out: dict, prefix: str, channels: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        out[f"{prefix}.{name}"] = (channels,)
    out[f"{prefix}.num_batches_tracked"] = ()


def block_layout(in_channels: int, out_channels: int, stride: int = 1, prefix: str = "") -> Layout:
    """The state_dict entries of one BasicBlock (keys start with `prefix`)."""
    out: dict = OrderedDict()
    out[f"{prefix}conv1.weight"] = (out_channels, in_channels, 3, 3)
    _bn(out, f"{prefix}bn1", out_channels)
    out[f"{prefix}conv2.weight"] = (out_channels, out_channels, 3, 3)
    _bn(out, f"{prefix}bn2", out_channels)
    if stride != 1 or in_channels != out_channels:
        out[f"{prefix}shortcut.0.weight"] = (out_channels, in_channels, 1, 1)
        _bn(out, f"{prefix}shortcut.1", out_channels)
    return out


@reference
def layout(num_blocks: tuple[int, ...] = (2, 2, 2, 2), num_classes: int = 10) -> Layout:
    """The state_dict entries of ResNet(BasicBlock, num_blocks, num_classes)."""
    out: dict = OrderedDict()
    out["conv1.weight"] = (64, 3, 3, 3)
    _bn(out, "bn1", 64)
    channels = 64
    for stage, ((width, stride), count) in enumerate(zip(STAGES, num_blocks), start=1):
        for index in range(count):
            out.update(block_layout(channels, width, stride if index == 0 else 1, f"layer{stage}.{index}."))
            channels = width
    out["fc.weight"] = (num_classes, channels)
    out["fc.bias"] = (num_classes,)
    return out


def is_parameter(key: str) -> bool:
    return key.endswith(("weight", "bias"))


def parameter_count(entries: Layout) -> int:
    total = 0
    for key, shape in entries.items():
        if is_parameter(key):
            total += int(torch.Size(shape).numel())
    return total


def known_count_mistakes(entries: Layout) -> dict[int, str]:
    """parameter-count difference -> its likely cause."""
    shortcut_bn = sum(2 * shape[0] for key, shape in entries.items() if key.endswith("shortcut.1.weight"))
    conv_bias = sum(shape[0] for key, shape in entries.items() if len(shape) == 4)
    return {-shortcut_bn: "the projection shortcuts have no BatchNorm2d: use Sequential(1x1 conv, BatchNorm2d)",
            conv_bias: "the convolutions have a bias: use bias=False (the BatchNorm after them has one)"}


def random_state(entries: Layout, seed: int = 0, dtype: torch.dtype = F64, device: str = "cpu") -> dict:
    """Random values for every entry, drawn exactly as the child draws them (remote.random_state)."""
    # remote.py is the child's copy of these helpers; the grader draws with the very same code
    return sibling(__file__, "remote.py").random_state(list(entries.items()), seed, dtype, device)


# --- the forward pass --------------------------------------------------------------------------

def _norm(state: dict, prefix: str, x: torch.Tensor, training: bool) -> torch.Tensor:
    return F.batch_norm(x, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                        state[f"{prefix}.weight"], state[f"{prefix}.bias"], training, BN_MOMENTUM, BN_EPS)


def block_forward(state: dict, prefix: str, x: torch.Tensor, stride: int, training: bool,
                  mistake: str | None = None) -> torch.Tensor:
    """One BasicBlock whose entries start with `prefix`. `mistake="stride_on_conv2"` moves the stride."""
    s1, s2 = (1, stride) if mistake == "stride_on_conv2" else (stride, 1)
    y = F.relu(_norm(state, f"{prefix}bn1", F.conv2d(x, state[f"{prefix}conv1.weight"], stride=s1, padding=1),
                     training))
    y = _norm(state, f"{prefix}bn2", F.conv2d(y, state[f"{prefix}conv2.weight"], stride=s2, padding=1), training)
    if f"{prefix}shortcut.0.weight" in state:
        x = _norm(state, f"{prefix}shortcut.1", F.conv2d(x, state[f"{prefix}shortcut.0.weight"], stride=stride),
                  training)
    return F.relu(y + x)


def stages(state: dict) -> list[list[str]]:
    """The block prefixes of each stage, read off the keys."""
    out = []
    for stage in range(1, 5):
        count = 0
        while f"layer{stage}.{count}.conv1.weight" in state:
            count += 1
        out.append([f"layer{stage}.{i}." for i in range(count)])
    return out


def features(state: dict, x: torch.Tensor, training: bool, mistake: str | None = None) -> list[torch.Tensor]:
    """[stem output, layer1 output, ..., layer4 output]; `state`'s running statistics are left as they were.
    `mistake`: "stride_on_conv2" (see block_forward) or "layer4_stride_1" (layer4 keeps the resolution)."""
    state = {k: v.clone() if k.endswith(("running_mean", "running_var")) else v for k, v in state.items()}
    y = F.relu(_norm(state, "bn1", F.conv2d(x, state["conv1.weight"], padding=1), training))
    out = [y]
    for stage, ((_, stride), prefixes) in enumerate(zip(STAGES, stages(state)), start=1):
        if stage == 4 and mistake == "layer4_stride_1":
            stride = 1
        for i, prefix in enumerate(prefixes):
            y = block_forward(state, prefix, y, stride if i == 0 else 1, training, mistake)
        out.append(y)
    return out


def forward(state: dict, x: torch.Tensor, training: bool, mistake: str | None = None) -> torch.Tensor:
    y = features(state, x, training, mistake)[-1]
    return F.linear(y.mean(dim=(2, 3)), state["fc.weight"], state["fc.bias"])


def with_grads(fn, state: dict, x: torch.Tensor, up: torch.Tensor, **kwargs) -> dict:
    """fn(state, x, ...) and the gradients of sum(out * up) for x and every parameter.

    Works on copies: the caller's state is left as it was.
    """
    state = {k: (v.clone().requires_grad_(True) if is_parameter(k) and v.is_floating_point() else v.clone())
             for k, v in state.items()}
    x = x.clone().requires_grad_(True)
    out = fn(state, x, **kwargs)
    (out * up).sum().backward()
    return {"output": out.detach(), "input.grad": x.grad,
            "grads": {k: v.grad for k, v in state.items() if v.requires_grad}}
