"""Do sampled pieces end by themselves at the corpus's lengths, and do notes stick?

Samples `--num` pieces from a checkpoint with no length given (as `midigen sample` and the
demo do) and reports, against the training music's lengths saved in the checkpoint:
- how each piece stopped (END from the model, or cut at the longest training piece),
- the share that ended by END inside the training pieces' 5th-95th percentile length,
- stuck notes: the share of notes at or above the training music's p99.9 note length and at
  the decoder's longest-note cap, next to the training music's own shares;
with each of the sampler's length rules (midigen.length_rules) on and off (RULES), to show
which part of the note and piece lengths comes from the model and which from the sampler.

    python bench/bench_endings.py checkpoints/RUN [--num 40] [--temperature 0.8] [--corpus DIR]
"""

from __future__ import annotations

from midigen.threads import set_openmp_wait_policy

set_openmp_wait_policy()  # as the midigen command does, before torch loads

# isort: split
import argparse
import json

import numpy as np

from midigen.checkpoint import load_model
from midigen.corpus import load_corpus
from midigen.lengths import note_lengths_s
from midigen.sample import _prefix, length_limits, sample_ids, stop_reason
from midigen.stats_files import long_notes
from midigen.tokenizer import decode_ids, vocabulary

# Which of the sampler's length rules are on (midigen.length_rules); the first is the default.
RULES = [
    ("default: per-note caps + per-piece target", {}),
    ("per-piece target, longest-note cap only", {"note_quantiles_s": None}),
    ("per-piece target, no note rule", {"note_quantiles_s": None, "max_note_s": None}),
    ("old: longest-note cap, END after p5", {"note_quantiles_s": None, "piece_quantiles_s": None}),
]


def measure(model, config, limits, num, temperature, seed, corpus_lengths_s) -> dict:
    pieces = sample_ids(model, config, num=num, max_events=limits["max_events"],
                        seconds=limits["seconds"], temperature=temperature, seed=seed,
                        min_seconds=limits["min_seconds"], max_note_s=limits["max_note_s"],
                        piece_quantiles_s=limits["piece_quantiles_s"],
                        note_quantiles_s=limits["note_quantiles_s"])
    vocab = vocabulary(config)
    stops, durations, lengths = [], [], []
    for ids in pieces:
        notes = decode_ids(ids, config).notes
        stops.append(stop_reason(ids, vocab.end_id, len(_prefix(None, vocab)), limits))
        durations.append(float(notes["end_s"].max()) if len(notes) else 0.0)
        lengths.append(notes["end_s"] - notes["start_s"])
    return {"stops": {s: stops.count(s) for s in sorted(set(stops))},
            "durations_s": [round(d, 1) for d in durations],
            "long_notes": long_notes(np.concatenate(lengths), corpus_lengths_s, config.max_note_s),
            "_stops": stops, "_durations": durations}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("--num", type=int, default=40)
    parser.add_argument("--temperature", type=float, default=0.8)  # the demo's
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", default=None, help="the training folder (default: the "
                        "checkpoint's own, or the built-in chorales)")
    args = parser.parse_args()
    model, config, ckpt = load_model(args.checkpoint)
    lengths = ckpt.split.get("lengths")
    if not lengths:
        raise SystemExit("this checkpoint has no saved lengths (trained before they existed)")
    corpus = load_corpus(args.corpus or ckpt.train_config.get("corpus"), config)
    train_names = set(ckpt.split.get("train", []))
    corpus_lengths_s = note_lengths_s([p.ids for p in corpus.pieces if p.name in train_names], config)
    low, high = lengths["piece_s"]["p5"], lengths["piece_s"]["p95"]
    report = {"lengths": lengths}
    full = length_limits(lengths, None, None, None)
    for label, changes in RULES:
        limits = {**full, **changes}
        r = measure(model, config, limits, args.num, args.temperature, args.seed, corpus_lengths_s)
        inside = sum(s == "END" and low <= d <= high for s, d in zip(r.pop("_stops"), r.pop("_durations")))
        r["ended_inside_p5_p95"] = inside / args.num
        report[label] = r
        ln = r["long_notes"]
        print(f"{label}:\n  stops {r['stops']}; ended by END inside {low:g}-{high:g} s: "
              f"{100 * inside / args.num:.0f}%; notes >= p99.9 ({ln['corpus_p99_9_s']:g} s): "
              f"{100 * ln['pieces']['at_or_above_p99_9']:.3f}% (training music "
              f"{100 * ln['corpus']['at_or_above_p99_9']:.3f}%), at the {ln['cap_s']:g} s cap: "
              f"{100 * ln['pieces']['at_cap']:.3f}% ({100 * ln['corpus']['at_cap']:.3f}%)", flush=True)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
