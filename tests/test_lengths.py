"""Lengths from the training music: saved in the checkpoint, they keep notes from sticking and
let pieces end by themselves at lengths the music has."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from midigen.checkpoint import load_checkpoint
from midigen.events import EventType
from midigen.lengths import length_stats
from midigen.midi_io import read_midi_notes
from midigen.sample import length_limits, sample_ids, sample_to_files
from midigen.tokenizer import decode_ids, vocabulary
from midigen.train import train

sys.path.insert(0, str(Path(__file__).parent))
from test_sample import SMALL, tiny_model
from test_train import TOK, phrase_pieces, tiny_train
from test_train import tiny_model as tiny_train_model


def test_length_stats_measure_notes_and_pieces():
    pieces = phrase_pieces(count=4, bars=3)  # every note 0.5 s, every piece 6 s
    stats = length_stats(pieces, TOK)
    assert stats["note_s"]["p50"] == stats["note_s"]["max"] == 0.5
    assert stats["note_s"]["share_at_or_above_p99.9"] == 1.0
    assert stats["piece_s"]["p5"] == stats["piece_s"]["max"] == 6.0
    assert stats["piece_events"]["max"] == len(pieces[0].ids)


def test_an_untrained_model_holds_no_note_past_the_cap():
    model = tiny_model()
    vocab = vocabulary(SMALL)
    first_shift = vocab.offset[EventType.TIME_SHIFT]
    with torch.no_grad():  # time passes much more often than notes end: notes would hang
        model.head.bias[first_shift:first_shift + SMALL.max_shift_steps] += 3.0
    free = sample_ids(model, SMALL, num=6, max_events=300, seed=3)
    capped = sample_ids(model, SMALL, num=6, max_events=300, seed=3, max_note_s=1.0)
    length = lambda pieces: np.concatenate([(n["end_s"] - n["start_s"]) for n in
                                            (decode_ids(ids, SMALL).notes for ids in pieces)])
    assert length(free).max() > 2.0  # the situation arises without the cap ...
    assert length(capped).max() <= 1.0 and len(length(capped)) > 20  # ... and the cap holds


def test_a_tiny_model_trained_on_one_note_length_samples_none_longer(tmp_path):
    # Trained for seconds, on pieces whose notes all last 0.5 s: whatever the model has not
    # learned yet, no sampled note outlasts the corpus's longest, and pieces end by END or at
    # the corpus's longest piece, never at the old fixed cap.
    train(phrase_pieces(count=6, bars=3), TOK, tiny_train_model(), tiny_train(steps=30, eval_every=30),
          tmp_path / "run")
    lengths = load_checkpoint(tmp_path / "run" / "last.pt").split["lengths"]
    assert lengths["note_s"]["max"] == 0.5 and lengths["piece_s"]["max"] == 6.0
    rows = sample_to_files(tmp_path / "run" / "last.pt", tmp_path / "out", num=6, seed=0)
    for row in rows:
        notes = read_midi_notes(row["path"])
        assert (notes["end_s"] - notes["start_s"]).max() <= 0.5 + 1e-6
        assert row["stop"] in ("END", "longest") and row["duration_s"] <= 6.0 + 1e-6
        assert row["stop"] != "END" or row["duration_s"] >= lengths["piece_s"]["p5"] - 0.1


def test_length_limits_keep_user_settings_and_old_checkpoints():
    stats = {"note_s": {"max": 2.0}, "piece_s": {"p5": 10.0, "max": 60.0},
             "piece_events": {"max": 3000}}
    assert length_limits(stats, None, None, None) == {
        "seconds": 60.0, "longest": 60.0, "max_events": 6000, "min_seconds": 10.0, "max_note_s": 2.0,
        "piece_quantiles_s": stats["piece_s"], "note_quantiles_s": stats["note_s"]}
    given = length_limits(stats, 30.0, None, None)
    assert given["seconds"] == 30.0 and given["min_seconds"] is None and given["longest"] is None
    assert given["piece_quantiles_s"] is None  # a length given: no target length of its own
    assert length_limits({}, None, None, None) == {
        "seconds": None, "longest": None, "max_events": None, "min_seconds": None, "max_note_s": None,
        "piece_quantiles_s": None, "note_quantiles_s": None}


def test_long_note_shares_count_notes_at_p99_9_and_at_the_cap():
    from midigen.stats_files import long_notes

    corpus = np.arange(1, 1001) / 100  # 0.01 .. 10 s: p99.9 lies between 9.99 and 10
    pieces = np.array([0.5] * 96 + [3.0, 3.0, 10.0, 10.0])
    report = long_notes(pieces, corpus, cap_s=10.0)
    assert report["corpus_p99_9_s"] == 9.99  # 9.99001, rounded for the report
    assert report["pieces"] == {"at_or_above_p99_9": 0.02, "at_cap": 0.02}
    assert report["corpus"] == {"at_or_above_p99_9": 0.001, "at_cap": 0.001}
