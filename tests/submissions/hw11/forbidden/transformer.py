"""Wraps torch's own layer: nn.TransformerEncoderLayer does all the work."""
from torch import nn


class TransformerEncoderBlock(nn.Module):
    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", norm_first=False):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation,
                                                batch_first=True, norm_first=norm_first)

    def forward(self, src, src_mask=None, src_key_padding_mask=None):
        return self.layer(src, src_mask=src_mask, src_key_padding_mask=src_key_padding_mask)
