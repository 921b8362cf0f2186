"""Musical statistics of pieces, and how far a set of pieces lies from a reference corpus.

Every feature becomes a histogram on fixed bins per piece, so one pair of distances serves
them all (Yang & Lerch 2020, "On the evaluation of generative models in music"):
- overlap: the overlapping area sum(min(p, q)) of two normalised histograms (1 = identical, 0 = disjoint);
- kl: KL(candidate || reference) in nats, histograms smoothed by EPSILON per bin (0 = identical).
Note-level features (pitch, pitch class, velocity, duration, inter-onset interval, polyphony,
instrument) give a real distribution per piece; piece-level scalars (range ends, density,
mean polyphony) give one count per piece, so their "distribution" is across pieces.

A distance alone means little, so it is printed next to the corpus's own spread: each corpus
piece against the rest of the corpus (leave-one-out). A sample whose distance to the corpus
is within that spread is "inside" the corpus for that feature.
"""

from __future__ import annotations

import numpy as np

from midigen.errors import MidigenError
from midigen.events import DRUM_KEY, PITCH_CLASS_NAMES, instrument_keys

EPSILON = 1e-4
TIME_EDGES_S = np.geomspace(0.01, 10.0, 25)  # log bins for durations and inter-onset intervals

# name -> number of bins; the order is the order of tables and JSON.
NOTE_FEATURES = {"pitch": 128, "pitch_class": 12, "velocity": 16, "duration": 24, "ioi": 24,
                 "polyphony": 16, "instrument": 129}
SCALAR_BINS = {"pitch_low": np.arange(129) - 0.5, "pitch_high": np.arange(129) - 0.5,
               "pitch_span": np.arange(129) - 0.5, "note_density": np.arange(0, 32.5, 0.5),
               "mean_polyphony": np.arange(0, 8.25, 0.25)}


def instrument_name(key: int) -> str:
    """The General MIDI name of an instrument key (program 0..127, or 128 for drums)."""
    from midigen.midi_io import instrument_name as gm_name

    return gm_name(key & 127, key == DRUM_KEY)


def _time_bin(values_s: np.ndarray) -> np.ndarray:
    return np.clip(np.searchsorted(TIME_EDGES_S, values_s, side="right") - 1, 0, 23)


