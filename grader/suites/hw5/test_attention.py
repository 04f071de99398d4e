"""hw5 public checks: MultiHeadAttention against nn.MultiheadAttention(batch_first=True).

Each check loads the reference's weights into the student's module (in_proj split into
q_proj, k_proj, v_proj) and compares outputs, per-head weights and gradients in float64.
Checks of one feature (a mask, dropout, need_weights) test that feature only, so one
mistake costs the checks of that mistake. The checks that compare the student's module with
itself (need_weights=False, eval-mode dropout, a second call, train-mode expectation) also
compare its plain output with torch's (`R.assert_output`), so a forward that is simply wrong
earns none of them; an output showing only a mistake graded by the value checks (the scale)
is accepted there.
"""

import pytest
import torch

from kit.grader.suite import OnDevice, assert_close, fail, fetch, sibling

R = sibling(__file__, "mha_reference.py")
F64 = torch.float64
pytestmark = pytest.mark.component("MultiHeadAttention")

ALL_GRADS = ("output", "query.grad", "key.grad", "value.grad", "grads")


def check(student, child, *, e=8, h=2, n=2, l=5, s=6, seed=0, input_seed=None, bias=True, device="cpu",
          keys=("output", "weights"), self_attention=False, scale_hint=True, hints=None, **masks):
    """Run the student's module and the reference on the same weights, inputs and masks; compare `keys`.

    Inputs come from seed + 1 unless `input_seed` is given. `hints` maps a likely cause to the masks
    (as R.frozen(...)) with which the reference shows that mistake.
    """
    input_seed = seed + 1 if input_seed is None else input_seed
    q, k, v, up = R.inputs(n, l, s, e, seed=input_seed, device=device, self_attention=self_attention)
    m = R.student_copy(student, e, h, bias=bias, seed=seed, device=device)
    got = R.run_student(student, child, m, q, k, v, up, keys, **masks)
    case = dict(seed=seed, bias=bias, n=n, l=l, s=s, input_seed=input_seed, self_attention=self_attention,
                device=device)
    mask_keys = {name: R.frozen(mask) for name, mask in masks.items()}
    want = R.expected(e, h, **case, **mask_keys)
    mistakes = {cause: R.expected(e, h, **case, **wrong) for cause, wrong in (hints or {}).items()}
    if scale_hint:
        mistakes[R.SCALE_MISTAKE] = R.expected(e, h, **case, scale_mistake=True, **mask_keys)
    R.compare(got, want, keys, mistakes)


def test_structure(student, child):
    """q_proj, k_proj, v_proj and out_proj are nn.Linear(embed_dim, embed_dim) and load the reference"""
    m = student.MultiHeadAttention(12, 3)
    params = fetch(child.named_parameters(m), finite=False)
    R.assert_shapes({name: tuple(t.shape) for name, t in params.items()}, 12, what="parameter shapes")
    m = R.student_copy(student, 12, 3)
    assert_close(fetch(m.state_dict()), R.weights(12, 3), name="state_dict after loading")


@pytest.mark.points(2)
def test_self_attention(student, child):
    """self-attention (query = key = value): output matches"""
    check(student, child, self_attention=True, s=5, keys=("output",))


def test_attention_weights(student, child):
    """self-attention: per-head weights (N, heads, L, S) match (average_attn_weights=False)"""
    check(student, child, self_attention=True, s=5, keys=("weights",))


@pytest.mark.points(2)
def test_cross_attention(student, child):
    """cross-attention (S != L, key != value): output and weights match"""
    check(student, child, l=3, s=7, seed=3)


@pytest.mark.points(2)
def test_input_grads(student, child):
    """gradients with respect to query, key and value (cross-attention)"""
    check(student, child, l=4, s=6, seed=5, keys=("query.grad", "key.grad", "value.grad"))


@pytest.mark.points(2)
def test_param_grads(student, child):
    """gradients of every projection weight and bias"""
    check(student, child, l=4, s=6, seed=7, keys=("grads",), scale_hint=False)


