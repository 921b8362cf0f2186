"""The controls as one vector per piece, which the LSTM reads beside every event's embedding.

Style, key and density bin each have an embedding with one extra row for "not given";
instruments are a projection of the 129-wide multi-hot plus a learned "not given" vector
when the row is all zero. Their concatenation (B, C) is appended to the event embedding at
every step (MusicRNN.forward), so it enters layer 0's gates as a per-piece bias, which is how
the Stepper applies it when sampling: one (B, C) @ (C, G) product per batch, not per step.
"""

from __future__ import annotations

import torch
from torch import nn

from midigen.controls import COND_WIDTH, DENSITY, KEY, NUM_INSTRUMENTS, STYLE, ControlSpec


class ControlEncoder(nn.Module):
    """(B, COND_WIDTH) int64 control rows -> (B, C) float, C = spec.dim per control."""

    def __init__(self, spec_dict: dict):
        super().__init__()
        self.spec = spec = ControlSpec.from_dict(spec_dict)
        sizes = spec.sizes()
        self.names = spec.names
        for name in ("style", "key", "density"):
            if name in spec.names:
                self.add_module(name, nn.Embedding(sizes[name] + 1, spec.dim))
        if "instruments" in spec.names:
            self.instruments = nn.Linear(NUM_INSTRUMENTS, spec.dim, bias=False)
            self.instruments_unknown = nn.Parameter(torch.zeros(spec.dim))
        self.out_dim = spec.dim * len(spec.names)
        self.register_buffer("unknown", torch.tensor(
            [sizes["style"], sizes["key"], sizes["density"]], dtype=torch.long), persistent=False)

    def forward(self, cond: torch.Tensor | None, batch: int, device) -> torch.Tensor:
        if cond is None:
            cond = torch.zeros(batch, COND_WIDTH, dtype=torch.long, device=device)
            cond[:, :3] = self.unknown
        cond = cond.to(device).expand(batch, -1) if cond.shape[0] == 1 else cond.to(device)
        parts = []
        for name in self.names:
            if name == "instruments":
                hot = cond[:, 3:].float()  # (B, 129)
                given = (hot.sum(1, keepdim=True) > 0).float()
                parts.append(self.instruments(hot) + (1 - given) * self.instruments_unknown)
            else:
                column = {"style": STYLE, "key": KEY, "density": DENSITY}[name]
                parts.append(getattr(self, name)(cond[:, column]))
        return torch.cat(parts, dim=1)  # (B, C)
