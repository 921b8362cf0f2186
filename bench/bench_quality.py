"""LSTM or Transformer? Held-out NLL on real music at the same tokens and the same wall clock.

For each corpus (Nottingham full arrangements, seeded 90/10 file split as `midigen train`
makes it; JSB Chorales, the standard 229/76/77 split, converted to MIDI by jsb_to_midi.py),
with midigen's default tokenizer:
- unigram and bigram baselines (add-k, k chosen on held-out training pieces),
- midigen's MusicRNN as an LSTM, the same as a GRU (same embedding/hidden/layers),
- a causal Transformer (pre-LN nn.TransformerEncoder, learned positions) whose width is
  chosen so its parameter count is closest to the LSTM's.
The three networks share one training loop here (random windows with +-3 semitone
transposition as `midigen train` does, AdamW, warm-up + cosine over the time budget, grad
clipping), so the only difference is the architecture; each gets `--minutes` of training.
Validation: RNNs score whole pieces with carried state (midigen.evaluate.nll_over_pieces);
the Transformer, which has no state, scores with a sliding window (context = training
length, stride half of it, so each event sees at least half a context of history).

    python bench/bench_quality.py [--minutes 2] [--datasets nottingham,jsb] [--device cpu]
"""

from __future__ import annotations

from midigen.threads import set_openmp_wait_policy

set_openmp_wait_policy()  # as the midigen command does, before torch loads

# isort: split
import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))

from jsb_to_midi import convert as convert_jsb

from midigen.baselines import ngram_report
from midigen.batches import build_stream, random_windows
from midigen.corpus import load_corpus
from midigen.evaluate import nll_over_pieces
from midigen.model import ModelConfig, MusicRNN, init_recurrent
from midigen.split import split_pieces
from midigen.tokenizer import TokenizerConfig, vocabulary
from midigen.train import train_step

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"
RESULTS = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------- the Transformer

class CausalTransformer(nn.Module):
    """A small GPT-style model from torch.nn parts: embeddings + learned positions -> pre-LN
    encoder layers under a causal mask -> logits. `forward(ids, state)` mirrors MusicRNN's
    signature (state is ignored) so the training loop serves all three models."""

    def __init__(self, vocab_size: int, d_model: int, layers: int, heads: int, context: int,
                 dropout: float = 0.1):
        super().__init__()
        self.context = context
        self.embed = nn.Embedding(vocab_size, d_model)
        self.pos = nn.Embedding(context, d_model)
        layer = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size)
        self.drop = nn.Dropout(dropout)

    def forward(self, ids, state=None):
        T = ids.shape[1]
        x = self.drop(self.embed(ids) + self.pos(torch.arange(T, device=ids.device)))  # (B, T, D)
        mask = nn.Transformer.generate_square_subsequent_mask(T, device=ids.device)
        y = self.encoder(x, mask=mask, is_causal=True)  # (B, T, D)
        return self.head(self.norm(y)), None  # (B, T, V)


def num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def matched_transformer(vocab_size: int, target_params: int, layers: int, context: int):
    """The Transformer of `layers` layers whose parameter count is closest to target_params."""
    best = None
    for d in range(32, 1025, 32):  # parameters grow with d: stop once past the target
        n = num_params(CausalTransformer(vocab_size, d, layers, 4, context))
        if best is None or abs(n - target_params) < abs(best[1] - target_params):
            best = (d, n)
        if n > target_params:
            break
    return CausalTransformer(vocab_size, best[0], layers, 4, context)


# --------------------------------------------------------------------------- data

def nottingham_split(seed: int, config: TokenizerConfig):
    """The full-arrangement tunes (MIDI/*.mid, not melody/ or chords/), split as midigen train does."""
    folder = RESULTS / "data" / "nottingham"
    folder.mkdir(parents=True, exist_ok=True)
    for src in sorted((SHARED / "nottingham" / "MIDI").glob("*.mid")):
        link = folder / src.name
        if not link.exists():
            link.symlink_to(src)
    corpus = load_corpus(folder, config)
    train, valid = split_pieces(corpus.pieces, 0.1, seed)
    return train, valid


