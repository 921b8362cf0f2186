"""Training batches: one stream of pieces, random windows, per-window transposition, stretch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_train import TOK, phrase_notes, phrase_pieces

from midigen.batches import build_stream, random_windows, stretch_pieces, transpose_windows
from midigen.events import EventType
from midigen.tokenizer import TokenizerConfig, decode_ids, encode_notes, vocabulary


def test_the_stream_joins_pieces_end_to_start_with_a_mask_per_event():
    pieces = [p.ids for p in phrase_pieces(3)]
    stream = build_stream(pieces, TOK)
    assert len(stream) == len(stream.pitched) == sum(map(len, pieces)) and stream.num_pieces == 3
    assert np.array_equal(stream.ids.numpy(), np.concatenate(pieces))
    vocab = vocabulary(TOK)
    is_note = np.isin(stream.ids.numpy(), list(vocab.note_on_ids) + list(vocab.note_off_ids))
    assert np.array_equal(stream.pitched.numpy(), is_note)  # no drums in these pieces


def test_transposition_moves_pitched_notes_only_and_skips_out_of_range():
    stream = build_stream([encode_notes(phrase_notes(2), TOK)], TOK)
    vocab = vocabulary(TOK)
    window = stream.ids[None, :].long()
    pitched = stream.pitched[None, :]
    up = transpose_windows(window, pitched, torch.tensor([2]), stream)
    notes = decode_ids(up[0].numpy(), TOK).notes
    assert sorted(notes["pitch"]) == sorted(phrase_notes(2)["pitch"] + 2)
    assert torch.equal(up[~pitched], window[~pitched])  # time shifts, velocities untouched
    top = TokenizerConfig(steps_per_second=10, use_programs=False, max_pitch=80)
    high = build_stream([encode_notes(phrase_notes(2, root=72), top)], top)  # highest note 79
    w = high.ids[None, :].long()
    assert torch.equal(transpose_windows(w, high.pitched[None, :], torch.tensor([2]), high), w)
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
