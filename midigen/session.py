"""A training session's state and everything it writes: metrics rows, curves.png, best.pt and
last.pt, with evaluation in one place, so the loop in train.py reads as a loop.

A multi-process run would write from one process only: every write of a run passes here.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from midigen.budget import Budget
from midigen.checkpoint import Checkpoint, save_checkpoint
from midigen.device import autocast_dtype
from midigen.distributed import SINGLE, World, all_reduce_sums, shard_indices
from midigen.metrics import METRICS_FILE, MetricsRow, append_row, read_rows
from midigen.model import MusicRNN
from midigen.tokenizer import TokenizerConfig

if TYPE_CHECKING:
    from midigen.train import TrainConfig

log = logging.getLogger("midigen")
IMPLEMENTATION_FLAGS = ("fused", "foreach", "capturable")  # how an optimizer steps, per device


def _plot(rows: list[MetricsRow], run_dir: Path) -> None:
    """curves.png next to the checkpoints. A picture must never stop training, so a failure
    is one warning line (what went wrong), and training goes on."""
    try:
        from midigen.pianoroll import plot_training_curves

        plot_training_curves(rows, run_dir / "curves.png")
    except Exception as e:  # noqa: BLE001 - reported, not hidden; training goes on
        log.warning("warning: could not draw %s (%s: %s)", run_dir / "curves.png",
                    type(e).__name__, e)


@dataclass
class Session:
    """What a training session writes: rows to metrics.jsonl, curves.png, best.pt and last.pt.

    Every file a run writes goes through here (a multi-process run writes from one process),
    and evaluation is done in one place (`evaluate`).
    """

    run_dir: Path
    model: MusicRNN
    optimizer: torch.optim.Optimizer
    data_rng: torch.Generator
    device: torch.device
    budget: Budget
    tokenizer_config: TokenizerConfig
    config: TrainConfig
    split: dict
    valid_ids: list
    valid_seconds: float
    corpus_source: str | None
    corpus_summary: dict
    step: int = 0
    best: float = math.inf
    rows: list[MetricsRow] = field(default_factory=list)
    last_eval: MetricsRow | None = None
    world: World = SINGLE  # under torchrun: rank 0 writes; every rank scores its share
    valid_sample: list | None = None  # what each eval_every scores (None: all of valid_ids)
    sample_seconds: float = 0.0
    eval_s: float = 0.0  # wall seconds spent scoring so far
    valid_controls: object = None  # (P, COND_WIDTH) per validation piece (model with controls)
    sample_controls: object = None  # the same for valid_sample's pieces
    micro_batch: int | None = None  # windows per forward/backward (midigen.memory), if split

    def checkpoint(self) -> Checkpoint:
        rng = {"data": self.data_rng.get_state(), "torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rng["cuda"] = torch.cuda.get_rng_state()
        train_config = {**self.config.to_dict(), "total_steps": self.budget.total_steps,
                        "seconds_used": round(self.budget.seconds_used(), 3),
                        "corpus": self.corpus_source, "device_used": str(self.device),
                        "precision_used": "bf16" if autocast_dtype(self.device) else "fp32",
                        "world_size": self.world.world_size,
                        "micro_batch": self._split_batch()}
        return Checkpoint(
            tokenizer_config=self.tokenizer_config, model_config=self.model.config,
            train_config=train_config, model_state=self.model.state_dict(),
            optimizer_state=self.optimizer.state_dict(), step=self.step,
            best_valid_loss=None if self.best == math.inf else self.best, split=self.split,
            corpus_summary=self.corpus_summary,
            metrics=self.last_eval.to_dict() if self.last_eval else {}, rng_state=rng)

    def _split_batch(self) -> int | None:
        """The micro-batch when a step's windows did not fit in memory at once, else None."""
        rows = self.config.batch_size // self.world.world_size
        return self.micro_batch if self.micro_batch and self.micro_batch < rows else None

    def evaluate(self, full: bool = True) -> dict:
        """Validation NLL over whole pieces with carried state, as MetricsRow fields: of the
        fixed sample, or (full, or no sample) of every validation piece."""
        from midigen.evaluate import nll_over_pieces

        began = time.perf_counter()
        full = full or self.valid_sample is None
        ids, seconds, controls = ((self.valid_ids, self.valid_seconds, self.valid_controls)
                                  if full else (self.valid_sample, self.sample_seconds,
                                                self.sample_controls))
        chosen = shard_indices(ids, self.world)  # under torchrun: this rank's share
        mine = [ids[i] for i in chosen]
        controls = None if controls is None else controls[chosen]
        scored = (nll_over_pieces(self.model, mine, device=self.device, controls=controls)
                  if mine else {"total_nll": 0.0, "num_events": 0})
        total_nll, num_events = all_reduce_sums([scored["total_nll"], scored["num_events"]],
                                                self.world, self.device)
        self.eval_s += time.perf_counter() - began
        nll = total_nll / max(num_events, 1)
        return {"valid_nll": nll, "valid_ppl": math.exp(min(nll, 700.0)),
                "valid_nll_per_s": total_nll / max(seconds, 1e-9),
                "valid_events": int(num_events), "valid_scope": "full" if full else "sample"}

    def log(self, row: MetricsRow) -> None:
        self.rows.append(row)
        if self.world.is_main:
            append_row(self.run_dir / METRICS_FILE, row)

    def save(self, name: str) -> None:
        if self.world.is_main:
            save_checkpoint(self.run_dir / name, self.checkpoint())

    def save_last(self) -> None:
        self.save("last.pt")

    def evaluate_and_save(self, row: MetricsRow, full: bool = True) -> MetricsRow:
        """Score the model (the sample, or all when full); save best.pt when it is the best so
        far, and last.pt; log the row; redraw the curves."""
        row = replace(row, **self.evaluate(full))
        self.last_eval = row
        if row.valid_nll < self.best:
            self.best = row.valid_nll
            self.save("best.pt")
        self.save_last()
        self.log(row)
        if self.world.is_main:
            _plot(self.rows, self.run_dir)
        return row

    def restore(self, ckpt: Checkpoint) -> None:
        """Continue exactly where `ckpt` stopped: weights, optimizer, step, budget, RNGs, metrics.
        Not cuDNN's own generator for the dropout between LSTM layers (no API reads it): it is
        seeded afresh from the CUDA generator, so on a GPU only a run without dropout is exact."""
        self.model.load_state_dict(ckpt.model_state)
        # Its numbers, stepped by this device's AdamW (fused on CUDA): a saved group's flags
        # would replace it with the first device's (a CPU run resumed on a GPU stepped unfused,
        # a GPU run resumed on a CPU asked for fused AdamW there, which torch < 2.4 lacks).
        saved = ckpt.optimizer_state
        own = [{k: g[k] for k in IMPLEMENTATION_FLAGS if k in g} for g in self.optimizer.param_groups]
        self.optimizer.load_state_dict({**saved, "param_groups": [
            {**g, **mine} for g, mine in zip(saved["param_groups"], own)]})
        self.step = ckpt.step
        self.budget = Budget.resume(ckpt.train_config, ckpt.step)
        self.best = ckpt.best_valid_loss if ckpt.best_valid_loss is not None else math.inf
        self.data_rng.set_state(ckpt.rng_state["data"])
        torch.set_rng_state(ckpt.rng_state["torch"])
        if self.device.type == "cuda" and "cuda" in ckpt.rng_state:
            torch.cuda.set_rng_state(ckpt.rng_state["cuda"])
        self.rows = read_rows(self.run_dir / METRICS_FILE, up_to_step=ckpt.step)
        self.last_eval = next((r for r in reversed(self.rows) if r.is_eval), None)
