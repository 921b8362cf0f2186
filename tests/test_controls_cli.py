"""Controls end to end: a tiny model trained in seconds on two styles of a folder plays the
style and instruments asked; keys written in scores reach the token store; the CLI's errors."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import symusic
import torch
from typer.testing import CliRunner

from midigen.checkpoint import load_model
from midigen.cli import app
from midigen.controls import asked_row, model_controls
from midigen.corpus import cache_dir_for, load_corpus
from midigen.events import Note, notes_to_array
from midigen.midi_io import write_midi
from midigen.runs import start_run
from midigen.sample import sample_ids
from midigen.token_store import TokenStore
from midigen.tokenizer import TokenizerConfig, decode_ids

runner = CliRunner()
TOKENS = {"steps_per_second": 20, "max_shift_steps": 20}


def write_styles(root, pieces=6, notes=40):
    """Two styles: "high" (violin, above middle C) and "low" (piano, two octaves down)."""
    rng = np.random.default_rng(0)
    for style, lowest, program in (("high", 72, 40), ("low", 36, 0)):
        (root / style).mkdir(parents=True)
        for i in range(pieces):
            steps = rng.choice([0, 2, 4, 5, 7, 9, 11, 12], notes)
            write_midi(notes_to_array([Note(lowest + int(s), 80, k * 0.25, k * 0.25 + 0.2, program)
                                       for k, s in enumerate(steps)]), root / style / f"{style}{i}.mid")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("styles")
    write_styles(root / "corpus")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start_run(root / "corpus", {"layers": 1, "hidden": 48, "embed_dim": 16, "dropout": 0.0},
                  {"steps": 250, "seq_len": 48, "batch_size": 16, "eval_every": 250, "lr": 1e-2,
                   "transpose": 0}, TOKENS, "cpu", root / "run",
                  controls=("style", "key", "density", "instruments"))
    finally:
        torch.set_num_threads(threads)
    return root / "run"


def test_a_tiny_model_plays_the_style_and_instruments_asked(trained):
    model, tok, _ = load_model(trained / "best.pt")
    spec = model_controls(model)
    assert spec.styles == ("high", "low") and spec.instruments == (0, 40)

    def played(**asked):
        pieces = sample_ids(model, tok, num=8, max_events=60, seed=0,
                            cond=asked_row(spec, **asked))
        notes = np.concatenate([decode_ids(p, tok).notes for p in pieces])
        return notes["pitch"].mean(), np.mean(notes["program"] == 40)

    high, violin_share = played(style="high", instruments="violin")
    low, violin_in_low = played(style="low", instruments="piano")
    assert high > 68 and low < 50  # the styles lie 36 semitones apart
    assert violin_share > 0.5 and violin_in_low < 0.1  # 250 steps: a clear lean, not 95%


def test_inspect_lists_the_controls(trained):
    result = runner.invoke(app, ["inspect", str(trained), "--json"])
    assert result.exit_code == 0, result.output
    controls = json.loads(result.output)["controls"]
    assert controls["style"] == ["high", "low"] and len(controls["key"]) == 24
    assert controls["instruments"] == ["Acoustic Grand Piano", "Violin"]
    assert len(controls["density"]) >= 2


def test_sample_steers_and_records_the_controls(trained, tmp_path):
    result = runner.invoke(app, ["sample", "-c", str(trained), "--style", "low", "--key", "C major",
                                 "--density", "4", "--instruments", "piano", "-n", "2",
                                 "--max-events", "40", "--seed", "3", "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    options = json.loads((tmp_path / "sample-001.json").read_text())["options"]
    assert (options["style"], options["key"], options["density"]) == ("low", "C major", 4.0)


@pytest.mark.parametrize("args,message", [
    (["--style", "jazz"], "error: this model knows no style 'jazz'; it knows: high, low"),
    (["--instruments", "flute"], ("error: this model knows no instrument 'Flute'; it knows: "
                                 "Acoustic Grand Piano, Violin")),
    (["--key", "H dorian"], "error: unknown key 'H dorian'"),
    (["--density", "-1"], "error: --density is notes per second and must be above 0"),
])
def test_bad_control_values_are_one_line_errors(trained, tmp_path, args, message):
    result = runner.invoke(app, ["sample", "-c", str(trained), "-o", str(tmp_path), *args])
    assert result.exit_code == 1
    assert result.output.strip().startswith(message) and len(result.output.strip().splitlines()) == 1


def test_bad_control_names_are_usage_errors_and_plain_models_refuse_controls(tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path), "--controls", "style,tempo"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    assert "choose from style, key, density, instruments" in result.output
    from midigen.checkpoint import Checkpoint, save_checkpoint
    from midigen.model import ModelConfig, MusicRNN
    from midigen.vocabulary import vocabulary

    tok = TokenizerConfig(**TOKENS)
    config = ModelConfig(vocab_size=vocabulary(tok).size, embed_dim=8, hidden=8, layers=1)
    path = save_checkpoint(tmp_path / "plain.pt", Checkpoint(
        tokenizer_config=tok, model_config=config, train_config={},
        model_state=MusicRNN(config).state_dict()))
    result = runner.invoke(app, ["sample", "-c", str(path), "--key", "D minor", "-o", str(tmp_path)])
    assert result.exit_code == 1
    assert "trained without controls" in result.output


def test_written_keys_reach_the_store_and_old_stores_gain_the_column(tmp_path):
    folder = tmp_path / "keys"
    folder.mkdir()
    a_minor = [57, 59, 60, 62, 64, 65, 68, 69, 64, 60, 57]
    write_midi(notes_to_array([Note(p, 80, k * 0.5, k * 0.5 + 0.5) for k, p in enumerate(a_minor)]),
               folder / "plain.mid")
    score = symusic.Score(str(folder / "plain.mid"))
    score.key_signatures.append(symusic.KeySignature(0, 0, 0))  # no sharps, mode left "major"
    score.dump_midi(str(folder / "signed.mid"))
    tok = TokenizerConfig(**TOKENS)
    keys = {p.file: p.key for p in load_corpus(folder, tok).pieces}
    assert keys == {"plain.mid": 21, "signed.mid": 21}  # A minor, heard and read
    # A store from before keys: the column is added, its pieces' keys are unknown (None).
    db = sqlite3.connect(cache_dir_for(folder.resolve(), tok) / "store.sqlite")
    db.execute("UPDATE meta SET value='1' WHERE key='schema'")
    db.commit()
    db.close()
    with TokenStore(cache_dir_for(folder.resolve(), tok)) as store:
        assert len(store.sql_tables()[1]) == 2 and not store.notes  # migrated, not rebuilt


def test_evaluate_gives_each_piece_its_controls(trained):
    from midigen.controls import asked_row
    from midigen.evaluate import evaluate_corpus, nll_over_pieces

    scored = evaluate_corpus(trained / "best.pt", trained.parent / "corpus")
    model, tok, _ = load_model(trained / "best.pt")
    pieces = load_corpus(trained.parent / "corpus", tok).pieces
    hidden = nll_over_pieces(model, [p.ids for p in pieces],
                             controls=np.tile(asked_row(model_controls(model)), (len(pieces), 1)))
    assert scored["nll_per_event"] < hidden["nll_per_event"]  # knowing the style helps


def test_a_run_with_controls_resumes_exactly(trained, tmp_path):
    from dataclasses import replace

    from midigen.checkpoint import load_checkpoint
    from midigen.controls_train import build_spec
    from midigen.model import ModelConfig
    from midigen.train import TrainConfig, train
    from midigen.vocabulary import vocabulary

    tok = TokenizerConfig(**TOKENS)
    pieces = load_corpus(trained.parent / "corpus", tok).pieces
    spec = build_spec(("style", "key", "density", "instruments"), pieces, tok, 32)
    model_config = replace(ModelConfig(vocabulary(tok).size, embed_dim=8, hidden=16, layers=1),
                           controls=spec.to_dict())
    config = TrainConfig(seq_len=32, batch_size=4, steps=10, eval_every=5, log_every=1,
                         device="cpu", transpose=2)
    whole = train(pieces, tok, model_config, config, tmp_path / "whole")
    first = train(pieces, tok, model_config, config, tmp_path / "cut", stop_after_steps=4)
    rest = train(pieces, tok, model_config, config, tmp_path / "cut",
                 resume_from=load_checkpoint(tmp_path / "cut" / "last.pt"))
    assert np.allclose([loss for _, loss in first.train_losses + rest.train_losses],
                       [loss for _, loss in whole.train_losses], rtol=1e-5, atol=1e-6)
    assert rest.last_eval.valid_nll == pytest.approx(whole.last_eval.valid_nll, rel=1e-5)


def test_the_report_groups_pieces_by_guidance(trained, tmp_path, monkeypatch):
    from midigen.report import write_report

    monkeypatch.setattr("midigen.render.audio_available", lambda *a: "no audio in this test")
    for guidance in ("1", "3"):
        result = runner.invoke(app, ["sample", "-c", str(trained), "--style", "low", "-n", "1",
                                     "--max-events", "30", "--seed", "2", "--guidance", guidance,
                                     "-o", str(tmp_path / "pieces")])
        assert result.exit_code == 0, result.output
    report = write_report([tmp_path / "pieces"], tmp_path / "page")
    assert [title for title, _ in report.groups] == ["guidance 1", "guidance 3"]
