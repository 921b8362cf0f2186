"""Why does the LSTM start slowly, and which default fixes it? Validation NLL at equal steps.

Each variant trains the same small network (by default 2 x 128, embedding 128, dropout 0.1;
`--hidden 256 --embed 256` is the size issue 13 measured) with the loop `midigen train` runs (random windows,
+-3 semitone transposition, AdamW, warm-up then cosine, clipping), and is scored on whole
validation pieces with carried state every `--eval-every` steps. Changes are applied one at
a time on top of PyTorch's default initialisation, then together:

- init: `torch` (uniform +-1/sqrt(H), biases ~0: the forget gate starts half shut),
  `forget1` (forget-gate bias 1), `ortho+forget1` (also orthogonal recurrent weights),
- weight decay on every parameter (`wd all`) or on weight matrices only (`wd matrices`),
- learning rate and warm-up.

Wall-clock seconds per step are printed too, but the machine this was written on is shared
(2 cores, loaded by other jobs), so equal-step NLL is the number to compare; tokens/s is a
ratio measured in the same run.

    python bench/bench_lstm_sweep.py [--steps 300] [--datasets nottingham,jsb] [--only a,b]
"""

from __future__ import annotations

from midigen.threads import set_openmp_wait_policy

set_openmp_wait_policy()  # as the midigen command does, before torch loads

# isort: split
import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_quality import RESULTS, jsb_split, nottingham_split

from midigen.batches import build_stream, random_windows
from midigen.evaluate import nll_over_pieces
from midigen.model import ModelConfig, MusicRNN, init_recurrent
from midigen.tokenizer import TokenizerConfig, vocabulary
from midigen.train import TrainConfig, lr_at

