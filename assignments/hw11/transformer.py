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
        raise NotImplementedError('self_attn (nn.MultiheadAttention, batch_first=True, with dropout), linear1, dropout, linear2, norm1, norm2, dropout1, dropout2; remember norm_first and the activation')

    def forward(self, src: Tensor, src_mask: Tensor | None = None,
                src_key_padding_mask: Tensor | None = None) -> Tensor:
        """Return the block's output, (N, L, d_model)."""
        raise NotImplementedError('pre-norm: x + SA(norm1(x)), then + FF(norm2(x)); post-norm: norm1(x + SA(x)), then norm2(x + FF(x))')

    def _sa_block(self, x: Tensor, attn_mask: Tensor | None, key_padding_mask: Tensor | None) -> Tensor:
        """Self-attention (query = key = value = x) followed by dropout1."""
        raise NotImplementedError('self_attn(x, x, x, attn_mask=..., key_padding_mask=..., need_weights=False)[0], then dropout1')

    def _ff_block(self, x: Tensor) -> Tensor:
        """linear1, activation, dropout, linear2, dropout2."""
        raise NotImplementedError('linear2(dropout(activation(linear1(x)))), then dropout2')