def jsb_split(config: TokenizerConfig):
    folder = RESULTS / "data" / "jsb"
    convert_jsb(folder)
    corpus = load_corpus(folder, config)
    train = [p for p in corpus.pieces if p.file.startswith("train/")]
    valid = [p for p in corpus.pieces if p.file.startswith("valid/")]
    return train, valid


# --------------------------------------------------------------------------- train + score

def train_for(model, stream, minutes: float, lr: float, batch: int, seq_len: int, seed: int,
              device) -> dict:
    """Train for a wall-clock budget; the learning rate follows the clock (warm-up, cosine)."""
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.99), weight_decay=0.01)
    gen = torch.Generator().manual_seed(seed)
    budget_s, warmup_s = 60 * minutes, 60 * minutes * 0.05
    trained_s, steps, losses = 0.0, 0, []
    while trained_s < budget_s:
        t0 = time.perf_counter()
        frac = trained_s / budget_s
        scale = min(1.0, (trained_s + 1e-3) / warmup_s) if trained_s < warmup_s else \
            0.1 + 0.45 * (1 + math.cos(math.pi * frac))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        x, y = random_windows(stream, batch, seq_len, gen, max_transpose=3)
        x, y = x.to(device), y.to(device)
        loss = train_step(model, opt, x, y, grad_clip=1.0)  # the same step as `midigen train`
        steps += 1
        if steps % 20 == 0:
            losses.append(float(loss))
        if device.type == "cuda":
            torch.cuda.synchronize()
        trained_s += time.perf_counter() - t0
    return {"steps": steps, "train_s": trained_s,
            "tokens_per_s": steps * batch * seq_len / trained_s,
            "last_train_loss": losses[-1] if losses else float(loss)}


def transformer_nll(model: CausalTransformer, pieces_ids, device) -> dict:
    """Sliding-window NLL: each event is scored once, with at least context/2 events of history."""
    ctx, stride = model.context, model.context // 2
    model.eval()
    total, count = 0.0, 0
    with torch.inference_mode():
        for ids in pieces_ids:
            x = torch.as_tensor(np.asarray(ids, dtype=np.int64), device=device)
            n = len(x) - 1  # inputs x[0..n-1], targets x[1..n]
            s, scored_to = 0, 0
            while scored_to < n:
                e = min(s + ctx, n)
                logits, _ = model(x[s:e].unsqueeze(0))  # (1, W, V)
                logp = torch.log_softmax(logits[0].float(), -1)  # (W, V)
                picked = logp.gather(-1, x[s + 1:e + 1].unsqueeze(-1)).squeeze(-1)  # (W,)
                keep = torch.arange(s, e, device=x.device) >= scored_to
                total -= float(picked[keep].sum())
                count += int(keep.sum())
                scored_to = e
                s = max(0, e - (ctx - stride))
    return {"total_nll": total, "num_events": count, "nll_per_event": total / count}


def previous_lstm(config: ModelConfig) -> MusicRNN:
    """The LSTM as initialised before issue 13's second round (PyTorch's uniform input
    weights), to compare against the default in the same run."""
    model = MusicRNN(config)
    model.rnn.reset_parameters()
    init_recurrent(model.rnn, "lstm", input_bound=None)
    return model


