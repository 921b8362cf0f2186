"""How a MIDI file's ticks become sounding notes: the tempo map and the sustain pedal.

Both are vectorised (numpy over every note of a track at once): corpora hold tens of
thousands of files, and a per-note loop in Python cost more than parsing the file.
"""

from __future__ import annotations

import numpy as np

MIN_BPM, MAX_BPM = 1.0, 6000.0  # clamp for tempo events, MIDI allows 3.6 bpm .. infinity


def tempo_map(tempos: dict, tpq: int):
    """A vectorised ticks -> seconds function (float64) and the first tempo in bpm."""
    times = tempos["time"].astype(np.int64)
    mspq = tempos["mspq"].astype(np.float64)
    order = np.argsort(times, kind="stable")
    times, mspq = times[order], mspq[order]
    mspq = np.clip(mspq, 60e6 / MAX_BPM, 60e6 / MIN_BPM)
    if len(times) == 0 or times[0] > 0:  # MIDI's default tempo holds until the first change
        times = np.concatenate([[0], times])
        mspq = np.concatenate([[500_000.0], mspq])
    # At equal ticks the last tempo wins.
    keep = np.append(times[1:] != times[:-1], True)
    times, mspq = times[keep], mspq[keep]
    seconds_per_tick = mspq / 1e6 / tpq
    seconds_at = np.concatenate([[0.0], np.cumsum(np.diff(times) * seconds_per_tick[:-1])])
    first_bpm = float(60e6 / mspq[0])

    def ticks_to_s(ticks: np.ndarray) -> np.ndarray:
        i = np.searchsorted(times, ticks, side="right") - 1
        return seconds_at[i] + (ticks - times[i]) * seconds_per_tick[i]

    return ticks_to_s, first_bpm


def apply_sustain(start: np.ndarray, end: np.ndarray, pitch: np.ndarray,
                  pedal_start: np.ndarray, pedal_end: np.ndarray) -> np.ndarray:
    """Note ends as a pianist hears them with the sustain pedal (any time unit).

    A note released while the pedal is down (pedal_start <= end < pedal_end) keeps sounding
    until the pedal lifts, or until the next onset of the same pitch if that is earlier.
    Notes are never shortened.
    """
    order = np.argsort(pedal_start, kind="stable")
    pedal_start, pedal_end = pedal_start[order], pedal_end[order]
    i = np.searchsorted(pedal_start, end, side="right") - 1
    held = (i >= 0) & (end < pedal_end[np.maximum(i, 0)])
    if not held.any():
        return end
    lifted = np.where(held, pedal_end[np.maximum(i, 0)], end)

    # Next onset of the same pitch: sort by (pitch, start) and look one ahead.
    by_pitch = np.lexsort((start, pitch))
    next_onset = np.full(len(start), np.iinfo(np.int64).max, dtype=np.int64)
    same = pitch[by_pitch][1:] == pitch[by_pitch][:-1]
    following = start[by_pitch][1:].astype(np.int64)
    next_onset[by_pitch[:-1][same]] = following[same]
    return np.maximum(end, np.minimum(lifted, next_onset))
