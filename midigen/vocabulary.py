"""The vocabulary: TokenizerConfig, the id layout it fixes, and the grammar of note events.

The vocabulary is an ordered list of blocks, so an id is a block offset plus a value, and
TokenizerConfig alone determines it. Everything that needs to know where note-ons, time shifts
or instruments sit (the sampler, the scorer, the batcher's transposition) reads it from the
Vocabulary here instead of recomputing the layout.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from midigen.errors import MidigenError
from midigen.events import DRUM_KEY, Event, EventType
from midigen.records import DictRecord


def _readonly(table: np.ndarray) -> np.ndarray:
    table.flags.writeable = False  # shared by every user of a cached Vocabulary
    return table


@dataclass(frozen=True)
class TokenizerConfig(DictRecord):
    """Everything that fixes the vocabulary and the time grid; saved in every checkpoint."""

    steps_per_second: int = 100  # 10 ms steps, as Performance RNN
    max_shift_steps: int = 100  # longest single TIME_SHIFT (1 s); longer rests use several
    num_velocity_bins: int = 32
    use_programs: bool = True  # False: one piano-like part, drum notes dropped
    min_pitch: int = 0
    max_pitch: int = 127
    max_note_s: float = 10.0  # notes held longer are cut here, when encoding and decoding

    def __post_init__(self):
        if self.steps_per_second < 1 or self.max_shift_steps < 1:
            raise MidigenError("steps per second and longest shift must be at least 1")
        if not 1 <= self.num_velocity_bins <= 127:
            raise MidigenError("velocity bins must be between 1 and 127")
        if not 0 <= self.min_pitch <= self.max_pitch <= 127:
            raise MidigenError("pitch range must lie within 0..127")
        if self.max_note_s <= 0:
            raise MidigenError("longest note must be positive")

    @property
    def max_note_steps(self) -> int:
        return max(1, round(self.max_note_s * self.steps_per_second))



class Vocabulary:
    """The id layout of a TokenizerConfig: one contiguous block of ids per event type."""

    def __init__(self, config: TokenizerConfig):
        self.config = config
        num_pitches = config.max_pitch - config.min_pitch + 1
        sizes = [
            (EventType.START, 1),
            (EventType.END, 1),
            (EventType.NOTE_ON, num_pitches),
            (EventType.NOTE_OFF, num_pitches),
            (EventType.TIME_SHIFT, config.max_shift_steps),
            (EventType.VELOCITY, config.num_velocity_bins),
        ]
        if config.use_programs:
            sizes += [(EventType.PROGRAM, 128), (EventType.DRUMS, 1)]
        self.offset: dict[EventType, int] = {}
        self.block_size: dict[EventType, int] = {}
        start = 0
        for event_type, size in sizes:
            self.offset[event_type] = start
            self.block_size[event_type] = size
            start += size
        self.size = start
        # The layout that samplers, scorers and batchers read, computed once here.
        self.num_pitches = num_pitches
        on = self.offset[EventType.NOTE_ON]
        self.note_on_ids = range(on, on + num_pitches)
        self.note_off_ids = range(on + num_pitches, on + 2 * num_pitches)  # follows NOTE_ON
        self.shift_steps = _readonly(self._shift_steps())
        self.instrument_of = _readonly(self._instruments())
        self._types = [t for t, _ in sizes]
        self._block_starts = np.array([self.offset[t] for t in self._types])
        self._alphabet = alphabet(self.size)
        self._char_to_id = {c: i for i, c in enumerate(self._alphabet)}

    @property
    def start_id(self) -> int:
        return self.offset[EventType.START]

    @property
    def end_id(self) -> int:
        return self.offset[EventType.END]

    def _shift_steps(self) -> np.ndarray:
        """Time steps each id moves the clock: k for TIME_SHIFT k, else 0. (V,) int64."""
        table = np.zeros(self.size, dtype=np.int64)
        first, count = self.offset[EventType.TIME_SHIFT], self.block_size[EventType.TIME_SHIFT]
        table[first:first + count] = np.arange(1, count + 1)
        return table

    def _instruments(self) -> np.ndarray:
        """The instrument key each id selects (PROGRAM p: p, DRUMS: DRUM_KEY), else -1. (V,)"""
        table = np.full(self.size, -1, dtype=np.int64)
        if self.config.use_programs:
            lo = self.offset[EventType.PROGRAM]
            table[lo:lo + DRUM_KEY] = np.arange(DRUM_KEY)
            table[self.offset[EventType.DRUMS]] = DRUM_KEY
        return table

    def count_note_ons(self, ids) -> int:
        """How many notes a token sequence starts (its NOTE_ON events)."""
        ids = np.asarray(ids)
        return int(((ids >= self.note_on_ids.start) & (ids < self.note_on_ids.stop)).sum())

    def _value_base(self, event_type: EventType) -> int:
        """The value that the first id of a block stands for."""
        if event_type in (EventType.NOTE_ON, EventType.NOTE_OFF):
            return self.config.min_pitch
        if event_type == EventType.TIME_SHIFT:
            return 1
        return 0

    def id_of(self, event: Event) -> int:
        if event.type not in self.offset:
            raise MidigenError(f"{event.type.value} events are not in this vocabulary")
        index = event.value - self._value_base(event.type)
        if not 0 <= index < self.block_size[event.type]:
            raise MidigenError(f"{event.type.value} {event.value} is outside this vocabulary")
        return self.offset[event.type] + index

    def event_of(self, token_id: int) -> Event:
        if not 0 <= token_id < self.size:
            raise MidigenError(f"token id {token_id} is outside the vocabulary (0..{self.size - 1})")
        block = int(np.searchsorted(self._block_starts, token_id, side="right")) - 1
        event_type = self._types[block]
        return Event(event_type, token_id - self.offset[event_type] + self._value_base(event_type))

    def char_of(self, token_id: int) -> str:
        return self._alphabet[token_id]

    def id_of_char(self, char: str) -> int:
        try:
            return self._char_to_id[char]
        except KeyError:
            raise MidigenError(f"character {char!r} (U+{ord(char):04X}) is not a token of this "
                               "vocabulary") from None


@cache
def alphabet(size: int) -> str:
    """`size` distinct printable, non-combining, non-space characters, ASCII first.

    Only long-assigned code points are used, so the alphabet is the same on every Python.
    """
    chars = []
    code = 0x21
    while len(chars) < size:
        c = chr(code)
        if c.isprintable() and not c.isspace() and not unicodedata.category(c).startswith("M"):
            chars.append(c)
        code += 1
    return "".join(chars)


@lru_cache(maxsize=32)
def vocabulary(config: TokenizerConfig) -> Vocabulary:
    return Vocabulary(config)


def pitched_note_mask(ids: np.ndarray, config: TokenizerConfig) -> np.ndarray:
    """True where an id is a NOTE_ON/NOTE_OFF of a pitched (non-drum) instrument.

    Transposition shifts exactly these ids; drum notes name drum sounds, not pitches.
    """
    vocab = vocabulary(config)
    ids = np.asarray(ids, dtype=np.int64)
    is_note = (ids >= vocab.note_on_ids.start) & (ids < vocab.note_off_ids.stop)
    if not config.use_programs:
        return is_note
    drums_id = vocab.offset[EventType.DRUMS]
    prog_lo, prog_hi = vocab.offset[EventType.PROGRAM], drums_id
    # Instrument state at each position: +1 after DRUMS, 0 after PROGRAM, carried forward.
    marks = np.where(ids == drums_id, 1, np.where((ids >= prog_lo) & (ids < prog_hi), 0, -1))
    positions = np.where(marks >= 0, np.arange(len(ids)), -1)
    last = np.maximum.accumulate(positions) if len(ids) else positions
    in_drums = np.where(last >= 0, marks[np.maximum(last, 0)] == 1, False)
    return is_note & ~in_drums


class NoteGrammar:
    """Which note events may follow, per piece: the rules by which `decode_ids` repairs, as
    state a sampler updates once per drawn event, in numpy.

    `until[b * K + k, p]` is the last clock step at which pitch p of instrument k still
    sounds in piece b (its start plus max_note_steps, the rule by which the decoder closes
    overlong notes), or -1 when it is silent; so a note sounds while `clock <= until`.
    Instruments: 129 keys (programs and drums) with program tokens, else one. Per-id lookup
    tables keep each step to a few small (B,) / (B, P) operations.
    """

    def __init__(self, vocab: Vocabulary, num: int, prefix: list[int],
                 max_note_s: float | None = None):
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
        # The longest a note may sound (the sampler's, from the training music's lengths),
        # when shorter than the decoder's own cap.
        steps_per_second = vocab.config.steps_per_second
        cap = None if max_note_s is None else max(1, round(max_note_s * steps_per_second))
        self.cap_steps = cap if cap is not None and cap < self.max_steps else None
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
        self.clock = np.full(num, clock, dtype=np.int64)
        self.base = np.arange(num) * K  # row of instrument 0 per piece
        self.row = self.base + instrument  # (B,) row of `until` for the current instrument
        self.row_start = self.row * P  # the same row in `flat`

    def mask(self, logits: np.ndarray) -> None:
        """Rule out, in place, the note events the decoder would have to repair."""
        lo, P = self.on_lo, self.num_pitches
        sounding = self.until[self.row] >= self.clock[:, None]  # (B, P)
        np.copyto(logits[:, lo:lo + P], -np.inf, where=sounding)
        np.copyto(logits[:, lo + P:lo + 2 * P], -np.inf, where=~sounding)

    def cap_notes(self, chosen: np.ndarray) -> np.ndarray:
        """With a note cap: where a drawn time shift would carry a note of the current
        instrument past it, that note's NOTE_OFF instead (the shift can be drawn again next
        step, the model now knowing the note has ended). Masking the long shifts instead can
        deadlock: a model that never says "wait 10 ms" then never lets time move."""
        if self.cap_steps is None:
            return chosen
        until = self.until[self.row]  # (B, P)
        sounding = until >= self.clock[:, None]
        if not sounding.any():
            return chosen
        # A note that started at until - max_steps must end by its start + cap_steps.
        deadline = np.where(sounding, until - self.max_steps + self.cap_steps, np.iinfo(np.int32).max)
        first = deadline.argmin(axis=1)  # (B,) the note that must end soonest
        left = deadline[np.arange(len(first)), first] - self.clock  # (B,) steps it may still sound
        return np.where(self.shift_of[chosen] > left, self.on_lo + self.num_pitches + first, chosen)

    def update(self, chosen: np.ndarray) -> None:
        """Follow the drawn events (B,): notes start or stop, the instrument, the clock."""
        where = self.row_start + self.pitch_of[chosen]  # (B,)
        kept = np.where(self.is_off_of[chosen], -1, self.flat[where])
        self.flat[where] = np.where(self.is_on_of[chosen], self.clock + self.max_steps, kept)
        if self.num_instruments > 1:
            instrument = self.instrument_of[chosen]
            self.row = np.where(instrument >= 0, self.base + instrument, self.row)
            self.row_start = self.row * self.num_pitches
        self.clock += self.shift_of[chosen]
