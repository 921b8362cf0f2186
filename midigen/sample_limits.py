"""The sampler's rules apart from its loop: valid options and how long pieces may be."""

from __future__ import annotations

import math

from midigen.errors import MidigenError

DEFAULT_MAX_EVENTS = 2000
MAX_EVENTS = 1_000_000  # per piece: what decoding handles in seconds (see `midigen decode`)
MAX_SECONDS = 12 * 3600.0  # per piece, as for pieces read (midi_io.MAX_PIECE_HOURS)
EVENTS_PER_SECOND_CAP = 200  # with only --seconds, a model that never moves time still stops


def check_options(temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                  num: int = 1, max_events: int | None = None, seconds: float | None = None
                  ) -> None:
    """Raise MidigenError with one line for sampling options that make no sense."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
            and temperature > 0):
        raise MidigenError(f"temperature must be a number above 0 (got {temperature}); "
                           "1.0 samples the model as trained, lower is more conservative")
    if top_k is not None and top_k < 1:
        raise MidigenError(f"top-k must be at least 1 (got {top_k})")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise MidigenError(f"top-p must be in (0, 1] (got {top_p})")
    if num < 1:
        raise MidigenError(f"number of pieces must be at least 1 (got {num})")
    if max_events is not None and not 1 <= max_events <= MAX_EVENTS:
        raise MidigenError(f"max events must be 1 to {MAX_EVENTS:,} (got {max_events:,})")
    if seconds is not None and not (math.isfinite(seconds) and seconds > 0):
        raise MidigenError(f"seconds must be above 0 (got {seconds})")
    if seconds is not None and seconds > MAX_SECONDS:
        raise MidigenError(f"seconds must be at most {MAX_SECONDS:g} (12 hours; got {seconds:g})")


def event_limit(max_events: int | None, seconds: float | None) -> int:
    """New events a piece may have: `max_events`, else enough for `seconds`, else 2000."""
    if max_events is not None:
        return max_events
    if seconds is None:
        return DEFAULT_MAX_EVENTS
    return min(MAX_EVENTS, max(DEFAULT_MAX_EVENTS, math.ceil(seconds * EVENTS_PER_SECOND_CAP)))


def length_limits(lengths: dict, seconds: float | None, max_events: int | None,
                  min_seconds: float | None) -> dict:
    """The sampler's length settings: the user's where given, else from the training music's
    lengths saved in the checkpoint (midigen.lengths; empty for older checkpoints).

    With neither `seconds` nor `max_events`, a piece ends when the model says END, not before
    a target length drawn from the training pieces' lengths (`piece_quantiles_s`, see
    midigen.length_rules), and is cut at their longest (`longest`), with twice the longest
    piece's events as a net for a model that stops moving time. Notes never sound longer than
    the longest training note, nor than a cap drawn per note from the longest training notes.
    """
    piece_s, piece_events = lengths.get("piece_s", {}), lengths.get("piece_events", {})
    open_ended = seconds is None and max_events is None
    longest = piece_s.get("max") if open_ended else None
    if open_ended and piece_events.get("max"):
        max_events = min(MAX_EVENTS, max(DEFAULT_MAX_EVENTS, 2 * int(piece_events["max"])))
    if min_seconds is None and open_ended:
        min_seconds = piece_s.get("p5")
    note_s = lengths.get("note_s", {})
    return {"seconds": seconds if longest is None else longest, "longest": longest,
            "max_events": max_events, "min_seconds": min_seconds,
            "max_note_s": note_s.get("max"),
            "piece_quantiles_s": piece_s if open_ended and "p5" in piece_s else None,
            "note_quantiles_s": note_s or None}


def stop_reason(ids, end_id: int, num_primer: int, limits: dict) -> str:
    """How a sampled piece ended: END (the model), events (the event limit), longest (the
    training music's longest piece) or seconds (the user's limit)."""
    if len(ids) and ids[-1] == end_id:
        return "END"
    if len(ids) - num_primer >= event_limit(limits["max_events"], limits["seconds"]):
        return "events"
    return "longest" if limits["longest"] is not None else "seconds"
