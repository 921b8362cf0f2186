"""Classifier-free guidance: follow the asked style and key more strongly than the model would.

Training hides each control part of the time, so one network predicts both p(x | controls)
and p(x | those hidden). Drawing from log p_u + g * (log p_c - log p_u) with g > 1 sharpens
what the controls change (Ho & Salimans 2022; for language models, Sanchez et al. 2023). The
price is a second batch through the network: each guided piece runs beside an unguided twin,
which is fed the same events, so the two stay on one history.

Only style and key are guided: the twin is asked the same density and instruments, so those
two are followed as trained. Guiding density too pushed pieces past the asked notes per
second (bench_controls.py: 97% within 25% unguided, 73% at scale 3), and instruments are a
rule of the sampler already (midigen.instrument_rule).
"""

from __future__ import annotations

import math

import numpy as np

from midigen.controls import KEY, STYLE, ControlSpec, unknown_row
from midigen.errors import MidigenError

MAX_GUIDANCE = 10.0
DEFAULT_GUIDANCE = 2.0  # bench/bench_controls.py --guidance: see README "Controls"


def check_guidance(guidance: float) -> float:
    if not (math.isfinite(guidance) and 0.0 <= guidance <= MAX_GUIDANCE):
        raise MidigenError(f"--guidance must be 0 to {MAX_GUIDANCE:g} (got {guidance}); "
                           "1 plays the model as trained, more follows the style and key harder")
    return float(guidance)


def guidance_for(asked: float | None, controls: dict) -> float:
    """The scale to sample with: the user's, else the default when a style or key is asked."""
    steered = bool(controls.get("style") or controls.get("key"))
    if asked is None:
        return DEFAULT_GUIDANCE if steered else 1.0
    if not steered:
        raise MidigenError("--guidance sets how hard to follow the asked style and key: "
                           "ask one too (--style or --key)")
    return check_guidance(asked)


def paired_rows(asked: np.ndarray, spec: ControlSpec) -> np.ndarray | None:
    """(2, COND_WIDTH): the asked controls, then the unguided twin's (style and key hidden);
    None when neither style nor key is asked, so there is nothing to guide."""
    asked = np.asarray(asked, dtype=np.int64)
    twin = asked.copy()
    hidden = unknown_row(spec)
    twin[[STYLE, KEY]] = hidden[[STYLE, KEY]]
    return None if np.array_equal(twin, asked) else np.stack([asked, twin])


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
