"""hw11 public checks: TransformerEncoderBlock against nn.TransformerEncoderLayer(batch_first=True).

Each check loads the reference layer's weights into the student's block and compares outputs
and gradients in float64, with torch's fused fast path switched off (see encoder_reference.py).
Checks of one feature (pre-norm, gelu, a mask, dropout) test that feature only: the others use
post-norm, relu, no mask and dropout 0, so one mistake costs the checks of that mistake.
"""

import pytest
import torch

from kit.grader.suite import CheckFailed, OnDevice, assert_close, fail, fetch, reference, sibling

R = sibling(__file__, "encoder_reference.py")
F64 = torch.float64
pytestmark = pytest.mark.component("TransformerEncoderBlock")

NOT_BATCH_FIRST = ("nn.MultiheadAttention was created without batch_first=True: it then reads (N, L, E) as "
                   "(L, N, E) and attends across the batch instead of along the sequence")
NORM_FIRST_IGNORED = ("norm_first=True is ignored: pre-norm is x = x + SA(norm1(x)), then x = x + FF(norm2(x)), "
                      "with no norm after the residual sum")
PRE_NORM_ALWAYS = "the block applies pre-norm although norm_first=False: post-norm is x = norm1(x + SA(x)), then " \
                  "x = norm2(x + FF(x))"
INVERTED_MASK = "the bool mask is inverted: True marks the positions that may NOT be attended to"


def test_structure(student, child):
    """the parameters have nn.TransformerEncoderLayer's names and shapes, and load its state_dict"""
    m = student.TransformerEncoderBlock(8, 2, 16)
    got = {name: tuple(t.shape) for name, t in fetch(child.named_parameters(m)).items()}
    want = R.shapes(8, 2, 16)
    missing, extra = [k for k in want if k not in got], [k for k in got if k not in want]
    if missing or extra:
        text = "the parameter names differ from nn.TransformerEncoderLayer's"
        if missing:
            text += f"\n  missing: {', '.join(missing)}"
        if extra:
            text += f"\n  unexpected: {', '.join(extra)}"
        text += ("\n  expected: self_attn (an nn.MultiheadAttention: in_proj_weight, in_proj_bias, out_proj), "
                 "linear1, linear2, norm1, norm2")
        fail(text)
    assert_close(got, want, name="parameter shapes")
    m = R.student_copy(student, 8, 2, 16)
    assert_close(fetch(m.state_dict()), R.weights(8, 2, 16), name="state_dict after loading torch's")


def test_defaults(student, child):
    """TransformerEncoderBlock(8, 2) is TransformerEncoderBlock(8, 2, 2048, 0.1, "relu", False)"""
    m = student.TransformerEncoderBlock(8, 2)
    got = {name: tuple(t.shape) for name, t in fetch(child.named_parameters(m)).items()}
    assert_close(got, R.shapes(8, 2), name="parameter shapes with the default dim_feedforward=2048")
    # in train mode, with the same weights and the same random numbers, the defaults must give what the
    # explicit values give (dropout 0.1 included)
    x, _ = R.inputs(2, 5, 8, seed=3)
    state = R.weights(8, 2, 2048, seed=3)
    default = student.TransformerEncoderBlock(8, 2).double()
    default.load_state_dict(state)
    explicit = student.TransformerEncoderBlock(8, 2, 2048, 0.1, "relu", False).double()
    explicit.load_state_dict(state)
    default.train()
    explicit.train()
    child.torch.manual_seed(5)
    got = default(x)
    child.torch.manual_seed(5)
    want = explicit(x)
    got, want = fetch(got, want)
    assert_close(got, want, name="train-mode output of TransformerEncoderBlock(8, 2) (vs the explicit defaults)")


@pytest.mark.points(2)
def test_post_norm_output(student, child):
    """norm_first=False (post-norm), relu: output matches"""
    R.check(student, child, seed=5, hints={PRE_NORM_ALWAYS: {"norm_first": True},
                                           NOT_BATCH_FIRST: {"batch_first": False}})


@pytest.mark.points(2)
def test_post_norm_grads(student, child):
    """norm_first=False: gradients of the input and of every parameter"""
    R.check(student, child, seed=7, keys=("output", "input.grad", "grads"),
            hints={PRE_NORM_ALWAYS: {"norm_first": True}, NOT_BATCH_FIRST: {"batch_first": False}})


@pytest.mark.points(2)
def test_pre_norm_output(student, child):
    """norm_first=True (pre-norm), relu: output matches"""
    R.check(student, child, seed=9, norm_first=True, hints={NORM_FIRST_IGNORED: {"norm_first": False},
                                                             NOT_BATCH_FIRST: {"batch_first": False}})


def test_pre_norm_grads(student, child):
    """norm_first=True: gradients of the input and of every parameter"""
    R.check(student, child, seed=11, norm_first=True, keys=("output", "input.grad", "grads"),
            hints={NORM_FIRST_IGNORED: {"norm_first": False}, NOT_BATCH_FIRST: {"batch_first": False}})


