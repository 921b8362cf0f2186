"""The key of a piece: its 24 names, read from a written key signature or heard in the notes.

The key control needs a key for every piece with no labelling work. Where the score writes
one (a MIDI key-signature event; MusicXML, kern and ABC reach midigen as MIDI carrying theirs)
it is used, else the key is estimated Krumhansl-Schmuckler style: the duration-weighted
pitch-class histogram (drums left out) is correlated with the 24 rotations of the
Krumhansl-Kessler major and minor profiles, and the best one wins. A written signature names
a pair (relative major and minor) and MIDI files often leave its mode at "major", so the notes
choose within the pair; a signature the notes flatly contradict (a sequencer's default C major
over a piece in E) is ignored.

A key is an index: tonic pitch class + 12 for minor (0 = C major, 21 = A minor).
"""

from __future__ import annotations

import numpy as np

from midigen.errors import MidigenError
from midigen.events import PITCH_CLASS_NAMES

NUM_KEYS = 24
KEY_NAMES = tuple(f"{PITCH_CLASS_NAMES[k % 12]} {'minor' if k >= 12 else 'major'}"
                  for k in range(NUM_KEYS))
# Krumhansl & Kessler (1982) probe-tone ratings, tonic first.
MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# A written signature is kept unless some key fits the notes this much better (correlation).
SIGNATURE_TOLERANCE = 0.25

_TONICS = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def _profiles() -> np.ndarray:
    """(24, 12) profiles, each centred and scaled to unit length, for correlation by dot."""
    rows = [np.roll(MAJOR_PROFILE, k) for k in range(12)] + \
           [np.roll(MINOR_PROFILE, k) for k in range(12)]
    p = np.array(rows)
    p -= p.mean(axis=1, keepdims=True)
    return p / np.linalg.norm(p, axis=1, keepdims=True)


_PROFILES = _profiles()


def pitch_class_weights(notes: np.ndarray) -> np.ndarray:
    """(12,) seconds sounded per pitch class, drums left out (NOTE_DTYPE notes)."""
    pitched = notes[~notes["is_drum"]]
    durations = np.maximum(pitched["end_s"] - pitched["start_s"], 0.0)
    return np.bincount(pitched["pitch"].astype(np.int64) % 12, weights=durations, minlength=12)


def key_correlations(weights: np.ndarray) -> np.ndarray:
    """(24,) correlation of a pitch-class histogram with each key's profile (0 if flat)."""
    w = np.asarray(weights, dtype=np.float64) - np.mean(weights)
    norm = np.linalg.norm(w)
    return _PROFILES @ (w / norm) if norm > 0 else np.zeros(NUM_KEYS)


def estimate_key(notes: np.ndarray) -> int | None:
    """The key that best fits the notes (Krumhansl-Schmuckler); None without pitched notes."""
    weights = pitch_class_weights(notes)
    if weights.sum() <= 0:
        return None
    return int(np.argmax(key_correlations(weights)))


def signature_keys(sharps: int, minor: bool = False) -> tuple[int, int]:
    """(major key, minor key) a key signature names: sharps > 0, flats < 0."""
    major = (7 * int(sharps)) % 12
    pair = (major, 12 + (major + 9) % 12)
    return pair[::-1] if minor else pair


def piece_key(notes: np.ndarray, signature: tuple[int, int] | None = None) -> tuple[int | None, str]:
    """(key, where it came from: "score" or "notes"); (None, "none") without pitched notes.

    `signature` is (sharps, minor) of the score's first key signature, if it has one."""
    weights = pitch_class_weights(notes)
    if signature is not None:
        pair = signature_keys(*signature)
        if weights.sum() <= 0:
            return pair[0], "score"
        corr = key_correlations(weights)
        best = max(pair, key=lambda k: corr[k])
        if corr[best] >= corr.max() - SIGNATURE_TOLERANCE:
            return int(best), "score"
    if weights.sum() <= 0:
        return None, "none"
    return int(np.argmax(key_correlations(weights))), "notes"


def transpose_key(key: int, semitones: int) -> int:
    """The key `semitones` up (negative: down), mode kept."""
    return (key % 12 + semitones) % 12 + (12 if key >= 12 else 0)


def parse_key(text: str) -> int:
    """A key index from a name: "D minor", "Dm", "d", "F# major", "Bb", "Eb min" ..."""
    s = " ".join(str(text).strip().replace("♯", "#").replace("♭", "b").split())
    if not s or s[0].upper() not in _TONICS:
        raise MidigenError(f"unknown key {text!r}: give a tonic and a mode, e.g. \"D minor\"")
    tonic = _TONICS[s[0].upper()]
    rest = s[1:]
    while rest[:1] in ("#", "b"):
        tonic += 1 if rest[0] == "#" else -1
        rest = rest[1:]
    mode = rest.strip().lower()
    if mode in ("", "maj", "major", "dur"):
        minor = s[0].islower() and mode == ""  # "d" alone: D minor, as in German usage
    elif mode in ("m", "min", "minor", "moll"):
        minor = True
    else:
        raise MidigenError(f"unknown key {text!r}: the mode must be major or minor")
    return tonic % 12 + (12 if minor else 0)
