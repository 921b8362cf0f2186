"""Do the controls steer? Train with --controls on a real corpus, sample per setting, measure.

Corpora (../shared/corpora):
- nottingham: the 1,034 tunes, one folder per collection (the reels files as one "reels"),
  so the folder names are the styles. Every tune there is program 0, so to give the
  instruments control something to learn, each tune's melody (MIDI/melody) and chords
  (MIDI/chords) are given a melody and a chord instrument drawn per tune (seeded) from
  small sets; the notes are the database's own.
- pop909: the 909 piano arrangements, for key and density on expressive music.

Measured with midigen's own statistics on the sampled notes (asked vs heard):
- key: share of samples whose estimated key (midigen.keys) is the asked one;
- density: share within 25% of the asked notes per second (NOTE_ONs over the time spanned);
- instruments: share of notes on the asked instruments;
- style: a bigram model of events per style (key-invariant), trained on the training split,
  names each sample; its accuracy on the real validation tunes cut to the samples' length is
  the ceiling; the mean is over the styles that have validation tunes to check it on;
- validation NLL of the model with each piece's controls given vs with none given.
Each against the same model sampled with no control given (the baseline).

    python bench/bench_controls.py --corpus nottingham --minutes 4 [--num 16] [--out DIR]
        [--styles forms] [--guidance 1 2 3] [--checkpoint RUN_DIR]
"""

from __future__ import annotations

from midigen.threads import set_openmp_wait_policy

set_openmp_wait_policy()  # as the midigen command does, before torch loads

# isort: split
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from controls_labels import CORPORA, BigramStyles, forms_file, nottingham_corpus, opening_ids

from midigen.checkpoint import load_model
from midigen.controls import (
    COND_WIDTH,
    DENSITY,
    KEY,
    STYLE,
    asked_instruments,
    asked_row,
    density_of_ids,
    load_style_map,
    model_controls,
    style_of,
)
from midigen.controls_train import piece_controls
from midigen.corpus import load_corpus
from midigen.evaluate import nll_over_pieces
from midigen.keys import KEY_NAMES, estimate_key
from midigen.runs import start_run
from midigen.sample import sample_ids
from midigen.tokenizer import decode_ids, vocabulary

MODEL_ONLY = False  # --model-only: the network's instrument choices, without the sampler's rule


GUIDANCE = 1.0  # --guidance: classifier-free guidance of the asked controls (1: none)


def sample(model, tok, spec, num, seconds, seed, **asked):
    row = asked_row(spec, **asked)
    return sample_ids(model, tok, num=num, seconds=seconds, seed=seed, min_seconds=seconds / 2,
                      cond=row, instruments=None if MODEL_ONLY else asked_instruments(row),
                      guidance=GUIDANCE)


