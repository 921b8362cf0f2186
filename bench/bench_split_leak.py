"""How much does a by-file split leak, against the grouped split (`--split-by auto`)?

For each corpus, split by file and by group (seed 0, 10% held out) and report what the
validation side shares with the training side: the share of validation 16-event windows
found verbatim in training pieces (music a model can recall rather than predict), the
bigram baseline's validation NLL, and, with `--steps`, a small LSTM's validation NLL after
that many steps on each split (the number a by-file split understates).

    python bench/bench_split_leak.py [--corpora nottingham,asap-piano] [--steps 0]
"""

from __future__ import annotations

import midigen  # noqa: F401  (first: it chooses how OpenMP threads wait, before torch loads)

# isort: split
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from midigen.baselines import ngram_nll
from midigen.copying import NgramIndex
from midigen.corpus import load_corpus
from midigen.split import split_pieces
from midigen.tokenizer import TokenizerConfig, vocabulary

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"


def leak(train, valid, n: int = 16) -> float:
    """Share of the validation pieces' n-event windows that occur in a training piece."""
    index = NgramIndex.build([p.ids for p in train], n)
    found = total = 0
    for p in valid:
        share = index.share_found(np.asarray(p.ids))
        if share is not None:
            windows = len(p.ids) - n + 1
            found += share * windows
            total += windows
    return found / max(total, 1)


def small_lstm_nll(train, valid, config, steps: int) -> float:
    import torch
    from bench_lstm_sweep import run_variant

    from midigen.batches import build_stream

    torch.set_num_threads(1)
    args = argparse.Namespace(seed=0, embed=128, hidden=128, layers=2, dropout=0.1, steps=steps,
                              eval_every=steps, seq_len=128, batch_size=16)
    stream = build_stream([np.asarray(p.ids, dtype=np.int64) for p in train], config)
    valid_ids = [np.asarray(p.ids, dtype=np.int64) for p in valid[:60]]
    row = run_variant(("lstm (default init), lr 1e-2", "lstm", "open-gates", False, 1e-2, 100),
                      stream, valid_ids, vocabulary(config).size, args)
    return row["curve"][steps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default="nottingham,asap-piano")
    parser.add_argument("--steps", type=int, default=0)
    args = parser.parse_args()
    config = TokenizerConfig()
    size = vocabulary(config).size
    print("| corpus | split | valid files | valid pieces | valid 16-grams found in train "
          "| bigram NLL |" + (f" LSTM NLL at {args.steps} steps |" if args.steps else ""))
    print("|---|---|---:|---:|---:|---:|" + ("---:|" if args.steps else ""))
    for name in args.corpora.split(","):
        corpus = load_corpus(SHARED / name, config)
        for by in ("file", "auto"):
            train, valid = split_pieces(corpus.pieces, 0.1, 0, by)
            ids = lambda ps: [np.asarray(p.ids, dtype=np.int64) for p in ps]
            bigram = ngram_nll(ids(train), ids(valid), 2, vocab_size=size)
            cells = [name, by, str(len({p.file for p in valid})), str(len(valid)),
                     f"{100 * leak(train, valid):.1f}%", f"{bigram:.3f}"]
            if args.steps:
                cells.append(f"{small_lstm_nll(train, valid, config, args.steps):.3f}")
            print("| " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