def polyphony_levels(notes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """How many notes sound at once, and for how long (s): levels >= 1 with their total time."""
    if len(notes) == 0:
        return np.zeros(0, np.int64), np.zeros(0)
    times = np.concatenate([notes["start_s"], notes["end_s"]])
    delta = np.concatenate([np.ones(len(notes), np.int64), -np.ones(len(notes), np.int64)])
    order = np.lexsort((delta, times))  # at one instant, releases before onsets
    times, delta = times[order], delta[order]
    level = np.cumsum(delta)[:-1]
    span = np.diff(times)
    keep = (level > 0) & (span > 0)
    return level[keep], span[keep]


def piece_stats(notes: np.ndarray, name: str = "") -> dict:
    """Per-piece statistics (readable numbers) and the per-feature histograms behind the distances."""
    pitched = notes[~notes["is_drum"]]
    duration_s = float(notes["end_s"].max()) if len(notes) else 0.0
    hist = {}
    pitch = pitched["pitch"].astype(np.int64)
    hist["pitch"] = np.bincount(pitch, minlength=128)[:128].astype(float)
    hist["pitch_class"] = np.bincount(pitch % 12, minlength=12).astype(float)
    velocity = notes["velocity"].astype(np.int64)
    hist["velocity"] = np.bincount(np.clip(velocity, 0, 127) // 8, minlength=16).astype(float)
    lengths_s = (notes["end_s"] - notes["start_s"]).astype(float)
    hist["duration"] = np.bincount(_time_bin(lengths_s), minlength=24).astype(float)
    onsets = np.unique(notes["start_s"])
    ioi_s = np.diff(onsets)
    hist["ioi"] = np.bincount(_time_bin(ioi_s), minlength=24).astype(float)
    level, span = polyphony_levels(pitched)
    hist["polyphony"] = np.bincount(np.minimum(level, 16) - 1, weights=span,
                                    minlength=16).astype(float) if len(level) else np.zeros(16)
    inst = instrument_keys(notes)
    hist["instrument"] = np.bincount(inst, minlength=129).astype(float)

    poly_mean = float((level * span).sum() / span.sum()) if len(level) else None
    pc = hist["pitch_class"]
    readable = {
        "name": name,
        "num_notes": len(notes),
        "duration_s": duration_s,
        "pitch_low": int(pitch.min()) if len(pitch) else None,
        "pitch_high": int(pitch.max()) if len(pitch) else None,
        "pitch_span": int(pitch.max() - pitch.min()) if len(pitch) else None,
        "pitch_class_histogram": dict(zip(PITCH_CLASS_NAMES, (pc / max(pc.sum(), 1)).round(4).tolist())),
        "note_density": len(notes) / duration_s if duration_s > 0 else None,
        "mean_polyphony": poly_mean,
        "max_polyphony": int(level.max()) if len(level) else 0,
        "velocity_mean": float(velocity.mean()) if len(notes) else None,
        "velocity_std": float(velocity.std()) if len(notes) else None,
        "duration_median_s": float(np.median(lengths_s)) if len(notes) else None,
        "ioi_median_s": float(np.median(ioi_s)) if len(ioi_s) else None,
        "instruments": {instrument_name(int(k)): int(hist["instrument"][k])
                        for k in np.flatnonzero(hist["instrument"])},
    }
    for key, edges in SCALAR_BINS.items():
        h = np.zeros(len(edges) - 1)
        value = readable[key]
        if value is not None:
            h[int(np.clip(np.searchsorted(edges, value, side="right") - 1, 0, len(h) - 1))] = 1.0
        hist[key] = h
    return {"stats": readable, "hist": hist}


def _normalise_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows scaled to sum 1, and which rows had any mass at all."""
    totals = rows.sum(axis=1, keepdims=True)
    has = totals[:, 0] > 0
    return np.where(totals > 0, rows / np.maximum(totals, 1e-300), 0.0), has


def overlap(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Overlapping area of normalised histograms (last axis): 1 identical, 0 disjoint."""
    return np.minimum(p, q).sum(axis=-1)


def kl_divergence(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """KL(p || q) in nats over the last axis, both smoothed by EPSILON per bin."""
    bins = p.shape[-1]
    ps = (p + EPSILON) / (1 + bins * EPSILON)
    qs = (q + EPSILON) / (1 + bins * EPSILON)
    return (ps * np.log(ps / qs)).sum(axis=-1)


def feature_matrix(analysed: list[dict], feature: str) -> tuple[np.ndarray, np.ndarray]:
    rows = np.stack([a["hist"][feature] for a in analysed])
    return _normalise_rows(rows)


def _spread(values: np.ndarray) -> dict | None:
    if len(values) == 0:
        return None
    return {"mean": float(values.mean()), "p5": float(np.percentile(values, 5)),
            "p95": float(np.percentile(values, 95))}


def compare_feature(candidates: list[dict], reference: list[dict], feature: str) -> dict:
    """Distances of one feature: the candidate set and each candidate piece against the reference,
    and the reference's own leave-one-out spread."""
    cand, cand_has = feature_matrix(candidates, feature)
    ref, ref_has = feature_matrix(reference, feature)
    cand, ref = cand[cand_has], ref[ref_has]
    if len(cand) == 0 or len(ref) == 0:
        return {"overlap": None, "kl": None, "piece_overlap_mean": None, "piece_kl_mean": None,
                "corpus_loo_overlap": None, "corpus_loo_kl": None, "pieces_inside": None}
    ref_pooled, cand_pooled = ref.mean(axis=0), cand.mean(axis=0)
    piece_overlap = overlap(cand, ref_pooled)
    piece_kl = kl_divergence(cand, ref_pooled)
    result = {
        "overlap": float(overlap(cand_pooled, ref_pooled)),
        "kl": float(kl_divergence(cand_pooled, ref_pooled)),
        "piece_overlap_mean": float(piece_overlap.mean()),
        "piece_kl_mean": float(piece_kl.mean()),
        "corpus_loo_overlap": None, "corpus_loo_kl": None, "pieces_inside": None,
    }
    if len(ref) >= 2:
        rest = (ref.sum(axis=0, keepdims=True) - ref) / (len(ref) - 1)
        loo_overlap, loo_kl = overlap(ref, rest), kl_divergence(ref, rest)
        result["corpus_loo_overlap"] = _spread(loo_overlap)
        result["corpus_loo_kl"] = _spread(loo_kl)
        inside = (piece_overlap >= np.percentile(loo_overlap, 5)) & \
                 (piece_kl <= np.percentile(loo_kl, 95))
        result["pieces_inside"] = float(inside.mean())
    return result


FEATURES = tuple(NOTE_FEATURES) + tuple(SCALAR_BINS)


def compare_sets(candidates: list[dict], reference: list[dict]) -> dict:
    """compare_feature for every feature (analysed pieces come from piece_stats)."""
    if not candidates or not reference:
        raise MidigenError("both sets need at least one piece with notes to compare")
    return {f: compare_feature(candidates, reference, f) for f in FEATURES}


def summarise(analysed: list[dict]) -> dict:
    """Set-level statistics: means of the per-piece numbers, pooled note-level histograms."""
    if not analysed:
        raise MidigenError("no piece with notes to summarise")
    stats = [a["stats"] for a in analysed]

    def mean_of(key):
        values = [s[key] for s in stats if s[key] is not None]
        return float(np.mean(values)) if values else None

    pc, has = feature_matrix(analysed, "pitch_class")
    pooled_pc = pc[has].mean(axis=0) if has.any() else np.zeros(12)
    instruments: dict[str, int] = {}
    for s in stats:
        for k, v in s["instruments"].items():
            instruments[k] = instruments.get(k, 0) + v
    lows = [s["pitch_low"] for s in stats if s["pitch_low"] is not None]
    highs = [s["pitch_high"] for s in stats if s["pitch_high"] is not None]
    return {
        "num_pieces": len(stats),
        "num_notes": int(sum(s["num_notes"] for s in stats)),
        "duration_s": float(sum(s["duration_s"] for s in stats)),
        "pitch_low": min(lows) if lows else None,
        "pitch_high": max(highs) if highs else None,
        **{f"{k}_mean": mean_of(k) for k in ("pitch_span", "note_density", "mean_polyphony",
                                              "velocity_mean", "duration_median_s",
                                              "ioi_median_s")},
        "max_polyphony": max(s["max_polyphony"] for s in stats),
        "pitch_class_histogram": dict(zip(PITCH_CLASS_NAMES, pooled_pc.round(4).tolist())),
        "instruments": dict(sorted(instruments.items(), key=lambda kv: -kv[1])),
    }


SPREAD_STATS = ("duration_s", "num_notes", "pitch_low", "pitch_high", "pitch_span",
                "note_density", "mean_polyphony", "max_polyphony", "velocity_mean",
                "duration_median_s", "ioi_median_s")


def stat_spread(analysed: list[dict]) -> dict:
    """Per readable statistic, where a set's pieces lie: {p5, median, p95} (None if no piece
    has it), so one piece's number can be read against a corpus's usual range."""
    spread = {}
    for key in SPREAD_STATS:
        values = np.array([a["stats"][key] for a in analysed if a["stats"][key] is not None],
                          dtype=float)
        spread[key] = None if not len(values) else dict(zip(
            ("p5", "median", "p95"), np.percentile(values, [5, 50, 95]).tolist()))
    return spread