def test_causal_mask(student, child):
    """bool causal attn_mask (L, L): True above the diagonal = may not attend to later positions"""
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1)
    check(student, child, self_attention=True, s=5, seed=9, attn_mask=mask,
          hints={R.INVERTED_MASK: {"attn_mask": R.frozen(~mask)}})


def test_bool_mask(student, child):
    """random bool attn_mask (L, S), no row fully masked"""
    mask = R.random_bool_mask(4, 6, seed=11)
    check(student, child, l=4, s=6, seed=10, attn_mask=mask, hints={R.INVERTED_MASK: {"attn_mask": R.frozen(~mask)}})


def test_float_mask(student, child):
    """float attn_mask (L, S) is added to the scores (some entries -inf)"""
    g = torch.Generator().manual_seed(13)
    mask = torch.randn(4, 6, generator=g, dtype=F64) * 2
    mask[0, 1] = mask[2, 3] = mask[3, 0] = float("-inf")
    check(student, child, l=4, s=6, seed=13, attn_mask=mask, keys=("output", "weights", "query.grad"))


@pytest.mark.points(2)
def test_key_padding_mask(student, child):
    """bool key_padding_mask (N, S): True keys are ignored by every query of that batch element"""
    mask = torch.tensor([[False, False, False, False, True, True],
                         [False, True, False, False, False, False],
                         [False, False, False, False, False, True]])
    hints = {"key_padding_mask is ignored": {}, R.INVERTED_MASK: {"key_padding_mask": R.frozen(~mask)}}
    check(student, child, n=3, l=4, s=6, seed=15, input_seed=15, key_padding_mask=mask,
          keys=("output", "weights", "key.grad"), hints=hints)


def test_need_weights_false(student, child):
    """need_weights=False returns (output, None) with the same output as need_weights=True (and as torch)"""
    q, k, v, _ = R.inputs(2, 3, 5, 8, seed=17)
    m = R.student_copy(student, seed=17)
    without, with_weights = fetch(m(q, k, v, need_weights=False), m(q, k, v)[0])
    if not isinstance(without, (tuple, list)) or len(without) != 2:
        fail(f"forward(..., need_weights=False) should return a pair (output, None), got {type(without).__name__}")
    if without[1] is not None:
        fail("forward(..., need_weights=False) should return None as the attention weights")
    R.assert_output(with_weights, dict(seed=17, n=2, l=3, s=5, input_seed=17), what="need_weights=True")
    assert_close(without[0], with_weights, name="output with need_weights=False (vs need_weights=True)")


def test_no_bias(student, child):
    """bias=False: no projection has a bias, output and weights match"""
    m = student.MultiHeadAttention(8, 2, bias=False)
    shapes = {name: tuple(t.shape) for name, t in fetch(child.named_parameters(m), finite=False).items()}
    R.assert_shapes(shapes, 8, bias=False, what="parameter shapes with bias=False")
    check(student, child, bias=False, l=3, s=4, seed=19)


def test_one_head(student, child):
    """num_heads=1: output, weights and gradients"""
    check(student, child, e=6, h=1, l=3, s=4, seed=21, keys=("output", "weights", *ALL_GRADS[1:]), scale_hint=False)


def test_head_dim_one(student, child):
    """head_dim=1 (embed_dim = num_heads = 4): output and weights"""
    check(student, child, e=4, h=4, l=3, s=5, seed=23)


def test_dropout_eval(student, child):
    """dropout=0.5 in eval mode: deterministic, the output of torch's (which ignores dropout in eval mode)"""
    q, k, v, _ = R.inputs(2, 3, 5, 8, seed=25)
    m = R.student_copy(student, seed=25, dropout=0.5)
    m.eval()
    first, second = fetch(m(q, k, v)[0], m(q, k, v)[0])
    R.assert_output(first, dict(seed=25, n=2, l=3, s=5, input_seed=25), what="dropout=0.5 in eval mode")
    assert_close(second, first, name="a second call in eval mode")


