"""The torch side of hw11's checks, shared by the public and hidden checks (runs in the grader only).

The reference is `nn.TransformerEncoderLayer(batch_first=True)` in float64, with random
biases and LayerNorm parameters (torch starts them at 0 and 1, where a missing one would
go unnoticed). The student's block has the same state_dict keys, so both hold the same
weights.

Exact in float64: in eval mode without gradients torch's layer (and its attention) may take
a fused "fast path" (`torch._transformer_encoder_layer_fwd`), which rounds differently from
the composed modules. Every reference here runs with `torch.backends.mha`'s fast path
switched off (`slow_path`) and, for outputs and gradients, with dropout 0 and an input that
requires grad, so torch computes exactly the composition the student writes: two LayerNorms,
nn.MultiheadAttention's math, two Linears and the activation, all in float64. (In the child
the fast path cannot run either: the forbidden-API guard is a TorchFunctionMode, and torch
leaves the fast path whenever one is active.) The default float64 tolerance (rtol = atol =
1e-7) then allows only rounding.

A reference case is named by its sizes, seeds, flags and masks (as `frozen(mask)`), so
`weights`, `expected` and `train_statistics` are memoised (`@reference`).
"""
from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from kit.grader.suite import assert_close, fail, fetch, reference

F64 = torch.float64
# how a known mistake computes the activation, for the likely-cause hints
ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_tanh": functools.partial(F.gelu, approximate="tanh")}


@contextlib.contextmanager
def slow_path() -> Iterator[None]:
    """torch's transformer layer and attention as composed modules, never their fused inference kernels."""
    before = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(before)


def build(d_model: int, nhead: int, dim_feedforward: int, *, seed: int = 0, dropout: float = 0.0,
          activation: str = "relu", norm_first: bool = False, batch_first: bool = True,
          device: str = "cpu") -> nn.TransformerEncoderLayer:
    """torch's layer in float64 with weights drawn from `seed` (the same for every activation and norm_first)."""
    torch.manual_seed(seed)
    ref = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation=ACTIVATIONS[activation],
                                     norm_first=norm_first, batch_first=batch_first, dtype=F64, device=device)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if name.startswith(("norm1.", "norm2.")) and name.endswith("weight"):
                p.uniform_(0.5, 1.5)
            elif name.endswith("bias"):
                p.uniform_(-0.5, 0.5)
    return ref


@reference
def weights(d_model: int, nhead: int, dim_feedforward: int, *, seed: int = 0, device: str = "cpu") -> dict:
    """build(...)'s state_dict."""
    return {k: v.detach() for k, v in build(d_model, nhead, dim_feedforward, seed=seed, device=device)
            .state_dict().items()}


@reference
def shapes(d_model: int, nhead: int, dim_feedforward: int = 2048) -> dict:
    """{name: shape} of nn.TransformerEncoderLayer's parameters, in order."""
    layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, batch_first=True, device="meta")
    return {name: tuple(p.shape) for name, p in layer.named_parameters()}


