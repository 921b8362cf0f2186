"""How long the training music's notes and pieces are: measured at training time, saved in the
checkpoint, and read by the sampler for its defaults.

The sampler needs two things a model does not reliably know: when a note has sounded for
longer than any note of its music (a model that lost track of a note leaves it hanging until
the decoder's 10 s cap: a stuck note), and how long a piece of its music is (so, with no
length given, a piece ends by itself at a length its music has). Both come from the training
split's own distributions, never from constants tuned to one corpus.
"""

from __future__ import annotations

import numpy as np

from midigen.tokenizer import TokenizerConfig, decode_ids

MAX_EVENTS_MEASURED = 400_000  # note lengths come from a seeded sample of pieces this large
QUANTILES = {"p5": 0.05, "p50": 0.5, "p95": 0.95, "p99": 0.99, "p99.9": 0.999, "max": 1.0}


def _quantiles(values: np.ndarray) -> dict:
    if not len(values):
        return {}
    return {name: round(float(np.quantile(values, q)), 3) for name, q in QUANTILES.items()}


def note_lengths_s(ids_list, config: TokenizerConfig) -> np.ndarray:
    """Every note's length in seconds, over pieces given as id arrays."""
    lengths = [decoded.notes["end_s"] - decoded.notes["start_s"]
               for decoded in (decode_ids(ids, config) for ids in ids_list)]
    return np.concatenate(lengths) if lengths else np.zeros(0)


def length_stats(pieces, config: TokenizerConfig, seed: int = 0) -> dict:
    """Quantiles of note length (s), piece length (s) and piece length (events) of `pieces`
    (objects with .ids and .duration_s), as plain data for a checkpoint.

    Note lengths are measured on a seeded sample of at most MAX_EVENTS_MEASURED events, so a
    large corpus costs seconds, not minutes; the share of notes at or above the p99.9 length
    is kept too, since ties at a quantile (many notes exactly 2.0 s) make it more than 0.1%.
    """
    order = np.random.default_rng(seed).permutation(len(pieces))
    chosen, total = [], 0
    for i in order:
        if total >= MAX_EVENTS_MEASURED:
            break
        chosen.append(pieces[i].ids)
        total += len(pieces[i].ids)
    notes_s = note_lengths_s(chosen, config)
    notes = _quantiles(notes_s)
    if notes:
        notes["share_at_or_above_p99.9"] = round(float((notes_s >= notes["p99.9"]).mean()), 6)
        notes["measured"] = len(notes_s)
    return {
        "note_s": notes,
        "piece_s": _quantiles(np.array([p.duration_s for p in pieces], dtype=float)),
        "piece_events": _quantiles(np.array([len(p.ids) for p in pieces], dtype=float)),
    }
