"""The vocabulary's layout (note ranges, time steps, instruments) and the note grammar agree
with what the events say and with how decode_ids repairs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from midigen.events import DRUM_KEY, Event, EventType, pitch_name
from midigen.note_grammar import NoteGrammar
from midigen.tokenizer import decode_ids, events_to_ids
from midigen.vocabulary import TokenizerConfig, vocabulary

CFG = TokenizerConfig(min_pitch=21, max_pitch=108, max_shift_steps=50)


def test_layout_tables_match_each_ids_event():
    vocab = vocabulary(CFG)
    for token in range(vocab.size):
        event = vocab.event_of(token)
        assert (token in vocab.note_on_ids) == (event.type == EventType.NOTE_ON)
        assert (token in vocab.note_off_ids) == (event.type == EventType.NOTE_OFF)
        steps = event.value if event.type == EventType.TIME_SHIFT else 0
        assert vocab.shift_steps[token] == steps
        instrument = {EventType.PROGRAM: event.value, EventType.DRUMS: DRUM_KEY}.get(event.type, -1)
        assert vocab.instrument_of[token] == instrument
    assert vocab.num_pitches == len(vocab.note_on_ids) == 88
    assert not vocab.shift_steps.flags.writeable  # shared by every user of the cached vocabulary


def test_count_note_ons():
    ids = events_to_ids([Event(EventType.START), Event(EventType.NOTE_ON, 60),
                         Event(EventType.NOTE_ON, 64), Event(EventType.NOTE_OFF, 60),
                         Event(EventType.END)], CFG)
    assert vocabulary(CFG).count_note_ons(ids) == 2


def test_pitch_names():
    assert [pitch_name(p) for p in (21, 60, 61, 70, 108)] == ["A0", "C4", "C#4", "Bb4", "C8"]


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=120))
def test_ids_the_grammar_allows_decode_without_note_repairs(choices):
    # Drive the grammar as the sampler does: at each step pick among the allowed ids.
    config = TokenizerConfig(steps_per_second=10, max_shift_steps=10, num_velocity_bins=4,
                             min_pitch=60, max_pitch=63, max_note_s=2.0)
    vocab = vocabulary(config)
    prefix = [vocab.start_id]
    grammar = NoteGrammar(vocab, 1, prefix)
    ids = list(prefix)
    for choice in choices:
        logits = np.zeros((1, vocab.size))
        grammar.mask(logits)
        logits[0, [vocab.start_id, vocab.end_id]] = -np.inf
        allowed = np.flatnonzero(np.isfinite(logits[0]))
        token = int(allowed[choice % len(allowed)])
        grammar.update(np.array([token]))
        ids.append(token)
    repairs = decode_ids(ids, config).repairs
    assert repairs["orphan_note_off"] == 0 and repairs["restruck_sounding_note"] == 0
