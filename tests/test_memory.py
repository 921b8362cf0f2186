"""A batch that does not fit in device memory: training splits it into micro-batches (the same
training), evaluation scores in halves, and what cannot fit at all is one line, exit 1.

No GPU is needed: torch.OutOfMemoryError is raised by a wrapped forward above a number of rows
(what a GPU does above some batch), and the CPU is added to the probed devices.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from test_learn_cli import TINY, invoke, one_error_line, write_corpus
from test_train import TOK, phrase_pieces, tiny_model, tiny_train

from midigen import memory
from midigen.checkpoint import load_checkpoint
from midigen.errors import MidigenError
from midigen.evaluate import nll_over_pieces
from midigen.model import MusicRNN
from midigen.train import train

REAL_FORWARD = MusicRNN.forward


def memory_for_rows(monkeypatch, rows: int, calls: list | None = None) -> None:
    """The model runs out of 'GPU memory' above `rows` rows; the CPU is probed like a GPU."""
    def forward(self, ids, state=None, **kw):
        if calls is not None:
            calls.append(ids.shape[0])
        if ids.shape[0] > rows:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB ...")
        return REAL_FORWARD(self, ids, state, **kw)

    monkeypatch.setattr(MusicRNN, "forward", forward)
    monkeypatch.setattr(memory, "PROBED_DEVICE_TYPES", ("cpu",))


def _max_difference(a, b) -> float:
    return max((a.model_state[k] - b.model_state[k]).abs().max().item() for k in a.model_state)


def test_a_batch_that_does_not_fit_trains_the_same_in_micro_batches(tmp_path, monkeypatch, fp32_steps):
    config = tiny_train(steps=6, eval_every=3, log_every=1)
    whole = train(phrase_pieces(), TOK, tiny_model(), config, tmp_path / "whole")

    calls, notes = [], []
    memory_for_rows(monkeypatch, 3, calls)
    split = train(phrase_pieces(), TOK, tiny_model(), config, tmp_path / "split",
                  on_note=notes.append)
    # 8 did not fit, nor 4; 2 did: every step then ran 4 slices of 2 windows.
    assert calls[:3] == [8, 4, 2]
    assert max(calls) <= 8 and 8 not in calls[3:] and 4 not in calls[3:]
    assert notes == [("batch 8 x 48 did not fit in GPU memory; training each step as 4 "
                      "micro-batches of at most 2 windows, gradients accumulated (the same "
                      "training, slower)")]
    a, b = load_checkpoint(tmp_path / "whole" / "last.pt"), load_checkpoint(tmp_path / "split" / "last.pt")
    # The same global batch and steps: equal up to float rounding of the summed slices.
    assert _max_difference(a, b) < 1e-5
    assert [loss for _, loss in split.train_losses] == pytest.approx(
        [loss for _, loss in whole.train_losses], abs=1e-5)
    # Validation (scored in pieces of at most 3 here) gives the same number.
    assert b.metrics["valid_nll"] == pytest.approx(a.metrics["valid_nll"], abs=1e-5)
    assert a.train_config["micro_batch"] is None and b.train_config["micro_batch"] == 2
    assert a.train_config["precision_used"] == "fp32"  # as the fp32_steps fixture asks
    assert b.train_config["batch_size"] == 8  # the batch the user asked for is what was trained


def test_one_window_that_does_not_fit_is_one_line_and_exit_1(tmp_path, monkeypatch):
    memory_for_rows(monkeypatch, 0)
    with pytest.raises(MidigenError, match=r"even one window of 48 events: use a smaller --seq-len"):
        train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=3), tmp_path / "run")
    assert not (tmp_path / "run" / "last.pt").exists()

    result, text = invoke("train", write_corpus(tmp_path / "corpus"), *TINY, "--steps", "2",
                          "--run-dir", tmp_path / "cli")
    assert result.exit_code == 1
    assert "ran out of memory training even one window of 32 events" in one_error_line(text)


def test_the_command_says_in_one_note_that_the_batch_was_split(tmp_path, monkeypatch):
    memory_for_rows(monkeypatch, 2)
    result, text = invoke("train", write_corpus(tmp_path / "corpus"), *TINY, "--steps", "2",
                          "--run-dir", tmp_path / "cli")
    assert result.exit_code == 0, text
    notes = [line for line in text.splitlines() if "did not fit in GPU memory" in line]
    assert notes == [("note: batch 4 x 32 did not fit in GPU memory; training each step as 2 "
                      "micro-batches of at most 2 windows, gradients accumulated (the same "
                      "training, slower)")], text
    assert "Traceback" not in text

    # inspect says the batch was split, in the table and in JSON.
    result, text = invoke("inspect", tmp_path / "cli" / "last.pt")
    assert result.exit_code == 0, text
    assert "micro_batch" in text and "2 windows at a time of the 4 in a step" in " ".join(text.split())
    result, text = invoke("inspect", tmp_path / "cli" / "last.pt", "--json")
    assert json.loads(result.stdout)["training"]["micro_batch"] == 2


def test_running_out_later_in_the_loop_is_one_line(tmp_path, monkeypatch):
    # Not probed (the CPU, as by default): what an out-of-memory error in a step becomes.
    def no_memory(self, ids, state=None, **kw):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB ...")

    monkeypatch.setattr(MusicRNN, "forward", no_memory)
    with pytest.raises(MidigenError, match=r"ran out of memory training micro-batches of 8 x 48 "
                                           r"events: .*--batch-size"):
        train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=3), tmp_path / "run")


def test_evaluation_scores_in_halves_and_shorter_windows_to_the_same_nll(monkeypatch):
    torch.manual_seed(0)
    model = MusicRNN(tiny_model())
    pieces = [p.ids[:100] for p in phrase_pieces(count=3, bars=4)]
    expected = nll_over_pieces(model, pieces, window_events=64)

    windows = []

    def forward(self, ids, state=None, **kw):  # one piece at a time, 16 events at a time, fits
        windows.append(ids.shape)
        if ids.shape[0] > 1 or ids.shape[1] > 16:
            raise torch.OutOfMemoryError("CUDA out of memory.")
        return REAL_FORWARD(self, ids, state, **kw)

    monkeypatch.setattr(MusicRNN, "forward", forward)
    monkeypatch.setattr("midigen.evaluate.MIN_WINDOW_EVENTS", 8)
    got = nll_over_pieces(model, pieces, window_events=64)
    assert got["num_events"] == expected["num_events"]
    assert got["nll_per_event"] == pytest.approx(expected["nll_per_event"], rel=1e-5)
    assert max(s[1] for s in windows[-3:]) == 16
    monkeypatch.setattr("midigen.evaluate.MIN_WINDOW_EVENTS", 32)
    with pytest.raises(MidigenError, match="scoring one piece in windows of 32 events"):
        nll_over_pieces(model, pieces, window_events=64)
    assert math.isfinite(expected["nll_per_event"])


def test_sampling_that_runs_out_of_memory_is_one_line(tmp_path, monkeypatch):
    # Not split into smaller batches (the seed's draws are per batch): one line saying what to do.
    from midigen.sample import sample_to_files
    from midigen.stepper import Stepper

    train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=2), tmp_path / "run")

    def no_memory(self, ids):
        raise torch.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(Stepper, "step", no_memory)
    with pytest.raises(MidigenError, match=r"sampling 64 pieces at once: sample fewer at a time"):
        sample_to_files(tmp_path / "run", tmp_path / "out", num=64, max_events=50, seed=1)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_the_probe_leaves_room_for_the_optimizer_state(tmp_path, monkeypatch):
    # AdamW's two moments per weight appear at the first step, after the probe. Here 'GPU
    # memory' holds 4 windows, or 2 beside those moments: 4 would fit the probe without them
    # and then run out of memory at the first step.
    weight_bytes = 4 * MusicRNN(tiny_model()).num_parameters()
    row_bytes, room, held = weight_bytes, 4 * weight_bytes, []

    def hold(nbytes, device):
        held.append(nbytes)
        return torch.empty(0)

    def forward(self, ids, state=None, **kw):
        if ids.shape[0] * row_bytes + held[-1] > room:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB ...")
        return REAL_FORWARD(self, ids, state, **kw)

    monkeypatch.setattr(memory, "_hold", hold)
    monkeypatch.setattr(MusicRNN, "forward", forward)
    monkeypatch.setattr(memory, "PROBED_DEVICE_TYPES", ("cpu",))
    train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=2, eval_every=2), tmp_path / "r")
    assert held == [2 * weight_bytes] * 3  # 8 windows, 4, then 2 fit
    assert load_checkpoint(tmp_path / "r" / "last.pt").train_config["micro_batch"] == 2
