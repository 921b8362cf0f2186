"""The training loop on tiny models: it learns, resumes exactly, stops cleanly, refuses bad input."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from midigen.checkpoint import load_checkpoint, save_checkpoint
from midigen.errors import MidigenError
from midigen.events import Note, notes_to_array
from midigen.model import ModelConfig
from midigen.tokenizer import TokenizerConfig, encode_notes, vocabulary
from midigen.train import TrainConfig, lr_at, train

TOK = TokenizerConfig(steps_per_second=10, use_programs=False)
V = vocabulary(TOK).size


@dataclass
class Piece:  # what the loop needs of midigen.corpus.PieceTokens
    name: str
    file: str
    ids: np.ndarray
    duration_s: float


def phrase_notes(bars: int = 10, root: int = 60) -> np.ndarray:
    """I-IV-V-I triads in half-second chords: one phrase, repeated."""
    notes, t = [], 0.0
    for k in range(4 * bars):
        for interval in (0, 4, 7):
            notes.append(Note(root + [0, 5, 7, 0][k % 4] + interval, 80, t, t + 0.5))
        t += 0.5
    return notes_to_array(notes)


def phrase_pieces(count: int = 6, bars: int = 10) -> list[Piece]:
    ids = encode_notes(phrase_notes(bars), TOK).astype(np.uint16)
    return [Piece(f"p{i}", f"f{i}.mid", ids, bars * 2.0) for i in range(count)]


def tiny_model(**kw) -> ModelConfig:
    return ModelConfig(V, embed_dim=32, hidden=64, layers=1, dropout=0.0, **kw)


def tiny_train(**kw) -> TrainConfig:
    base = {"seq_len": 48, "batch_size": 8, "lr": 1e-2, "warmup_steps": 10, "eval_every": 50, "device": "cpu",
                "transpose": 0}
    return TrainConfig(**{**base, **kw})


def test_tiny_model_overfits_one_phrase(tmp_path):
    # The phrase is deterministic after its first chord, so a model that learned it predicts
    # nearly every event with certainty. log(V) = 5.3 nats is the untrained loss; the bigram
    # floor on this phrase is about 1 nat (after a NOTE_ON, any of several come next); 0.3
    # nats means the model uses far more than the previous event.
    result = train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=150), tmp_path / "run")
    assert math.log(V) > 5
    assert result.last_eval.valid_nll < 0.3
    assert result.train_losses[-1][1] < 0.3
    assert result.last_eval.valid_ppl == pytest.approx(math.exp(result.last_eval.valid_nll))
    # NLL per second: total nats / seconds of the validation pieces.
    valid_events = result.split_sizes["valid_events"] - result.split_sizes["valid_pieces"]
    per_s = result.last_eval.valid_nll * valid_events / result.split_sizes["valid_seconds"]
    assert result.last_eval.valid_nll_per_s == pytest.approx(per_s, rel=1e-6)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["step"] == 150 and "valid_nll" in rows[-1]
    assert (tmp_path / "run" / "best.pt").exists() and (tmp_path / "run" / "last.pt").exists()


def test_resume_continues_step_count_and_loss_curve(tmp_path):
    config = tiny_train(steps=16, eval_every=6, log_every=1, transpose=2)
    model_config = ModelConfig(V, embed_dim=16, hidden=32, layers=2, dropout=0.2)
    pieces = phrase_pieces()
    whole = train(pieces, TOK, model_config, config, tmp_path / "whole")
    first = train(pieces, TOK, model_config, config, tmp_path / "cut", stop_after_steps=7)
    assert first.interrupted and first.step == 7
    ckpt = load_checkpoint(tmp_path / "cut" / "last.pt")
    assert ckpt.step == 7
    rest = train(pieces, TOK, model_config, config, tmp_path / "cut", resume_from=ckpt)
    assert rest.step == 16 and not rest.interrupted
    assert [s for s, _ in first.train_losses + rest.train_losses] == list(range(1, 17))
    assert np.allclose([loss for _, loss in first.train_losses + rest.train_losses],
                       [loss for _, loss in whole.train_losses], rtol=1e-5, atol=1e-6)
    assert rest.last_eval.valid_nll == pytest.approx(whole.last_eval.valid_nll, rel=1e-5)
    steps = [json.loads(r)["step"] for r in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 17))


def test_lr_warms_up_then_decays_to_the_floor():
    config = TrainConfig(lr=1e-3, warmup_steps=10, min_lr_fraction=0.1)
    assert lr_at(0, 100, config) == pytest.approx(1e-4)
    assert lr_at(9, 100, config) == pytest.approx(1e-3)
    assert lr_at(55, 100, config) == pytest.approx(0.55e-3)
    assert lr_at(100, 100, config) == pytest.approx(1e-4)
    assert lr_at(50, None, config) == 1e-3  # --minutes before its step count is planned


def test_budgets_and_small_corpora_get_clear_errors(tmp_path):
    with pytest.raises(MidigenError, match="one training budget"):
        TrainConfig(steps=10, minutes=1)
    with pytest.raises(MidigenError, match="at least 2"):
        train(phrase_pieces(1), TOK, tiny_model(), tiny_train(steps=2), tmp_path / "a")
    with pytest.raises(MidigenError, match="too few for one window"):
        train(phrase_pieces(2, bars=1), TOK, tiny_model(), tiny_train(steps=2, seq_len=200),
              tmp_path / "b")


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_checkpoint(tmp_path):
    pieces = phrase_pieces()
    train(pieces, TOK, tiny_model(), tiny_train(steps=10, eval_every=10), tmp_path / "good")
    before = (tmp_path / "good" / "last.pt").read_bytes()
    ckpt = load_checkpoint(tmp_path / "good" / "last.pt")
    ckpt.model_state = {k: torch.full_like(v, float("nan")) for k, v in ckpt.model_state.items()}
    save_checkpoint(tmp_path / "nan.pt", ckpt)
    with pytest.raises(MidigenError, match="diverged at step 10"):
        train(pieces, TOK, tiny_model(), tiny_train(steps=20), tmp_path / "good",
              init_from=load_checkpoint(tmp_path / "nan.pt"))
    assert (tmp_path / "good" / "last.pt").read_bytes() == before


def test_minutes_budget_plans_a_step_count_and_ends_on_time(tmp_path):
    import time

    began = time.monotonic()
    result = train(phrase_pieces(), TOK, tiny_model(), tiny_train(minutes=0.05, eval_every=1000),
                   tmp_path / "run")
    assert time.monotonic() - began < 10
    # How many steps fit in 3 s depends on the machine; the plan must be met exactly.
    assert result.total_steps >= 1 and result.step == result.total_steps
    assert load_checkpoint(tmp_path / "run").train_config["total_steps"] == result.total_steps


def test_init_from_needs_the_same_tokenizer(tmp_path):
    train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=5), tmp_path / "a")
    other = TokenizerConfig(steps_per_second=10, use_programs=False, num_velocity_bins=8)
    ids = encode_notes(phrase_notes(), other).astype(np.uint16)
    pieces = [Piece(f"p{i}", f"f{i}", ids, 20.0) for i in range(4)]
    with pytest.raises(MidigenError, match="other tokenizer settings"):
        train(pieces, other, ModelConfig(vocabulary(other).size, hidden=8, layers=1),
              tiny_train(steps=5), tmp_path / "b", init_from=load_checkpoint(tmp_path / "a"))


def test_curves_png_shows_the_validation_curve_that_training_wrote(tmp_path):
    from matplotlib.image import imread

    from midigen.metrics import read_rows

    train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=40, eval_every=10), tmp_path / "run")
    rows = read_rows(tmp_path / "run" / "metrics.jsonl")
    assert [r.step for r in rows if r.is_eval] == [10, 20, 30, 40]
    assert rows[-1].tokens == 40 * 8 * 48
    image = imread(tmp_path / "run" / "curves.png")[..., :3]
    orange = np.abs(image - np.array([1.0, 0.498, 0.055])).max(axis=-1) < 0.08  # tab:orange
    blue = np.abs(image - np.array([0.122, 0.467, 0.706])).max(axis=-1) < 0.08  # tab:blue
    # Beyond the legend swatches (about 60 pixels each): the curves themselves are drawn.
    assert orange.sum() > 300 and blue.sum() > 300


def test_a_failing_plot_is_one_warning_and_training_goes_on(tmp_path, monkeypatch, caplog):
    import midigen.pianoroll

    def broken(rows, path):
        raise ValueError("no ink")

    monkeypatch.setattr(midigen.pianoroll, "plot_training_curves", broken)
    result = train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=4, eval_every=2),
                   tmp_path / "run")
    assert result.step == 4 and (tmp_path / "run" / "last.pt").exists()
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warnings and all("curves.png" in w and "no ink" in w for w in warnings)


def test_resume_drops_a_torn_last_metrics_line(tmp_path):
    config = tiny_train(steps=8, eval_every=4, log_every=1)
    pieces = phrase_pieces()
    train(pieces, TOK, tiny_model(), config, tmp_path / "run", stop_after_steps=4)
    metrics = tmp_path / "run" / "metrics.jsonl"
    with open(metrics, "a") as f:
        f.write('{"step": 5, "lr": 0.0')  # killed in the middle of writing a row
    rest = train(pieces, TOK, tiny_model(), config, tmp_path / "run",
                 resume_from=load_checkpoint(tmp_path / "run" / "last.pt"))
    assert rest.step == 8
    assert [json.loads(r)["step"] for r in metrics.read_text().splitlines()] == list(range(1, 9))
    metrics.write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(MidigenError, match="line 2"):
        train(pieces, TOK, tiny_model(), config, tmp_path / "run",
              resume_from=load_checkpoint(tmp_path / "run" / "last.pt"))


def test_split_mode_is_saved_and_kept_on_resume(tmp_path):
    # Two performances per folder: by folder they stay together; a resume that asked for
    # another mode would change the validation pieces, so the checkpoint's mode wins.
    pieces = [Piece(p.name, f"piece{i // 2}/take{i % 2}.mid", p.ids, p.duration_s)
              for i, p in enumerate(phrase_pieces(8))]
    config = tiny_train(steps=4, eval_every=2, split_by="folder", valid_fraction=0.25)
    first = train(pieces, TOK, tiny_model(), config, tmp_path / "run", stop_after_steps=2)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert ckpt.split["by"] == "folder" and first.split_by == "folder"
    folders = {f.split("/")[0] for f in (p.file for p in pieces if p.name in ckpt.split["valid"])}
    assert len(ckpt.split["valid"]) == 2 * len(folders)
    rest = train(pieces, TOK, tiny_model(), tiny_train(steps=4, eval_every=2, valid_fraction=0.25,
                                                         split_by="file"),
                 tmp_path / "run", resume_from=ckpt)
    assert rest.split_by == "folder" and rest.step == 4

def test_minutes_run_stopped_before_its_plan_resumes_with_the_minutes_left(tmp_path):
    pieces = phrase_pieces()
    config = tiny_train(minutes=0.05, eval_every=1000)
    first = train(pieces, TOK, tiny_model(), config, tmp_path / "run", stop_after_steps=3)
    ckpt = load_checkpoint(tmp_path / "run" / "last.pt")
    assert first.interrupted and ckpt.train_config["total_steps"] is None  # not planned yet
    assert 0 < ckpt.train_config["seconds_used"] < 3
    rest = train(pieces, TOK, tiny_model(), config, tmp_path / "run", resume_from=ckpt)
    assert not rest.interrupted and rest.step == rest.total_steps > 3
    assert load_checkpoint(tmp_path / "run" / "last.pt").train_config["seconds_used"] < 10


def test_budget_resume_keeps_a_plan_and_gives_an_unplanned_clock_what_is_left():
    import time

    from midigen.budget import DEFAULT_STEPS, Budget

    assert Budget.resume({"total_steps": 50, "minutes": 1.0}, 7).total_steps == 50
    left = Budget.resume({"total_steps": None, "minutes": 1.0, "seconds_used": 45.0}, 7)
    assert left.total_steps is None and left.start_step == 7
    assert left.deadline - time.monotonic() == pytest.approx(15.0, abs=1.0)
    spent = Budget.resume({"total_steps": None, "minutes": 1.0, "seconds_used": 90.0}, 7)
    assert spent.out_of_time(7) and spent.total_steps == 7 and spent.done(7)
    assert Budget.resume({}, 0).total_steps == DEFAULT_STEPS


def test_train_config_records_betas_and_divergence_and_reads_old_checkpoints(tmp_path):
    config = tiny_train(steps=2, betas=(0.8, 0.95), diverge_factor=2.0)
    train(phrase_pieces(), TOK, tiny_model(), config, tmp_path / "run")
    saved = load_checkpoint(tmp_path / "run" / "last.pt").train_config
    assert TrainConfig.from_dict(saved) == config
    old = {k: v for k, v in saved.items() if k not in ("betas", "diverge_factor")}
    assert TrainConfig.from_dict(old) == tiny_train(steps=2)  # older checkpoints: defaults
