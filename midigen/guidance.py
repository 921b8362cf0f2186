"""Classifier-free guidance: play the asked controls more strongly than the model alone would.

Training hides each control part of the time, so one network predicts both p(x | controls)
and p(x | nothing given). Drawing from log p_u + g * (log p_c - log p_u) with g > 1 sharpens
what the controls change (Ho & Salimans 2022; for language models, Sanchez et al. 2023). The
price is a second batch through the network: each guided piece runs beside an unguided twin,
which is fed the same events, so the two stay on one history.
"""

from __future__ import annotations

import math

import numpy as np

from midigen.errors import MidigenError

MAX_GUIDANCE = 10.0
DEFAULT_GUIDANCE = 2.0  # bench/bench_controls.py --guidance: see README "Controls"


def check_guidance(guidance: float) -> float:
    if not (math.isfinite(guidance) and 0.0 <= guidance <= MAX_GUIDANCE):
        raise MidigenError(f"--guidance must be 0 to {MAX_GUIDANCE:g} (got {guidance}); "
                           "1 plays the model as trained, more follows the controls harder")
    return float(guidance)


def guidance_for(asked: float | None, controls: dict) -> float:
    """The scale to sample with: the user's, else the default when any control is asked."""
    if asked is None:
        return DEFAULT_GUIDANCE if controls else 1.0
    if not controls:
        raise MidigenError("--guidance sets how hard to follow the controls: ask one too "
                           "(--style, --key, --density or --instruments)")
    return check_guidance(asked)


def paired_rows(asked: np.ndarray, unguided: np.ndarray) -> np.ndarray:
    """(2, COND_WIDTH): the asked controls, then the row of the unguided twin."""
    return np.stack([np.asarray(asked, dtype=np.int64), np.asarray(unguided, dtype=np.int64)])


def log_softmax(logits: np.ndarray) -> np.ndarray:
    top = logits.max(axis=1, keepdims=True)
    shifted = logits - top
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def guided_logits(logits: np.ndarray, guidance: float) -> np.ndarray:
    """(2B, V) logits, the asked half first, -> the (B, V) guided log-probabilities."""
    half = len(logits) // 2
    logp = log_softmax(np.asarray(logits, dtype=np.float64))
    asked, free = logp[:half], logp[half:]
    return (free + guidance * (asked - free)).astype(np.float32)
