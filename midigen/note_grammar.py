"""Which note events a sampler may draw next, per piece, and how long each note may sound.

The grammar follows the rules by which `decode_ids` repairs (a NOTE_OFF of a silent pitch, a
NOTE_ON of a sounding one) so the sampler can rule out what the decoder would have to mend.
It also caps note lengths: a model that lost track of a sounding note leaves it hanging (a
stuck note). Each note gets the longest it may sound when it starts, either one cap for all
(the training music's longest note) or one drawn per note from the training music's own
longest notes (midigen.length_rules), so sampled notes are as rarely long as the corpus's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from midigen.events import DRUM_KEY
from midigen.vocabulary import Vocabulary


class NoteGrammar:
    """Which note events may follow, per piece: the rules by which `decode_ids` repairs, as
    state a sampler updates once per drawn event, in numpy.

    `until[b * K + k, p]` is the last clock step at which pitch p of instrument k still
    sounds in piece b (its start plus max_note_steps, the rule by which the decoder closes
    overlong notes), or -1 when it is silent; so a note sounds while `clock <= until`.
    `cap[b * K + k, p]` is the most steps that note may sound (the sampler's note cap).
    Instruments: 129 keys (programs and drums) with program tokens, else one. Per-id lookup
    tables keep each step to a few small (B,) / (B, P) operations.
    """

    def __init__(self, vocab: Vocabulary, num: int, prefix: list[int],
                 max_note_s: float | None = None,
                 draw_note_caps_s: Callable[[int], np.ndarray] | None = None):
        self.num_pitches = P = vocab.num_pitches
        self.on_lo = vocab.note_on_ids.start  # the NOTE_OFF block follows it
        self.num_instruments = K = DRUM_KEY + 1 if vocab.config.use_programs else 1
        self.max_steps = vocab.config.max_note_steps
        # Per id: the pitch index of a note event, whether it starts / ends a note, and the
        # instrument it selects (-1: none).
        note = np.arange(vocab.size) - self.on_lo
        self.is_on_of = (note >= 0) & (note < P)
        self.is_off_of = (note >= P) & (note < 2 * P)
        self.pitch_of = np.clip(np.where(self.is_off_of, note - P, note), 0, P - 1)
        self.instrument_of = vocab.instrument_of
        self.shift_of = vocab.shift_steps
        # The longest a note may sound: one cap (the training music's longest note) and/or a
        # cap drawn per note; only caps shorter than the decoder's own matter.
        self.steps_per_second = vocab.config.steps_per_second
        cap = self.max_steps if max_note_s is None else self._steps(np.array([max_note_s]))[0]
        self.cap_steps = int(cap)
        self.draw_caps_s = draw_note_caps_s
        self.capped = self.cap_steps < self.max_steps or draw_note_caps_s is not None
        # Walk the primer as the decoder would (shared by all pieces).
        until = np.full((K, P), -1, dtype=np.int32)  # int32: 66 MB at 1000 pieces
        instrument, clock = 0, 0
        for token in prefix:
            clock += int(self.shift_of[token])
            if self.instrument_of[token] >= 0:
                instrument = int(self.instrument_of[token])
            if self.is_on_of[token]:
                until[instrument, self.pitch_of[token]] = clock + self.max_steps
            elif self.is_off_of[token]:
                until[instrument, self.pitch_of[token]] = -1
        self.until = np.tile(until, (num, 1))  # (B * K, P)
        self.flat = self.until.reshape(-1)  # a view
        self.cap = np.full_like(self.until, self.cap_steps) if self.capped else None
        self.cap_flat = None if self.cap is None else self.cap.reshape(-1)
        self.clock = np.full(num, clock, dtype=np.int64)
        self.base = np.arange(num) * K  # row of instrument 0 per piece
        self.row = self.base + instrument  # (B,) row of `until` for the current instrument
        self.row_start = self.row * P  # the same row in `flat`

    def _steps(self, seconds: np.ndarray) -> np.ndarray:
        steps = np.maximum(1, np.round(seconds * self.steps_per_second))
        return np.minimum(steps, self.max_steps).astype(np.int32)

    def mask(self, logits: np.ndarray) -> None:
        """Rule out, in place, the note events the decoder would have to repair."""
        lo, P = self.on_lo, self.num_pitches
        sounding = self.until[self.row] >= self.clock[:, None]  # (B, P)
        np.copyto(logits[:, lo:lo + P], -np.inf, where=sounding)
        np.copyto(logits[:, lo + P:lo + 2 * P], -np.inf, where=~sounding)

    def cap_notes(self, chosen: np.ndarray) -> np.ndarray:
        """With a note cap: where a drawn time shift would carry a note of the current
        instrument past its cap, that note's NOTE_OFF instead (the shift can be drawn again
        next step, the model now knowing the note has ended). Masking the long shifts instead
        can deadlock: a model that never says "wait 10 ms" then never lets time move."""
        if not self.capped:
            return chosen
        until = self.until[self.row]  # (B, P)
        sounding = until >= self.clock[:, None]
        if not sounding.any():
            return chosen
        # A note that started at until - max_steps must end by its start + its cap.
        deadline = np.where(sounding, until - self.max_steps + self.cap[self.row],
                            np.iinfo(np.int32).max)
        first = deadline.argmin(axis=1)  # (B,) the note that must end soonest
        left = deadline[np.arange(len(first)), first] - self.clock  # (B,) steps it may still sound
        return np.where(self.shift_of[chosen] > left, self.on_lo + self.num_pitches + first, chosen)

    def update(self, chosen: np.ndarray) -> None:
        """Follow the drawn events (B,): notes start or stop, the instrument, the clock."""
        where = self.row_start + self.pitch_of[chosen]  # (B,)
        is_on = self.is_on_of[chosen]
        kept = np.where(self.is_off_of[chosen], -1, self.flat[where])
        self.flat[where] = np.where(is_on, self.clock + self.max_steps, kept)
        if self.draw_caps_s is not None and is_on.any():
            drawn = self._steps(self.draw_caps_s(int(is_on.sum())))
            self.cap_flat[where[is_on]] = np.minimum(drawn, self.cap_steps)
        if self.num_instruments > 1:
            instrument = self.instrument_of[chosen]
            self.row = np.where(instrument >= 0, self.base + instrument, self.row)
            self.row_start = self.row * self.num_pitches
        self.clock += self.shift_of[chosen]