def test_gelu(student, child):
    """activation="gelu" (the exact, erf-based GELU): output and input gradient"""
    R.check(student, child, seed=13, activation="gelu", keys=("output", "input.grad"), hints={
        "the tanh approximation of GELU was used: activation='gelu' is F.gelu(x) (approximate='none')":
            {"activation": "gelu_tanh"},
        "activation='gelu' was ignored: relu was used": {"activation": "relu"}})


def test_causal_mask(student, child):
    """bool src_mask (L, L), True above the diagonal: a position may not attend to later ones"""
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1)
    R.check(student, child, seed=15, keys=("output", "input.grad"), src_mask=mask,
            hints={INVERTED_MASK: {"src_mask": R.frozen(~mask)}, "src_mask is ignored": {"src_mask": None}})


def test_float_mask(student, child):
    """float src_mask (L, L) is added to the attention scores (some entries -inf)"""
    g = torch.Generator().manual_seed(17)
    mask = torch.randn(5, 5, generator=g, dtype=F64) * 2
    mask[0, 1] = mask[2, 3] = mask[4, 0] = float("-inf")
    R.check(student, child, seed=17, keys=("output", "input.grad"), src_mask=mask,
            hints={"src_mask is ignored": {"src_mask": None}})


@pytest.mark.points(2)
def test_key_padding_mask(student, child):
    """bool src_key_padding_mask (N, L): True positions are ignored as keys by every query of that sequence"""
    mask = torch.tensor([[False, False, False, True, True],
                         [False, True, False, False, False],
                         [False, False, False, False, True]])
    R.check(student, child, seed=19, n=3, keys=("output", "input.grad"), src_key_padding_mask=mask,
            hints={"src_key_padding_mask is ignored": {"src_key_padding_mask": None},
                   INVERTED_MASK: {"src_key_padding_mask": R.frozen(~mask)}})


def test_dropout_eval(student, child):
    """dropout=0.3 in eval mode: no dropout, the output matches (and a second call gives the same)"""
    x, _ = R.inputs(2, 5, 8, seed=21)
    m = R.student_copy(student, seed=21, dropout=0.3)
    m.eval()
    first, second = fetch(m(x), m(x))
    want = R.expected(seed=21, input_seed=21)["output"]
    try:
        assert_close(first, want, name="output in eval mode with dropout=0.3")
    except CheckFailed as exc:
        if isinstance(second, torch.Tensor) and second.shape == first.shape and not torch.equal(first, second):
            fail(f"{exc}\n  likely cause: dropout is applied in eval mode (two calls differ): nn.Dropout follows "
                 "the module's mode, F.dropout needs training=self.training")
        raise
    assert_close(second, want, name="a second call in eval mode")


TRAIN_DROPOUT = dict(p=0.5, seed=23, copies=3000, length=2)


@pytest.mark.points(2)
def test_dropout_train(student, child):
    """dropout=0.5 in train mode: the spread of 3000 samples matches nn.TransformerEncoderLayer's"""
    check_dropout_train(student, child, norm_first=False, **TRAIN_DROPOUT)


def check_dropout_train(student, child, *, p: float, seed: int, copies: int, length: int, norm_first: bool,
                        d_model: int = 8, nhead: int = 2, dim_feedforward: int = 16) -> None:
    """Compare the per-element mean and variance of many train-mode samples with torch's, in standard errors.

    Dropout draws differ between implementations, so single outputs cannot be compared; their
    distribution can. The seeds are fixed, so the same code always gives the same figures: the
    solution and the alt_correct fixture land within 3 standard errors of torch's moments, and each
    of the four dropouts left out (torch's layer with that dropout at 0, sampled with other seeds)
    lands 8 or more away. The limit is 6.
    """
    x = R.sample_input(length, d_model, seed)
    m = R.student_copy(student, d_model, nhead, dim_feedforward, seed=seed, dropout=p, norm_first=norm_first)
    m.train()
    samples = m(x.expand(copies, -1, -1))
    m.eval()
    got, clean = fetch(samples, m(x))
    if not isinstance(got, torch.Tensor) or got.shape != (copies, length, d_model):
        fail(f"output shape {tuple(getattr(got, 'shape', ()))} but expected {(copies, length, d_model)}")
    changed = ((got - clean).abs().amax(dim=(1, 2)) > 1e-9).double().mean()
    if changed < 0.9:
        fail(f"in train mode with dropout={p} only {100 * changed:.0f}% of the samples differ from the eval-mode "
             "output: is dropout applied in train mode?")
    config = dict(p=p, norm_first=norm_first, seed=seed, copies=copies, length=length)
    want = R.train_statistics(d_model, nhead, dim_feedforward, **config)
    moments = R.moments(got)
    z, which = R.distance(moments, want)
    if z <= 6:
        return
    text = (f"the {'variance' if which == 'var' else 'mean'} of the train-mode outputs is {z:.1f} standard errors "
            f"away from nn.TransformerEncoderLayer's (dropout={p}, {copies} samples): dropout belongs on the "
            "attention weights (nn.MultiheadAttention's dropout), on the attention output and on the feed-forward "
            "output before each residual sum (dropout1, dropout2), and after the activation (dropout), each "
            "scaling what it keeps by 1 / (1 - p)")
    for cause, site in R.DROPOUT_SITES.items():
        if R.distance(moments, R.train_statistics(d_model, nhead, dim_feedforward, without=site, **config))[0] <= 6:
            text += f"\n  likely cause: {cause}"
            break
    fail(text)