@pytest.mark.points(2)
def test_dropout_train(student, child):
    """dropout=0.25 in train mode changes the output and keeps its expectation"""
    q, k, v, _ = R.inputs(1, 3, 4, 8, seed=27)
    copies = 3000  # one sample repeated: each copy draws its own dropout mask
    m = R.student_copy(student, seed=27, dropout=0.25)
    m.train()
    sampled = m(q.repeat(copies, 1, 1), k.repeat(copies, 1, 1), v.repeat(copies, 1, 1))[0]
    m.eval()
    out, clean = fetch(sampled, m(q, k, v)[0])
    R.assert_output(clean, dict(seed=27, n=1, l=3, s=4, input_seed=27), what="dropout=0.25 in eval mode")
    if out.shape != (copies, 3, 8):
        fail(f"output shape {tuple(out.shape)} but expected {(copies, 3, 8)}")
    changed = (out - clean).abs().amax(dim=(1, 2)) > 1e-9
    if changed.double().mean() < 0.9:
        fail(f"in train mode with dropout=0.25 only {100 * changed.double().mean():.0f}% of the samples differ "
             "from the eval-mode output: is dropout applied to the attention weights in train mode?")
    mean, std = out.mean(0), out.std(0)
    z = ((mean - clean[0]).abs() / (std / copies ** 0.5).clamp_min(1e-12)).max()
    if z > 6:
        ratio = float((mean * clean[0]).sum() / (clean[0] * clean[0]).sum())
        fail(f"the mean of the train-mode outputs is {z:.1f} standard errors away from the eval-mode output "
             f"(ratio about {ratio:.2f}): the kept attention weights must be scaled by 1 / (1 - p) so that "
             "dropout keeps the expectation")


@pytest.mark.gpu
def test_cuda_forward_backward(student, child):
    """on CUDA: output, weights and every gradient match nn.MultiheadAttention on CUDA"""
    check(student, child, l=4, s=6, seed=29, input_seed=29, device="cuda", keys=("output", "weights", *ALL_GRADS[1:]),
          scale_hint=False)


@pytest.mark.gpu
@pytest.mark.points(2)
def test_cuda_masks(student, child):
    """on CUDA: causal bool attn_mask, key_padding_mask and a float mask, all on the GPU"""
    causal = torch.ones(5, 5, dtype=torch.bool, device="cuda").triu(1)
    padding = torch.tensor([[False, False, False, True, True], [False, False, False, False, False]], device="cuda")
    float_mask = torch.randn(5, 5, dtype=F64, generator=torch.Generator().manual_seed(31)).to("cuda")
    for masks in ({"attn_mask": causal, "key_padding_mask": padding}, {"attn_mask": float_mask}):
        check(student, child, l=5, s=5, seed=31, input_seed=31, device="cuda", keys=("output", "weights", "query.grad"),
              scale_hint=False, **masks)


# --- on the GPU, or an emulated one ------------------------------------------------------------------


def test_device_placement(student, child):
    """on the GPU (emulated without one): output, weights and every gradient stay there, with masks and dropout"""
    dev = OnDevice(child)
    n, l, s, e = 2, 5, 6, 8
    for dropout, masks in ((0.0, {"attn_mask": dev.mask(l, s, causal=True), "key_padding_mask": dev.mask(n, s)}),
                           (0.0, {"attn_mask": dev.randn(l, s)}), (0.25, {})):
        m = student.MultiHeadAttention(e, 2, dropout=dropout).to(dev.name)
        m.train()
        q, k, v = (dev.randn(n, t, e, requires_grad=True) for t in (l, s, s))
        result = m(q, k, v, **masks)
        out, weights = result[0], result[1]
        out.sum().backward()  # whatever its shape: the output's shape is graded by the other checks
        setting = f"dropout={dropout}" + "".join(f", {name}" for name in masks)
        dev.expect(f"forward and backward ({setting})", output=out, weights=weights,
                   **{"query.grad": q.grad, "key.grad": k.grad, "value.grad": v.grad, "MultiHeadAttention": m})
