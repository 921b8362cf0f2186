"""How much does a by-file split leak, against the grouped split (`--split-by auto`)?

For each corpus, split by file and by group (seed 0, 10% held out) and report what the
validation side shares with the training side: the share of validation 16-event windows
found verbatim in training pieces (music a model can recall rather than predict), the
bigram baseline's validation NLL, and, with `--steps`, a small LSTM's validation NLL after
that many steps on each split (the number a by-file split understates). The two splits hold
out different pieces, so with `--paired` the leak is measured on the same pieces: a small LSTM
trained with and without the other versions of the held-out pieces.

    python bench/bench_split_leak.py [--corpora nottingham,asap-piano] [--steps 0] [--paired]
"""

from __future__ import annotations

from midigen.threads import set_openmp_wait_policy

set_openmp_wait_policy()  # as the midigen command does, before torch loads

# isort: split
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from midigen.baselines import ngram_nll
from midigen.copying import NgramIndex
from midigen.corpus import load_corpus
from midigen.split import group_files, split_pieces
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
    from midigen.model import LSTM_INPUT_BOUND

    torch.set_num_threads(1)
    args = argparse.Namespace(seed=0, embed=128, hidden=128, layers=2, dropout=0.1, steps=steps,
                              eval_every=steps, seq_len=128, batch_size=16)
    stream = build_stream([np.asarray(p.ids, dtype=np.int64) for p in train], config)
    valid_ids = [np.asarray(p.ids, dtype=np.int64) for p in valid[:60]]
    row = run_variant(("lstm, default init and lr", "lstm", "open-gates-uniform", False, 6e-3, 100,
                       {"input_bound": LSTM_INPUT_BOUND}),
                      stream, valid_ids, vocabulary(config).size, args)
    return row["curve"][steps]


def paired_nll(pieces, config, steps: int) -> dict:
    """The leak itself: the same held-out pieces (one version of each grouped validation piece
    that has several) scored by a small LSTM trained without their other versions (grouped)
    and with them (what a by-file split lets a model see), `steps` steps each."""
    train, valid = split_pieces(pieces, 0.1, 0, "auto")
    groups = group_files(sorted({p.file for p in pieces}), "auto", 0.1)
    by_group: dict[str, list] = {}
    for p in valid:
        by_group.setdefault(groups[p.file], []).append(p)
    scored, siblings = [], []
    for members in by_group.values():
        files = sorted({p.file for p in members})
        if len(files) > 1:
            scored += [p for p in members if p.file == files[0]]
            siblings += [p for p in members if p.file != files[0]]
    return {"scored": len(scored), "siblings": len(siblings),
            "grouped": small_lstm_nll(train, scored, config, steps),
            "with_versions": small_lstm_nll(train + siblings, scored, config, steps)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpora", default="nottingham,asap-piano")
    parser.add_argument("--steps", type=int, default=0)
    parser.add_argument("--paired", action="store_true",
                        help="also: the same held-out pieces with and without their other versions")
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
        if args.paired:
            r = paired_nll(corpus.pieces, config, args.steps or 300)
            print(f"{name}: {r['scored']} held-out pieces with other versions; LSTM NLL "
                  f"{r['grouped']:.3f} trained without their {r['siblings']} other versions, "
                  f"{r['with_versions']:.3f} with them (what a by-file split allows)", flush=True)


if __name__ == "__main__":
    main()
