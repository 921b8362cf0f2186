"""The sampler's length rules, drawn from the training music's lengths saved in the checkpoint
(midigen.lengths), so they follow each corpus and no constant is tuned to one.

- Notes: each new note gets the longest it may sound, drawn from the corpus's own longest
  notes (its note-length distribution above the 99th percentile). A note the model would hold
  longer is ended there. So a sampled note reaches the corpus's p99.9 length at most about as
  often as one in ten of its notes past p99, which bounds stuck notes by the corpus's own tail.
- Pieces: each piece gets a target length drawn from the corpus's piece lengths (5th to 95th
  percentile). END is ruled out before the target; past it, END's weight grows until, by the
  corpus's 95th-percentile length, it is the vocabulary's size squared times what the model
  gave it: an undecided model ends at its next cadence, a rambling one is made to end.
"""

from __future__ import annotations

import math

import numpy as np

from midigen.lengths import QUANTILES


def quantile_draw(quantiles: dict, low: float, high: float, rng: np.random.Generator,
                  n: int) -> np.ndarray:
    """`n` values from the distribution the saved quantiles describe (linear between them),
    restricted to levels `low`..`high` (e.g. 0.99..1.0: its longest 1%)."""
    names = [k for k in QUANTILES if k in quantiles]
    levels = [QUANTILES[k] for k in names]
    values = [float(quantiles[k]) for k in names]
    return np.interp(rng.uniform(low, high, n), levels, values)


def note_cap_drawer(note_s: dict, rng: np.random.Generator):
    """A function n -> n note caps (seconds) drawn from the corpus's notes above p99, or None
    when the checkpoint has no note lengths."""
    if not all(k in note_s for k in ("p99", "p99.9", "max")):
        return None
    return lambda n: quantile_draw(note_s, QUANTILES["p99"], 1.0, rng, n)


class EndingRule:
    """Per piece: no END before a target length drawn from the corpus's piece lengths, and a
    growing push towards END after it (see the module docstring)."""

    def __init__(self, piece_s: dict, num: int, steps_per_second: float, vocab_size: int,
                 rng: np.random.Generator, min_seconds: float | None = None):
        targets_s = quantile_draw(piece_s, QUANTILES["p5"], QUANTILES["p95"], rng, num)
        if min_seconds is not None:
            targets_s = np.maximum(targets_s, min_seconds)
        self.target_steps = np.ceil(targets_s * steps_per_second).astype(np.int64)  # (B,)
        late_steps = math.ceil(float(piece_s["p95"]) * steps_per_second)
        # Steps from the target to full strength: to the corpus's p95 length, at least a
        # tenth of its p5-p95 spread so a target near p95 still leaves the model a choice.
        spread = (float(piece_s["p95"]) - float(piece_s["p5"])) * steps_per_second
        self.ramp_steps = np.maximum(late_steps - self.target_steps, max(1.0, spread / 10))
        self.full_boost = 2 * math.log(vocab_size)  # nats: END x V^2 at full strength

    def apply(self, logits: np.ndarray, elapsed_steps: np.ndarray, end_id: int) -> None:
        """Adjust END's logit (B, V) in place for pieces `elapsed_steps` (B,) long."""
        early = elapsed_steps < self.target_steps
        past = (elapsed_steps - self.target_steps) / self.ramp_steps  # (B,) 0 at the target
        logits[:, end_id] += np.where(early, 0.0, past * self.full_boost)
        logits[early, end_id] = -np.inf
