"""hw11 hidden checks: larger sizes with both masks, pre-norm with float masks, one head, one token."""

import pytest
import torch

from kit.grader.suite import sibling

R = sibling(__file__, "encoder_reference.py")
F64 = torch.float64
pytestmark = [pytest.mark.hidden, pytest.mark.component("TransformerEncoderBlock")]

EVERYTHING = ("output", "input.grad", "grads")


@pytest.mark.points(2)
def test_hidden_larger(student, child):
    """d_model=32, 4 heads, dim_feedforward=64, N=3, L=9, post-norm: causal and padding masks together"""
    padding = torch.zeros(3, 9, dtype=torch.bool)
    padding[0, 6:] = True
    padding[2, [2, 5]] = True
    causal = torch.ones(9, 9, dtype=torch.bool).triu(1)
    R.check(student, child, d_model=32, nhead=4, dim_feedforward=64, seed=101, n=3, length=9, keys=EVERYTHING,
            src_mask=causal, src_key_padding_mask=padding)


def test_hidden_pre_norm_masks(student, child):
    """pre-norm: float src_mask and float src_key_padding_mask together"""
    g = torch.Generator().manual_seed(103)
    src_mask = torch.randn(6, 6, generator=g, dtype=F64)
    padding = torch.randn(2, 6, generator=g, dtype=F64)
    padding[1, 4:] = float("-inf")
    R.check(student, child, d_model=12, nhead=3, dim_feedforward=20, seed=103, length=6, norm_first=True,
            keys=EVERYTHING, src_mask=src_mask, src_key_padding_mask=padding)


def test_hidden_one_head(student, child):
    """nhead=1 (head_dim = d_model): output and every gradient"""
    R.check(student, child, d_model=6, nhead=1, dim_feedforward=10, seed=105, n=2, length=4, keys=EVERYTHING)


def test_hidden_one_token(student, child):
    """sequences of one token (L=1), post-norm: output and every gradient"""
    R.check(student, child, seed=107, n=4, length=1, keys=EVERYTHING)
