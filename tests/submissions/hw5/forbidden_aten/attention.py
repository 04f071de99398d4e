"""Forbidden, reached below the Python API: the fused attention kernel through torch.ops.aten,
with the name assembled at run time so no static scan can resolve it."""
import math

import torch
from torch import nn

_OP = "".join(reversed("noitnetta_tcudorp_tod_delacs"))


class MultiHeadAttention(nn.Module):
    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True):
        super().__init__()
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    def forward(self, query, key, value, key_padding_mask=None, attn_mask=None, need_weights=True):
        n, l, _ = query.shape
        s = key.shape[1]
        q = self.q_proj(query).view(n, l, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(key).view(n, s, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(value).view(n, s, self.num_heads, self.head_dim).transpose(1, 2)
        bias = torch.zeros(n, 1, l, s, dtype=q.dtype, device=q.device)
        for mask, shaped in ((attn_mask, lambda m: m), (key_padding_mask, lambda m: m[:, None, None, :])):
            if mask is not None:
                mask = shaped(mask)
                bias = bias + (torch.zeros_like(bias).masked_fill(mask, float("-inf")) if mask.dtype == torch.bool
                               else mask)
        out = getattr(torch.ops.aten, _OP)(q, k, v, bias, self.dropout if self.training else 0.0)
        weights = None
        if need_weights:
            weights = ((q @ k.transpose(-2, -1)) / math.sqrt(self.head_dim) + bias).softmax(-1)
        return self.out_proj(out.transpose(1, 2).reshape(n, l, self.embed_dim)), weights
