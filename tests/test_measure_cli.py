"""`midigen evaluate` and `midigen stats` through the CLI: JSON keys, tables, errors."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from typer.testing import CliRunner

from midigen.cli import app
from midigen.corpus import load_corpus
from midigen.events import Note, notes_to_array
from midigen.midi_io import write_midi
from midigen.model import ModelConfig
from midigen.tokenizer import TokenizerConfig, vocabulary
from midigen.train import TrainConfig, train

runner = CliRunner()

STATS_KEYS = {"pieces", "summary", "files_skipped"}
PIECE_KEYS = {"name", "num_notes", "duration_s", "pitch_low", "pitch_high", "pitch_span",
              "pitch_class_histogram", "note_density", "mean_polyphony", "max_polyphony",
              "velocity_mean", "velocity_std", "duration_median_s", "ioi_median_s", "instruments"}
FEATURE_KEYS = {"overlap", "kl", "piece_overlap_mean", "piece_kl_mean", "corpus_loo_overlap",
                "corpus_loo_kl", "pieces_inside"}
EVALUATE_KEYS = {"nll_per_event", "perplexity", "bits_per_event", "nll_per_second", "nll_per_note",
                 "num_events", "num_pieces", "total_nll", "duration_s", "num_notes", "notes_read",
                 "notes_kept", "notes_dropped", "events_outside_vocabulary", "files_skipped",
                 "checkpoint", "corpus"}


def scale(folder, name, shift=0, step_s=0.5):
    notes = [Note(p + shift, 80, i * step_s, (i + 1) * step_s)
             for i, p in enumerate([60, 62, 64, 65, 67, 69, 71, 72] * 2)]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    write_midi(notes_to_array(notes), path)
    return path


@pytest.fixture(scope="module")
def music(tmp_path_factory):
    root = tmp_path_factory.mktemp("measure")
    corpus = root / "corpus"
    for k in range(4):
        scale(corpus, f"tune{k}.mid", shift=2 * k, step_s=0.5 + 0.125 * k)
    sample = scale(root / "samples", "sample.mid")
    return {"root": root, "corpus": corpus, "sample": sample}


def test_stats_json_has_the_documented_keys(music):
    result = runner.invoke(app, ["stats", str(music["sample"]), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == STATS_KEYS
    assert set(report["pieces"][0]) == PIECE_KEYS
    assert report["pieces"][0]["note_density"] == pytest.approx(2.0)


def test_stats_against_a_corpus_json(music):
    result = runner.invoke(app, ["stats", str(music["sample"].parent), "--against",
                                 str(music["corpus"]), "--json"])
    assert result.exit_code == 0, result.output
    against = json.loads(result.stdout)["against"]
    assert {"corpus", "num_pieces", "corpus_summary", "features", "copying"} <= set(against)
    assert against["num_pieces"] == 4
    for name, feature in against["features"].items():
        assert set(feature) == FEATURE_KEYS, name
    assert set(against["copying"]) == {"n", "share_found_mean", "longest_run_max", "pieces"}
    # the sample is tune0 note for note (same key, same speed): copied end to end
    copy = against["copying"]["pieces"][0]
    assert copy["share_found"] == 1.0 and copy["longest_run_piece"] == "tune0.mid"
    assert against["features"]["pitch_class"]["overlap"] > 0.5


def test_stats_tables_for_people(music):
    result = runner.invoke(app, ["stats", str(music["sample"]), "--against", str(music["corpus"]),
                                 "--per-piece"])
    assert result.exit_code == 0, result.output
    for text in ("notes / second", "pitch_class", "longest shared run", "sample"):
        assert text in result.output


def test_stats_of_a_folder_without_scores_fails_with_one_line(tmp_path):
    (tmp_path / "notes.txt").write_text("not music")
    result = runner.invoke(app, ["stats", str(tmp_path)])
    assert result.exit_code == 1
    assert "no score files" in result.output and "Traceback" not in result.output


@pytest.fixture(scope="module")
def checkpoint(music):
    config = TokenizerConfig()
    corpus = load_corpus(music["corpus"], config)
    model_config = ModelConfig(vocabulary(config).size, hidden=16, embed_dim=8, layers=1)
    train_config = TrainConfig(steps=5, eval_every=5, seq_len=16, batch_size=2,
                               valid_fraction=0.25, warmup_steps=1, device="cpu")
    train(corpus.pieces, config, model_config, train_config, music["root"] / "run")
    return music["root"] / "run"


def test_evaluate_json_has_the_documented_keys(music, checkpoint):
    result = runner.invoke(app, ["evaluate", str(music["corpus"]), "--checkpoint",
                                 str(checkpoint), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert EVALUATE_KEYS <= set(report)
    assert report["num_pieces"] == 4 and report["notes_dropped"] == 0
    assert report["bits_per_event"] == pytest.approx(report["nll_per_event"] / 0.6931471805599453)


def test_evaluate_table(music, checkpoint):
    result = runner.invoke(app, ["evaluate", str(music["corpus"]), "-c", str(checkpoint)])
    assert result.exit_code == 0, result.output
    assert "perplexity" in result.output and "NLL / second" in result.output


def test_evaluate_refuses_a_file_that_is_not_a_checkpoint(music, tmp_path):
    bogus = tmp_path / "model.pt"
    bogus.write_bytes(b"not a checkpoint")
    result = runner.invoke(app, ["evaluate", str(music["corpus"]), "-c", str(bogus)])
    assert result.exit_code == 1 and "error" in result.output


def test_installed_command_runs_stats(music):
    exe = shutil.which("midigen")
    if exe is None:
        pytest.skip("the midigen command is not installed (pip install -e .)")
    done = subprocess.run([exe, "stats", str(music["sample"]), "--json"], capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["summary"]["num_notes"] == 16
