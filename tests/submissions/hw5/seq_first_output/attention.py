"""Wrong on purpose: computes attention in nn.MultiheadAttention's default sequence-first layout and
forgets to transpose the output back, so it returns (L, N, E) instead of (N, L, E). The per-head
weights are (N, heads, L, S) and right."""
import math

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True):
        super().__init__()
        assert embed_dim % num_heads == 0, "embed_dim must be divisible by num_heads"
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = nn.Dropout(dropout)
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, query, key, value, key_padding_mask=None, attn_mask=None, need_weights=True):
        # work sequence-first, like nn.MultiheadAttention: (L, N, E)
        query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        L, N, E = query.shape
        S = key.shape[0]

        def heads(x, length):
            # (T, N, E) -> (N, heads, T, head_dim)
            return x.reshape(length, N, self.num_heads, self.head_dim).permute(1, 2, 0, 3)

        q = heads(self.q_proj(query), L)
        k = heads(self.k_proj(key), S)
        v = heads(self.v_proj(value), S)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if attn_mask is not None:
            if attn_mask.dtype == torch.bool:
                scores = scores.masked_fill(attn_mask, float("-inf"))
            else:
                scores = scores + attn_mask
        if key_padding_mask is not None:
            mask = key_padding_mask[:, None, None, :]
            if mask.dtype == torch.bool:
                scores = scores.masked_fill(mask, float("-inf"))
            else:
                scores = scores + mask
        weights = torch.softmax(scores, dim=-1)
        attn = self.dropout(weights) @ v  # (N, heads, L, head_dim)
        out = attn.permute(2, 0, 1, 3).reshape(L, N, E)  # back to (L, N, E)
        out = self.out_proj(out)
        return out, (weights if need_weights else None)
