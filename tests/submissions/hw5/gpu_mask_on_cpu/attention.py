"""Bool masks turned into additive float masks with torch.zeros(mask.shape) made without a device:
right on the CPU; on a GPU the float mask stays on the CPU and masked_fill and the addition refuse to mix."""
import math

import torch
import torch.nn.functional as F
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError("embed_dim must be divisible by num_heads")
        self.embed_dim, self.num_heads, self.head_dim = embed_dim, num_heads, embed_dim // num_heads
        self.dropout = dropout
        self.q_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.k_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.v_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)

    @staticmethod
    def additive(mask, dtype):
        if mask.dtype == torch.bool:
            return torch.zeros(mask.shape, dtype=dtype).masked_fill(mask, float("-inf"))
        return mask.to(dtype)

    def forward(self, query, key, value, key_padding_mask=None, attn_mask=None, need_weights=True):
        n, l, _ = query.shape
        s = key.shape[1]
        q = self.q_proj(query).view(n, l, self.num_heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(key).view(n, s, self.num_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(value).view(n, s, self.num_heads, self.head_dim).transpose(1, 2)
        scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_dim)
        if attn_mask is not None:
            mask = self.additive(attn_mask, scores.dtype)
            scores = scores + (mask if mask.dim() == 2 else mask.view(n, self.num_heads, l, s))
        if key_padding_mask is not None:
            scores = scores + self.additive(key_padding_mask, scores.dtype)[:, None, None, :]
        weights = F.dropout(scores.softmax(dim=-1), p=self.dropout, training=self.training)
        out = (weights @ v).transpose(1, 2).reshape(n, l, self.embed_dim)
        return self.out_proj(out), (weights if need_weights else None)
