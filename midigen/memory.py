"""Fitting work into device memory: a batch that does not fit is split, not a CUDA traceback.

Training keeps the global batch the user asked for (what the learning rate was tuned with,
what the checkpoint records, what resume and DDP assume) and, when its windows do not fit in
GPU memory at once, runs them as several micro-batches whose gradients add up to the same
step (gradient accumulation): slower, but the same training. Clamping the batch instead
would silently change the optimisation (fewer windows per step, the same learning rate) and
make a run depend on the GPU it happened to start on.

`find_micro_batch` tries one forward and backward of the per-process batch on dummy ids
(beside as much memory as the optimizer's state will take) before training starts, halving
on torch.OutOfMemoryError until it fits; under torchrun the ranks then take the smallest (a
rank that ran out inside DDP's backward would leave the others waiting in an all-reduce, so
the probe runs on the plain model, outside DDP).
Evaluation halves its batch of pieces (or its window) the same way; scores do not depend on it.
"""

from __future__ import annotations

import gc
import math
from collections.abc import Callable

import torch
import torch.distributed as dist
import torch.nn.functional as F

from midigen.device import autocast
from midigen.distributed import World
from midigen.errors import MidigenError

# Where running out of memory raises torch.OutOfMemoryError. On the CPU the operating system
# decides (overcommit, the OOM killer), so probing there would only cost a step; tests add
# "cpu" here and raise a fake error to check the logic.
PROBED_DEVICE_TYPES = ("cuda", "mps")


def free_memory(device: torch.device) -> None:
    """Give the allocator's cached blocks back after an out-of-memory error, before retrying."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def halve_until_it_fits(attempt: Callable[[int], None], size: int, device: torch.device) -> int:
    """The largest of size, size/2, size/4, ... 1 (rounded up) for which attempt(n) does not
    run out of memory; raises torch.OutOfMemoryError when even 1 does not fit."""
    while True:
        try:
            attempt(size)
            return size
        except torch.OutOfMemoryError:
            if size == 1:
                raise
        free_memory(device)
        size = math.ceil(size / 2)


def step_state_bytes(model: torch.nn.Module, world: World) -> int:
    """What training holds beside one forward and backward, which the probe does not make:
    AdamW's two moments of every weight (made at the first step), and under DDP its gradient
    buckets. A batch that fitted without them could run out of memory at the first step."""
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    return weights * (3 if world.is_distributed else 2)


def _hold(nbytes: int, device: torch.device) -> torch.Tensor:
    return torch.empty(nbytes, dtype=torch.uint8, device=device)


def _forward_backward(model: torch.nn.Module, rows: int, seq_len: int,
                      device: torch.device, held_bytes: int = 0) -> None:
    """A training step's forward and backward on `rows` dummy windows (no optimizer step),
    with `held_bytes` of the device's memory taken as the optimizer's state will be."""
    held = _hold(held_bytes, device)  # taken while the step runs
    x = torch.zeros(rows, seq_len, dtype=torch.long, device=device)
    try:
        with autocast(device):
            logits, _ = model(x)  # (rows, T, V)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), x.reshape(-1))
        loss.backward()
    finally:
        model.zero_grad(set_to_none=True)
        del held


def find_micro_batch(model: torch.nn.Module, rows: int, seq_len: int, device: torch.device,
                     world: World) -> int:
    """Windows per forward/backward that fit in this device's memory, agreed by all ranks
    (the smallest); `rows` (this process's share of the batch) when it all fits.

    Leaves the model's weights, gradients and the random generators as they were. Raises
    MidigenError (one line) when a single window does not fit."""
    micro = rows
    if device.type in PROBED_DEVICE_TYPES:
        on_cuda = device.type == "cuda"
        with torch.random.fork_rng(devices=[device] if on_cuda else []):  # dropout's draws must not shift the run's random stream
            try:
                held = step_state_bytes(model, world)
                micro = halve_until_it_fits(
                    lambda n: _forward_backward(model, n, seq_len, device, held), rows, device)
            except torch.OutOfMemoryError:
                micro = 0
            finally:
                free_memory(device)
    if world.is_distributed:
        on = device if dist.get_backend() == "nccl" else "cpu"  # NCCL reduces GPU tensors
        agreed = torch.tensor([micro], dtype=torch.int64, device=on)
        dist.all_reduce(agreed, op=dist.ReduceOp.MIN)
        micro = int(agreed)
    if micro == 0:
        raise MidigenError(f"the device ran out of memory training even one window of {seq_len} "
                           "events: use a smaller --seq-len, --hidden or --layers")
    return micro


def micro_batch_note(rows: int, micro: int, seq_len: int, world: World) -> str:
    """The one line that says a batch was split, and that the training stays the same."""
    per = " per process" if world.is_distributed else ""
    parts = math.ceil(rows / micro)
    return (f"batch {rows} x {seq_len}{per} did not fit in GPU memory; training each step as "
            f"{parts} micro-batches of at most {micro} windows, gradients accumulated (the "
            "same training, slower)")