# (label, cell, init, decay only matrices, lr, warm-up steps)
VARIANTS = [
    ("gru, torch init (reference)", "gru", "torch", False, 3e-3, 100),
    ("lstm, torch init (old default)", "lstm", "torch", False, 3e-3, 100),
    ("lstm, forget bias 1", "lstm", "forget1", False, 3e-3, 100),
    ("lstm, orthogonal + forget bias 1", "lstm", "ortho+forget1", False, 3e-3, 100),
    ("lstm, ortho+forget1, wd matrices only", "lstm", "ortho+forget1", True, 3e-3, 100),
    ("lstm, ortho+forget1, warm-up 30", "lstm", "ortho+forget1", False, 3e-3, 30),
    ("lstm, ortho+forget1, lr 6e-3", "lstm", "ortho+forget1", False, 6e-3, 100),
    ("gru, orthogonal init", "gru", "ortho+forget1", False, 3e-3, 100),
    ("lstm, ortho+forget1, lr 1e-2", "lstm", "ortho+forget1", False, 1e-2, 100),
    ("lstm, forget bias 1, lr 6e-3", "lstm", "forget1", False, 6e-3, 100),
    ("lstm, forget bias 1, lr 1e-2", "lstm", "forget1", False, 1e-2, 100),
    ("gru, torch init, lr 6e-3", "gru", "torch", False, 6e-3, 100),
    ("lstm, torch init, lr 1e-2", "lstm", "torch", False, 1e-2, 100),
    ("lstm, ortho, i/f/o gate biases 1", "lstm", "open-gates", False, 3e-3, 100),
    ("lstm, ortho, i/f/o gate biases 1, lr 1e-2", "lstm", "open-gates", False, 1e-2, 100),
    ("gru, torch init, lr 1e-2", "gru", "torch", False, 1e-2, 100),
    ("gru, orthogonal init, lr 1e-2", "gru", "ortho+forget1", False, 1e-2, 100),
    ("lstm, i/f/o gate biases 1 (uniform), lr 1e-2", "lstm", "open-gates-uniform", False, 1e-2, 100),
    ("lstm, ortho, i/f/o gate biases 1, lr 6e-3", "lstm", "open-gates", False, 6e-3, 100),
    ("lstm, i/f/o gate biases 1 (uniform), lr 3e-3", "lstm", "open-gates-uniform", False, 3e-3, 100),
    ("lstm, i/f/o gate biases 1 (uniform), lr 6e-3", "lstm", "open-gates-uniform", False, 6e-3, 100),
    # Round 2 (issue 13, at 2 x 256 as bench_quality): on top of the default (open-gates-uniform,
    # lr 6e-3), one change each; the last field holds the change.
    ("gru, default init, lr 6e-3", "gru", "ortho+forget1", False, 6e-3, 100),  # 21
    ("lstm default, lr 1e-2", "lstm", "open-gates-uniform", False, 1e-2, 100),
    ("lstm default, forget bias 2", "lstm", "open-gates-uniform", False, 6e-3, 100, {"forget_bias": 2.0}),
    ("lstm default, forget bias 3", "lstm", "open-gates-uniform", False, 6e-3, 100, {"forget_bias": 3.0}),
    ("lstm default, no dropout", "lstm", "open-gates-uniform", False, 6e-3, 100, {"dropout": 0.0}),
    ("lstm default, input weights x2", "lstm", "open-gates-uniform", False, 6e-3, 100, {"ih_scale": 2.0}),
    ("lstm default, all weights x2", "lstm", "open-gates-uniform", False, 6e-3, 100,
     {"ih_scale": 2.0, "hh_scale": 2.0}),
    ("lstm default, wd matrices only", "lstm", "open-gates-uniform", True, 6e-3, 100),
    ("lstm default, no clipping", "lstm", "open-gates-uniform", False, 6e-3, 100, {"grad_clip": 1e9}),
    ("lstm default, warm-up 30", "lstm", "open-gates-uniform", False, 6e-3, 30),
    ("gru, default init, no dropout", "gru", "ortho+forget1", False, 6e-3, 100, {"dropout": 0.0}),
    ("lstm default, all weights x3", "lstm", "open-gates-uniform", False, 6e-3, 100,  # 32
     {"ih_scale": 3.0, "hh_scale": 3.0}),
    ("lstm default, all weights x2, lr 1e-2", "lstm", "open-gates-uniform", False, 1e-2, 100,
     {"ih_scale": 2.0, "hh_scale": 2.0}),
    ("lstm default, all weights x2, forget bias 2", "lstm", "open-gates-uniform", False, 6e-3, 100,
     {"ih_scale": 2.0, "hh_scale": 2.0, "forget_bias": 2.0}),
    ("lstm default, recurrent weights x2", "lstm", "open-gates-uniform", False, 6e-3, 100,
     {"hh_scale": 2.0}),
    ("lstm default, input weights x3", "lstm", "open-gates-uniform", False, 6e-3, 100,  # 36
     {"ih_scale": 3.0}),
    ("lstm default, input weights x2, lr 1e-2", "lstm", "open-gates-uniform", False, 1e-2, 100,
     {"ih_scale": 2.0}),
    ("lstm default, input weights +-sqrt(3/fan_in) (LeCun)", "lstm", "open-gates-uniform", False, 6e-3, 100,  # 38
     {"input_bound": 3.0 ** 0.5}),
]


def build_model(vocab_size: int, cell: str, init: str, args, extras: dict | None = None) -> MusicRNN:
    """The network with one initialisation: `torch` (PyTorch's reset, what MusicRNN did before),
    `forget1`, `ortho+forget1`, `open-gates` (orthogonal recurrent weights, input/forget/output
    gate biases 1) or `open-gates-uniform` (those biases on PyTorch's uniform weights: MusicRNN's
    LSTM default now). For the GRU, gate biases do not apply and `ortho+forget1` is orthogonal
    recurrent weights (its default now). `extras`: forget_bias, dropout, ih_scale, hh_scale."""
    extras = extras or {}
    torch.manual_seed(args.seed)
    dropout = extras.get("dropout", args.dropout)
    model = MusicRNN(ModelConfig(vocab_size, cell, args.embed, args.hidden, args.layers, dropout))
    model.rnn.reset_parameters()
    if init != "torch":
        init_recurrent(model.rnn, cell, forget_bias=extras.get("forget_bias", 1.0),
                       orthogonal=init in ("ortho+forget1", "open-gates"),
                       gate_bias=1.0 if init.startswith("open-gates") else 0.0,
                       input_bound=extras.get("input_bound"))
    with torch.no_grad():  # larger initial weights: a stronger signal through the gates
        for name, p in model.rnn.named_parameters():
            if name.startswith("weight_ih"):
                p.mul_(extras.get("ih_scale", 1.0))
            elif name.startswith("weight_hh"):
                p.mul_(extras.get("hh_scale", 1.0))
    return model