# --- GPU ----------------------------------------------------------------------------------------

@pytest.mark.gpu
@pytest.mark.points(2)
def test_cuda_forward_backward(student, child):
    """on CUDA: post-norm with a causal mask and pre-norm with a padding mask, outputs and every gradient"""
    causal = torch.ones(5, 5, dtype=torch.bool, device="cuda").triu(1)
    padding = torch.tensor([[False, False, False, True, True], [False, False, False, False, False]], device="cuda")
    keys = ("output", "input.grad", "grads")
    R.check(student, child, seed=25, device="cuda", keys=keys, src_mask=causal)
    R.check(student, child, seed=27, device="cuda", keys=keys, norm_first=True, activation="gelu",
            src_key_padding_mask=padding)


@pytest.mark.gpu
def test_cuda_autocast(student, child):
    """on CUDA under autocast(float16): the output has torch's dtype, is close to float32's, and backward runs"""
    x, up = (t.float() for t in R.inputs(2, 5, 8, seed=29, device="cuda"))
    for norm_first in (False, True):
        want = autocast_reference(norm_first)
        m = student.TransformerEncoderBlock(8, 2, 16, dropout=0.0, norm_first=norm_first).to("cuda")
        m.load_state_dict(R.weights(8, 2, 16, seed=29, device="cuda"))
        leaf = child.leaf(x)
        out = child.autocast(m, leaf, device_type="cuda", dtype=torch.float16)
        got = fetch(out)
        what = f"output under autocast ({'pre' if norm_first else 'post'}-norm)"
        if not isinstance(got, torch.Tensor) or got.shape != want["output"].shape:
            assert_close(got, want["output"], name=what)  # says what came back instead
        if str(got.dtype) != want["dtype"]:
            fail(f"{what}: dtype {got.dtype} but nn.TransformerEncoderLayer gives {want['dtype']} (layer norm runs "
                 "in float32 under autocast: use nn.LayerNorm or F.layer_norm)")
        assert_close(got.float(), want["output"], name=what, rtol=1e-2, atol=1e-2)
        (out.float() * up).sum().backward()
        grads = fetch(child.grads(m))
        bad = sorted(name for name, grad in grads.items() if grad is None or not torch.isfinite(grad).all())
        if bad:
            fail(f"after backward under autocast these gradients are missing or not finite: {', '.join(bad)}")


@reference
def autocast_reference(norm_first: bool) -> dict:
    """torch's layer (float32 weights of weights(8, 2, 16, seed=29)) on CUDA: its output dtype under autocast
    float16, and its float32 output without autocast."""
    ref = R.build(8, 2, 16, seed=29, norm_first=norm_first, device="cuda").float()
    x, _ = R.inputs(2, 5, 8, seed=29, device="cuda")
    with torch.no_grad(), R.slow_path():
        with torch.autocast("cuda", dtype=torch.float16):
            dtype = ref(x.float()).dtype
        return {"dtype": str(dtype), "output": ref(x.float())}


# --- on the GPU, or an emulated one ------------------------------------------------------------------


def test_device_placement(student, child):
    """on the GPU (emulated without one): training, backward and eval keep outputs, gradients and parameters
    there, with masks"""
    dev = OnDevice(child)
    n, l, e = 2, 5, 8
    for kwargs, masks in (({}, {"src_mask": dev.mask(l, l, causal=True), "src_key_padding_mask": dev.mask(n, l)}),
                          ({"norm_first": True, "activation": "gelu"}, {"src_mask": dev.randn(l, l)})):
        m = student.TransformerEncoderBlock(e, 2, dim_feedforward=16, dropout=0.1, **kwargs).to(dev.name)
        m.train()
        x = dev.randn(n, l, e, requires_grad=True)
        y = m(x, **masks)
        y.backward(dev.randn(n, l, e))
        m.eval()
        z = m(dev.randn(n, l, e), **masks)
        setting = ", ".join([*(f"{k}={v}" for k, v in kwargs.items()), *masks]) or "defaults"
        dev.expect(f"training, backward and eval ({setting})", output=y, eval_output=z,
                   **{"x.grad": x.grad, "TransformerEncoderBlock": m})
