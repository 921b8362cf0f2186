"""Training: TrainConfig and one loop, top to bottom, that turns token pieces into a checkpoint.

Choices (measured, see bench/compare_batching.py and the README):
- random windows of `seq_len` events from the whole training stream, fresh zero state per
  window. Stateful truncated backprop (carrying state across consecutive windows) reached the
  same validation NLL within noise on the chorales at equal steps, but random windows make
  every batch an independent draw from one saved generator, which keeps resume exact and
  augmentation per window trivial.
- AdamW, gradient clipping, linear warm-up then cosine decay to `min_lr_fraction`; the learning
  rate is a pure function of the step, so resuming needs no scheduler object (midigen.step,
  which also runs a batch too big for GPU memory as micro-batches).
- validation NLL over whole pieces with carried state (midigen.evaluate.nll_over_pieces):
  every eval_every a fixed seeded sample (a few % of the time in between; --valid-events),
  at the end the whole validation split, so curves compare and evaluation stays bounded.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch

from midigen.batches import build_stream, random_windows, random_windows_placed, stretch_pieces
from midigen.budget import Budget
from midigen.checkpoint import Checkpoint
from midigen.device import autocast_dtype, out_of_memory_as_error, pick_device, to_device
from midigen.distributed import StopVote, batch_rows, current_world, mean_over_ranks, wrap
from midigen.errors import MidigenError
from midigen.evaluate import default_valid_events, validation_sample
from midigen.lengths import length_stats
from midigen.memory import find_micro_batch, micro_batch_note
from midigen.metrics import METRICS_FILE, MetricsRow, write_rows
from midigen.model import ModelConfig, MusicRNN
from midigen.session import Session
from midigen.split import split_pieces
from midigen.step import lr_at, make_optimizer, train_step
from midigen.stopping import StopOnSignals
from midigen.tokenizer import TokenizerConfig, vocabulary
from midigen.train_config import TrainConfig, TrainResult


def _progress(console):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("step"), MofNCompleteColumn(), BarColumn(),
        TextColumn("loss {task.fields[loss]}  val {task.fields[val]}  {task.fields[tps]} tok/s"),
        TimeRemainingColumn(), console=console, disable=console is None,
    )


def train(pieces: list, tokenizer_config: TokenizerConfig, model_config: ModelConfig,
          config: TrainConfig, run_dir: Path, *, corpus_source: str | None = None,
          corpus_summary: dict | None = None, init_from: Checkpoint | None = None,
          resume_from: Checkpoint | None = None, console=None,
          stop_after_steps: int | None = None, on_note=None) -> TrainResult:
    """Train a model on `pieces` (objects with .name .file .ids .duration_s), writing best.pt,
    last.pt, metrics.jsonl and curves.png into run_dir. `stop_after_steps` stops this session
    early, as Ctrl-C would (tests use it to check that resuming is exact). `on_note(line)` hears
