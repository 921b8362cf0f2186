"""Training: TrainConfig and one loop, top to bottom, that turns token pieces into a checkpoint.

Choices (measured, see bench/compare_batching.py and the README):
- random windows of `seq_len` events from the whole training stream, fresh zero state per
  window. Stateful truncated backprop (carrying state across consecutive windows) reached the
  same validation NLL within noise on the chorales at equal steps, but random windows make
  every batch an independent draw from one saved generator, which keeps resume exact and
  augmentation per window trivial.
- AdamW, gradient clipping, linear warm-up then cosine decay to `min_lr_fraction`; the learning
  rate is a pure function of the step, so resuming needs no scheduler object.
- validation NLL over whole pieces with carried state (midigen.evaluate.nll_over_pieces).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from midigen.batches import build_stream, random_windows, stretch_pieces
from midigen.checkpoint import Checkpoint, save_checkpoint
from midigen.device import autocast, pick_device
from midigen.errors import MidigenError
from midigen.metrics import METRICS_FILE, MetricsRow, append_row, read_rows, write_rows
from midigen.model import ModelConfig, MusicRNN
from midigen.split import SPLIT_MODES, split_pieces
from midigen.stopping import StopOnSignals
from midigen.tokenizer import TokenizerConfig

DEFAULT_STEPS = 2000
CALIBRATION_STEPS = 12  # a --minutes budget gets a step count after this many steps (re-planned)


@dataclass(frozen=True)
class TrainConfig:
    """How to train; saved in the checkpoint. At most one of steps / epochs / minutes."""

    seq_len: int = 256
    batch_size: int = 32
    lr: float = 3e-3
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_fraction: float = 0.1
    grad_clip: float = 1.0
    steps: int | None = None
    epochs: float | None = None
    minutes: float | None = None
    eval_every: int = 250
    log_every: int = 10
    valid_fraction: float = 0.1
    split_by: str = "auto"  # midigen.split: which files are versions of one piece
    seed: int = 0
    transpose: int = 3  # +- semitones, per window (Performance RNN uses +-3)
    time_stretch: float = 0.0  # 0.05 adds copies 5% faster and slower
    device: str = "auto"

    def __post_init__(self):
        budgets = [n for n in ("steps", "epochs", "minutes") if getattr(self, n) is not None]
        if len(budgets) > 1:
            raise MidigenError("give one training budget: --steps, --epochs or --minutes, "
                               f"not {' and '.join('--' + b for b in budgets)}")
        for name in ("steps", "epochs", "minutes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise MidigenError(f"--{name} must be positive")
        if self.seq_len < 2 or self.batch_size < 1 or self.eval_every < 1 or self.log_every < 1:
            raise MidigenError("--seq-len must be at least 2, --batch-size and --eval-every at least 1")
        if not 0 < self.valid_fraction < 1:
            raise MidigenError("--valid-fraction must be between 0 and 1")
        if self.split_by not in SPLIT_MODES:
            raise MidigenError(f"--split-by must be one of {', '.join(SPLIT_MODES)}")
        if self.lr <= 0 or self.transpose < 0 or self.time_stretch < 0:
            raise MidigenError("--lr must be positive, --transpose and --time-stretch not negative")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass
class TrainResult:
    """What a run did: where it wrote, how far it got, its numbers."""

    run_dir: Path
    step: int
    total_steps: int
    best_valid_loss: float | None
    last_eval: MetricsRow | None
    tokens_per_s: float
    elapsed_s: float
    interrupted: bool = False
    stop_signal: int | None = None  # SIGINT, SIGTERM or SIGHUP when one stopped the run
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    num_parameters: int = 0
    split_sizes: dict = field(default_factory=dict)
    split_by: str = "auto"


def lr_at(step: int, total_steps: int | None, config: TrainConfig) -> float:
    """Linear warm-up to config.lr, then cosine down to lr * min_lr_fraction at total_steps."""
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    if total_steps is None:  # a --minutes budget before its step count is known
        return config.lr
    span = max(1, total_steps - config.warmup_steps)
    progress = min(1.0, (step - config.warmup_steps) / span)
    low = config.lr * config.min_lr_fraction
    return low + 0.5 * (config.lr - low) * (1 + math.cos(math.pi * progress))


def _progress(console, total):
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


log = logging.getLogger("midigen")


def _plot(rows: list[MetricsRow], run_dir: Path) -> None:
    """curves.png next to the checkpoints. A picture must never stop training, so a failure
    is one warning line (what went wrong), and training goes on."""
    try:
        from midigen.pianoroll import plot_training_curves

        plot_training_curves(rows, run_dir / "curves.png")
    except Exception as e:  # noqa: BLE001 - reported, not hidden; training goes on
        log.warning("warning: could not draw %s (%s: %s)", run_dir / "curves.png",
                    type(e).__name__, e)


def train(pieces: list, tokenizer_config: TokenizerConfig, model_config: ModelConfig,
          config: TrainConfig, run_dir: Path, *, corpus_source: str | None = None,
          corpus_summary: dict | None = None, init_from: Checkpoint | None = None,
          resume_from: Checkpoint | None = None, console=None,
          stop_after_steps: int | None = None) -> TrainResult:
    """Train a model on `pieces` (objects with .name .file .ids .duration_s), writing best.pt,
    last.pt and metrics.jsonl into run_dir. `stop_after_steps` stops this session early, as
    Ctrl-C would (tests use it to check that resuming is exact)."""
    run_dir = Path(run_dir)
    device = pick_device(config.device)
    torch.manual_seed(config.seed)
    if model_config.vocab_size != _vocab_size(tokenizer_config):
        raise MidigenError("model vocabulary does not match the tokenizer settings")
    for other, what in ((init_from, "--init-from"), (resume_from, "--resume")):
        if other is not None and other.tokenizer_config != tokenizer_config:
            raise MidigenError(f"{what} checkpoint was trained with other tokenizer settings "
                               f"({other.tokenizer_config.to_dict()}); use the same ones")

    # --- data: split by groups of files, the training stream, the validation pieces ---------
    # A resumed run keeps its own split (runs from before split modes were split by file).
    split_by = resume_from.split.get("by", "file") if resume_from is not None else config.split_by
    train_pieces, valid_pieces = split_pieces(pieces, config.valid_fraction, config.seed, split_by)
    split = {"valid_fraction": config.valid_fraction, "seed": config.seed, "by": split_by,
             "train": [p.name for p in train_pieces], "valid": [p.name for p in valid_pieces]}
    if resume_from is not None and resume_from.split.get("valid") != split["valid"]:
        raise MidigenError("the corpus has changed since this run started (its validation "
                           "pieces differ); start a new run instead of --resume")
    train_ids = [np.asarray(p.ids) for p in train_pieces]
    if config.time_stretch > 0:
        train_ids = train_ids + stretch_pieces(train_ids, config.time_stretch, tokenizer_config)
    stream = build_stream(train_ids, tokenizer_config)
    if len(stream) < config.seq_len + 1:
        raise MidigenError(f"the training split holds {len(stream)} events, too few for one "
                           f"window of {config.seq_len}: use a smaller --seq-len or more music")
    valid_ids = [np.asarray(p.ids, dtype=np.int64) for p in valid_pieces]
    valid_seconds = float(sum(p.duration_s for p in valid_pieces))
    tokens_per_step = config.batch_size * config.seq_len

    # --- model, optimizer, and where we start from -----------------------------------------
    model = MusicRNN(model_config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.99),
                                  weight_decay=config.weight_decay,
                                  fused=True if device.type == "cuda" else None)
    data_rng = torch.Generator().manual_seed(config.seed)
    step, best, total_steps, rows = 0, math.inf, None, []
    if config.steps is not None:
        total_steps = config.steps
    elif config.epochs is not None:
        total_steps = max(1, math.ceil(config.epochs * len(stream) / tokens_per_step))
    elif config.minutes is None:
        total_steps = DEFAULT_STEPS
    if init_from is not None:
        model.load_state_dict(init_from.model_state)
    if resume_from is not None:
        model.load_state_dict(resume_from.model_state)
        optimizer.load_state_dict(resume_from.optimizer_state)
        step, total_steps = resume_from.step, resume_from.train_config["total_steps"]
        best = resume_from.best_valid_loss if resume_from.best_valid_loss is not None else math.inf
        data_rng.set_state(resume_from.rng_state["data"])
        torch.set_rng_state(resume_from.rng_state["torch"])
        if device.type == "cuda" and "cuda" in resume_from.rng_state:
            torch.cuda.set_rng_state(resume_from.rng_state["cuda"])
        rows = read_rows(run_dir / METRICS_FILE, up_to_step=step)
    run_dir.mkdir(parents=True, exist_ok=True)
    write_rows(run_dir / METRICS_FILE, rows)

    def checkpoint(last_eval: MetricsRow | None) -> Checkpoint:
        rng = {"data": data_rng.get_state(), "torch": torch.get_rng_state()}
        if device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state()
        return Checkpoint(
            tokenizer_config=tokenizer_config, model_config=model_config,
            train_config={**config.to_dict(), "total_steps": total_steps,
                          "corpus": corpus_source, "device_used": str(device)},
            model_state=model.state_dict(), optimizer_state=optimizer.state_dict(), step=step,
            best_valid_loss=None if best == math.inf else best, split=split,
            corpus_summary=corpus_summary or {},
            metrics=last_eval.to_dict() if last_eval else {}, rng_state=rng)

    def evaluate() -> dict:
        from midigen.evaluate import nll_over_pieces

        scored = nll_over_pieces(model, valid_ids, device=device)
        return {"valid_nll": scored["nll_per_event"], "valid_ppl": scored["perplexity"],
                "valid_nll_per_s": scored["total_nll"] / max(valid_seconds, 1e-9)}

    # --- the loop ------------------------------------------------------------------------------
    model.train()
    start_step, started = step, time.monotonic()
    deadline = started + 60 * config.minutes if config.minutes and total_steps is None else None
    train_time_s, tokens_per_s, interrupted = 0.0, 0.0, False
    loss_sum, loss_count = torch.zeros((), device=device), 0
    last_eval = next((r for r in reversed(rows) if r.is_eval), None)
    train_losses: list[tuple[int, float]] = []
    progress = _progress(console, total_steps)
    with StopOnSignals() as stop, progress:
        task = progress.add_task("train", total=total_steps, completed=step, loss="-",
                                 val=_fmt(last_eval), tps="-")
        while total_steps is None or step < total_steps:
            if stop.requested or (stop_after_steps is not None
                                  and step - start_step >= stop_after_steps):
                interrupted = True
                break
            if deadline is not None and time.monotonic() > deadline:
                total_steps = step  # the clock ran out before the planned steps
                break
            t0, eval_s = time.perf_counter(), 0.0
            lr = lr_at(step, total_steps, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            x, y = random_windows(stream, config.batch_size, config.seq_len, data_rng,
                                  config.transpose)  # (B, T) each
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            with autocast(device):
                logits, _ = model(x)  # (B, T, V)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            loss_sum += loss.detach()
            loss_count += 1

            is_eval = step % config.eval_every == 0 or step == total_steps
            if step % config.log_every == 0 or is_eval:
                train_loss = (loss_sum / loss_count).item()  # the only sync with the device
                loss_sum.zero_()
                loss_count = 0
                if not math.isfinite(train_loss) or train_loss > 3 * math.log(model_config.vocab_size) + 5:
                    kept = (f"the last good checkpoint is kept in {run_dir / 'last.pt'}"
                            if (run_dir / "last.pt").exists() else "no checkpoint was written yet")
                    raise MidigenError(f"training diverged at step {step} (loss {train_loss:.3g}); "
                                       f"{kept}. Try a lower --lr.")
                done_s = train_time_s + time.perf_counter() - t0
                tokens_per_s = (step - start_step) * tokens_per_step / max(done_s, 1e-9)
                train_losses.append((step, train_loss))
                row = MetricsRow(step=step, tokens=step * tokens_per_step, lr=lr,
                                 train_loss=train_loss, tokens_per_s=round(tokens_per_s, 1),
                                 elapsed_s=round(time.monotonic() - started, 2))
                if is_eval:
                    eval_start = time.perf_counter()
                    row = replace(row, **evaluate())
                    last_eval = row
                    if row.valid_nll < best:
                        best = row.valid_nll
                        save_checkpoint(run_dir / "best.pt", checkpoint(row))
                    save_checkpoint(run_dir / "last.pt", checkpoint(row))
                rows.append(row)
                append_row(run_dir / METRICS_FILE, row)
                if is_eval:
                    _plot(rows, run_dir)
                    eval_s = time.perf_counter() - eval_start
                progress.update(task, completed=step, loss=f"{train_loss:.3f}",
                                val=_fmt(last_eval),
                                tps=f"{tokens_per_s:,.0f}")
            train_time_s += time.perf_counter() - t0 - eval_s

            if deadline is not None and step - start_step >= CALIBRATION_STEPS and (
                    total_steps is None or step % config.log_every == 0):
                # Plan (and keep re-planning) the --minutes budget as a step count, so the
                # cosine schedule ends on time even when the machine's speed changes under us.
                # Evaluation forward passes cost about a third of a training step per token.
                per_step = train_time_s / (step - start_step)
                eval_cost = per_step * sum(map(len, valid_ids)) / tokens_per_step / 3
                remaining = deadline - time.monotonic()
                total_steps = step + max(1, int(0.95 * remaining
                                                / (per_step + eval_cost / config.eval_every)))
                progress.update(task, total=total_steps)

        if not interrupted and (last_eval is None or last_eval.step != step):
            # The budget ended between evaluations (the clock ran out): score and save once more.
            row = MetricsRow(step=step, tokens=step * tokens_per_step,
                             lr=lr_at(max(step - 1, 0), total_steps, config),
                             train_loss=(loss_sum / loss_count).item() if loss_count else None,
                             tokens_per_s=round(tokens_per_s, 1),
                             elapsed_s=round(time.monotonic() - started, 2), **evaluate())
            last_eval = row
            if row.valid_nll < best:
                best = row.valid_nll
                save_checkpoint(run_dir / "best.pt", checkpoint(row))
            rows.append(row)
            append_row(run_dir / METRICS_FILE, row)
            _plot(rows, run_dir)
        save_checkpoint(run_dir / "last.pt", checkpoint(last_eval))
    return TrainResult(
        run_dir=run_dir, step=step, total_steps=total_steps or step,
        best_valid_loss=None if best == math.inf else best, last_eval=last_eval,
        tokens_per_s=tokens_per_s, elapsed_s=time.monotonic() - started, interrupted=interrupted,
        stop_signal=stop.signum,
        train_losses=train_losses, num_parameters=model.num_parameters(),
        split_by=split_by,
        split_sizes={"train_pieces": len(train_pieces), "valid_pieces": len(valid_pieces),
                     "train_events": len(stream), "valid_events": sum(map(len, valid_ids)),
                     "valid_seconds": valid_seconds})


def _vocab_size(tokenizer_config: TokenizerConfig) -> int:
    from midigen.tokenizer import vocabulary

    return vocabulary(tokenizer_config).size


def _fmt(row: MetricsRow | None) -> str:
    return f"{row.valid_nll:.3f}" if row is not None else "nan"
