"""The torch side of hw5's checks, shared by the public and hidden checks (runs in the grader only).

`nn.MultiheadAttention(batch_first=True)` holds q, k and v projections packed in one
`in_proj_weight`; the student's module holds them as `q_proj`, `k_proj`, `v_proj`.
`renamed` converts one state_dict into the other.

A reference network is named by (embed_dim, num_heads, seed, bias, device) and its inputs
by their seed, so `weights` and `expected` are memoised (`@reference`); masks reach
`expected` as `frozen(mask)`, a hashable copy of their values.
"""
from __future__ import annotations

import torch
from torch import nn

from kit.grader.suite import assert_close, fail, fetch, reference

F64 = torch.float64


def build(embed_dim: int = 8, num_heads: int = 2, *, bias: bool = True, seed: int = 0,
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


def assert_shapes(shapes: dict[str, tuple[int, ...]], embed_dim: int, bias: bool = True, *, what: str) -> None:
    """The student's parameter shapes against expected_shapes, each wrong size named with the size it
    should have (before any state_dict is loaded, whose error would only list keys)."""
    want = expected_shapes(embed_dim, bias)
    problems = [f"{name} has shape {shapes[name]}, expected {size} (embed_dim = {embed_dim})"
                for name, size in want.items() if name in shapes and tuple(shapes[name]) != size]
    missing = [name for name in want if name not in shapes]
    extra = [name for name in shapes if name not in want]
    if missing:
        problems.append(f"missing parameters: {', '.join(missing)}")
    if extra:
        problems.append(f"unexpected parameters: {', '.join(extra)}")
    if problems:
        fail(f"{what}: " + "; ".join(problems) + ". q_proj, k_proj, v_proj and out_proj are each "
             "nn.Linear(embed_dim, embed_dim" + (")" if bias else ", bias=False)"))


@reference
def weights(embed_dim: int = 8, num_heads: int = 2, *, bias: bool = True, seed: int = 0,
            device: str = "cpu") -> dict[str, torch.Tensor]:
    """build(...)'s state_dict under the student's names."""
    return renamed(build(embed_dim, num_heads, bias=bias, seed=seed, device=device).state_dict())


def student_copy(student, embed_dim: int = 8, num_heads: int = 2, *, bias: bool = True, seed: int = 0,
                 device: str = "cpu", dropout: float = 0.0):
    """The student's module (a proxy) holding build(...)'s weights, in float64 on its device."""
    state = weights(embed_dim, num_heads, bias=bias, seed=seed, device=device)
    m = student.MultiHeadAttention(embed_dim, num_heads, dropout=dropout, bias=bias)
    m = m.to(device=state["q_proj.weight"].device, dtype=F64)
    m.load_state_dict(state)
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


def frozen(mask: torch.Tensor) -> tuple:
    """A mask as a hashable value (its dtype and its values as nested tuples), to pass to `expected`."""
    def nested(values):
        return tuple(nested(v) for v in values) if isinstance(values, list) else values
    return mask.dtype, nested(mask.tolist())


@reference
def expected(embed_dim: int = 8, num_heads: int = 2, *, seed: int = 0, bias: bool = True, n: int = 2, l: int = 5,
             s: int = 6, input_seed: int = 1, self_attention: bool = False, device: str = "cpu",
             scale_mistake: bool = False, **masks: tuple) -> dict:
    """run_reference of build(embed_dim, num_heads, seed=seed, bias=bias) on inputs(n, l, s, embed_dim,
    seed=input_seed, ...), with the masks given as frozen(mask); scale_mistake: scaled_by_embed_dim instead."""
    ref = build(embed_dim, num_heads, bias=bias, seed=seed, device=device)
    q, k, v, up = inputs(n, l, s, embed_dim, seed=input_seed, device=device, self_attention=self_attention)
    kwargs = {name: torch.tensor(values, dtype=dtype, device=device) for name, (dtype, values) in masks.items()}
    return (scaled_by_embed_dim if scale_mistake else run_reference)(ref, q, k, v, up, **kwargs)


def run_student(student, child, m, q, k, v, up, keys=("output", "weights", "query.grad", "key.grad",
                                                    "value.grad", "grads"), **kwargs) -> dict:
    """Output, per-head weights and every gradient of sum(output * up) from the student's module `m`
    (see student_copy). The output's shape is checked first (one round trip), so nothing is computed
    from an output of the wrong shape; when `keys` asks only for the weights, no backward runs."""
    leaves = [child.leaf(t) for t in (q, k, v)]
    result = m(*leaves, **kwargs)
    out, weights = result[0], result[1]
    shape = tuple(fetch(out.shape, finite=False))
    want = tuple(up.shape)
    if shape != want and set(keys) != {"weights"}:
        n, l, e = want
        hint = " (sequence-first: transpose back to batch_first)" if shape == (l, n, e) else ""
        fail(f"the output has shape {shape}, expected (N, L, E) = {want}{hint}")
    if set(keys) == {"weights"}:
        return {"weights": fetch(weights, finite=False)}
    (out * up).sum().backward()
    got = fetch(out, weights, leaves[0].grad, leaves[1].grad, leaves[2].grad, child.grads(m), finite=False)
    return dict(zip(("output", "weights", "query.grad", "key.grad", "value.grad", "grads"), got))


def assert_output(got, case: dict, *, what: str) -> None:
    """The student's output against nn.MultiheadAttention's for `case` (expected's keywords): the anchor of
    the checks that compare the student with itself (need_weights, dropout, a second call). An output
    showing only the scale mistake passes here: self_attention and the other value checks grade it."""
    want = expected(**case)["output"]
    scaled = expected(**case, scale_mistake=True)["output"]
    if isinstance(got, torch.Tensor) and got.shape == scaled.shape and torch.allclose(got, scaled, rtol=1e-7,
                                                                                       atol=1e-7):
        return
    if isinstance(got, torch.Tensor) and got.shape != want.shape:
        n, l, e = want.shape
        hint = " (sequence-first: transpose back to batch_first)" if tuple(got.shape) == (l, n, e) else ""
        fail(f"{what}: the output has shape {tuple(got.shape)}, expected (N, L, E) = {tuple(want.shape)}{hint}")
    assert_close(got, want, name=f"{what}: output (against nn.MultiheadAttention)")


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
