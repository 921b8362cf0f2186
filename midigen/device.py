"""Which device trains: CUDA (bf16 autocast) when present, then Apple MPS, else the CPU (the
`midigen` command gives torch every core: midigen.threads.use_all_cores), and in what precision:
bf16 autocast on GPUs and CPUs that compute in bf16 (see `autocast_dtype`), fp32 elsewhere."""

from __future__ import annotations

import contextlib

import torch

from midigen.errors import MidigenError

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "bf16", "fp32")

# A property of the machine, like the device, not of the run: a resumed run may change it, so
# it is set once per process (`--precision`) rather than saved in the checkpoint.
_precision = "auto"


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


def set_precision(name: str) -> None:
    """Choose how training steps run in this process: auto, bf16 or fp32 (`--precision`)."""
    global _precision
    if name not in PRECISIONS:
        raise MidigenError(f"unknown precision {name!r}: choose one of {', '.join(PRECISIONS)}")
    _precision = name


def cpu_has_amx() -> bool:
    """Intel AMX (Sapphire Rapids and later), where oneDNN runs bf16 matmuls in hardware: a
    training step of the LSTM ran 2.0x (2 x 256) to 2.7x (3 x 512) faster in bf16 than in fp32
    on 2 such cores. Without AMX, bf16 on a CPU is converted in software, so auto keeps fp32."""
    try:
        return bool(torch.cpu._is_amx_tile_supported()) and torch.backends.mkldnn.is_available()
    except (AttributeError, RuntimeError):
        return False


def gpu_has_bf16(device: torch.device) -> bool:
    """Ampere (compute capability 8.0) and later compute in bf16. An older GPU (the T4 of free
    notebooks, a V100) does not: torch once refused bf16 autocast there ("Current CUDA Device
    does not support bfloat16") and now emulates it, slowly, so auto keeps fp32."""
    try:
        return torch.cuda.get_device_capability(device) >= (8, 0)
    except (AssertionError, RuntimeError):  # no usable CUDA: nothing to decide
        return False


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast dtype of a training step on `device` (None: fp32). LSTMs train as well in
    bf16 autocast (weights, gradients and AdamW stay fp32): on GPUs and CPUs that compute in
    bf16 (gpu_has_bf16, cpu_has_amx) or when --precision bf16 asks; never on MPS."""
    if _precision == "fp32" or device.type not in ("cuda", "cpu"):
        return None
    if _precision == "bf16":
        return torch.bfloat16
    native = gpu_has_bf16(device) if device.type == "cuda" else cpu_has_amx()
    return torch.bfloat16 if native else None


def autocast(device: torch.device):
    """The training step's autocast context on `device` (see autocast_dtype)."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


@contextlib.contextmanager
def out_of_memory_as_error(what: str, advice: str):
    """Turn a device out-of-memory error (pages of allocator statistics) into one line."""
    try:
        yield
    except torch.OutOfMemoryError:
        raise MidigenError(f"the device ran out of memory {what}: {advice}") from None
