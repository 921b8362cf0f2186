"""Which device trains: CUDA (bf16 autocast) when present, then Apple MPS, else the CPU (the
`midigen` command gives torch every core: midigen.threads.use_all_cores)."""

from __future__ import annotations

import contextlib

import torch

from midigen.errors import MidigenError

DEVICES = ("auto", "cpu", "cuda", "mps")


def pick_device(name: str | None = "auto") -> torch.device:
    """The best available device, or the one asked for (a clear error if it is missing)."""
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        name = "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MidigenError("--device cuda asked for, but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None)
                              and torch.backends.mps.is_available()):
        raise MidigenError("--device mps asked for, but Apple MPS is not available")
    if name not in DEVICES and not name.startswith("cuda:"):
        raise MidigenError(f"unknown device {name!r}: choose one of {', '.join(DEVICES)}")
    return torch.device(name)


def to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """`tensor` (on the host) on `device`, without the host waiting for the device.

    A plain `.to("cuda")` waits until the GPU has finished everything queued before it, and
    one from pageable memory may too, even with non_blocking; each training step would then
    wait for the previous one, and the host could not draw the next batch meanwhile. A copy
    from page-locked memory with non_blocking is queued behind that work instead (torch keeps
    the pinned block until the copy is done). Contiguous first: pinning keeps the strides, and
    a strided copy would go through a pageable temporary again."""
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.contiguous().pin_memory().to(device, non_blocking=True)


def autocast(device: torch.device):
    """bf16 autocast on CUDA (LSTMs train fine in it and run ~2x faster); nothing elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


@contextlib.contextmanager
def out_of_memory_as_error(what: str, advice: str):
    """Turn a device out-of-memory error (pages of allocator statistics) into one line."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise MidigenError(f"the device ran out of memory {what}: {advice}") from None
