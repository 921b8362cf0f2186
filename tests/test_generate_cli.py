"""`midigen sample` end to end: real checkpoints, real MIDI files, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from midigen.checkpoint import Checkpoint, save_checkpoint
from midigen.cli import app
from midigen.events import Note, notes_to_array
from midigen.midi_io import read_midi_notes, write_midi
from midigen.model import ModelConfig, MusicRNN
from midigen.tokenizer import TokenizerConfig, quantize_notes, vocabulary

runner = CliRunner()
CONFIG = TokenizerConfig(steps_per_second=50, max_shift_steps=50, use_programs=True)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained small model in a real checkpoint: random music, but every path runs."""
    torch.manual_seed(0)
    model_config = ModelConfig(vocab_size=vocabulary(CONFIG).size, embed_dim=16, hidden=32,
                               layers=2)
    model = MusicRNN(model_config)
    run_dir = tmp_path_factory.mktemp("run")
    path = save_checkpoint(run_dir / "best.pt", Checkpoint(
        tokenizer_config=CONFIG, model_config=model_config, train_config={},
        model_state=model.state_dict()))
    return path


@pytest.fixture(autouse=True)
def _one_thread():
    """Small models gain nothing from a second thread, and on a busy machine OpenMP's
    spinning threads slow them many times over."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def invoke(*args):
    return runner.invoke(app, ["sample", *map(str, args)])


def test_writes_valid_midi_and_a_table(checkpoint, tmp_path):
    result = invoke("--checkpoint", checkpoint, "--num", 3, "--max-events", 150, "--seed", 1,
                    "--out", tmp_path)
    assert result.exit_code == 0, result.output
    files = sorted(tmp_path.glob("*.mid"))
    assert [f.name for f in files] == ["sample-001.mid", "sample-002.mid", "sample-003.mid"]
    assert "sample-001.mid" in result.output and "seed 1" in result.output
    for f in files:
        assert f.read_bytes()[:4] == b"MThd"
        assert f.read_bytes()[9] == 1  # type-1 MIDI
        read_midi_notes(f)  # readable back


def test_json_rows_describe_the_files(checkpoint, tmp_path):
    result = invoke("--checkpoint", checkpoint.parent, "--num", 2, "--max-events", 200,
                    "--seed", 3, "--out", tmp_path, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["seed"] == 3 and len(report["files"]) == 2
    for row in report["files"]:
        notes = read_midi_notes(row["path"])
        assert row["notes"] == len(notes)
        assert row["duration_s"] == pytest.approx(notes["end_s"].max() if len(notes) else 0,
                                                  abs=0.02)
        assert row["events"] <= 201 and isinstance(row["instruments"], list)
        assert isinstance(row["repairs"], dict)


def test_same_seed_gives_byte_identical_files(checkpoint, tmp_path):
    args = ("--checkpoint", checkpoint, "--num", 2, "--max-events", 200, "--seed", 7,
            "--temperature", 0.9, "--top-p", 0.95, "--top-k", 100)
    assert invoke(*args, "--out", tmp_path / "a").exit_code == 0
    assert invoke(*args, "--out", tmp_path / "b").exit_code == 0
    assert invoke(*args[:-6], "--out", tmp_path / "c").exit_code == 0  # other options
    for name in ("sample-001.mid", "sample-002.mid"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "sample-001.mid").read_bytes() != (tmp_path / "c" / "sample-001.mid").read_bytes()


def test_sampling_is_constrained_unless_no_constrain(checkpoint, tmp_path):
    def orphans_and_restrikes(*extra):
        result = invoke("--checkpoint", checkpoint, "--num", 3, "--max-events", 300,
                        "--seed", 4, "--out", tmp_path / str(len(extra)), "--json", *extra)
        assert result.exit_code == 0, result.output
        rows = json.loads(result.stdout)["files"]
        return sum(r["repairs"].get(k, 0) for r in rows
                   for k in ("orphan_note_off", "restruck_sounding_note"))

    assert orphans_and_restrikes() == 0
    assert orphans_and_restrikes("--no-constrain") > 10  # an untrained model, sampled raw


def test_min_seconds_keeps_pieces_going(checkpoint, tmp_path):
    def ended(*extra):
        result = invoke("--checkpoint", checkpoint, "--num", 3, "--seconds", 4, "--seed", 5,
                        "--out", tmp_path / str(len(extra)), "--json", *extra)
        assert result.exit_code == 0, result.output
        return [row["ended"] for row in json.loads(result.stdout)["files"]]

    assert any(ended())  # this seed has a piece that says END before 4 s ...
    assert not any(ended("--min-seconds", 4))  # ... held back: every piece runs to the limit


def test_never_overwrites_without_force(checkpoint, tmp_path):
    args = ("--checkpoint", checkpoint, "--max-events", 50, "--out", tmp_path)
    assert invoke(*args, "--seed", 1).exit_code == 0
    first = (tmp_path / "sample-001.mid").read_bytes()
    assert invoke(*args, "--seed", 2).exit_code == 0
    assert (tmp_path / "sample-001.mid").read_bytes() == first
    assert (tmp_path / "sample-002.mid").exists()
    assert invoke(*args, "--seed", 2, "--force").exit_code == 0
    assert (tmp_path / "sample-001.mid").read_bytes() == (tmp_path / "sample-002.mid").read_bytes()
    assert not (tmp_path / "sample-003.mid").exists()


def test_primer_opening_is_kept(checkpoint, tmp_path):
    scale = [Note(60 + s, 90, i * 0.5, i * 0.5 + 0.4) for i, s in enumerate([0, 2, 4, 5, 7])]
    primer = tmp_path / "primer.mid"
    write_midi(notes_to_array(scale), primer)
    result = invoke("--checkpoint", checkpoint, "--primer", primer, "--max-events", 80,
                    "--seed", 0, "--out", tmp_path / "out", "--num", 2)
    assert result.exit_code == 0, result.output
    expected = quantize_notes(read_midi_notes(primer), CONFIG)
    for f in sorted((tmp_path / "out").glob("*.mid")):
        got = read_midi_notes(f)
        got_set = {(int(n["pitch"]), round(n["start_s"], 2), round(n["end_s"], 2)) for n in got}
        for n in expected:
            assert (int(n["pitch"]), round(n["start_s"], 2), round(n["end_s"], 2)) in got_set


def test_default_checkpoint_is_best_of_newest_run(checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "checkpoints" / "run-1").mkdir(parents=True)
    shutil.copy(checkpoint, tmp_path / "checkpoints" / "run-1" / "best.pt")
    result = invoke("--max-events", 30, "--seed", 0)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "samples" / "sample-001.mid").exists()


@pytest.mark.parametrize("args, message", [
    (["--temperature", "0"], "temperature"),
    (["--temperature", "-0.5"], "temperature"),
    (["--top-p", "1.5"], "top-p"),
    (["--top-p", "0"], "top-p"),
    (["--seconds", "0"], "seconds"),
    (["--primer-seconds", "4"], "--primer"),
])
def test_bad_options_are_one_line_errors(checkpoint, tmp_path, args, message):
    result = invoke("--checkpoint", checkpoint, "--out", tmp_path, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output
    assert not list(tmp_path.glob("*.mid"))


def test_not_a_checkpoint_and_no_runs_are_one_line_errors(tmp_path, monkeypatch):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    result = invoke("--checkpoint", junk, "--out", tmp_path)
    assert result.exit_code == 1
    assert "not a midigen checkpoint" in result.output and "Traceback" not in result.output
    monkeypatch.chdir(tmp_path)
    result = invoke("--out", tmp_path)
    assert result.exit_code == 1 and "no trained model" in result.output


def test_installed_command_runs(checkpoint, tmp_path):
    exe = shutil.which("midigen")
    if exe is None:
        pytest.skip("the midigen command is not installed (pip install -e .)")
    done = subprocess.run([exe, "sample", "--checkpoint", str(checkpoint), "--seconds", "3",
                           "--seed", "4", "--num", "2", "--out", str(tmp_path), "--json"],
                          check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)["files"]
    assert len(rows) == 2
    for row in rows:
        notes = read_midi_notes(row["path"])
        # --seconds counts new music, and the last rest is cut to land on it
        assert np.all(notes["end_s"] <= 3.0 + 1e-3)


def test_render_writes_audio_and_pictures(checkpoint, tmp_path):
    from midigen.render import audio_available

    if audio_available() is not None:
        pytest.skip(f"no audio here: {audio_available()}")
    result = invoke("--checkpoint", checkpoint, "--max-events", 120, "--seed", 2,
                    "--out", tmp_path, "--render", "--json")
    assert result.exit_code == 0, result.output
    rendered = json.loads(result.stdout)["rendered"]
    assert str(tmp_path / "sample-001.png") in rendered
    assert all(Path(p).stat().st_size > 0 for p in rendered)


def test_samples_table_keeps_every_column_on_a_narrow_terminal(monkeypatch):
    """Many long instrument names used to squeeze notes, events, repairs and stop to nothing."""
    import io

    from rich.console import Console

    import midigen.cli.sample as sample_cli

    buffer = io.StringIO()
    monkeypatch.setattr(sample_cli, "out", Console(file=buffer, width=80))
    names = ["Acoustic Grand Piano", "Bright Acoustic Piano", "Electric Grand Piano",
             "Honky-tonk Piano", "Electric Piano 1"]
    rows = [{"path": f"out/sample-00{i}.mid", "duration_s": 90.3, "notes": 326, "events": 734,
             "instruments": names, "repairs": {"orphan note-off": 29}, "stop": "END",
             "ended": True, "seed": 1} for i in (1, 2)]
    sample_cli.print_samples_table(rows, rendered=[])
    text = buffer.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines())
    for header in ("notes", "events", "repairs", "stop"):
        assert header in text
    assert "1:30.3" in text and "734" in text and " 29 " in text and "END" in text
