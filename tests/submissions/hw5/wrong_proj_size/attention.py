"""Wrong on purpose: the query, key and value projections map to head_dim (one head's size), as in
a single-head tutorial, and that one head's projection is shared by every head."""
import math

import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True):
        super().__init__()
        assert embed_dim % num_heads == 0, "embed_dim must be divisible by num_heads"
        self.num_heads = num_heads
        self.head_dim = embed_dim // num_heads
        self.dropout = nn.Dropout(dropout)
        self.q_proj = nn.Linear(embed_dim, self.head_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, self.head_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, self.head_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None):
        n, l, _ = query.shape
        s = key.shape[1]
        q = self.q_proj(query).unsqueeze(1).expand(n, self.num_heads, l, self.head_dim)
        k = self.k_proj(key).unsqueeze(1).expand(n, self.num_heads, s, self.head_dim)
        v = self.v_proj(value).unsqueeze(1).expand(n, self.num_heads, s, self.head_dim)
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
        out = (self.dropout(weights) @ v).permute(0, 2, 1, 3).reshape(n, l, -1)
        return self.out_proj(out), (weights if need_weights else None)
