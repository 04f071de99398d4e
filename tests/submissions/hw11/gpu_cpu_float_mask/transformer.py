"""One transformer encoder block, built from attention, linear layers and layer norm.

`TransformerEncoderBlock` computes what `nn.TransformerEncoderLayer(batch_first=True)`
computes, with the same submodule names (`self_attn`, `linear1`, `linear2`, `norm1`,
`norm2`), so a state_dict taken from torch's layer loads into it unchanged.

    post-norm (norm_first=False):  x = norm1(x + SA(x));  x = norm2(x + FF(x))
    pre-norm  (norm_first=True):   x = x + SA(norm1(x));  x = x + FF(norm2(x))

    SA(x) = dropout1(self_attn(x, x, x, masks))
    FF(x) = dropout2(linear2(dropout(activation(linear1(x)))))
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class TransformerEncoderBlock(nn.Module):
    """Self-attention and a feed-forward network, each with a residual connection and layer norm.

    Inputs are batch-first, (N, L, d_model). `src_mask` (L, L) and `src_key_padding_mask`
    (N, L) follow nn.MultiheadAttention: a bool mask marks with True what may NOT be
    attended to, a float mask is added to the attention scores.
    """

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", norm_first: bool = False) -> None:
        super().__init__()
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation should be 'relu' or 'gelu', not {activation!r}")
        # dropout inside attention drops attention weights; batch_first: inputs are (N, L, E)
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout, batch_first=True)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm_first = norm_first
        self.activation = F.relu if activation == "relu" else F.gelu

    def forward(self, src: Tensor, src_mask: Tensor | None = None,
                src_key_padding_mask: Tensor | None = None) -> Tensor:
        """Return the block's output, (N, L, d_model)."""
        x = src
        if src_mask is not None and src_mask.dtype == torch.bool:  # an additive mask: -inf where not allowed
            src_mask = torch.zeros(src_mask.shape, dtype=src.dtype).masked_fill(src_mask, float("-inf"))
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None) -> Tensor:
        """Self-attention (query = key = value = x) followed by dropout1."""
        out, _ = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False)
        return self.dropout1(out)

    def _ff_block(self, x: Tensor) -> Tensor:
        """linear1, activation, dropout, linear2, dropout2."""
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))
