"""Small instances of every module type the "default" policy covers (shared by test_explain and test_audit)."""

from __future__ import annotations

import torch
from torch import nn


class Custom(nn.Module):
    """A user module with its own reset_parameters (orthogonal: no fused form)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.empty(6, 4))
        self.s = nn.Parameter(torch.empty(4))
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.orthogonal_(self.w)
        nn.init.constant_(self.s, 0.25)


def zoo() -> list:
    """Constructors of the default zoo: Linear, Bilinear, Conv*, ConvTranspose*, RNNs and cells, norms,
    Embedding/EmbeddingBag with padding_idx, MultiheadAttention, Transformer layers, a custom module."""
    return [
        lambda: nn.Linear(13, 7), lambda: nn.Bilinear(5, 4, 3), lambda: nn.Conv1d(4, 6, 3),
        lambda: nn.Conv2d(3, 8, (3, 5)), lambda: nn.Conv3d(2, 4, 3, bias=False),
        lambda: nn.ConvTranspose1d(4, 6, 3), lambda: nn.ConvTranspose2d(6, 4, 3, groups=2),
        lambda: nn.ConvTranspose3d(2, 3, 2), lambda: nn.RNN(5, 7, num_layers=2),
        lambda: nn.LSTM(5, 7, proj_size=3), lambda: nn.GRU(5, 7, bidirectional=True),
        lambda: nn.RNNCell(4, 6), lambda: nn.LSTMCell(4, 6), lambda: nn.GRUCell(4, 6), lambda: nn.BatchNorm1d(5),
        lambda: nn.BatchNorm2d(5), lambda: nn.BatchNorm3d(5),
        lambda: nn.InstanceNorm2d(5, affine=True, track_running_stats=True), lambda: nn.LayerNorm((4, 5)),
        lambda: nn.GroupNorm(2, 6), lambda: nn.RMSNorm(8), lambda: nn.Embedding(10, 4, padding_idx=3),
        lambda: nn.EmbeddingBag(10, 4, padding_idx=0), lambda: nn.MultiheadAttention(8, 2),
        lambda: nn.MultiheadAttention(8, 2, kdim=5, vdim=3),
        lambda: nn.TransformerEncoderLayer(8, 2, dim_feedforward=16),
        lambda: nn.TransformerDecoderLayer(8, 2, dim_feedforward=16),
        lambda: nn.Transformer(8, 2, 1, 1, dim_feedforward=16, batch_first=True), Custom,
    ]


def zoo_id(make) -> str:
    """A readable test id: the module's class name."""
    return type(make()).__name__
