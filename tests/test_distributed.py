"""torchrun + DistributedDataParallel on CPU (gloo, 2 processes): one model, as one process.

The 2-process run draws the same global batches as one process (each rank keeps its slice of
the same seeded draw), so the two differ only in float32 summation order: the gradient of a
global batch is summed over 8 windows in one process and over 2 x 4 plus an all-reduce under
DDP. That is ~1e-7 relative per step; after 8 AdamW steps at lr 1e-2 the weights measured
1.3e-6 apart. The tolerance, 1e-4, leaves 75x headroom, while a wrong slice of the batch (other
windows) moves weights by ~1e-2 and the train loss in the third decimal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from midigen.batches import build_stream, random_windows
from midigen.checkpoint import load_checkpoint
from midigen.distributed import (
    World,
    batch_rows,
    per_rank_batch,
    shard,
    world_from_env,
)
from midigen.errors import MidigenError
from midigen.launch import torchrun_args
from midigen.train import train

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-4


def test_world_comes_from_torchrun_variables():
    assert not world_from_env({}).is_distributed
    env = {"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    world = world_from_env(env)
    assert (world.rank, world.world_size, world.local_rank, world.is_main) == (1, 4, 1, False)
    with pytest.raises(MidigenError, match="does not fit"):
        world_from_env({**env, "RANK": "4"})
    with pytest.raises(MidigenError, match="torchrun"):
        world_from_env({"RANK": "0", "WORLD_SIZE": "2"})
    with pytest.raises(MidigenError, match="whole numbers"):
        world_from_env({**env, "RANK": "x"})


def test_each_rank_keeps_its_slice_of_the_same_global_draw():
    from ddp_driver import CONFIG, TOK, toy_pieces

    stream = build_stream([p.ids for p in toy_pieces()], TOK)
    draw = lambda rows: random_windows(stream, 8, 16, torch.Generator().manual_seed(3), 3, rows)
    whole_x, whole_y = draw(None)
    ranks = [World(rank=r, world_size=2) for r in (0, 1)]
    parts = [draw(batch_rows(8, w)) for w in ranks]
    assert torch.equal(torch.cat([x for x, _ in parts]), whole_x)
    assert torch.equal(torch.cat([y for _, y in parts]), whole_y)
    assert per_rank_batch(CONFIG.batch_size, ranks[0]) == 4
    with pytest.raises(MidigenError, match="multiple of 3"):
        per_rank_batch(8, World(rank=0, world_size=3))


def test_validation_pieces_are_dealt_out_once_each():
    items = [np.zeros(n) for n in (5, 50, 7, 30, 1)]
    shares = [shard(items, World(rank=r, world_size=2)) for r in (0, 1)]
    assert sorted(len(a) for s in shares for a in s) == [1, 5, 7, 30, 50]
    assert [len(a) for a in shares[0]] == [50, 7, 1]  # longest first, alternating


def test_gpus_option_becomes_a_torchrun_command():
    argv = ["midigen", "train", "music", "--gpus", "2", "--steps", "5", "--nproc=2"]
    assert torchrun_args(2, argv) == ["--standalone", "--nproc-per-node=2", "-m", "midigen",
                                      "train", "music", "--steps", "5"]


def test_under_torchrun_a_forwarded_repeat_of_the_signal_is_the_same_stop(monkeypatch):
    from midigen import stopping

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    # A fake clock: on a busy machine a full garbage collection (~1 s) between the two kills
    # would otherwise stretch "a moment later" past REPEAT_S.
    now = [1000.0]
    monkeypatch.setattr(stopping, "time", SimpleNamespace(monotonic=lambda: now[0]))
    with stopping.StopOnSignals() as stop:
        os.kill(os.getpid(), signal.SIGINT)  # from the terminal
        now[0] += 0.01
        os.kill(os.getpid(), signal.SIGINT)  # forwarded by the agent a moment later
        assert stop.signum == signal.SIGINT  # asked to stop, not interrupted
        now[0] += stopping.StopOnSignals.REPEAT_S
        with pytest.raises(stopping.Stopped):
            os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C, later: the user means it


def _max_difference(a, b) -> float:
    return max((a.model_state[k] - b.model_state[k]).abs().max().item() for k in a.model_state)


@pytest.mark.slow
def test_two_gloo_processes_train_as_one_and_resume_either_way(tmp_path, fp32_steps):
    from ddp_driver import CONFIG, MODEL, TOK, toy_pieces

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
         str(ROOT / "tests" / "ddp_driver.py"), str(tmp_path)],
        check=False, capture_output=True, text=True, env=env, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    ddp = load_checkpoint(tmp_path / "full" / "last.pt")
    resumed = load_checkpoint(tmp_path / "half" / "last.pt")

    pieces = toy_pieces()
    train(pieces, TOK, MODEL, CONFIG, tmp_path / "single")
    single = load_checkpoint(tmp_path / "single" / "last.pt")
    assert single.step == ddp.step == 8
    assert _max_difference(ddp, single) < TOLERANCE
    rows = [[json.loads(line) for line in (tmp_path / run / "metrics.jsonl").read_text().splitlines()]
            for run in ("full", "single")]
    assert [r["step"] for r in rows[0]] == list(range(1, 9))
    assert np.allclose([r["train_loss"] for r in rows[0]], [r["train_loss"] for r in rows[1]],
                       rtol=0, atol=TOLERANCE)
    assert ddp.metrics["valid_nll"] == pytest.approx(single.metrics["valid_nll"], abs=TOLERANCE)
    # The same checkpoint: same keys, plain (un-wrapped) weights; the global batch recorded.
    assert ddp.model_state.keys() == single.model_state.keys()
    assert ddp.train_config["batch_size"] == 8 and ddp.train_config["world_size"] == 2
    differ = {"world_size", "seconds_used"}  # how many processes, how long they took
    assert {k: v for k, v in ddp.train_config.items() if k not in differ} == \
           {k: v for k, v in single.train_config.items() if k not in differ}

    # Rank 1 alone asked to stop at step 4: both stopped there; resuming under DDP is exact.
    assert load_checkpoint(tmp_path / "half4.pt").step == 4
    assert _max_difference(resumed, ddp) == 0.0
    # The DDP checkpoint of step 4 resumes in one process, to the same weights.
    half = load_checkpoint(tmp_path / "half4.pt")
    shutil.copytree(tmp_path / "half", tmp_path / "alone")
    train(pieces, TOK, MODEL, CONFIG, tmp_path / "alone", resume_from=half)
    assert _max_difference(load_checkpoint(tmp_path / "alone" / "last.pt"), ddp) < TOLERANCE
    # Rank 1 alone ran out of memory above 2 windows: both ranks ran micro-batches of 2 and
    # trained the same model as without them.
    split = load_checkpoint(tmp_path / "split" / "last.pt")
    assert split.train_config["micro_batch"] == 2 and split.train_config["batch_size"] == 8
    assert _max_difference(split, ddp) < TOLERANCE
    # A --minutes run ended on rank 0's clock at one step for both ranks (checked in the driver).
    assert load_checkpoint(tmp_path / "clock" / "last.pt").step >= 1


def _wait_for(predicate, proc, what: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.mark.slow
def test_sigterm_stops_both_ranks_with_one_last_pt_and_it_resumes_in_one_process(tmp_path, started):
    from test_learn_cli import TINY, write_corpus

    corpus, run = write_corpus(tmp_path / "corpus"), tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "midigen", "train", str(corpus), *TINY, "--steps", "300",
               "--eval-every", "50", "--run-dir", str(run)]
    proc = started(subprocess.Popen([*command, "--nproc", "2"], stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path))
    metrics = run / "metrics.jsonl"
    _wait_for(lambda: metrics.exists() and metrics.read_text(), proc, "training never started")
    proc.send_signal(signal.SIGTERM)  # to the launcher (torchrun's agent), as a scheduler would
    stdout, stderr = proc.communicate(timeout=90)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stdout + stderr
    assert stdout.count("stopped at step") == 1, stdout + stderr  # rank 0 alone speaks
    stopped = load_checkpoint(run / "last.pt")
    assert stopped.step >= 1 and stopped.train_config["world_size"] == 2
    assert stopped.train_config["batch_size"] == 4  # --batch-size is the global batch
    assert stopped.step < 300, "training ended before the signal: give it more steps"
    assert not [p.name for p in run.iterdir() if p.name.startswith(".")]  # no torn temp files

    # One process resumes the DDP run and finishes it (CliRunner: in this process).
    from test_learn_cli import invoke

    result, text = invoke("train", "--resume", run, "--device", "cpu")
    assert result.exit_code == 0, text
    assert f"resuming {run} at step {stopped.step}" in text.replace("\n", "")
    done = load_checkpoint(run / "last.pt")
    assert done.step == 300 and done.train_config["world_size"] == 1
