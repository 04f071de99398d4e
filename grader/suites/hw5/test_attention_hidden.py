"""hw5 hidden checks: larger shapes, and key_padding_mask together with attn_mask."""

import pytest
import torch

from kit.grader.suite import sibling

R = sibling(__file__, "mha_reference.py")
F64 = torch.float64
pytestmark = [pytest.mark.hidden, pytest.mark.component("MultiHeadAttention")]

EVERYTHING = ("output", "weights", "query.grad", "key.grad", "value.grad", "grads")


def compare(student, child, *, e, h, n, l, s, seed, **masks):
    q, k, v, up = R.inputs(n, l, s, e, seed=seed + 1)
    got = R.run_student(student, child, R.student_copy(student, e, h, seed=seed), q, k, v, up, **masks)
    want = R.expected(e, h, seed=seed, n=n, l=l, s=s, input_seed=seed + 1,
                      **{name: R.frozen(mask) for name, mask in masks.items()})
    R.compare(got, want, EVERYTHING)


@pytest.mark.points(2)
def test_hidden_large_shapes(student, child):
    """N=3, L=17, S=29, E=48, 6 heads: output, weights and every gradient"""
    compare(student, child, e=48, h=6, n=3, l=17, s=29, seed=101)


def test_hidden_both_bool_masks(student, child):
    """bool attn_mask and bool key_padding_mask together"""
    n, l, s = 3, 5, 7
    attn_mask = R.random_bool_mask(l, s, seed=103)
    padding = torch.zeros(n, s, dtype=torch.bool)
    padding[0, 5:] = True
    padding[2, [1, 3]] = True
    # keep every row attendable: the first key is never padded and never masked
    attn_mask[:, 0] = False
    compare(student, child, e=16, h=4, n=n, l=l, s=s, seed=103, attn_mask=attn_mask, key_padding_mask=padding)


def test_hidden_both_float_masks(student, child):
    """float attn_mask and float key_padding_mask together (both added to the scores)"""
    n, l, s = 2, 4, 6
    g = torch.Generator().manual_seed(105)
    attn_mask = torch.randn(l, s, generator=g, dtype=F64)
    padding = torch.randn(n, s, generator=g, dtype=F64)
    padding[1, 4:] = float("-inf")
    compare(student, child, e=12, h=3, n=n, l=l, s=s, seed=105, attn_mask=attn_mask, key_padding_mask=padding)
