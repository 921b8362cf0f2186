"""Training-step tokens/s in bf16 autocast against fp32, on this machine's CPU (or GPU).

`--precision auto` picks bf16 on a CPU only where it has AMX (midigen.device.cpu_has_amx);
this measures that choice: the step `midigen train` runs (midigen.step.train_step: MusicRNN,
cross-entropy, backward, clip, AdamW) on one pre-built batch, both precisions alternating in
one process, best of `--repeats`. Also the first step's loss in each, from the same weights.

    python bench/bench_precision.py                       # 2 x 256, 3 x 512 LSTM and a GRU
    python bench/bench_precision.py --sizes 2x512:64      # layers x hidden : batch
"""

from __future__ import annotations

from midigen.threads import set_openmp_wait_policy

set_openmp_wait_policy()  # as the midigen command does, before torch loads

# isort: split
import argparse
import json
import time

import torch

from midigen.device import cpu_has_amx, pick_device, set_precision
from midigen.model import ModelConfig, MusicRNN
from midigen.step import make_optimizer, train_step
from midigen.threads import use_all_cores
from midigen.tokenizer import TokenizerConfig, vocabulary
from midigen.train_config import TrainConfig

SIZES = ("2x256:32", "3x512:32", "2x512:64", "gru2x256:32")


def tokens_per_s(config: ModelConfig, batch: int, seq_len: int, steps: int,
                 device: torch.device, precision: str) -> tuple[float, float]:
    """Tokens/s of `steps` training steps in `precision`, and the first step's loss."""
    set_precision(precision)
    torch.manual_seed(0)
    model = MusicRNN(config).to(device).train()
    optimizer = make_optimizer(model, TrainConfig(lr=1e-3), device)
    gen = torch.Generator().manual_seed(1)
    x, y = (torch.randint(0, config.vocab_size, (batch, seq_len), generator=gen).to(device)
            for _ in range(2))
    first = float(train_step(model, optimizer, x, y))
    train_step(model, optimizer, x, y)  # warm-up
    _sync(device)
    began = time.perf_counter()
    for _ in range(steps):
        train_step(model, optimizer, x, y)
    _sync(device)
    return steps * batch * seq_len / (time.perf_counter() - began), first


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def parse_size(text: str) -> tuple[str, int, int, int]:
    """'gru2x256:32' -> ('gru', 2, 256, 32)."""
    shape, batch = text.split(":")
    cell = "gru" if shape.startswith("gru") else "lstm"
    layers, hidden = shape.removeprefix("gru").split("x")
    return cell, int(layers), int(hidden), int(batch)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES))
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    use_all_cores()
    device = pick_device(args.device)
    vocab = vocabulary(TokenizerConfig(use_programs=False)).size
    rows = []
    for size in args.sizes:
        cell, layers, hidden, batch = parse_size(size)
        config = ModelConfig(vocab, cell=cell, embed_dim=hidden // 2, hidden=hidden,
                             layers=layers)
        best = {"fp32": 0.0, "bf16": 0.0}
        first = {}
        for _ in range(args.repeats):
            for precision in ("fp32", "bf16"):
                speed, first[precision] = tokens_per_s(config, batch, args.seq_len, args.steps,
                                                       device, precision)
                best[precision] = max(best[precision], speed)
        rows.append({"model": f"{layers} x {hidden} {cell}", "batch": f"{batch} x {args.seq_len}",
                     "fp32_tokens_per_s": round(best["fp32"]),
                     "bf16_tokens_per_s": round(best["bf16"]),
                     "bf16_over_fp32": round(best["bf16"] / best["fp32"], 2),
                     "first_loss_fp32": round(first["fp32"], 4),
                     "first_loss_bf16": round(first["bf16"], 4)})
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(json.dumps({"device": f"{device} ({name})", "cpu_has_amx": cpu_has_amx(),
                      "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