def run_variant(variant, stream, valid_ids, vocab_size, args) -> dict:
    label, cell, init, matrices_only, lr, warmup = variant[:6]
    extras = variant[6] if len(variant) > 6 else {}
    model = build_model(vocab_size, cell, init, args, extras)
    config = TrainConfig(lr=lr, warmup_steps=warmup, steps=args.steps, seq_len=args.seq_len,
                         batch_size=args.batch_size, grad_clip=extras.get("grad_clip", 1.0))
    if matrices_only:  # decay weight matrices only, not biases or embedding rows
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("embed")]
        rest = [p for p in model.parameters() if all(p is not d for d in decay)]
        groups = [{"params": decay}, {"params": rest, "weight_decay": 0.0}]
    else:
        groups = model.parameters()
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.99), weight_decay=config.weight_decay)
    gen = torch.Generator().manual_seed(args.seed)
    curve, train_s = {}, 0.0
    for step in range(args.steps):
        t0 = time.perf_counter()
        model.train()
        for g in opt.param_groups:
            g["lr"] = lr_at(step, args.steps, config)
        x, y = random_windows(stream, config.batch_size, config.seq_len, gen, max_transpose=3)
        logits, _ = model(x)  # (B, T, V)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        opt.step()
        train_s += time.perf_counter() - t0
        if (step + 1) % args.eval_every == 0:
            curve[step + 1] = nll_over_pieces(model, valid_ids)["nll_per_event"]
    tokens_per_s = args.steps * config.batch_size * config.seq_len / train_s
    row = {"variant": label, "curve": curve, "tokens_per_s": round(tokens_per_s)}
    print(f"{label:48s} " + "  ".join(f"{s}:{v:.3f}" for s, v in curve.items())
          + f"  ({tokens_per_s:,.0f} tok/s)", flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--eval-every", type=int, default=50)
    parser.add_argument("--datasets", default="nottingham,jsb")
    parser.add_argument("--only", default="", help="comma-separated variant numbers (0-based)")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--embed", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1 is steadiest on a machine shared with other jobs)")
    parser.add_argument("--valid-pieces", type=int, default=30,
                        help="score this many validation pieces (all: 0), to keep evaluation short")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="default: results/lstm_sweep.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = TokenizerConfig()
    vocab_size = vocabulary(config).size
    chosen = [VARIANTS[int(i)] for i in args.only.split(",")] if args.only else VARIANTS
    results = {}
    for name in args.datasets.split(","):
        train, valid = nottingham_split(args.seed, config) if name == "nottingham" else jsb_split(config)
        if args.valid_pieces:
            valid = valid[:args.valid_pieces]
        stream = build_stream([np.asarray(p.ids, dtype=np.int64) for p in train], config)
        valid_ids = [np.asarray(p.ids, dtype=np.int64) for p in valid]
        print(f"\n## {name}: {len(train)} train pieces, {len(valid)} valid pieces "
              f"({sum(map(len, valid_ids)):,} events); validation NLL (nats/event) at step", flush=True)
        results[name] = [run_variant(v, stream, valid_ids, vocab_size, args) for v in chosen]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (args.out or RESULTS / "lstm_sweep.json").write_text(json.dumps({"args": vars(args), "results": results}, default=str,
                                                        indent=1))


if __name__ == "__main__":
    main()
