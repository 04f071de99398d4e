"""The torch side of hw5's checks, shared by the public and hidden checks (runs in the grader only).

`nn.MultiheadAttention(batch_first=True)` holds q, k and v projections packed in one
`in_proj_weight`; the student's module holds them as `q_proj`, `k_proj`, `v_proj`.
`renamed` converts one state_dict into the other.
"""
from __future__ import annotations

import torch
from torch import nn

from kit.grader.suite import assert_close, fail, fetch

F64 = torch.float64


def reference(embed_dim: int = 8, num_heads: int = 2, *, bias: bool = True, seed: int = 0,
              device: str = "cpu") -> nn.MultiheadAttention:
    """nn.MultiheadAttention in float64 with random weights and biases (torch starts biases at 0)."""
    torch.manual_seed(seed)
    ref = nn.MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=True, dtype=F64, device=device)
    if bias:
        with torch.no_grad():
            ref.in_proj_bias.uniform_(-0.5, 0.5)
            ref.out_proj.bias.uniform_(-0.5, 0.5)
    return ref


def renamed(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """nn.MultiheadAttention names -> the student's: in_proj_* is split into q_proj, k_proj, v_proj."""
    out = {}
    for name, t in tensors.items():
        if t is None:
            continue
        t = t.detach()
        if name in ("in_proj_weight", "in_proj_bias"):
            kind = name.rsplit("_", 1)[1]
            for prefix, part in zip(("q_proj", "k_proj", "v_proj"), t.chunk(3)):
                out[f"{prefix}.{kind}"] = part.clone()
        else:
            out[name] = t.clone()
    return out


def expected_shapes(embed_dim: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
    shapes = {}
    for prefix in ("q_proj", "k_proj", "v_proj", "out_proj"):
        shapes[f"{prefix}.weight"] = (embed_dim, embed_dim)
        if bias:
            shapes[f"{prefix}.bias"] = (embed_dim,)
    return shapes


def student_copy(student, ref: nn.MultiheadAttention, *, dropout: float = 0.0):
    """The student's module (a proxy) holding the reference's weights, in float64 on its device."""
    m = student.MultiHeadAttention(ref.embed_dim, ref.num_heads, dropout=dropout, bias=ref.in_proj_bias is not None)
    m = m.to(device=ref.in_proj_weight.device, dtype=F64)
    m.load_state_dict(renamed(ref.state_dict()))
    return m


def inputs(n: int, l: int, s: int, e: int, *, seed: int = 1, device: str = "cpu", self_attention: bool = False):
    """query (N, L, E), key and value (N, S, E) and an upstream gradient for the output."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(n, l, e, generator=g, dtype=F64)
    if self_attention:
        k = v = q
    else:
        k = torch.randn(n, s, e, generator=g, dtype=F64)
        v = torch.randn(n, s, e, generator=g, dtype=F64)
    up = torch.randn(n, l, e, generator=g, dtype=F64)
    return tuple(t.to(device) for t in (q, k, v, up))


def run_reference(ref: nn.MultiheadAttention, q, k, v, up, **kwargs) -> dict:
    """Output, per-head weights and every gradient of sum(output * up) from torch."""
    ref.zero_grad()
    leaves = [t.detach().clone().requires_grad_(True) for t in (q, k, v)]
    out, weights = ref(*leaves, need_weights=True, average_attn_weights=False, **kwargs)
    (out * up).sum().backward()
    return {"output": out.detach(), "weights": weights.detach(),
            "query.grad": leaves[0].grad, "key.grad": leaves[1].grad, "value.grad": leaves[2].grad,
            "grads": renamed({n: p.grad for n, p in ref.named_parameters()})}


def run_student(student, child, ref: nn.MultiheadAttention, q, k, v, up, **kwargs) -> dict:
    """The same quantities from the student's module, in one round trip."""
    m = student_copy(student, ref)
    leaves = [child.leaf(t) for t in (q, k, v)]
    result = m(*leaves, **kwargs)
    out, weights = result[0], result[1]
    (out * up).sum().backward()
    got = fetch(out, weights, leaves[0].grad, leaves[1].grad, leaves[2].grad, child.grads(m))
    return dict(zip(("output", "weights", "query.grad", "key.grad", "value.grad", "grads"), got))


def compare(got: dict, want: dict, keys=("output", "weights"), mistakes: dict | None = None) -> None:
    """assert_close on each named quantity; `mistakes` maps a likely cause to a wrong reference dict."""
    for key in keys:
        if key == "weights" and got["weights"] is None:
            fail("the attention weights are None although need_weights=True")
        if key == "grads" and got["grads"] is not None:
            missing = [name for name, grad in got["grads"].items() if grad is None]
            if missing:
                fail(f"no gradient reached {', '.join(missing)}: is every projection used in forward?")
        assert_close(got[key], want[key], name=key,
                     mistakes={cause: wrong[key] for cause, wrong in (mistakes or {}).items()})


def scaled_by_embed_dim(ref: nn.MultiheadAttention, q, k, v, up, **kwargs) -> dict:
    """What torch would give if the scores were divided by sqrt(embed_dim) instead of sqrt(head_dim)."""
    factor = (ref.head_dim / ref.embed_dim) ** 0.5
    twin = nn.MultiheadAttention(ref.embed_dim, ref.num_heads, bias=ref.in_proj_bias is not None,
                                 batch_first=True, dtype=F64, device=ref.in_proj_weight.device)
    twin.load_state_dict(ref.state_dict())
    with torch.no_grad():  # scaling the query projection scales every score
        e = ref.embed_dim
        twin.in_proj_weight[:e] *= factor
        if twin.in_proj_bias is not None:
            twin.in_proj_bias[:e] *= factor
    return run_reference(twin, q, k, v, up, **kwargs)


SCALE_MISTAKE = "the scores are divided by sqrt(embed_dim); divide by sqrt(head_dim) = sqrt(embed_dim // num_heads)"


INVERTED_MASK = "the bool mask is inverted: True marks the positions that may NOT be attended to"


def with_scale_mistake(ref, q, k, v, up, **kwargs) -> dict:
    return {SCALE_MISTAKE: scaled_by_embed_dim(ref, q, k, v, up, **kwargs)}


def random_bool_mask(rows: int, cols: int, *, seed: int) -> torch.Tensor:
    """A (rows, cols) bool mask with a True and a False in every row: neither it nor ~it masks a row fully."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(rows, cols, generator=g) < 0.4
    off = torch.randint(0, cols, (rows,), generator=g)
    on = (off + torch.randint(1, cols, (rows,), generator=g)) % cols
    index = torch.arange(rows)
    mask[index, off] = False
    mask[index, on] = True
    return mask
