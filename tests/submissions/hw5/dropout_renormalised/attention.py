"""Dropout renormalises the kept attention weights to sum to 1 instead of scaling them by 1 / (1 - p).

A row whose every weight was dropped becomes 0 / 0 = NaN."""
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
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                attn_mask: Tensor | None = None, need_weights: bool = True) -> tuple[Tensor, Tensor | None]:
        """Return (output (N, L, E), weights (N, num_heads, L, S) or None when need_weights is False)."""
        n, l, _ = query.shape
        s = key.shape[1]
        # (N, T, E) -> (N, heads, T, head_dim)
        q = self.q_proj(query).view(n, l, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(key).view(n, s, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(value).view(n, s, self.num_heads, self.head_dim).transpose(1, 2)

        # scale by the size of one head: it keeps the scores' variance near 1 whatever the head count
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)  # (N, heads, L, S)
        if attn_mask is not None:
            # (L, S) applies to every batch element and head; (N * heads, L, S) to one each
            mask = attn_mask if attn_mask.dim() == 2 else attn_mask.view(n, self.num_heads, l, s)
            scores = self._apply_mask(scores, mask)
        if key_padding_mask is not None:
            scores = self._apply_mask(scores, key_padding_mask[:, None, None, :])  # (N, S) -> every head and query

        weights = scores.softmax(dim=-1)
        # dropout on the attention weights, as PyTorch does; F.dropout is the identity in eval mode
        if self.training and self.dropout > 0:
            weights = weights * (torch.rand_like(weights) >= self.dropout)
            weights = weights / weights.sum(dim=-1, keepdim=True)
        out = (weights @ v).transpose(1, 2).reshape(n, l, self.embed_dim)
        return self.out_proj(out), (weights if need_weights else None)

    @staticmethod
    def _apply_mask(scores: Tensor, mask: Tensor) -> Tensor:
        """Bool masks exclude the True positions (-inf before the softmax); float masks are added."""
        if mask.dtype == torch.bool:
            return scores.masked_fill(mask, float("-inf"))
        return scores + mask
