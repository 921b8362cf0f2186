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
