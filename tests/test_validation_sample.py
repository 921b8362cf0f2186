"""Bounded validation: a fixed seeded sample at each --eval-every, everything at the end."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from test_train import TOK, Piece, phrase_notes, tiny_model, tiny_train

from midigen.checkpoint import load_checkpoint
from midigen.evaluate import default_valid_events, validation_sample
from midigen.tokenizer import encode_notes
from midigen.train import train


def test_sample_is_fixed_seeded_bounded_and_made_of_piece_openings():
    rng = np.random.default_rng(0)
    pieces = [rng.integers(0, 300, int(rng.integers(2, 400))).astype(np.uint16) for _ in range(50)]
    seconds = [len(p) / 10 for p in pieces]
    sample, sample_s = validation_sample(pieces, seconds, 1000, seed=3)
    again, again_s = validation_sample(pieces, seconds, 1000, seed=3)
    assert [a.tobytes() for a in sample] == [a.tobytes() for a in again] and sample_s == again_s
    assert sum(map(len, sample)) == 1000
    assert sample_s == sum(map(len, sample)) / 10  # a cut piece's seconds are prorated
    whole = {p.tobytes() for p in pieces}
    assert sum(a.tobytes() in whole for a in sample) >= len(sample) - 1  # one piece cut at most
    assert all(any(p[:len(a)].tobytes() == a.tobytes() for p in pieces) for a in sample)
    other, _ = validation_sample(pieces, seconds, 1000, seed=4)
    assert [a.tobytes() for a in other] != [a.tobytes() for a in sample]
    everything, _ = validation_sample(pieces, seconds, 10**9, seed=3)
    assert sum(map(len, everything)) == sum(map(len, pieces))
    assert default_valid_events(250, 32, 256) == 102_400


def test_training_scores_the_sample_and_the_end_scores_everything(tmp_path):
    pieces = [Piece(f"p{i}", f"f{i}.mid", encode_notes(phrase_notes(4 + i, 60 + i), TOK)
                    .astype(np.uint16), 8.0 + 2 * i) for i in range(10)]
    result = train(pieces, TOK, tiny_model(), tiny_train(steps=12, eval_every=4,
                                                         valid_events=60, valid_fraction=0.3),
                   tmp_path / "run")
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().split("\n")
            if line]
    evals = [r for r in rows if "valid_nll" in r]
    assert [r["valid_scope"] for r in evals] == ["sample", "sample", "full"]
    assert evals[0]["valid_events"] == evals[1]["valid_events"] <= 60
    assert evals[2]["valid_events"] == result.split_sizes["valid_events"] - result.split_sizes[
        "valid_pieces"] > 60  # every event after START of every piece
    assert result.split_sizes["valid_sample_events"] == 60
    assert load_checkpoint(tmp_path / "run" / "last.pt").metrics["valid_scope"] == "full"
    assert 0 < result.eval_s < result.elapsed_s
