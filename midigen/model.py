"""The stacked recurrent language model over event ids: embedding -> LSTM (or GRU) -> logits."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from midigen.errors import MidigenError
from midigen.records import DictRecord

CELLS = ("lstm", "gru")


@dataclass(frozen=True)
class ModelConfig(DictRecord):
    """The network's shape; the vocabulary size comes from the TokenizerConfig, never a flag."""

    vocab_size: int
    cell: str = "lstm"
    embed_dim: int = 256
    hidden: int = 512
    layers: int = 3
    dropout: float = 0.1

    def __post_init__(self):
        if self.cell not in CELLS:
            raise MidigenError(f"unknown cell {self.cell!r}: choose one of {', '.join(CELLS)}")
        if self.vocab_size < 2 or self.embed_dim < 1 or self.hidden < 1 or self.layers < 1:
            raise MidigenError("model sizes must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise MidigenError("dropout must be in [0, 1)")



class MusicRNN(nn.Module):
    """Predicts the next event from the events so far, carrying recurrent state."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        rnn_class = nn.LSTM if config.cell == "lstm" else nn.GRU
        self.rnn = rnn_class(
            config.embed_dim,
            config.hidden,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)

    def forward(self, ids: torch.Tensor, state=None):
        """Logits for the next id at every position, and the state after the last one."""
        x = self.drop(self.embed(ids))  # (B, T, E)
        y, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(y)), state  # (B, T, V)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def detach_state(state):
    """The state without its graph, so truncated backprop stops at window edges."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()
