"""The stacked recurrent language model over event ids: embedding -> LSTM (or GRU) -> logits.

New models start from an initialisation measured to make the LSTM learn far sooner
(bench/bench_lstm_sweep.py, table in README). With PyTorch's default every gate bias is near 0,
so every gate starts half shut: the cell keeps half of itself per event and lets out half of
tanh(c), and the signal reaching the output layer is a third of a GRU's (std 0.05 vs 0.14 at
2 x 128). Input, forget and output gate biases of 1 open the path (std 0.48); with a learning
rate of 1e-2 that took validation NLL at 200 steps on Nottingham from 3.05 to 1.40 nats/event.
Orthogonal recurrent weights helped the GRU (1.38 -> 1.23) and hurt the LSTM (1.40 -> 1.72),
so only the GRU gets them. PyTorch's input weights (+-1/sqrt(hidden)) then left the LSTM's
gate sums small (0.6x their inputs' spread at 2 x 128, less with a small embedding);
+-3/sqrt(fan_in) took Nottingham at 200 steps from 1.75 to 1.33 (the GRU: 1.44), and at equal
wall-clock the LSTM, about 1.5x faster per step on a CPU, is now ahead of the GRU. The
initialisation only shapes new models: a checkpoint's weights replace it on load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from midigen.errors import MidigenError
from midigen.records import DictRecord

CELLS = ("lstm", "gru")
# The LSTM's input weights: uniform within +-3 / sqrt(fan_in), so a gate's input sum has
# sqrt(3) times the spread of its inputs (PyTorch's +-1 / sqrt(hidden) gives 0.6x at 2 x 128,
# and less with a small embedding): bench_lstm_sweep, README "Quality".
LSTM_INPUT_BOUND = 3.0


@dataclass(frozen=True)
class ModelConfig(DictRecord):
    """The network's shape; the vocabulary size comes from the TokenizerConfig, never a flag."""

    vocab_size: int
    cell: str = "lstm"
    embed_dim: int = 256
    hidden: int = 512
    layers: int = 3
    dropout: float = 0.1
    controls: dict | None = None  # a midigen.controls.ControlSpec as a dict; None: no controls

    def __post_init__(self):
        if self.cell not in CELLS:
            raise MidigenError(f"unknown cell {self.cell!r}: choose one of {', '.join(CELLS)}")
        if self.vocab_size < 2 or self.embed_dim < 1 or self.hidden < 1 or self.layers < 1:
            raise MidigenError("model sizes must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise MidigenError("dropout must be in [0, 1)")

    def to_dict(self) -> dict:
        d = super().to_dict()
        if d["controls"] is None:  # a model without controls saves what it always saved
            del d["controls"]
        return d



class MusicRNN(nn.Module):
    """Predicts the next event from the events so far, carrying recurrent state."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim)
        rnn_class = nn.LSTM if config.cell == "lstm" else nn.GRU
        if config.controls is not None:  # only then: a model without keeps its exact layout
            from midigen.controls_model import ControlEncoder

            self.control = ControlEncoder(config.controls)
        self.rnn = rnn_class(
            config.embed_dim + self.control_dim,
            config.hidden,
            num_layers=config.layers,
            dropout=config.dropout if config.layers > 1 else 0.0,
            batch_first=True,
        )
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden, config.vocab_size)
        init_recurrent(self.rnn, config.cell)

    @property
    def control_dim(self) -> int:
        return self.control.out_dim if self.config.controls is not None else 0

    def forward(self, ids: torch.Tensor, state=None, cond: torch.Tensor | None = None):
        """Logits for the next id at every position, and the state after the last one.

        `cond` (B, COND_WIDTH) int64: the controls of each row (midigen.controls); None
        means none given. A model without controls ignores it."""
        x = self.drop(self.embed(ids))  # (B, T, E)
        if self.config.controls is not None:
            c = self.control(cond, ids.shape[0], ids.device)  # (B, C)
            x = torch.cat([x, c[:, None, :].expand(-1, ids.shape[1], -1).to(x.dtype)], -1)
        y, state = self.rnn(x, state)  # (B, T, H)
        return self.head(self.drop(y)), state  # (B, T, V)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def init_recurrent(rnn: nn.Module, cell: str, forget_bias: float = 1.0, gate_bias: float = 1.0,
                   orthogonal: bool | None = None, input_bound: float | None = -1.0) -> None:
    """Zero biases but the LSTM's gates: forget gate `forget_bias`, input and output gates
    `gate_bias`; recurrent weights orthogonal per gate (default: for the GRU only); input
    weights uniform within +-input_bound / sqrt(fan_in) (default: 3 for the LSTM, PyTorch's
    +-1 / sqrt(hidden) for the GRU; None keeps PyTorch's)."""
    hidden = rnn.hidden_size
    orthogonal = cell == "gru" if orthogonal is None else orthogonal
    if input_bound is not None and input_bound < 0:
        input_bound = LSTM_INPUT_BOUND if cell == "lstm" else None
    with torch.no_grad():
        for name, p in rnn.named_parameters():
            if name.startswith("weight_ih") and input_bound is not None:  # (G, fan_in)
                bound = input_bound / math.sqrt(p.shape[1])
                nn.init.uniform_(p, -bound, bound)
            elif name.startswith("weight_hh") and orthogonal:
                for gate in p.split(hidden):  # (H, H) each
                    nn.init.orthogonal_(gate)
            elif name.startswith("bias"):
                p.zero_()
                if cell == "lstm" and name.startswith("bias_ih"):  # gate order: i, f, g, o
                    p[:hidden] = p[3 * hidden:] = gate_bias
                    p[hidden:2 * hidden] = forget_bias


def detach_state(state):
    """The state without its graph, so truncated backprop stops at window edges."""
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()
