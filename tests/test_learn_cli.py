"""`midigen train / inspect` through CliRunner, and Ctrl-C on a real `midigen train` process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from midigen.cli import app
from midigen.events import Note, notes_to_array
from midigen.midi_io import write_midi

runner = CliRunner()
TINY = ["--layers", "1", "--hidden", "32", "--embed", "16", "--seq-len", "32", "--batch-size",
        "4", "--device", "cpu", "--steps-per-second", "20", "--no-programs"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def write_corpus(folder: Path) -> Path:
    """Four short two-voice MIDI files in different keys."""
    folder.mkdir(parents=True, exist_ok=True)
    for k, root in enumerate((60, 62, 65, 67)):
        notes, t = [], 0.0
        for i in range(24):
            notes.append(Note(root + [0, 2, 4, 5, 7, 5, 4, 2][i % 8], 90, t, t + 0.25))
            notes.append(Note(root - 12 + [0, 7][i // 4 % 2], 70, t, t + 0.25))
            t += 0.25
        write_midi(notes_to_array(notes), folder / f"tune{k}.mid")
    return folder


def invoke(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result, (result.stdout or "") + (result.stderr or "")


def one_error_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert lines[0].startswith("error:"), text
    return lines[0]


def test_train_then_inspect(corpus, tmp_path):
    run = tmp_path / "run"
    result, text = invoke("train", corpus, *TINY, "--steps", "20", "--eval-every", "10",
                          "--run-dir", run)
    assert result.exit_code == 0, text
    assert "valid NLL" in text and "bigram baseline" in text
    assert (run / "best.pt").exists() and (run / "last.pt").exists()
    result, text = invoke("inspect", run, "--json")
    assert result.exit_code == 0, text
    info = json.loads(result.stdout)
    assert info["step"] == 20 and info["model"]["hidden"] == 32
    assert info["tokenizer"]["steps_per_second"] == 20 and info["tokenizer"]["use_programs"] is False
    assert info["split"]["train_pieces"] + info["split"]["valid_pieces"] == 4
    assert info["corpus"]["pieces"] == 4
    result, text = invoke("inspect", run / "last.pt")
    assert result.exit_code == 0 and "hidden" in text and "best_valid_nll" in text
    assert "micro_batch" not in text  # only a batch split to fit in memory shows one

    # --init-from keeps the tokenizer; asking for another one is an error.
    result, text = invoke("train", corpus, "--init-from", run, "--steps-per-second", "50",
                          "--steps", "2")
    assert result.exit_code == 1 and "steps_per_second" in one_error_line(text)
    result, text = invoke("train", corpus, "--init-from", run / "best.pt", "--steps", "4",
                          "--eval-every", "2", "--seq-len", "32", "--batch-size", "4",
                          "--device", "cpu", "--run-dir", tmp_path / "tuned")
    assert result.exit_code == 0, text


def test_resume_of_a_minutes_run_stopped_before_its_plan(corpus, tmp_path):
    from midigen.checkpoint import load_checkpoint, save_checkpoint

    run = tmp_path / "run"
    result, text = invoke("train", corpus, *TINY, "--minutes", "0.02", "--run-dir", run)
    assert result.exit_code == 0, text
    # As if Ctrl-C came in the first seconds: no step count planned yet, little time used.
    ckpt = load_checkpoint(run / "last.pt")
    ckpt.train_config.update(total_steps=None, seconds_used=0.5)
    save_checkpoint(run / "last.pt", ckpt)
    result, text = invoke("train", "--resume", run, "--device", "cpu")
    assert result.exit_code == 0, text
    assert load_checkpoint(run / "last.pt").train_config["total_steps"] >= ckpt.step


def test_empty_folder_and_unreadable_scores_are_one_line_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    result, text = invoke("train", tmp_path / "empty", *TINY, "--steps", "2")
    assert result.exit_code == 1 and "no readable scores" in one_error_line(text)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "a.mid").write_bytes(b"not a midi file at all")
    (junk / "b.xml").write_text("<nothing/>")
    result, text = invoke("train", junk, *TINY, "--steps", "2")
    assert result.exit_code == 1 and "no readable scores" in one_error_line(text)


def test_bad_options_and_bad_checkpoints_are_one_line_errors(corpus, tmp_path):
    result, text = invoke("train", corpus, *TINY, "--steps", "5", "--minutes", "1")
    assert result.exit_code == 1 and "one training budget" in one_error_line(text)
    result, text = invoke("train", corpus, *TINY, "--valid-fraction", "1.5", "--steps", "5")
    assert result.exit_code == 1 and "valid-fraction" in one_error_line(text)
    (tmp_path / "fake.pt").write_bytes(b"\x00" * 64)
    result, text = invoke("inspect", tmp_path / "fake.pt")
    assert result.exit_code == 1 and "not a midigen checkpoint" in one_error_line(text)
    (tmp_path / "run").mkdir()
    result, text = invoke("train", "--resume", tmp_path / "run")
    assert result.exit_code == 1 and "no last.pt" in one_error_line(text)
    result, text = invoke("train", corpus, "--resume", tmp_path / "run", "--layers", "2")
    assert result.exit_code == 1 and "--resume" in one_error_line(text)


@pytest.mark.skipif(shutil.which("midigen") is None, reason="the midigen command is not installed")
def test_ctrl_c_saves_last_and_exits_130_then_resume_continues(corpus, tmp_path, started):
    run = tmp_path / "run"
    env = {**os.environ, "MIDIGEN_CACHE": str(tmp_path / "cache")}
    proc = started(subprocess.Popen(
        ["midigen", "train", str(corpus), *TINY, "--steps", "1000000", "--eval-every", "5",
         "--run-dir", str(run)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=tmp_path))
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr  # so `train && sample` stops too
    assert "stopped at step" in stdout and "--resume" in stdout
    from midigen.checkpoint import load_checkpoint

    stopped = load_checkpoint(run / "last.pt")
    assert stopped.step >= 1 and stopped.train_config["total_steps"] == 1000000
    assert "Traceback" not in stderr

    # The same command line, as a subprocess, resumes (and a second Ctrl-C stops it again).
    proc = started(subprocess.Popen([sys.executable, "-m", "midigen", "train", "--resume",
                                     str(run), "--device", "cpu"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path))
    time.sleep(0.5)
    while load_checkpoint(run / "last.pt").step == stopped.step and proc.poll() is None:
        time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr  # so `train && sample` stops too
    assert f"resuming {run} at step {stopped.step}" in stdout.replace("\n", "")
    assert load_checkpoint(run / "last.pt").step > stopped.step