def inputs(n: int, length: int, d_model: int, *, seed: int, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """src (N, L, E) and an upstream gradient for the output."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, length, d_model, generator=g, dtype=F64)
    up = torch.randn(n, length, d_model, generator=g, dtype=F64)
    return x.to(device), up.to(device)


def frozen(mask: torch.Tensor) -> tuple:
    """A mask as a hashable value (its dtype and its values as nested tuples), to pass to `expected`."""
    def nested(values):
        return tuple(nested(v) for v in values) if isinstance(values, list) else values
    return mask.dtype, nested(mask.cpu().tolist())


def thawed(masks: dict, device: str) -> dict:
    return {name: torch.tensor(values, dtype=dtype, device=device) for name, (dtype, values) in masks.items()}


@reference
def expected(d_model: int = 8, nhead: int = 2, dim_feedforward: int = 16, *, seed: int = 0, n: int = 2,
             length: int = 5, input_seed: int = 1, activation: str = "relu", norm_first: bool = False,
             batch_first: bool = True, device: str = "cpu", **masks: tuple) -> dict:
    """torch's output for inputs(n, length, d_model, seed=input_seed) with the masks given as frozen(mask),
    and the gradients of sum(output * up) for the input and every parameter (dropout 0, slow path).
    `batch_first=False` is a mistake's reference: the attention then mixes the batch, not the sequence."""
    ref = build(d_model, nhead, dim_feedforward, seed=seed, activation=activation, norm_first=norm_first,
                batch_first=batch_first, device=device)
    x, up = inputs(n, length, d_model, seed=input_seed, device=device)
    x.requires_grad_(True)
    with slow_path():
        out = ref(x, **thawed(masks, device))
    (out * up).sum().backward()
    return {"output": out.detach(), "input.grad": x.grad,
            "grads": {name: p.grad for name, p in ref.named_parameters()}}


# --- the student's side -----------------------------------------------------------------------

def student_copy(student, d_model: int = 8, nhead: int = 2, dim_feedforward: int = 16, *, seed: int = 0,
                 device: str = "cpu", **kwargs):
    """The student's block (a proxy) in float64 on `device`, holding build(...)'s weights. `kwargs` go to its
    constructor (dropout, activation, norm_first); dropout is 0 unless given."""
    m = student.TransformerEncoderBlock(d_model, nhead, dim_feedforward, **{"dropout": 0.0, **kwargs})
    m = m.to(device=device, dtype=F64)
    m.load_state_dict(weights(d_model, nhead, dim_feedforward, seed=seed, device=device))
    return m


def compare(got, want: dict, key: str, hints: dict | None = None) -> None:
    """assert_close of one quantity; `hints` maps a likely cause to a mistake's reference dict."""
    if key == "grads" and isinstance(got, dict):
        missing = sorted(name for name, grad in got.items() if grad is None)
        if missing:
            fail(f"no gradient reached {', '.join(missing)}: is every parameter used in forward?")
    assert_close(got, want[key], name=key, mistakes={cause: wrong[key] for cause, wrong in (hints or {}).items()})


def check(student, child, *, d_model: int = 8, nhead: int = 2, dim_feedforward: int = 16, seed: int = 0,
          n: int = 2, length: int = 5, input_seed: int | None = None, activation: str = "relu",
          norm_first: bool = False, device: str = "cpu", keys=("output",), hints: dict | None = None,
          **masks: torch.Tensor) -> None:
    """Run the student's block and torch's on the same weights, input and masks, and compare `keys`.

    The output is fetched and compared first; only then is a backward run through it, so a wrong
    output is reported as such and never as an error of an operation the student did not write.
    `hints` maps a likely cause to the keyword arguments of `expected` that show that mistake (a mask
    given as None: that mask left out).
    """
    input_seed = seed + 1 if input_seed is None else input_seed
    x, up = inputs(n, length, d_model, seed=input_seed, device=device)
    m = student_copy(student, d_model, nhead, dim_feedforward, seed=seed, device=device, activation=activation,
                     norm_first=norm_first)
    case = dict(seed=seed, n=n, length=length, input_seed=input_seed, device=device)
    frozen_masks = {name: frozen(mask) for name, mask in masks.items()}
    config = dict(activation=activation, norm_first=norm_first, **frozen_masks)
    want = expected(d_model, nhead, dim_feedforward, **case, **config)

    def wrong() -> dict:
        out = {}
        for cause, changes in (hints or {}).items():
            kwargs = {name: value for name, value in {**config, **changes}.items() if value is not None}
            out[cause] = expected(d_model, nhead, dim_feedforward, **case, **kwargs)
        return out

    leaf = child.leaf(x)
    out = m(leaf, **masks)
    close(fetch(out), want, "output", wrong)
    if len(keys) > 1 or keys[0] != "output":
        (out * up).sum().backward()
        got = dict(zip(("input.grad", "grads"), fetch(leaf.grad, child.grads(m))))
        for key in keys:
            if key != "output":
                close(got[key], want, key, wrong)


def close(got, want: dict, key: str, wrong) -> None:
    """compare(); the mistakes' references (`wrong()`) are computed only when the value is wrong."""
    try:
        compare(got, want, key)
    except AssertionError:
        compare(got, want, key, wrong())


# --- dropout in train mode: statistics of many samples -------------------------------------------

DROPOUT_SITES = {
    "no dropout on the attention weights: pass dropout to nn.MultiheadAttention": "attention",
    "no dropout on the attention output before the residual sum (dropout1)": "dropout1",
    "no dropout after the activation in the feed-forward network (dropout)": "dropout",
    "no dropout on the feed-forward output before the residual sum (dropout2)": "dropout2",
}


def moments(samples: torch.Tensor) -> dict:
    """Per-element mean and variance over the first dimension, and the standard error of each."""
    count = samples.shape[0]
    mean = samples.mean(0)
    centred = samples - mean
    var = centred.square().mean(0)
    fourth = centred.pow(4).mean(0)
    return {"mean": mean, "mean_se": (var / count).sqrt(), "var": var,
            "var_se": ((fourth - var.square()).clamp_min(0) / count).sqrt()}


def sample_input(length: int, d_model: int, seed: int) -> torch.Tensor:
    return torch.randn(1, length, d_model, generator=torch.Generator().manual_seed(seed), dtype=F64)


@reference
def train_statistics(d_model: int, nhead: int, dim_feedforward: int, *, p: float, norm_first: bool, seed: int,
                     copies: int, length: int, without: str | None = None) -> dict:
    """moments() of torch's layer in train mode with dropout p on `copies` copies of sample_input(...);
    `without` names a dropout left out (DROPOUT_SITES), for a mistake's statistics."""
    ref = build(d_model, nhead, dim_feedforward, seed=seed, dropout=p, norm_first=norm_first)
    if without == "attention":
        ref.self_attn.dropout = 0.0
    elif without is not None:
        getattr(ref, without).p = 0.0
    ref.train()
    torch.manual_seed(seed)
    with torch.no_grad(), slow_path():
        samples = ref(sample_input(length, d_model, seed).expand(copies, -1, -1))
    return moments(samples)


def distance(got: dict, want: dict) -> tuple[float, str]:
    """The largest difference between two sets of moments, in standard errors, and which moment it is in."""
    worst, which = 0.0, "mean"
    for key in ("mean", "var"):
        z = float(((got[key] - want[key]).abs() / (got[f"{key}_se"].square() + want[f"{key}_se"].square())
                   .sqrt().clamp_min(1e-12)).max())
        if z > worst:
            worst, which = z, key
    return worst, which
