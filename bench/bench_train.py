"""Training tokens/s of the real `midigen.train` loop vs a bare nn.LSTM training step.

The bare step is the floor of what any loop can do: one pre-built batch already on the device,
the loop's own `train_step` (MusicRNN -> cross-entropy -> backward -> clip -> AdamW), no data,
no logging. The loop is `midigen.train.train` itself on a synthetic corpus (random windows,
transposition on, periodic loss logging), timed by the loop over its training steps only
(evaluation and checkpoint writes excluded, as they are not per-token costs). Both run the
same sizes on the same device in this process, alternating, and the best of `--repeats` counts.

Goal: loop / bare >= 0.9 (the data pipeline never starves the model).

    python bench/bench_train.py                 # CPU: 2 x 256, batch 32 x 128
    python bench/bench_train.py --device cuda   # GPU: 3 x 512, batch 256 x 256, bf16
"""

from __future__ import annotations

from midigen.threads import set_openmp_wait_policy

set_openmp_wait_policy()  # as the midigen command does, before torch loads

# isort: split
import argparse
import json
import tempfile
import time

import numpy as np
import torch

from midigen.corpus import PieceTokens
from midigen.device import pick_device
from midigen.model import ModelConfig, MusicRNN
from midigen.threads import use_all_cores
from midigen.tokenizer import TokenizerConfig, vocabulary
from midigen.train import TrainConfig, make_optimizer, train, train_step


def bare_tokens_per_s(model_config, batch, seq_len, steps, device) -> float:
    # The same network as training (MusicRNN: embedding, dropout, nn.LSTM, linear), so the
    # ratio measures what the loop adds around it: data, augmentation, schedule, logging.
    V = model_config.vocab_size
    model = MusicRNN(model_config).to(device).train()
    opt = make_optimizer(model, TrainConfig(lr=1e-3), device)
    x = torch.randint(0, V, (batch, seq_len), device=device)
    y = torch.randint(0, V, (batch, seq_len), device=device)

    def step():
        train_step(model, opt, x, y, grad_clip=1.0)

    for _ in range(3):
        step()
    _sync(device)
    began = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    return steps * batch * seq_len / (time.perf_counter() - began)


def loop_tokens_per_s(model_config, tok, batch, seq_len, steps, device) -> float:
    rng = np.random.default_rng(0)
    size = max(4 * batch * seq_len, 20_000)
    pieces = [PieceTokens(f"p{i}", f"f{i}", rng.integers(2, 200, size).astype(np.uint16), 60.0,
                          num_notes=0, programs=(0,)) for i in range(10)]
    config = TrainConfig(seq_len=seq_len, batch_size=batch, steps=steps + 3, eval_every=10**9,
                         log_every=10, transpose=3, device=device.type)
    with tempfile.TemporaryDirectory() as run_dir:
        result = train(pieces, tok, model_config, config, run_dir)
    return result.tokens_per_s


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--layers", type=int)
    parser.add_argument("--hidden", type=int)
    parser.add_argument("--batch", type=int)
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--steps", type=int)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    use_all_cores()  # as `midigen train` does
    device = pick_device(args.device)
    gpu = device.type == "cuda"
    layers = args.layers or (3 if gpu else 2)
    hidden = args.hidden or (512 if gpu else 256)
    batch = args.batch or (256 if gpu else 32)
    seq_len = args.seq_len or (256 if gpu else 128)
    steps = args.steps or (200 if gpu else 60)
    tok = TokenizerConfig()
    mc = ModelConfig(vocabulary(tok).size, embed_dim=hidden // 2 if gpu else 64, hidden=hidden,
                     layers=layers, dropout=0.1)
    bare, loop = [], []
    for _ in range(args.repeats):
        bare.append(bare_tokens_per_s(mc, batch, seq_len, steps, device))
        loop.append(loop_tokens_per_s(mc, tok, batch, seq_len, steps, device))
    result = {"device": str(device) + (f" ({torch.cuda.get_device_name()})" if gpu else
                                       f" ({torch.get_num_threads()} threads)"),
              "model": f"{layers} x {hidden} {mc.cell}, embed {mc.embed_dim}",
              "batch": f"{batch} x {seq_len}", "steps": steps,
              "bare_tokens_per_s": round(max(bare)), "loop_tokens_per_s": round(max(loop)),
              "ratio": round(max(loop) / max(bare), 3), "goal": 0.9,
              "all_bare": [round(b) for b in bare], "all_loop": [round(v) for v in loop]}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
