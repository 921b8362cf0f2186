"""The CUDA paths: training (bf16 autocast, fused AdamW), resume, evaluation, sampling with a
CUDA-graph step, and checkpoints crossing between GPU and CPU machines.

Marked `cuda`: skipped with a reason where torch sees no CUDA GPU (conftest.py). On a GPU:
`python3 -m pytest -m cuda -n 0 -q tests/` (bench/gpu_check.sh runs every cuda-marked test with the
GPU benchmarks).
"""

from __future__ import annotations

import gc
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_train import TOK, V, phrase_pieces, tiny_model, tiny_train

from midigen.checkpoint import load_checkpoint, load_model
from midigen.evaluate import nll_over_pieces
from midigen.model import ModelConfig, MusicRNN
from midigen.sample import sample_ids, sample_to_files
from midigen.stepper import Stepper
from midigen.train import train


@pytest.mark.cuda
def test_training_on_cuda_learns_like_the_cpu(tmp_path):
    # bf16 autocast keeps 8 mantissa bits (~0.4% per op), so the two runs drift apart a little
    # over 60 steps; both must learn the phrase, within 0.1 nats of each other.
    results = {d: train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=60, device=d),
                        tmp_path / d) for d in ("cpu", "cuda")}
    cpu, gpu = (results[d].last_eval.valid_nll for d in ("cpu", "cuda"))
    assert gpu < math.log(V) - 2 and cpu < math.log(V) - 2
    assert abs(gpu - cpu) < 0.1, (cpu, gpu)
    ckpt = load_checkpoint(tmp_path / "cuda" / "last.pt")
    assert ckpt.train_config["device_used"].startswith("cuda")
    assert all(t.device.type == "cpu" for t in ckpt.model_state.values())  # loads anywhere


@pytest.mark.cuda
def test_resume_on_cuda_continues_exactly(tmp_path):
    # Dropout 0: cuDNN draws the dropout between LSTM layers from a state of its own, seeded
    # from the CUDA generator after any set_rng_state (so again after a resume) and held in no
    # checkpoint; with dropout a resumed GPU run is the same training, not the same numbers.
    config = tiny_train(steps=16, eval_every=6, log_every=1, transpose=2, device="cuda")
    model_config = ModelConfig(V, embed_dim=16, hidden=32, layers=2, dropout=0.0)
    whole = train(phrase_pieces(), TOK, model_config, config, tmp_path / "whole")
    train(phrase_pieces(), TOK, model_config, config, tmp_path / "cut", stop_after_steps=7)
    rest = train(phrase_pieces(), TOK, model_config, config, tmp_path / "cut",
                 resume_from=load_checkpoint(tmp_path / "cut" / "last.pt"))
    # The data order and optimizer state come back; cuDNN's LSTM kernels are deterministic
    # for a fixed shape, so only float noise may remain.
    assert np.allclose([x for _, x in rest.train_losses], [x for _, x in whole.train_losses[7:]],
                       rtol=1e-4)


@pytest.mark.cuda
def test_checkpoints_cross_between_gpu_and_cpu(tmp_path):
    # Trained on the GPU, sampled on the CPU (and the same seed gives the same files) ...
    train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=20, device="cuda"), tmp_path / "g")
    first = sample_to_files(tmp_path / "g", tmp_path / "a", num=2, max_events=200, seed=5)
    again = sample_to_files(tmp_path / "g", tmp_path / "b", num=2, max_events=200, seed=5)
    assert [Path(r["path"]).read_bytes() for r in first] == \
           [Path(r["path"]).read_bytes() for r in again]
    # ... and trained on the CPU, resumed on the GPU.
    config = tiny_train(steps=12, device="cpu")
    train(phrase_pieces(), TOK, tiny_model(), config, tmp_path / "c", stop_after_steps=5)
    ckpt = load_checkpoint(tmp_path / "c" / "last.pt")
    from dataclasses import replace

    done = train(phrase_pieces(), TOK, tiny_model(), replace(config, device="cuda"),
                 tmp_path / "c", resume_from=ckpt)
    assert done.step == 12 and not done.interrupted


@pytest.mark.cuda
def test_evaluation_on_cuda_matches_the_cpu(tmp_path):
    train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=20, device="cpu"), tmp_path / "r")
    ids = [p.ids.astype(np.int64) for p in phrase_pieces(3)]
    scores = {d: nll_over_pieces(load_model(tmp_path / "r", device=d)[0], ids, device=d)
              for d in ("cpu", "cuda")}
    # cuDNN may use TF32 (10 mantissa bits) in the LSTM: agreement to ~1e-3 relative.
    assert scores["cuda"]["nll_per_event"] == pytest.approx(scores["cpu"]["nll_per_event"], rel=5e-3)


@pytest.mark.cuda
@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cuda_graph_step_gives_the_eager_logits_and_samples(cell):
    torch.manual_seed(0)
    model = MusicRNN(ModelConfig(V, cell=cell, embed_dim=32, hidden=64, layers=3)).cuda().eval()
    eager, graphed = Stepper(model), Stepper(model, cuda_graph=True)
    for stepper in (eager, graphed):
        stepper.reset(4)
    assert graphed.graph_error is None and graphed._graph is not None
    ids = torch.randint(0, V, (4,), device="cuda")
    for _ in range(20):
        a, b = eager.step(ids).clone(), graphed.step(ids).clone()
        assert torch.equal(a, b)
        ids = a.argmax(-1)
    same = [sample_ids(model, TOK, num=n, max_events=300, seed=3, cuda_graph=g)
            for n in (1, 8) for g in (False, True)]
    assert all(np.array_equal(x, y) for x, y in zip(same[0], same[1]))
    assert all(np.array_equal(x, y) for x, y in zip(same[2], same[3]))


@pytest.mark.cuda
def test_a_batch_too_big_for_gpu_memory_trains_in_micro_batches(tmp_path):
    # A real torch.OutOfMemoryError: this process may use only 0.5 GB of the GPU, and 512
    # windows of 256 events through a 2 x 512 LSTM need more (their activations alone).
    gc.collect()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(0).total_memory
    model_config = ModelConfig(V, embed_dim=64, hidden=512, layers=2, dropout=0.0)
    config = tiny_train(steps=3, eval_every=3, seq_len=256, batch_size=512, device="cuda")
    notes = []
    torch.cuda.set_per_process_memory_fraction(min(1.0, 0.5e9 / total))
    try:
        result = train(phrase_pieces(), TOK, model_config, config, tmp_path / "r",
                       on_note=notes.append)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
    assert result.step == 3 and math.isfinite(result.last_eval.valid_nll)
    assert len(notes) == 1 and "did not fit in GPU memory" in notes[0], notes
    micro = load_checkpoint(tmp_path / "r" / "last.pt").train_config["micro_batch"]
    assert 1 <= micro < 512
