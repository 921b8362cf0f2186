"""Training batches: one stream of pieces, random windows, per-window transposition, stretch."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from test_train import TOK, phrase_notes, phrase_pieces

from midigen.batches import build_stream, random_windows, stretch_pieces, transpose_windows
from midigen.events import Event, EventType
from midigen.tokenizer import (
    TokenizerConfig,
    decode_ids,
    encode_notes,
    pitched_note_mask,
    vocabulary,
)


def test_the_stream_joins_pieces_end_to_start_with_a_mask_per_event():
    pieces = [p.ids for p in phrase_pieces(3)]
    stream = build_stream(pieces, TOK)
    ids, pitched = stream.windows(torch.tensor([0]), len(stream))
    assert len(stream) == sum(map(len, pieces)) and stream.num_pieces == 3
    assert np.array_equal(ids[0].numpy(), np.concatenate(pieces))
    vocab = vocabulary(TOK)
    is_note = np.isin(ids[0].numpy(), list(vocab.note_on_ids) + list(vocab.note_off_ids))
    assert np.array_equal(pitched[0].numpy(), is_note)  # no drums in these pieces


def test_transposition_moves_pitched_notes_only_and_skips_out_of_range():
    stream = build_stream([encode_notes(phrase_notes(2), TOK)], TOK)
    vocab = vocabulary(TOK)
    window, pitched = stream.windows(torch.tensor([0]), len(stream))
    up = transpose_windows(window, pitched, torch.tensor([2]), stream)
    notes = decode_ids(up[0].numpy(), TOK).notes
    assert sorted(notes["pitch"]) == sorted(phrase_notes(2)["pitch"] + 2)
    assert torch.equal(up[~pitched], window[~pitched])  # time shifts, velocities untouched
    top = TokenizerConfig(steps_per_second=10, use_programs=False, max_pitch=80)
    high = build_stream([encode_notes(phrase_notes(2, root=72), top)], top)  # highest note 79
    w, high_pitched = high.windows(torch.tensor([0]), len(high))
    assert torch.equal(transpose_windows(w, high_pitched, torch.tensor([2]), high), w)
    assert vocab.offset[EventType.NOTE_ON] == stream.note_offset


def test_random_windows_are_targets_shifted_by_one_and_repeatable():
    stream = build_stream([p.ids for p in phrase_pieces(3)], TOK)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x1, y1 = random_windows(stream, 4, 20, g1, max_transpose=3)
    x2, y2 = random_windows(stream, 4, 20, g2, max_transpose=3)
    assert x1.shape == (4, 20) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert torch.equal(x1[:, 1:], y1[:, :-1])


def test_time_stretch_adds_slower_and_faster_copies():
    ids = encode_notes(phrase_notes(2), TOK)
    copies = stretch_pieces([ids], 0.2, TOK)
    ends = [decode_ids(c.astype(np.int64), TOK).notes["end_s"].max() for c in copies]
    assert ends == pytest.approx([4.0 * 0.8, 4.0 * 1.2], abs=0.11)


MAPPED_TOK = TokenizerConfig()  # with programs and drums


def piece(rng: np.random.Generator, drums_first: bool) -> np.ndarray:
    """A piece that switches between drums and a pitched instrument, so whether a note is a
    drum depends on events long before it."""
    vocab = vocabulary(MAPPED_TOK)
    ids = [vocab.id_of(Event(EventType.START))]
    drums = drums_first
    for _ in range(rng.integers(5, 40)):
        ids.append(vocab.id_of(Event(EventType.DRUMS)) if drums
                   else vocab.id_of(Event(EventType.PROGRAM, int(rng.integers(0, 128)))))
        for _ in range(rng.integers(1, 30)):
            pitch = int(rng.integers(MAPPED_TOK.min_pitch, MAPPED_TOK.max_pitch + 1))
            kind = EventType.NOTE_ON if rng.random() < 0.5 else EventType.NOTE_OFF
            ids += [vocab.id_of(Event(kind, pitch)), vocab.id_of(Event(EventType.TIME_SHIFT, 1))]
        drums = not drums
    ids.append(vocab.id_of(Event(EventType.END)))
    return np.array(ids, dtype=np.uint16)


def test_windows_of_mapped_pieces_equal_the_concatenated_stream(tmp_path):
    rng = np.random.default_rng(0)
    pieces = [piece(rng, drums_first=k % 2 == 0) for k in range(12)]
    shard = tmp_path / "shard.u16"
    np.concatenate(pieces).tofile(shard)
    mapped = np.memmap(shard, dtype=np.uint16, mode="r")
    starts = np.concatenate([[0], np.cumsum([len(p) for p in pieces])])
    views = [np.asarray(mapped[a:b]) for a, b in itertools.pairwise(starts)]
    kept = [v for k, v in enumerate(views) if k not in (3, 7)]  # gaps, as a split leaves
    stream = build_stream(kept, MAPPED_TOK)
    assert len(stream.segments) == 3  # back-to-back views merged, nothing copied
    assert all(isinstance(s.base, np.memmap) or isinstance(s, np.memmap) for s in stream.segments)

    whole = np.concatenate(kept).astype(np.int64)
    mask = np.concatenate([pitched_note_mask(k.astype(np.int64), MAPPED_TOK) for k in kept])
    assert mask.any() and (~mask & (whole >= stream.note_offset)
                           & (whole < stream.note_offset + 2 * stream.num_pitches)).any()
    offsets = torch.arange(0, len(stream) - 50, 7)
    ids, pitched = stream.windows(offsets, 50)
    index = offsets[:, None].numpy() + np.arange(50)
    np.testing.assert_array_equal(ids.numpy(), whole[index])
    np.testing.assert_array_equal(pitched.numpy(), mask[index])

    x, y = random_windows(stream, 8, 64, torch.Generator().manual_seed(1), max_transpose=3)
    assert x.shape == y.shape == (8, 64) and torch.equal(x[:, 1:], y[:, :-1])