(on rank 0) that the batch did not fit in GPU memory and is run in micro-batches.

    Under torchrun (a process group is running, see midigen.distributed) every rank calls
    this: each trains on its slice of each global batch of `config.batch_size` windows, DDP
    averages the gradients, and only rank 0 writes or shows anything."""
    run_dir = Path(run_dir)
    world = current_world()
    console = console if world.is_main else None
    device = pick_device(config.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())  # this rank's GPU
    torch.manual_seed(config.seed)
    _check_compatible(tokenizer_config, model_config, init_from, resume_from)

    # --- data: split by groups of files, the training stream, the validation pieces ---------
    # A resumed run keeps its own split (runs from before split modes were split by file).
    split_by = resume_from.split.get("by", "file") if resume_from is not None else config.split_by
    train_pieces, valid_pieces = split_pieces(pieces, config.valid_fraction, config.seed, split_by)
    split = {"valid_fraction": config.valid_fraction, "seed": config.seed, "by": split_by,
             "train": [p.name for p in train_pieces], "valid": [p.name for p in valid_pieces]}
    if resume_from is not None and resume_from.split.get("valid") != split["valid"]:
        raise MidigenError("the corpus has changed since this run started (its validation "
                           "pieces differ); start a new run instead of --resume")
    # Note and piece lengths of the training music: the sampler's defaults (midigen.lengths).
    split["lengths"] = (resume_from.split.get("lengths") if resume_from is not None else None) \
        or length_stats(train_pieces, tokenizer_config, config.seed)
    train_ids = [np.asarray(p.ids) for p in train_pieces]
    if config.time_stretch > 0:
        train_ids = train_ids + stretch_pieces(train_ids, config.time_stretch, tokenizer_config)
    stream = build_stream(train_ids, tokenizer_config)
    if len(stream) < config.seq_len + 1:
        raise MidigenError(f"the training split holds {len(stream)} events, too few for one "
                           f"window of {config.seq_len}: use a smaller --seq-len or more music")
    valid_ids = [np.asarray(p.ids) for p in valid_pieces]
    controls = None  # a model with controls: each window's (midigen.controls_train)
    if model_config.controls is not None:
        from midigen.controls_train import training_controls

        controls, valid_rows = training_controls(model_config.controls, train_pieces,
                                                 valid_pieces, tokenizer_config,
                                                 config.time_stretch > 0)
    tokens_per_step = config.batch_size * config.seq_len  # of the global batch
    my_rows = batch_rows(config.batch_size, world)  # this rank's windows of each batch

    # --- model, optimizer, budget, and where we start from ----------------------------------
    model = MusicRNN(model_config).to(device)
    optimizer = make_optimizer(model, config, device)
    run = Session(run_dir, model, optimizer, torch.Generator().manual_seed(config.seed), device,
                   Budget.plan(config, len(stream), tokens_per_step), tokenizer_config, config,
                   split, valid_ids, float(sum(p.duration_s for p in valid_pieces)),
                   corpus_source, corpus_summary or {}, world=world)
    # Every eval_every scores the same seeded sample; the end of training scores it all.
    run.valid_sample, run.sample_seconds, chosen = validation_sample(
        valid_ids, [p.duration_s for p in valid_pieces], config.valid_events
        or default_valid_events(config.eval_every, config.batch_size, config.seq_len), config.seed,
        with_indices=True)
    if controls is not None:
        run.valid_controls, run.sample_controls = valid_rows, valid_rows[chosen]
    if init_from is not None:
        model.load_state_dict(init_from.model_state)
    if resume_from is not None:
        run.restore(resume_from)
    if world.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_rows(run_dir / METRICS_FILE, run.rows)
    budget, step = run.budget, run.step
    rows = my_rows.stop - my_rows.start
    run.micro_batch = find_micro_batch(model, rows, config.seq_len, device, world)
    if run.micro_batch < rows and on_note is not None and world.is_main:
        on_note(micro_batch_note(rows, run.micro_batch, config.seq_len, world))
    if device.type == "cpu" and autocast_dtype(device) and on_note is not None and world.is_main:
        on_note("training steps in bf16 autocast on the CPU; --precision fp32 "
                "to train in fp32")
    trained = wrap(model, world, device)  # DDP: the gradients are averaged over the ranks

    # --- the loop ------------------------------------------------------------------------------
    model.train()
    tokens_per_s, interrupted = 0.0, False
    loss_sum, loss_count = torch.zeros((), device=device), 0
    train_losses: list[tuple[int, float]] = []
    progress = _progress(console)
    vote = StopVote(world)
    out_of_memory = out_of_memory_as_error(
        f"training micro-batches of {run.micro_batch} x {config.seq_len} events",
        "use a smaller --batch-size or --seq-len, or more GPUs (--gpus N)")
    with StopOnSignals() as stop, progress, out_of_memory:
        task = progress.add_task("train", total=budget.total_steps, completed=step, loss="-",
                                 val=_fmt(run.last_eval), tps="-")
        while True:
            if world.is_main:
                budget.out_of_time(step)  # the clock ran out: the plan becomes this step
            # Every rank stops at the same step, and follows rank 0's plan (its clock).
            interrupted, budget.total_steps = vote.vote(
                stop.requested or (stop_after_steps is not None
                                   and step - budget.start_step >= stop_after_steps),
                budget.total_steps)
            if budget.done(step):
                interrupted = False
                break
            if interrupted:
                break
            t0, eval_s = time.perf_counter(), 0.0
            lr = lr_at(step, budget.total_steps, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            cond = None
            if controls is None:
                x, y = random_windows(stream, config.batch_size, config.seq_len, run.data_rng,
                                      config.transpose, rows=my_rows)  # (b, T) each
            else:
                x, y, offsets, shift = random_windows_placed(
                    stream, config.batch_size, config.seq_len, run.data_rng, config.transpose,
                    rows=my_rows)
                cond = to_device(controls.rows(stream, offsets, shift, y, run.data_rng,
                                               config.batch_size, my_rows), device)  # (b, COND_WIDTH)
            x, y = to_device(x, device), to_device(y, device)  # the host does not wait for the GPU
            loss_sum += train_step(trained, optimizer, x, y, config.grad_clip, cond,
                                   run.micro_batch)
            loss_count += 1
            step = run.step = step + 1

            is_eval = step % config.eval_every == 0 or budget.done(step)
            if step % config.log_every == 0 or is_eval:
                train_loss = mean_over_ranks(loss_sum / loss_count, world).item()  # the only sync
                loss_sum.zero_()
                loss_count = 0
                _check_diverged(train_loss, step, model_config, config, run_dir)
                done_s = budget.train_s + time.perf_counter() - t0
                tokens_per_s = (step - budget.start_step) * tokens_per_step / max(done_s, 1e-9)
                train_losses.append((step, train_loss))
                row = MetricsRow(step=step, tokens=step * tokens_per_step, lr=lr,
                                 train_loss=train_loss, tokens_per_s=round(tokens_per_s, 1),
                                 elapsed_s=round(time.monotonic() - budget.started, 2))
                if is_eval:
                    eval_start = time.perf_counter()
                    run.evaluate_and_save(row, full=budget.done(step))
                    eval_s = time.perf_counter() - eval_start
                else:
                    run.log(row)
                progress.update(task, completed=step, loss=f"{train_loss:.3f}",
                                val=_fmt(run.last_eval), tps=f"{tokens_per_s:,.0f}")
            budget.train_s += time.perf_counter() - t0 - eval_s
            if world.is_main and budget.replan(step, config.log_every, config.eval_every,
                             sum(map(len, run.valid_sample)), tokens_per_step):
                progress.update(task, total=budget.total_steps)

        if not interrupted and (run.last_eval is None or run.last_eval.step != step):
            # The budget ended between evaluations (the clock ran out): score and save once more.
            run.evaluate_and_save(MetricsRow(
                step=step, tokens=step * tokens_per_step,
                lr=lr_at(max(step - 1, 0), budget.total_steps, config),
                train_loss=(mean_over_ranks(loss_sum / loss_count, world).item()
                            if loss_count else None),
                tokens_per_s=round(tokens_per_s, 1),
                elapsed_s=round(time.monotonic() - budget.started, 2)))
        else:
            run.save_last()
    return TrainResult(
        run_dir=run_dir, step=step, total_steps=budget.total_steps or step,
        best_valid_loss=None if run.best == math.inf else run.best, last_eval=run.last_eval,
        tokens_per_s=tokens_per_s, elapsed_s=time.monotonic() - budget.started,
        interrupted=interrupted, stop_signal=stop.signum,
        split_by=split_by, train_losses=train_losses, num_parameters=model.num_parameters(),
        eval_s=run.eval_s,
        split_sizes={"train_pieces": len(train_pieces), "valid_pieces": len(valid_pieces),
                     "train_events": len(stream), "valid_events": sum(map(len, valid_ids)),
                     "valid_sample_events": sum(map(len, run.valid_sample)),
                     "valid_seconds": run.valid_seconds})


def _check_compatible(tokenizer_config, model_config, init_from, resume_from) -> None:
    if model_config.vocab_size != vocabulary(tokenizer_config).size:
        raise MidigenError("model vocabulary does not match the tokenizer settings")
    for other, what in ((init_from, "--init-from"), (resume_from, "--resume")):
        if other is not None and other.tokenizer_config != tokenizer_config:
            raise MidigenError(f"{what} checkpoint was trained with other tokenizer settings "
                               f"({other.tokenizer_config.to_dict()}); use the same ones")


def _check_diverged(train_loss: float, step: int, model_config: ModelConfig,
                    config: TrainConfig, run_dir: Path) -> None:
    """Stop on a NaN loss, or one far above guessing uniformly (config.diverge_factor)."""
    limit = config.diverge_factor * math.log(model_config.vocab_size) + 5
    if math.isfinite(train_loss) and train_loss <= limit:
        return
    kept = (f"the last good checkpoint is kept in {run_dir / 'last.pt'}"
            if (run_dir / "last.pt").exists() else "no checkpoint was written yet")
    raise MidigenError(f"training diverged at step {step} (loss {train_loss:.3g}); "
                       f"{kept}. Try a lower --lr.")


def _fmt(row: MetricsRow | None) -> str:
    return f"{row.valid_nll:.3f}" if row is not None else "nan"
