"""Notes <-> event ids: the "character level" spelling of a piece that the model learns.

A piece is spelled as Performance-RNN style events, one symbol each: NOTE_ON(pitch),
NOTE_OFF(pitch), TIME_SHIFT(steps), VELOCITY(bin, only when it changes), PROGRAM(p) / DRUMS
(only when the instrument changes), between START and END. The vocabulary is an ordered list
of blocks, so an id is a block offset plus a value, and TokenizerConfig alone determines it.

Encoding is vectorised numpy (corpora hold millions of notes); decoding is a plain loop that
never raises, because it must accept whatever an untrained model emits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from midigen.events import (
    DRUM_KEY,
    NOTE_DTYPE,
    Event,
    EventType,
    empty_notes,
    instrument_keys,
    sort_notes,
)
from midigen.vocabulary import (  # noqa: F401  (the vocabulary, re-exported where it was)
    TokenizerConfig,
    Vocabulary,
    alphabet,
    pitched_note_mask,
    vocabulary,
)


def velocity_to_bin(velocity: np.ndarray | int, num_bins: int) -> np.ndarray:
    """MIDI velocity 1..127 to a bin 0..num_bins-1 (equal widths)."""
    v = np.clip(np.asarray(velocity, dtype=np.int64), 1, 127)
    return (v - 1) * num_bins // 127


def bin_to_velocity(velocity_bin: np.ndarray | int, num_bins: int) -> np.ndarray:
    """The velocity in the middle of a bin; velocity_to_bin gives the bin back."""
    b = np.clip(np.asarray(velocity_bin, dtype=np.int64), 0, num_bins - 1)
    low = (b * 127 + num_bins - 1) // num_bins + 1  # smallest velocity of the bin
    high = ((b + 1) * 127 + num_bins - 1) // num_bins  # largest velocity of the bin
    return (low + high) // 2


def _quantized_steps(notes: np.ndarray, config: TokenizerConfig):
    """Keep the notes the vocabulary can spell; return them with on/off steps and instruments.

    The rules that make a round trip lossless up to them: onsets and releases snap to the
    nearest step; a note shorter than a step lasts one step; a note is cut at the next onset
    of the same pitch on the same instrument (MIDI cannot hold both); two onsets of one pitch
    in one step keep the last; notes are cut at max_note_s.
    """
    keep = (notes["pitch"] >= config.min_pitch) & (notes["pitch"] <= config.max_pitch)
    if not config.use_programs:
        keep &= ~notes["is_drum"]
    notes = notes[keep].copy()
    if not config.use_programs:
        notes["program"] = 0
    notes["program"][notes["is_drum"]] = 0  # a drum kit is one instrument, whatever its program
    sps = config.steps_per_second
    on = np.maximum(np.rint(notes["start_s"] * sps), 0).astype(np.int64)
    off = np.rint(notes["end_s"] * sps).astype(np.int64)
    off = np.clip(off, on + 1, on + config.max_note_steps)
    inst = instrument_keys(notes)
    pitch = notes["pitch"].astype(np.int64)
    order = np.lexsort((on, pitch, inst))
    on, off, inst, pitch, notes = on[order], off[order], inst[order], pitch[order], notes[order]
    same_next = np.zeros(len(on), dtype=bool)
    same_next[:-1] = (inst[1:] == inst[:-1]) & (pitch[1:] == pitch[:-1])
    next_on = np.append(on[1:], 0)
    off = np.where(same_next, np.minimum(off, next_on), off)
    alive = off > on
    return notes[alive], on[alive], off[alive], inst[alive]


def quantize_notes(notes: np.ndarray, config: TokenizerConfig) -> np.ndarray:
    """The notes exactly as encode -> decode gives them back (times on the grid, velocity binned)."""
    kept, on, off, _ = _quantized_steps(notes, config)
    out = kept.copy()
    out["start_s"] = on / config.steps_per_second
    out["end_s"] = off / config.steps_per_second
    out["velocity"] = bin_to_velocity(velocity_to_bin(kept["velocity"], config.num_velocity_bins),
                                      config.num_velocity_bins)
    return sort_notes(out)


def encode_notes(notes: np.ndarray, config: TokenizerConfig) -> np.ndarray:
    """The ids of a piece: START, its events in time order, END (int64)."""
    vocab = vocabulary(config)
    kept, on, off, inst = _quantized_steps(notes, config)
    n = len(kept)
    pitch = kept["pitch"].astype(np.int64)
    vel_bin = velocity_to_bin(kept["velocity"], config.num_velocity_bins)
    # Each note gives an off event (kind 0) and an on event (kind 1). At one step an
    # instrument's releases come before its onsets, so a re-struck pitch stays two notes.
    step = np.concatenate([off, on])
    kind = np.concatenate([np.zeros(n, np.int64), np.ones(n, np.int64)])
    inst2 = np.concatenate([inst, inst])
    pitch2 = np.concatenate([pitch, pitch])
    vel2 = np.concatenate([vel_bin, vel_bin])
    order = np.lexsort((pitch2, kind, inst2, step))
    step, kind, inst2, pitch2, vel2 = step[order], kind[order], inst2[order], pitch2[order], vel2[order]

    delta = np.diff(step, prepend=0)
    shift_full = delta // config.max_shift_steps
    shift_rest = delta % config.max_shift_steps
    num_shifts = shift_full + (shift_rest > 0)
    if config.use_programs:
        new_inst = np.diff(inst2, prepend=-1) != 0
    else:
        new_inst = np.zeros(len(step), dtype=bool)
    is_on = kind == 1
    on_vel = vel2[is_on]
    new_vel_on = np.diff(on_vel, prepend=-1) != 0
    new_vel = np.zeros(len(step), dtype=bool)
    new_vel[is_on] = new_vel_on

    per_event = num_shifts + new_inst + new_vel + 1
    ends = np.cumsum(per_event)
    starts = ends - per_event
    total = int(ends[-1]) if len(ends) else 0
    ids = np.empty(total + 2, dtype=np.int64)
    ids[0] = vocab.start_id
    ids[-1] = vocab.end_id
    body = ids[1:-1]

    # TIME_SHIFTs: the first ones of an event are full shifts, the last one the remainder.
    shift_owner = np.repeat(np.arange(len(step)), num_shifts)
    rank = np.arange(len(shift_owner)) - np.repeat(np.cumsum(num_shifts) - num_shifts, num_shifts)
    shift_pos = starts[shift_owner] + rank
    is_full = rank < shift_full[shift_owner]
    shift_value = np.where(is_full, config.max_shift_steps, shift_rest[shift_owner])
    body[shift_pos] = vocab.offset[EventType.TIME_SHIFT] + shift_value - 1

    cursor = starts + num_shifts
    if config.use_programs:
        inst_pos = cursor[new_inst]
        inst_val = inst2[new_inst]
        body[inst_pos] = np.where(inst_val == DRUM_KEY, vocab.offset[EventType.DRUMS],
                                  vocab.offset[EventType.PROGRAM] + np.minimum(inst_val, 127))
    cursor = cursor + new_inst
    body[cursor[new_vel]] = vocab.offset[EventType.VELOCITY] + vel2[new_vel]
    cursor = cursor + new_vel
    note_block = np.where(is_on, vocab.offset[EventType.NOTE_ON], vocab.offset[EventType.NOTE_OFF])
    body[cursor] = note_block + pitch2 - config.min_pitch
    return ids


@dataclass
class Decoded:
    """A decoded piece and what had to be mended to make it one (counts by kind)."""

    notes: np.ndarray
    repairs: Counter

    @property
    def num_repairs(self) -> int:
        return sum(self.repairs.values())


def decode_ids(ids, config: TokenizerConfig) -> Decoded:
    """Notes from any id sequence; never raises, and counts every repair it makes.

    Repairs: ids outside the vocabulary are skipped; a NOTE_OFF with no sounding note is
    dropped; a NOTE_ON of a sounding pitch ends the old note first; notes held past max_note_s
    or still sounding at the end are closed; what follows END is ignored.
    """
    vocab = vocabulary(config)
    max_steps = config.max_note_steps
    repairs: Counter = Counter()
    T = EventType
    step = 0
    instrument = 0  # instrument key: program, or DRUM_KEY
    velocity_bin = velocity_to_bin(64, config.num_velocity_bins).item()
    sounding: dict[tuple[int, int], tuple[int, int]] = {}  # (inst, pitch) -> (on step, vel bin)
    rows: list[tuple[int, int, int, int, int]] = []  # on, off, pitch, vel bin, inst

    def close(key, off_step):
        on_step, vbin = sounding.pop(key)
        rows.append((on_step, max(off_step, on_step + 1), key[1], vbin, key[0]))

    for position, raw in enumerate(ids):
        token = int(raw)
        if not 0 <= token < vocab.size:
            repairs["unknown_id"] += 1
            continue
        event = vocab.event_of(token)
        kind = event.type
        if kind == T.TIME_SHIFT:
            step += event.value
            if sounding:
                for key, (on_step, _) in list(sounding.items()):
                    if step - on_step > max_steps:
                        close(key, on_step + max_steps)
                        repairs["closed_too_long"] += 1
        elif kind == T.NOTE_ON:
            key = (instrument, event.value)
            if key in sounding:
                close(key, step)
                repairs["restruck_sounding_note"] += 1
            sounding[key] = (step, velocity_bin)
        elif kind == T.NOTE_OFF:
            key = (instrument, event.value)
            if key in sounding:
                close(key, step)
            else:
                repairs["orphan_note_off"] += 1
        elif kind == T.VELOCITY:
            velocity_bin = event.value
        elif kind == T.PROGRAM:
            instrument = event.value
        elif kind == T.DRUMS:
            instrument = DRUM_KEY
        elif kind == T.END:
            rest = len(ids) - position - 1
            if rest:
                repairs["ignored_after_end"] += rest
            break
        elif kind == T.START and position != 0:
            repairs["misplaced_start"] += 1
    for key in list(sounding):
        close(key, step)
        repairs["unclosed_note"] += 1

    return Decoded(_rows_to_notes(rows, config), repairs)


def _rows_to_notes(rows, config: TokenizerConfig) -> np.ndarray:
    if not rows:
        return empty_notes()
    table = np.array(rows, dtype=np.int64)
    notes = np.zeros(len(table), dtype=NOTE_DTYPE)
    notes["start_s"] = table[:, 0] / config.steps_per_second
    notes["end_s"] = table[:, 1] / config.steps_per_second
    notes["pitch"] = table[:, 2]
    notes["velocity"] = bin_to_velocity(table[:, 3], config.num_velocity_bins)
    notes["is_drum"] = table[:, 4] == DRUM_KEY
    notes["program"] = np.where(table[:, 4] == DRUM_KEY, 0, table[:, 4])
    return sort_notes(notes)


def ids_to_events(ids, config: TokenizerConfig) -> list[Event]:
    vocab = vocabulary(config)
    return [vocab.event_of(int(i)) for i in ids]


def events_to_ids(events, config: TokenizerConfig) -> np.ndarray:
    vocab = vocabulary(config)
    return np.array([vocab.id_of(e) for e in events], dtype=np.int64)


def event_to_str(event: Event, config: TokenizerConfig) -> str:
    """A readable name: `NOTE_ON 60`, `TIME_SHIFT 250ms`, `VELOCITY 20`, `PROGRAM 33`, `END`."""
    if event.type in (EventType.START, EventType.END, EventType.DRUMS):
        return event.type.value
    if event.type == EventType.TIME_SHIFT:
        ms = event.value * 1000 / config.steps_per_second
        return f"TIME_SHIFT {ms:g}ms"
    return f"{event.type.value} {event.value}"


def ids_to_text(ids, config: TokenizerConfig) -> str:
    """A piece as one line, one printable character per event."""
    vocab = vocabulary(config)
    return "".join(vocab.char_of(int(i)) for i in ids)


def text_to_ids(text: str, config: TokenizerConfig) -> np.ndarray:
    """Ids from a line written by ids_to_text (whitespace is ignored)."""
    vocab = vocabulary(config)
    return np.array([vocab.id_of_char(c) for c in text if not c.isspace()], dtype=np.int64)
