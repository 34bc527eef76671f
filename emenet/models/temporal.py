"""Per-task temporal heads: a recurrent (or causal transformer) layer and a linear decoder.

Parameter names match the original checkpoints: `rnn.*` for the recurrent layer and
`decoder.*` for the Linear(hidden, C); dropout sits between them.
"""
from __future__ import annotations

import math

import torch
from torch import nn

RECURRENT_KINDS = ("GRU", "LSTM", "RNN_TANH", "RNN_RELU")
TEMPORAL_KINDS = RECURRENT_KINDS + ("transformer",)

# A head's hidden state: a tensor (GRU/RNN, transformer context), or (h, c) for LSTM.
Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None


def _make_rnn(kind: str, input_size: int, hidden_size: int, num_layers: int, dropout: float = 0.0) -> nn.RNNBase:
    """The recurrent layer; with more than one layer, `dropout` between layers (the original's)."""
    between = dropout if num_layers > 1 else 0.0
    if kind == "GRU":
        return nn.GRU(input_size, hidden_size, num_layers, batch_first=True, dropout=between)
    if kind == "LSTM":
        return nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, dropout=between)
    if kind in ("RNN_TANH", "RNN_RELU"):
        return nn.RNN(input_size, hidden_size, num_layers, nonlinearity=kind[4:].lower(), batch_first=True,
                      dropout=between)
    raise ValueError(f"unknown temporal model {kind!r}; valid ones are {list(TEMPORAL_KINDS)}")


class RecurrentHead(nn.Module):
    """Recurrence over time of (B, T, F) features, then dropout and a linear decoder."""

    def __init__(self, kind: str, input_size: int, hidden_size: int, num_layers: int, dropout: float, num_outputs: int):
        super().__init__()
        self.rnn = _make_rnn(kind, input_size, hidden_size, num_layers, dropout)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, num_outputs)

    def forward(self, x: torch.Tensor, hidden: Hidden = None) -> tuple[torch.Tensor, Hidden]:
        out, hidden = self.rnn(x, hidden)  # (B, T, H)
        return self.decoder(self.dropout(out)), hidden


class SinusoidalPosition(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim

    def forward(self, length: int, device: torch.device) -> torch.Tensor:
        pos = torch.arange(length, device=device, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, self.dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / self.dim))
        pe = torch.zeros(length, self.dim, device=device)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq)
        return pe  # (T, dim)


class TransformerHead(nn.Module):
    """Causal transformer over time; its streaming state is the last `context` input features.

    Streaming equals running the whole sequence at once while the sequence is no longer
    than `context` frames; beyond that, attention sees the most recent `context` frames.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float, num_outputs: int,
                 num_heads: int = 4, context: int = 64):
        super().__init__()
        self.context = context
        self.proj = nn.Linear(input_size, hidden_size)
        self.position = SinusoidalPosition(hidden_size)
        layer = nn.TransformerEncoderLayer(hidden_size, num_heads, 2 * hidden_size, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, num_outputs)

    def forward(self, x: torch.Tensor, hidden: Hidden = None) -> tuple[torch.Tensor, Hidden]:
        new_len = x.shape[1]
        seq = x if hidden is None else torch.cat([hidden, x], dim=1)  # (B, L, F)
        length = seq.shape[1]
        h = self.proj(seq) + self.position(length, seq.device)
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=seq.device)
        out = self.encoder(h, mask=mask, is_causal=True)[:, length - new_len:]
        return self.decoder(self.dropout(out)), seq[:, -self.context:].detach()


def make_temporal_head(kind: str, input_size: int, hidden_size: int, num_layers: int, dropout: float,
                       num_outputs: int, num_heads: int = 2) -> nn.Module:
    """A recurrent head, or a causal transformer with `num_heads` attention heads (the original's `nhead`)."""
    if kind == "transformer":
        return TransformerHead(input_size, hidden_size, num_layers, dropout, num_outputs, num_heads=num_heads)
    return RecurrentHead(kind, input_size, hidden_size, num_layers, dropout, num_outputs)
