"""The event tokenizer: worked examples, round-trip properties, total decoding."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from midigen.errors import MidigenError
from midigen.events import Event, EventType, Note, array_to_notes, notes_to_array
from midigen.tokenizer import (
    TokenizerConfig,
    alphabet,
    bin_to_velocity,
    decode_ids,
    encode_notes,
    event_to_str,
    events_to_ids,
    ids_to_events,
    ids_to_text,
    pitched_note_mask,
    quantize_notes,
    text_to_ids,
    velocity_to_bin,
    vocabulary,
)

CFG = TokenizerConfig()


def spelled(notes, config=CFG) -> list[str]:
    ids = encode_notes(notes_to_array(notes), config)
    return [event_to_str(e, config) for e in ids_to_events(ids, config)]


def test_a_chord_is_spelled_exactly():
    chord = [Note(60, 100, 0.0, 0.5), Note(64, 100, 0.0, 0.5), Note(67, 100, 0.0, 0.5)]
    vb = int(velocity_to_bin(100, 32))
    assert spelled(chord) == [
        "START", "PROGRAM 0", f"VELOCITY {vb}", "NOTE_ON 60", "NOTE_ON 64", "NOTE_ON 67",
        "TIME_SHIFT 500ms", "NOTE_OFF 60", "NOTE_OFF 64", "NOTE_OFF 67", "END",
    ]


def test_a_rest_longer_than_the_longest_shift_uses_several_shifts():
    notes = [Note(60, 64, 0.0, 0.25), Note(62, 64, 2.75, 3.0)]
    assert spelled(notes)[1:] == [
        "PROGRAM 0", f"VELOCITY {int(velocity_to_bin(64, 32))}", "NOTE_ON 60",
        "TIME_SHIFT 250ms", "NOTE_OFF 60",
        "TIME_SHIFT 1000ms", "TIME_SHIFT 1000ms", "TIME_SHIFT 500ms",
        "NOTE_ON 62", "TIME_SHIFT 250ms", "NOTE_OFF 62", "END",
    ]


def test_a_drum_hit_is_spelled_under_drums():
    events = spelled([Note(36, 127, 0.0, 0.1, is_drum=True)])
    assert events == ["START", "DRUMS", "VELOCITY 31", "NOTE_ON 36", "TIME_SHIFT 100ms",
                      "NOTE_OFF 36", "END"]


def test_two_instruments_switch_program_only_when_needed():
    notes = [Note(40, 80, 0.0, 1.0, program=33), Note(60, 80, 0.0, 1.0, program=0)]
    events = spelled(notes)
    assert events[1:] == [
        "PROGRAM 0", "VELOCITY 19", "NOTE_ON 60", "PROGRAM 33", "NOTE_ON 40",
        "TIME_SHIFT 1000ms", "PROGRAM 0", "NOTE_OFF 60", "PROGRAM 33", "NOTE_OFF 40", "END",
    ]
    decoded = decode_ids(encode_notes(notes_to_array(notes), CFG), CFG)
    assert sorted((n.program, n.pitch) for n in array_to_notes(decoded.notes)) == [(0, 60), (33, 40)]


def test_velocity_is_emitted_only_when_it_changes():
    notes = [Note(60, 80, 0, 0.1), Note(62, 80, 0.2, 0.3), Note(64, 30, 0.4, 0.5)]
    assert sum(e.startswith("VELOCITY") for e in spelled(notes)) == 2


def test_without_programs_drums_are_dropped_and_instruments_merge():
    config = TokenizerConfig(use_programs=False)
    notes = [Note(40, 80, 0, 1, program=33), Note(36, 80, 0, 1, is_drum=True)]
    events = spelled(notes, config)
    assert not any(e.startswith(("PROGRAM", "DRUMS")) for e in events)
    assert "NOTE_ON 40" in events and "NOTE_ON 36" not in events


def test_documented_losses_short_restruck_and_overlong_notes():
    notes = notes_to_array([
        Note(60, 80, 0.0, 0.001),  # shorter than a step: lasts one step
        Note(62, 80, 0.0, 1.0), Note(62, 80, 0.5, 0.8),  # re-struck: first ends at 0.5
        Note(64, 80, 0.0, 30.0),  # longer than max_note_s: cut at 10 s
    ])
    back = decode_ids(encode_notes(notes, CFG), CFG).notes
    got = sorted((int(n["pitch"]), float(n["start_s"]), float(n["end_s"])) for n in back)
    assert got == [(60, 0.0, 0.01), (62, 0.0, 0.5), (62, 0.5, 0.8), (64, 0.0, 10.0)]


def test_vocabulary_is_determined_by_config_and_every_id_round_trips():
    vocab = vocabulary(CFG)
    assert vocab.size == 2 + 128 + 128 + 100 + 32 + 129
    for token_id in range(vocab.size):
        assert vocab.id_of(vocab.event_of(token_id)) == token_id
    assert vocabulary(TokenizerConfig.from_dict(CFG.to_dict())).size == vocab.size
    with pytest.raises(MidigenError):
        vocab.id_of(Event(EventType.TIME_SHIFT, 0))


def test_alphabet_is_printable_distinct_and_single_line():
    chars = alphabet(vocabulary(CFG).size)
    assert len(set(chars)) == len(chars)
    assert all(c.isprintable() and not c.isspace() for c in chars)
    ids = np.arange(vocabulary(CFG).size)
    assert np.array_equal(text_to_ids(ids_to_text(ids, CFG), CFG), ids)


def test_unknown_character_is_a_clear_error():
    with pytest.raises(MidigenError, match="not a token"):
        text_to_ids("\u4e00", CFG)


def test_velocity_bins_round_trip():
    for bins in (1, 8, 32, 127):
        b = np.arange(bins)
        assert np.array_equal(velocity_to_bin(bin_to_velocity(b, bins), bins), b)
    assert velocity_to_bin(1, 32) == 0 and velocity_to_bin(127, 32) == 31


def test_pitched_note_mask_skips_drums():
    notes = notes_to_array([Note(60, 80, 0, 1), Note(36, 80, 0, 1, is_drum=True)])
    ids = encode_notes(notes, CFG)
    events = ids_to_events(ids, CFG)
    mask = pitched_note_mask(ids, CFG)
    masked = [event_to_str(e, CFG) for e, m in zip(events, mask) if m]
    assert masked == ["NOTE_ON 60", "NOTE_OFF 60"]


def test_decoding_repairs_are_counted():
    ids = events_to_ids([
        Event(EventType.START), Event(EventType.NOTE_OFF, 50),  # orphan
        Event(EventType.NOTE_ON, 60), Event(EventType.TIME_SHIFT, 10),
        Event(EventType.NOTE_ON, 60),  # re-struck while sounding
        Event(EventType.TIME_SHIFT, 10),  # then never released
    ], CFG)
    decoded = decode_ids(ids, CFG)
    assert decoded.repairs == {"orphan_note_off": 1, "restruck_sounding_note": 1, "unclosed_note": 1}
    assert [(n.pitch, n.start_s, n.end_s) for n in array_to_notes(decoded.notes)] == [
        (60, 0.0, 0.1), (60, 0.1, 0.2)]


def test_held_notes_are_closed_after_the_longest_duration():
    config = TokenizerConfig(max_note_s=1.0)
    ids = events_to_ids([Event(EventType.NOTE_ON, 60)] + [Event(EventType.TIME_SHIFT, 100)] * 5,
                        config)
    decoded = decode_ids(ids, config)
    assert decoded.repairs["closed_too_long"] == 1
    assert float(decoded.notes["end_s"][0]) == pytest.approx(1.0)


notes_strategy = st.lists(
    st.builds(
        lambda pitch, vel, start, dur, program, drum: Note(pitch, vel, start, start + dur, program, drum),
        st.integers(0, 127), st.integers(1, 127),
        st.floats(0, 20, allow_nan=False), st.floats(0.001, 12, allow_nan=False),
        st.integers(0, 127), st.booleans(),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(notes_strategy)
def test_round_trip_gives_the_quantized_notes(notes):
    arr = notes_to_array(notes)
    ids = encode_notes(arr, CFG)
    decoded = decode_ids(ids, CFG)
    assert decoded.num_repairs == 0
    assert np.array_equal(decoded.notes, quantize_notes(arr, CFG))
    # encoding is idempotent on its own output
    assert np.array_equal(encode_notes(decoded.notes, CFG), ids)


@settings(max_examples=150, deadline=None)
@given(notes_strategy)
def test_round_trip_keeps_every_note_within_one_step(notes):
    arr = notes_to_array(notes)
    back = decode_ids(encode_notes(arr, CFG), CFG).notes
    q = quantize_notes(arr, CFG)
    assert len(back) == len(q)
    step = 1 / CFG.steps_per_second
    # every decoded note comes from an input note of the same pitch/instrument/velocity bin
    for n in back:
        same = arr[(arr["pitch"] == n["pitch"]) & (arr["is_drum"] == n["is_drum"])
                   & ((arr["program"] == n["program"]) | arr["is_drum"])
                   & (velocity_to_bin(arr["velocity"], 32) == velocity_to_bin(n["velocity"], 32))]
        assert np.any(np.abs(same["start_s"] - n["start_s"]) <= step / 2 + 1e-9)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-10, 700), max_size=400), st.booleans())
def test_decoding_any_id_list_never_raises(ids, use_programs):
    config = TokenizerConfig(use_programs=use_programs)
    decoded = decode_ids(ids, config)
    assert np.all(decoded.notes["end_s"] > decoded.notes["start_s"])
