"""Random windows vs stateful truncated backprop (TBPTT): validation NLL after the same budget.

Both runs: the built-in chorales, the same split, model, optimizer, LR schedule, batch size,
window length and number of steps; no augmentation (so only the batching differs).
- random: B windows at random offsets of the training stream, zero state per window
  (what midigen.train does);
- stateful: B lanes spread evenly over the stream, each advancing one window per step, the
  LSTM state carried (detached) from one window to the next.

Usage: python bench/compare_batching.py [--steps 300] [--seeds 0 1]
"""

from __future__ import annotations

from midigen.threads import set_openmp_wait_policy

set_openmp_wait_policy()  # as the midigen command does, before torch loads

# isort: split
import argparse
import time

import numpy as np
import torch
import torch.nn.functional as F

from midigen.batches import build_stream, random_windows
from midigen.corpus import load_corpus
from midigen.evaluate import nll_over_pieces
from midigen.model import ModelConfig, MusicRNN, detach_state
from midigen.split import split_pieces
from midigen.threads import use_all_cores
from midigen.tokenizer import TokenizerConfig, vocabulary
from midigen.train import TrainConfig, lr_at


def run(kind: str, stream, valid_ids, model_config, config: TrainConfig, steps: int, seed: int):
    torch.manual_seed(seed)
    model = MusicRNN(model_config)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, betas=(0.9, 0.99),
                            weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(seed)
    B, T, n = config.batch_size, config.seq_len, len(stream)
    lane_pos = (torch.arange(B) * (n // B) + torch.randint(0, T, (1,), generator=gen)) % (n - T)
    state = None
    began = time.perf_counter()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, steps, config)
        if kind == "random":
            x, y = random_windows(stream, B, T, gen)
        else:
            w, _ = stream.windows(lane_pos, T + 1)  # (B, T+1)
            x, y = w[:, :-1], w[:, 1:]
            lane_pos = (lane_pos + T) % (n - T)
        logits, new_state = model(x, state if kind == "stateful" else None)
        state = detach_state(new_state)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
    train_s = time.perf_counter() - began
    nll = nll_over_pieces(model, valid_ids)["nll_per_event"]
    return nll, steps * B * T / train_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=256)
    args = parser.parse_args()
    use_all_cores()  # as `midigen train` does
    tok = TokenizerConfig()
    corpus = load_corpus(None, tok)
    train_p, valid_p = split_pieces(corpus.pieces, 0.1, 0)
    stream = build_stream([p.ids for p in train_p], tok)
    valid_ids = [p.ids.astype(np.int64) for p in valid_p]
    mc = ModelConfig(vocabulary(tok).size, embed_dim=64, hidden=args.hidden, layers=args.layers,
                     dropout=0.1)
    config = TrainConfig(seq_len=args.seq_len, batch_size=args.batch, lr=3e-3, warmup_steps=50)
    print(f"{len(stream):,} training events, {sum(map(len, valid_ids)):,} validation events, "
          f"{args.steps} steps of {config.batch_size}x{config.seq_len}, "
          f"{args.layers} x {args.hidden} LSTM")
    for seed in args.seeds:
        for kind in ("random", "stateful"):
            nll, tps = run(kind, stream, valid_ids, mc, config, args.steps, seed)
            print(f"seed {seed} {kind:9s} valid NLL {nll:.4f} nats/event  ({tps:,.0f} tokens/s)",
                  flush=True)


if __name__ == "__main__":
    main()
