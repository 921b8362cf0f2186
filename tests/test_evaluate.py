"""Held-out likelihood: known answers, window/batch invariance, and agreement with training."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from midigen.corpus import load_corpus
from midigen.evaluate import evaluate_corpus, nll_over_pieces, summarise_nll
from midigen.events import Note, notes_to_array
from midigen.midi_io import write_midi
from midigen.model import ModelConfig, MusicRNN
from midigen.split import split_pieces
from midigen.tokenizer import TokenizerConfig, vocabulary
from midigen.train import TrainConfig, train


class Uniform(nn.Module):
    """Equal logits for every id: its NLL is exactly log V per event."""

    def __init__(self, vocab_size):
        super().__init__()
        self.vocab_size = vocab_size

    def forward(self, ids, state=None):
        return torch.zeros(*ids.shape, self.vocab_size), state


def random_pieces(seed=0, count=5, vocab=50):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, vocab, int(rng.integers(2, 300))) for _ in range(count)]


def test_uniform_model_scores_log_v_per_event():
    pieces = random_pieces()
    result = nll_over_pieces(Uniform(50), pieces, window_events=64)
    assert result["num_events"] == sum(len(p) - 1 for p in pieces)
    assert result["nll_per_event"] == pytest.approx(math.log(50))
    assert result["perplexity"] == pytest.approx(50)
    assert result["bits_per_event"] == pytest.approx(math.log2(50))


def test_windows_and_batches_do_not_change_the_score():
    torch.manual_seed(0)
    model = MusicRNN(ModelConfig(50, hidden=24, embed_dim=8, layers=2, dropout=0.3))
    pieces = random_pieces(1, count=7)
    one_pass = nll_over_pieces(model, pieces, window_events=10_000, batch_pieces=1)
    windows = nll_over_pieces(model, pieces, window_events=17, batch_pieces=1)
    batched = nll_over_pieces(model, pieces, window_events=33, batch_pieces=4)
    assert windows["total_nll"] == pytest.approx(one_pass["total_nll"], rel=1e-5)
    assert batched["total_nll"] == pytest.approx(one_pass["total_nll"], rel=1e-5)
    # the same number by hand: one forward over each whole piece, dropout off
    model.eval()
    by_hand = 0.0
    with torch.no_grad():
        for p in pieces:
            x = torch.as_tensor(p, dtype=torch.long)[None]
            logits, _ = model(x[:, :-1])
            by_hand += float(nn.functional.cross_entropy(logits[0], x[0, 1:], reduction="sum"))
    assert one_pass["total_nll"] == pytest.approx(by_hand, rel=1e-5)
    assert model.training is False


def test_training_mode_is_restored_and_bad_input_is_refused():
    model = MusicRNN(ModelConfig(50, hidden=8, embed_dim=4, layers=1))
    model.train()
    nll_over_pieces(model, random_pieces())
    assert model.training
    from midigen.errors import MidigenError

    with pytest.raises(MidigenError):
        nll_over_pieces(model, [[3]])  # nothing to predict
    with pytest.raises(MidigenError):
        nll_over_pieces(model, [[0, 60]])  # id outside the model's 50


def test_rates_per_second_and_note():
    r = summarise_nll(100.0, 50, 2, duration_s=20.0, num_notes=10)
    assert (r["nll_per_event"], r["nll_per_second"], r["nll_per_note"]) == (2.0, 5.0, 10.0)


def write_tiny_corpus(folder, count=6):
    """Small folk-like phrases in a few keys: enough for a model to learn something quickly."""
    folder.mkdir(parents=True, exist_ok=True)
    phrase = [0, 2, 4, 5, 7, 5, 4, 2, 0, 4, 7, 12]
    for i in range(count):
        root = 55 + 2 * i
        notes = [Note(root + d, 70 + 4 * (j % 3), j * 0.25 + r * 3.0, j * 0.25 + 0.25 + r * 3.0)
                 for r in range(3) for j, d in enumerate(phrase)]
        write_midi(notes_to_array(notes), folder / f"tune{i}.mid")
    return folder


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A tiny LSTM trained for a few seconds; its run dir, corpus and the validation folder."""
    root = tmp_path_factory.mktemp("evalrun")
    corpus_dir = write_tiny_corpus(root / "corpus")
    config = TokenizerConfig()
    corpus = load_corpus(corpus_dir, config)
    model_config = ModelConfig(vocabulary(config).size, hidden=32, embed_dim=16, layers=1,
                               dropout=0.0)
    train_config = TrainConfig(steps=40, eval_every=40, seq_len=32, batch_size=4,
                               valid_fraction=0.34, warmup_steps=5, device="cpu", transpose=0)
    result = train(corpus.pieces, config, model_config, train_config, root / "run")
    _, valid = split_pieces(corpus.pieces, train_config.valid_fraction, train_config.seed)
    valid_dir = root / "valid"
    valid_dir.mkdir()
    for p in valid:
        shutil.copy(corpus_dir / p.file, valid_dir / p.file)
    return {"run_dir": root / "run", "result": result, "valid_dir": valid_dir,
            "corpus_dir": corpus_dir}


def test_evaluate_matches_the_validation_nll_training_reported(tiny_run):
    result = evaluate_corpus(tiny_run["run_dir"] / "best.pt", tiny_run["valid_dir"])
    reported = tiny_run["result"].best_valid_loss
    assert reported is not None
    assert result["nll_per_event"] == pytest.approx(reported, rel=1e-5)
    assert result["training_best_valid_nll"] == pytest.approx(reported, rel=1e-12)
    assert result["num_pieces"] == 2
    assert result["notes_kept"] == result["notes_read"] == 2 * 36
    assert result["notes_dropped"] == 0
    assert result["nll_per_second"] == pytest.approx(result["total_nll"] / result["duration_s"])
    # it learned something: better than guessing uniformly among all ids
    assert result["nll_per_event"] < math.log(vocabulary(TokenizerConfig()).size)


def test_notes_the_vocabulary_cannot_spell_are_counted_as_dropped(tiny_run, tmp_path):
    # Two onsets of one pitch in one step on one instrument: MIDI-wise two notes, but the
    # vocabulary keeps the last one only.
    notes = [Note(60, 80, 0, 0.5), Note(60, 90, 0, 0.5), Note(62, 80, 0.5, 1.0)]
    write_midi(notes_to_array(notes), tmp_path / "a.mid")
    result = evaluate_corpus(tiny_run["run_dir"], tmp_path)
    assert result["notes_read"] == 3 and result["notes_kept"] == 2
    assert result["notes_dropped"] == 1