def measure(model, tok, spec, pieces, split, num: int, seconds: float, seed: int) -> dict:
    vocab = vocabulary(tok)
    valid_names = set(split["valid"])
    train = [p for p in pieces if p.name not in valid_names]
    valid = [p for p in pieces if p.name in valid_names]
    free = sample(model, tok, spec, num * 2, seconds, seed)  # no control given
    free_notes = [decode_ids(ids, tok).notes for ids in free]
    results: dict = {}

    def density(ids):
        return float(density_of_ids(np.asarray(ids)[None, 1:], vocab.note_on_ids,
                                    vocab.shift_steps, tok.steps_per_second)[0])

    if "key" in spec.names:
        labels = piece_controls(train, spec, tok).key
        common = [int(k) for k in np.argsort(-np.bincount(labels[labels < 24], minlength=24))[:4]]
        asked = common + [k for k in (3, 22) if k not in common][:2]  # Eb major, Bb minor: rare
        rows, hits = [], []
        for k in asked:
            heard = [estimate_key(decode_ids(ids, tok).notes) for ids in
                     sample(model, tok, spec, num, seconds, seed, key=KEY_NAMES[k])]
            share = float(np.mean([h == k for h in heard]))
            free_share = float(np.mean([estimate_key(n) == k for n in free_notes]))
            rows.append({"asked": KEY_NAMES[k], "match": share, "no_control": free_share})
            hits.append(share)
        # The estimator's own agreement with the stored labels on real music of that length.
        valid_keys = piece_controls(valid, spec, tok).key
        def opening(ids):
            notes = decode_ids(np.asarray(ids, dtype=np.int64), tok).notes
            return notes[notes["start_s"] < seconds]

        real = [estimate_key(opening(p.ids)) == k for p, k in zip(valid, valid_keys) if k < 24]
        results["key"] = {"match": float(np.mean(hits)), "settings": rows,
                          "estimator_on_real_valid": float(np.mean(real))}
    if "density" in spec.names:
        edges = np.array(spec.density_edges)
        centres = np.sqrt(edges[:-1] * edges[1:])  # the inner bins' geometric centres
        rows, hits = [], []
        for want in centres:
            got = [density(ids) for ids in sample(model, tok, spec, num, seconds, seed,
                                                  density=float(want))]
            share = float(np.mean([abs(g - want) <= 0.25 * want for g in got]))
            free_share = float(np.mean([abs(density(i) - want) <= 0.25 * want for i in free]))
            rows.append({"asked": round(float(want), 2), "within_25pct": share,
                         "median_heard": round(float(np.median(got)), 2),
                         "no_control": free_share})
            hits.append(share)
        results["density"] = {"within_25pct": float(np.mean(hits)), "settings": rows}
    if "instruments" in spec.names:
        sets = sorted({tuple(p.programs) for p in train}, key=lambda s: -sum(
            tuple(p.programs) == s for p in train))[:4]
        rows, hits = [], []
        for keys in sets:
            names = ",".join(str(k) for k in keys)
            notes = np.concatenate([decode_ids(ids, tok).notes for ids in sample(
                model, tok, spec, num, seconds, seed, instruments=names)])
            share = float(np.isin(notes["program"], keys).mean())
            free_all = np.concatenate(free_notes)
            rows.append({"asked": [spec.describe()["instruments"][spec.instruments.index(k)]
                                   for k in keys], "on_asked": share,
                         "no_control": float(np.isin(free_all["program"], keys).mean())})
            hits.append(share)
        results["instruments"] = {"on_asked": float(np.mean(hits)), "settings": rows}
    if "style" in spec.names:
        mapping = load_style_map(spec.styles_file) if spec.styles_file else None
        by_style: dict[str, list] = {}
        for p in train:
            by_style.setdefault(style_of(p, mapping), []).append(p.ids)
        by_style.pop(None, None)
        classifier = BigramStyles(by_style, tok)
        # Its own accuracy on real tunes cut to the samples' length bounds this measure.
        real = [(style_of(p, mapping), classifier.classify(opening_ids(p.ids, tok, seconds)))
                for p in valid if style_of(p, mapping) in by_style]
        rows, hits = [], []
        for style in spec.styles:
            named = [classifier.classify(ids) for ids in
                     sample(model, tok, spec, num, seconds, seed, style=style)]
            share = float(np.mean([n == style for n in named]))
            of_style = [got == want for want, got in real if want == style]
            rows.append({"asked": style, "classified_as_asked": share,
                         "no_control": float(np.mean([classifier.classify(i) == style
                                                      for i in free])),
                         "real_valid_pieces": len(of_style),
                         "classifier_on_real_valid": float(np.mean(of_style)) if of_style else None})
            if of_style:  # a style with no validation tune: the classifier is unchecked on it
                hits.append(share)
        checked = [r["classifier_on_real_valid"] for r in rows if r["real_valid_pieces"]]
        results["style"] = {"classified_as_asked": float(np.mean(hits)),
                            "classifier_on_real_valid": float(np.mean(checked)),
                            "classifier_on_real_valid_pooled": float(np.mean([a == b for a, b in real])),
                            "settings": rows}
    rows = piece_controls(valid, spec, tok).rows(spec)
    ids = [np.asarray(p.ids) for p in valid]
    given = nll_over_pieces(model, ids, controls=rows)["nll_per_event"]
    unknown = np.tile(asked_row(spec), (len(ids), 1))
    none = nll_over_pieces(model, ids, controls=unknown)["nll_per_event"]
    results["valid_nll"] = {"controls_given": given, "no_controls_given": none}
    columns = {"style": [STYLE], "key": [KEY], "density": [DENSITY],
               "instruments": list(range(3, COND_WIDTH))}
    for name in spec.names:  # what each control alone tells the model
        only = unknown.copy()
        only[:, columns[name]] = rows[:, columns[name]]
        results["valid_nll"][f"only_{name}_given"] = nll_over_pieces(
            model, ids, controls=only)["nll_per_event"]
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", choices=("nottingham", "pop909"), default="nottingham")
    parser.add_argument("--minutes", type=float, default=4.0, help="training budget")
    parser.add_argument("--controls", default=None, help="default: all the corpus can teach")
    parser.add_argument("--num", type=int, default=16, help="samples per setting")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each sample")
    parser.add_argument("--layers", type=int, default=1)  # 2 shared cores: more steps per minute
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--out", type=Path, default=None, help="keep the run and corpus here")
    parser.add_argument("--checkpoint", type=Path, default=None, help="measure this run instead")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--styles", choices=("collections", "forms"), default="collections",
                        help="Nottingham style labels: its collection folders, or the dance "
                             "forms of the one-form collections (a --styles file)")
    parser.add_argument("--guidance", type=float, nargs="+", default=[1.0],
                        help="measure at each classifier-free guidance scale (1: none)")
    parser.add_argument("--model-only", action="store_true",
                        help="sample without the sampler's instruments rule (what the network learned)")
    args = parser.parse_args()
    global MODEL_ONLY, GUIDANCE
    MODEL_ONLY = args.model_only
    if not CORPORA.is_dir():
        sys.exit(f"no shared corpora at {CORPORA}")
    out = args.out or Path(tempfile.mkdtemp(prefix="bench-controls-"))
    controls = args.controls or ("style,key,density,instruments" if args.corpus == "nottingham"
                                 else "key,density")
    folder = out / "corpus" if args.corpus == "nottingham" else CORPORA / "pop909" / "POP909"
    if args.corpus == "nottingham" and not folder.is_dir():
        nottingham_corpus(folder, args.seed)
    run = args.checkpoint
    began = time.perf_counter()
    if run is None:
        run = out / "run"
        start_run(folder, {"layers": args.layers, "hidden": args.hidden, "embed_dim": 64},
                  {"minutes": args.minutes, "seq_len": 128, "batch_size": 32, "eval_every": 100,
                   "seed": args.seed, "valid_events": 5000, "lr": 1e-2, "warmup_steps": 20,
                   # Nottingham's folders are collections of distinct tunes, not versions of
                   # one: split by file, so every collection has tunes on both sides.
                   "split_by": "file" if args.corpus == "nottingham" else "auto"},
                  {}, "cpu", run,
                  controls=tuple(controls.split(",")),
                  styles_file=forms_file(folder) if args.styles == "forms" and args.corpus == "nottingham" else None)
    train_s = time.perf_counter() - began
    model, tok, ckpt = load_model(run / "best.pt")
    spec = model_controls(model)
    pieces = [p for p in load_corpus(folder, tok).pieces
              if len(p.ids) >= 2]
    results = {}
    for guidance in args.guidance:
        GUIDANCE = guidance
        torch.manual_seed(args.seed)
        results[f"guidance {guidance:g}"] = measure(model, tok, spec, pieces, ckpt.split,
                                                    args.num, args.seconds, args.seed)
    results.update(corpus=args.corpus, controls=spec.names, train_steps=ckpt.step,
                   train_minutes=round(ckpt.train_config.get("seconds_used", train_s) / 60, 1),
                   model=f"{ckpt.model_config.layers} x {ckpt.model_config.hidden}",
                   samples_per_setting=args.num, sample_seconds=args.seconds, run=str(run),
                   measure_minutes=round((time.perf_counter() - began - train_s) / 60, 1))
    print(json.dumps(results, indent=1))
    (out / f"bench-controls-{args.corpus}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
