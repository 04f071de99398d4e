"""A correct MultiHeadAttention written differently: einsum, one additive bias for both masks,
a hand-written stable softmax and nn.Dropout."""
import torch
from torch import nn


class MultiHeadAttention(nn.Module):
    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True):
        super().__init__()
        assert embed_dim % num_heads == 0
        self.h, self.d = num_heads, embed_dim // num_heads
        for name in ("q_proj", "k_proj", "v_proj", "out_proj"):
            setattr(self, name, nn.Linear(embed_dim, embed_dim, bias=bias))
        self.attn_drop = nn.Dropout(dropout)

    def _heads(self, x):
        n, t, _ = x.shape
        return x.reshape(n, t, self.h, self.d).permute(0, 2, 1, 3)

    @staticmethod
    def _additive(mask, like):
        if mask.dtype == torch.bool:
            return torch.zeros(mask.shape, dtype=like.dtype, device=like.device).masked_fill(mask, float("-inf"))
        return mask.to(like.dtype)

    def forward(self, query, key, value, key_padding_mask=None, attn_mask=None, need_weights=True):
        q = self._heads(self.q_proj(query)) * self.d ** -0.5
        k = self._heads(self.k_proj(key))
        v = self._heads(self.v_proj(value))
        logits = torch.einsum("nhld,nhsd->nhls", q, k)
        if attn_mask is not None:
            logits = logits + self._additive(attn_mask, logits)
        if key_padding_mask is not None:
            logits = logits + self._additive(key_padding_mask, logits).unsqueeze(1).unsqueeze(2)
        logits = logits - logits.amax(dim=-1, keepdim=True).detach()
        e = logits.exp()
        w = self.attn_drop(e / e.sum(dim=-1, keepdim=True))
        out = torch.einsum("nhls,nhsd->nlhd", w, v).flatten(2)
        return self.out_proj(out), (w if need_weights else None)
