"""A correct block written another way: attention by hand (packed in_proj_weight, einsum, one additive
bias for both masks), F.dropout with training=self.training, nn.Sequential-free feed-forward, and the
two norm orders as two small functions."""
import math

import torch
import torch.nn.functional as F
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, d_model, nhead, dropout):
        super().__init__()
        self.nhead, self.p = nhead, dropout
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)

    def forward(self, x, attn_mask=None, key_padding_mask=None):
        n, length, d = x.shape
        h = self.nhead
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.reshape(n, length, h, d // h) for t in (q, k, v))
        scores = torch.einsum("nlhd,nshd->nhls", q, k) / math.sqrt(d // h)
        bias = torch.zeros(n, 1, length, length, dtype=x.dtype, device=x.device)
        for mask, shape in ((attn_mask, (1, 1, length, length)), (key_padding_mask, (n, 1, 1, length))):
            if mask is not None:
                mask = mask.reshape(shape)
                bias = bias + (torch.zeros_like(mask, dtype=x.dtype).masked_fill(mask, -math.inf)
                               if mask.dtype == torch.bool else mask)
        weights = F.dropout(torch.softmax(scores + bias, dim=-1), self.p, self.training)
        out = torch.einsum("nhls,nshd->nlhd", weights, v).reshape(n, length, d)
        return self.out_proj(out)


class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", norm_first=False):
        super().__init__()
        self.self_attn = SelfAttention(d_model, nhead, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.p = dropout
        self.gelu = activation == "gelu"
        self.norm_first = norm_first

    def _drop(self, x):
        return F.dropout(x, self.p, training=self.training)

    def _attend(self, x, src_mask, padding):
        return self._drop(self.self_attn(x, src_mask, padding))

    def _feed_forward(self, x):
        hidden = self.linear1(x)
        hidden = F.gelu(hidden) if self.gelu else torch.clamp(hidden, min=0)
        return self._drop(self.linear2(self._drop(hidden)))

    def forward(self, src, src_mask=None, src_key_padding_mask=None):
        if self.norm_first:
            h = src + self._attend(self.norm1(src), src_mask, src_key_padding_mask)
            return h + self._feed_forward(self.norm2(h))
        h = self.norm1(src + self._attend(src, src_mask, src_key_padding_mask))
        return self.norm2(h + self._feed_forward(h))