def run_dataset(name, train, valid, config, args, device) -> list[dict]:
    vocab_size = vocabulary(config).size
    train_ids = [np.asarray(p.ids, dtype=np.int64) for p in train]
    valid_ids = [np.asarray(p.ids, dtype=np.int64) for p in valid]
    valid_s = sum(p.duration_s for p in valid)
    stream = build_stream(train_ids, config)
    print(f"\n## {name}: {len(train)} train pieces ({len(stream):,} events), {len(valid)} valid "
          f"pieces ({sum(map(len, valid_ids)):,} events, {valid_s / 60:.1f} min)", flush=True)
    rows = []
    for order, label in ((1, "unigram"), (2, "bigram")):
        rep = ngram_report(train_ids, valid_ids, order, vocab_size)
        rows.append({"model": f"{label} (add-k, k={rep['k']:g})", "nll": rep["nll_per_event"],
                     "nll_per_s": rep["total_nll"] / valid_s, "tokens_per_s": None,
                     "params": None, "steps": None})
        print(f"{label}: {rep['nll_per_event']:.3f}", flush=True)

    mc = ModelConfig(vocab_size, "lstm", args.embed, args.hidden, args.layers, args.dropout)
    lstm_params = num_params(MusicRNN(mc))
    models = {
        "lstm": lambda: MusicRNN(mc),
        "lstm-previous": lambda: previous_lstm(mc),
        "gru": lambda: MusicRNN(ModelConfig(vocab_size, "gru", args.embed, args.hidden,
                                            args.layers, args.dropout)),
        "transformer": lambda: matched_transformer(vocab_size, lstm_params, args.tf_layers,
                                                   args.seq_len),
    }
    for key in args.models.split(","):
        torch.manual_seed(args.seed)
        model = models[key]()
        lr = args.tf_lr if key == "transformer" else args.lr
        trained = train_for(model, stream, args.minutes, lr, args.batch, args.seq_len,
                            args.seed, device)
        t0 = time.perf_counter()
        if key == "transformer":
            scored = transformer_nll(model, valid_ids, device)
            shape = f"d={model.embed.embedding_dim}, {args.tf_layers} layers"
        else:
            scored = nll_over_pieces(model, valid_ids, device=device)
            shape = f"{args.layers}x{args.hidden}"
        row = {"model": f"{key} ({shape})", "nll": scored["nll_per_event"],
               "nll_per_s": scored["total_nll"] / valid_s, "tokens_per_s": trained["tokens_per_s"],
               "params": num_params(model), "steps": trained["steps"],
               "train_loss": trained["last_train_loss"], "eval_s": time.perf_counter() - t0}
        rows.append(row)
        print(f"{key}: valid {row['nll']:.3f} nats/event after {trained['steps']} steps, "
              f"{row['tokens_per_s']:,.0f} tok/s", flush=True)
    return rows


def markdown(name: str, rows: list[dict], args, device) -> str:
    title = (f"### {name} ({device}, {args.minutes:g} min per network, batch {args.batch} x "
             f"{args.seq_len} events)")
    lines = [title, "",
             "| model | valid NLL/event (nats) | valid NLL/second | train tokens/s | parameters | steps |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        tps = "-" if r["tokens_per_s"] is None else f"{r['tokens_per_s']:,.0f}"
        params = "-" if r["params"] is None else f"{r['params'] / 1e6:.2f} M"
        steps = "-" if r["steps"] is None else str(r["steps"])
        lines.append(f"| {r['model']} | {r['nll']:.3f} | {r['nll_per_s']:.2f} | {tps} | {params} | {steps} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0, help="training budget per network")
    parser.add_argument("--datasets", default="nottingham,jsb")
    parser.add_argument("--models", default="lstm,gru,transformer")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default; 1 is faster on a busy machine)")
    parser.add_argument("--embed", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--tf-layers", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--tf-lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS / "quality.json")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    config = TokenizerConfig()
    tables, results = [], {}
    for name in args.datasets.split(","):
        if name == "nottingham":
            train, valid = nottingham_split(args.seed, config)
            title = "Nottingham (full arrangements, seeded 90/10 file split)"
        elif name == "jsb":
            train, valid = jsb_split(config)
            title = "JSB Chorales (229/76/77 split, 16th grid at 100 bpm, SATB as 4 instruments)"
        else:
            raise SystemExit(f"unknown dataset {name}")
        rows = run_dataset(name, train, valid, config, args, device)
        results[name] = rows
        tables.append(markdown(title, rows, args, device))
    print("\n" + "\n\n".join(tables))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                    "torch_threads": torch.get_num_threads(),
                                    "results": results}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
