"""Asked instruments as a rule of the sampler, not only a hint to the network.

The instruments control steers the model, but a model that has learned it only partly still
plays an instrument nobody asked for now and then (85% of notes on the asked instruments after
1,500 steps on Nottingham). Someone who asks for piano and violin expects nothing else, so the
sampler never draws a PROGRAM or DRUMS event outside the asked set, and holds NOTE_ON back
while the current instrument (piano until a PROGRAM event says otherwise, as the decoder reads
it) is not one of them. The network's own choice among the asked instruments is kept.
"""

from __future__ import annotations

import numpy as np

from midigen.events import DRUM_KEY
from midigen.vocabulary import Vocabulary


class InstrumentRule:
    """Masks for `num` pieces drawn together; `update` with each step's chosen ids."""

    def __init__(self, vocab: Vocabulary, keys, num: int, prefix=()):
        self.instrument_of = vocab.instrument_of  # (V,) instrument key each id selects, else -1
        self.allowed = np.zeros(DRUM_KEY + 1, dtype=bool)
        self.allowed[np.asarray(list(keys), dtype=np.int64)] = True
        self.forbidden_ids = (self.instrument_of >= 0) & ~self.allowed[self.instrument_of]
        self.note_ons = slice(vocab.note_on_ids.start, vocab.note_on_ids.stop)
        current = 0
        for token in prefix:  # a primer may already have chosen an instrument
            if self.instrument_of[token] >= 0:
                current = int(self.instrument_of[token])
        self.current = np.full(num, current, dtype=np.int64)

    def mask(self, logits: np.ndarray) -> None:
        """No unasked instrument is selected, and no note starts on one."""
        logits[:, self.forbidden_ids] = -np.inf
        silent = ~self.allowed[self.current]
        if silent.any():
            logits[silent, self.note_ons] = -np.inf

    def update(self, chosen: np.ndarray) -> None:
        selected = self.instrument_of[chosen]
        self.current = np.where(selected >= 0, selected, self.current)
