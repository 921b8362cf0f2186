"""The sampler's length rules come from the lengths saved in a checkpoint: per-piece target
lengths for END, per-note caps from the corpus's longest notes."""

from __future__ import annotations

import numpy as np
import torch
from test_sample import SMALL, tiny_model

from midigen.events import EventType
from midigen.length_rules import EndingRule, quantile_draw
from midigen.sample import sample_ids
from midigen.tokenizer import decode_ids, vocabulary

PIECES_3_TO_5 = {"p5": 3.0, "p50": 4.0, "p95": 5.0, "p99": 6.0, "p99.9": 6.5, "max": 7.0}


def _clock_s(ids) -> float:
    """Seconds of music in a piece: its time shifts added up."""
    first = vocabulary(SMALL).offset[EventType.TIME_SHIFT]
    ids = np.asarray(ids)
    shifts = np.where((ids >= first) & (ids < first + SMALL.max_shift_steps), ids - first + 1, 0)
    return float(shifts.sum()) / SMALL.steps_per_second


def test_quantile_draws_stay_between_the_chosen_levels():
    rng = np.random.default_rng(0)
    drawn = quantile_draw(PIECES_3_TO_5, 0.05, 0.95, rng, 2000)
    assert drawn.min() >= 3.0 and drawn.max() <= 5.0
    assert abs(np.median(drawn) - 4.0) < 0.1  # the median sits at the saved p50
    tail = quantile_draw(PIECES_3_TO_5, 0.99, 1.0, rng, 2000)
    assert tail.min() >= 6.0 and tail.max() <= 7.0 and (tail >= 6.5).mean() < 0.2


def _eager_to_end(model):
    with torch.no_grad():  # a model that says END whenever it may
        model.head.bias[vocabulary(SMALL).end_id] = 8.0
    return model


def test_end_waits_for_a_target_drawn_from_the_saved_piece_lengths():
    model = _eager_to_end(tiny_model())
    end_id = vocabulary(SMALL).end_id
    for pieces_s in (PIECES_3_TO_5, {k: 3 * v for k, v in PIECES_3_TO_5.items()}):
        pieces = sample_ids(model, SMALL, num=12, max_events=3000, seed=0,
                            piece_quantiles_s=pieces_s)
        lengths_s = [_clock_s(ids) for ids in pieces]
        assert all(ids[-1] == end_id for ids in pieces)  # END stops every piece ...
        step = 1 / SMALL.steps_per_second + SMALL.max_shift_steps / SMALL.steps_per_second
        assert min(lengths_s) >= pieces_s["p5"]  # ... not before its target ...
        assert max(lengths_s) <= pieces_s["p95"] + step  # ... and right after it
        assert len(set(lengths_s)) > 3  # targets differ from piece to piece


def test_a_model_that_rarely_says_end_is_pushed_to_end_after_its_target():
    model = tiny_model()
    end_id = vocabulary(SMALL).end_id
    with torch.no_grad():
        model.head.bias[end_id] = -4.0
    pieces = sample_ids(model, SMALL, num=8, max_events=4000, seed=1, piece_quantiles_s=PIECES_3_TO_5)
    assert all(ids[-1] == end_id for ids in pieces)
    assert all(3.0 <= _clock_s(ids) <= 3 * 5.0 for ids in pieces)


def test_the_push_towards_end_grows_after_the_target():
    rule = EndingRule(PIECES_3_TO_5, 2, SMALL.steps_per_second, 40, np.random.default_rng(0))
    logits = np.zeros((2, 40), dtype=np.float32)
    rule.apply(logits, rule.target_steps - 1, end_id=1)
    assert np.isneginf(logits[:, 1]).all()  # ruled out before the target
    boosts = []
    for extra in (0, 4, 8):
        logits = np.zeros((2, 40), dtype=np.float32)
        rule.apply(logits, rule.target_steps + extra, end_id=1)
        boosts.append(logits[:, 1].copy())
    assert (boosts[0] == 0).all() and (boosts[1] > 0).all() and (boosts[2] > boosts[1]).all()


def test_note_caps_follow_the_saved_note_lengths():
    model = tiny_model()
    vocab = vocabulary(SMALL)
    first_shift = vocab.offset[EventType.TIME_SHIFT]
    with torch.no_grad():  # time passes much more often than notes end: notes would hang
        model.head.bias[first_shift:first_shift + SMALL.max_shift_steps] += 3.0

    def note_lengths(note_s):
        pieces = sample_ids(model, SMALL, num=6, max_events=400, seed=3, note_quantiles_s=note_s)
        return np.concatenate([n["end_s"] - n["start_s"] for n in
                               (decode_ids(ids, SMALL).notes for ids in pieces)])

    free = note_lengths(None)
    short = note_lengths({"p99": 0.5, "p99.9": 0.5, "max": 0.5})
    longer = note_lengths({"p99": 0.5, "p99.9": 1.0, "max": 1.5})
    assert free.max() > 2.0  # notes hang without the rule ...
    assert short.max() <= 0.5 and len(short) > 20  # ... no note outlasts the corpus's longest ...
    assert longer.max() <= 1.5 and (longer > 0.5).any()  # ... whichever corpus it came from
