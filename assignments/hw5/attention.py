"""Multi-head attention written out with tensor operations.

`MultiHeadAttention` computes what `nn.MultiheadAttention(batch_first=True)` computes,
with four `nn.Linear` projections instead of one packed `in_proj_weight`, so that
`in_proj_weight = cat(q_proj.weight, k_proj.weight, v_proj.weight)`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class MultiHeadAttention(nn.Module):
    """Scaled dot-product attention over `num_heads` heads of size `embed_dim // num_heads`.

    Inputs are batch-first: query (N, L, E), key and value (N, S, E). Masks follow
    PyTorch: a bool mask marks with True the positions a query may NOT attend to, a
    float mask is added to the attention scores.
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True) -> None:
        super().__init__()
        raise NotImplementedError('check that num_heads divides embed_dim; store the sizes; create q_proj, k_proj, v_proj, out_proj as nn.Linear(embed_dim, embed_dim, bias=bias)')

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                attn_mask: Tensor | None = None, need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """Return (output (N, L, E), weights (N, num_heads, L, S) or None when need_weights is False)."""
        raise NotImplementedError('project, split into heads, scores = q @ k^T / sqrt(head_dim) plus masks, softmax, dropout, weights @ v, merge heads, out_proj')

    @staticmethod
    def _apply_mask(scores: Tensor, mask: Tensor) -> Tensor:
        """Bool masks exclude the True positions (-inf before the softmax); float masks are added."""
        raise NotImplementedError('bool mask: masked_fill True positions with -inf; float mask: add it')
