"""One optimizer step and what sets it up: the loss over a batch of windows (in micro-batches
when it does not fit in memory, midigen.memory), AdamW, and the learning-rate schedule.

Kept apart from the loop in train.py so benchmarks time exactly the step `midigen train` runs.
The learning rate is a pure function of the step, so resuming needs no scheduler object.
"""

from __future__ import annotations

import contextlib
import math

import torch
import torch.nn.functional as F

from midigen.device import autocast
from midigen.train_config import TrainConfig


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


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor,
               y: torch.Tensor, grad_clip: float = 1.0, cond: torch.Tensor | None = None,
               micro_batch: int | None = None) -> torch.Tensor:
    """One optimizer step on a batch of windows (x, y: (B, T) ids, y is x shifted by one;
    cond: (B, COND_WIDTH) controls of a model that has them).

    `micro_batch` (see midigen.memory): run the windows in slices of at most that many and add
    up their gradients, each weighted by its share of the rows: the gradient of the whole
    batch's mean loss, in less memory. Under DDP only the last slice synchronises.
    Returns the loss, detached and still on the device (reading it would wait for the device).
    """
    rows = x.shape[0]
    size = micro_batch or rows
    conds = [None] * len(x.split(size)) if cond is None else cond.split(size)
    slices = list(zip(x.split(size), y.split(size), conds))
    optimizer.zero_grad(set_to_none=True)
    total = torch.zeros((), device=x.device)
    for i, (xs, ys, cs) in enumerate(slices):
        last = i == len(slices) - 1
        with (contextlib.nullcontext() if last or not hasattr(model, "no_sync")
              else model.no_sync()):
            with autocast(x.device):
                logits, _ = model(xs) if cs is None else model(xs, cond=cs)  # (b, T, V)
                loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ys.reshape(-1))
                if len(slices) > 1:
                    loss = loss * (xs.shape[0] / rows)
            loss.backward()
        total += loss.detach()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return total


def make_optimizer(model: torch.nn.Module, config: TrainConfig,
                   device: torch.device) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=config.lr, betas=tuple(config.betas),
                             weight_decay=config.weight_decay,
                             fused=True if device.type == "cuda" else None)
