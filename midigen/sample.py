"""New pieces from a trained model: temperature, top-k / top-p, a primer, a seed, N at once.

All N pieces are one batch through `Stepper`, which carries the recurrent state from event
to event, so each step costs one event's worth of arithmetic whatever the length so far.
Each piece stops at END, after `max_events` new events, or after `seconds` of new music,
whichever comes first; a piece that has stopped keeps riding in the batch but its later
events are thrown away (cheaper than reshaping the batch, and it keeps seeded runs simple).

Grammar (on by default, `constrain=False` turns it off): per piece the sampler tracks the
current instrument and which (instrument, pitch) notes are sounding, exactly as `decode_ids`
will read them (notes held past `max_note_s` count as closed), and before each draw it rules
out what the decoder would have to repair: a NOTE_OFF of a pitch not sounding, a NOTE_ON of a
pitch already sounding, a second START. Small models put real mass on such events (an
orphan NOTE_OFF leaves the note it meant to end hanging: chords of 10+ notes); masking them
moves that mass to the events the model thinks next likeliest. `min_seconds` holds END back
until that much new music exists, since an undertrained model can say END after one chord.

Reproducibility: every random draw comes from one numpy Generator seeded with `seed`, so
the same checkpoint, options and seed give the same ids, and so byte-identical MIDI files
(on the same machine and thread count: float sums may round differently elsewhere).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch

from midigen.controls import model_controls
from midigen.errors import MidigenError
from midigen.events import EventType
from midigen.guidance import check_guidance, guided_logits, paired_rows
from midigen.instrument_rule import InstrumentRule
from midigen.length_rules import EndingRule, note_cap_drawer
from midigen.model import MusicRNN
from midigen.note_grammar import NoteGrammar
from midigen.sample_files import sample_to_files  # noqa: F401  (re-exported for callers)
from midigen.sample_limits import (  # noqa: F401  (length_limits, stop_reason: re-exported)
    MAX_SECONDS,
    check_options,
    event_limit,
    length_limits,
    stop_reason,
)
from midigen.stepper import Stepper
from midigen.tokenizer import TokenizerConfig
from midigen.vocabulary import vocabulary

PRIMER_CHUNK = 4096  # primer events per forward pass: a 1M-event primer took 4 GB in one


def next_ids(logits: np.ndarray, temperature: float, top_k: int | None, top_p: float | None,
             rng: np.random.Generator) -> np.ndarray:
    """One id per row of logits (B, V) float32: softmax(logits / temperature), cut to the
    top-k and/or the top-p nucleus (its mass counted over the whole vocabulary), then one
    draw each. Overwrites `logits`.

    The draw is an inverse-CDF lookup: one uniform number per row against the cumulative
    unnormalised weights, so no row is ever normalised. With a cut, the kept head is sorted
    first and the draw is made within it. numpy rather than torch: at batch 1 these dozen
    small ops cost ~10 us in numpy and ~60 us in torch's per-op dispatch.
    """
    batch, vocab_size = logits.shape
    top_k = None if top_k is None or top_k >= vocab_size else top_k
    top_p = None if top_p is None or top_p >= 1.0 else top_p
    if temperature != 1.0:
        np.multiply(logits, 1.0 / temperature, out=logits)
    np.subtract(logits, logits.max(axis=1, keepdims=True), out=logits)
    weights = np.exp(logits, out=logits)  # (B, V), the likeliest 1.0
    order = None
    if top_p is not None:
        mass = weights.sum(axis=1, keepdims=True, dtype=np.float64)
        order = np.argsort(-weights, axis=1, kind="stable")
    if top_k is not None:
        if order is None:
            head = np.argpartition(-weights, top_k - 1, axis=1)[:, :top_k]  # unordered
            by_weight = np.argsort(-np.take_along_axis(weights, head, 1), axis=1, kind="stable")
            order = np.take_along_axis(head, by_weight, 1)
        else:
            order = order[:, :top_k]
    if order is not None:
        weights = np.take_along_axis(weights, order, 1)  # (B, k or V), descending
    cdf = np.cumsum(weights, axis=1, dtype=np.float64)
    if top_p is not None:
        # The smallest head whose mass reaches top_p: tokens with less than top_p before
        # them (the likeliest always survives), less a hair so rounding cannot add one.
        kept = ((cdf - weights) < top_p * (1 - 1e-6) * mass).sum(axis=1)  # (B,) >= 1
        total = cdf[np.arange(batch), kept - 1]
    else:
        total = cdf[:, -1]
    # u * total < total, so the first entry of the cdf above it has weight > 0.
    u = rng.random(batch) * total
    pick = (cdf <= u[:, None]).sum(axis=1)  # (B,)
    if order is not None:
        pick = order[np.arange(batch), pick]
    return pick


def random_seed() -> int:
    """A fresh seed (reported to the user so a liked piece can be made again)."""
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


@torch.inference_mode()
def sample_ids(model: MusicRNN, tokenizer_config: TokenizerConfig, num: int = 1,
               max_events: int | None = None, seconds: float | None = None,
               temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               seed: int | None = None, primer_ids=None, constrain: bool = True,
               min_seconds: float | None = None, max_note_s: float | None = None,
               piece_quantiles_s: dict | None = None, note_quantiles_s: dict | None = None,
               cuda_graph: bool = False, cond: np.ndarray | None = None,
               instruments=None, guidance: float = 1.0) -> list[np.ndarray]:
    """`num` new pieces as id arrays: START, the primer (if any), then the sampled events.

    `max_events` and `seconds` count only the new events and the new music after the
    primer; the last TIME_SHIFT is shortened so a piece cut by `seconds` lasts exactly that.
    A piece that reached END ends with it; one cut by a limit does not. END is not drawn
    before a piece has at least one NOTE_ON, so no file comes out empty, nor before
    `min_seconds` of new music. `constrain` draws only events that decode without repair
    (see the module docstring); False samples the model's raw distribution. `max_note_s`
    (with `constrain`): no note of the current instrument sounds longer; where a drawn time
    shift would carry one past it, the note's NOTE_OFF is fed to the model instead.
    The training music's lengths (midigen.lengths, as saved in a checkpoint) switch on the
    rules of midigen.length_rules: `piece_quantiles_s` a per-piece target length for END,
    `note_quantiles_s` (with `constrain`) a per-note cap drawn from the corpus's longest notes.
    `cond`: the controls row (COND_WIDTH,) of a model that has them, for every piece
    (midigen.controls.asked_row). `instruments`: instrument keys (programs, DRUM_KEY) the
    pieces may use and no other (midigen.instrument_rule). `guidance` > 1 (with `cond`)
    follows the asked style and key harder than the model as trained (midigen.guidance).
    """
    check_options(temperature, top_k, top_p, num, max_events, seconds)
    if min_seconds is not None and not (math.isfinite(min_seconds) and 0 <= min_seconds <= MAX_SECONDS):
        raise MidigenError(f"min seconds must be 0 to {MAX_SECONDS:g} (got {min_seconds})")
    vocab = vocabulary(tokenizer_config)
    if vocab.size != model.config.vocab_size:
        raise MidigenError(f"the model predicts {model.config.vocab_size} symbols but its "
                           f"tokenizer has {vocab.size}: damaged checkpoint")
    max_events = event_limit(max_events, seconds)
    prefix = _prefix(primer_ids, vocab)
    device = next(model.parameters()).device
    rng = np.random.default_rng(random_seed() if seed is None else seed)
    model.eval()
    pair = (paired_rows(cond, model_controls(model))
            if cond is not None and check_guidance(guidance) != 1.0 else None)
    guided = pair is not None

    # The primer (or START) in one pass through the model; then one event at a time. The
    # network runs in torch (on any device); the draws and the bookkeeping run in numpy on
    # the host, where a small op costs a fraction of torch's dispatch.
    state = None
    rows = pair if guided else (None if cond is None else np.reshape(cond, (1, -1)))
    kw = {} if rows is None else {"cond": torch.as_tensor(rows, device=device)}
    for start in range(0, len(prefix), PRIMER_CHUNK):  # a long primer in flat memory
        chunk = torch.as_tensor(prefix[start:start + PRIMER_CHUNK], device=device)[None]
        logits, state = model(chunk.expand(2 if guided else 1, -1), state, **kw)  # (1|2, T, V)
    stepper = Stepper(model, cuda_graph=cuda_graph)  # a graph only on CUDA (same logits)
    logits = logits[:, -1].float().cpu().numpy()
    if guided:  # each piece beside its unguided twin: batch [asked x num | free x num]
        state = _repeat_state(state, num)
        stepper.reset(2 * num, state, kw["cond"].repeat_interleave(num, dim=0))
        logits = guided_logits(np.repeat(logits, num, axis=0), guidance)
    else:
        stepper.reset(num, state, kw.get("cond"))
        logits = np.repeat(logits, num, axis=0)  # (B, V)
    on_cpu = device.type == "cpu"

    out = np.empty((num, max_events), dtype=np.int64)
    lengths = np.full(num, max_events, dtype=np.int64)
    done = np.zeros(num, dtype=bool)
    shift_steps = vocab.shift_steps
    elapsed_steps = np.zeros(num, dtype=np.int64)
    limit_steps = None if seconds is None else math.ceil(seconds * tokenizer_config.steps_per_second)
    min_steps = 0 if min_seconds is None else math.ceil(min_seconds * tokenizer_config.steps_per_second)
    ending = None if not piece_quantiles_s else EndingRule(
        piece_quantiles_s, num, tokenizer_config.steps_per_second, vocab.size, rng, min_seconds)
    draw_caps = note_cap_drawer(note_quantiles_s or {}, rng)
    grammar = NoteGrammar(vocab, num, prefix, max_note_s, draw_caps) if constrain else None
    only = (InstrumentRule(vocab, instruments, num, prefix)
            if instruments is not None and tokenizer_config.use_programs else None)
    # END before any note would give an empty file: hold it back until a piece has a note.
    note_on_lo, note_on_hi = vocab.note_on_ids.start, vocab.note_on_ids.stop
    has_note = np.full(num, any(note_on_lo <= i < note_on_hi for i in prefix))
    all_have_notes = bool(has_note.all())
    first_shift = vocab.offset[EventType.TIME_SHIFT]
    shift_ids = slice(first_shift, first_shift + vocab.block_size[EventType.TIME_SHIFT])
    for t in range(max_events):
        if not all_have_notes:
            logits[~has_note, vocab.end_id] = -np.inf
            if limit_steps is not None:  # nor may silence alone use up the time limit
                room = limit_steps - 1 - elapsed_steps  # (B,)
                too_long = (shift_steps[None, shift_ids] > room[:, None]) & ~has_note[:, None]
                np.copyto(logits[:, shift_ids], -np.inf, where=too_long)
        if min_steps and elapsed_steps.min() < min_steps:
            logits[elapsed_steps < min_steps, vocab.end_id] = -np.inf
        if ending is not None:
            ending.apply(logits, elapsed_steps, vocab.end_id)
        if grammar is not None:
            grammar.mask(logits)
            logits[:, vocab.start_id] = -np.inf
        if only is not None:
            only.mask(logits)
        chosen = next_ids(logits, temperature, top_k, top_p, rng)  # (B,)
        if grammar is not None:
            chosen = grammar.cap_notes(chosen)
        if not all_have_notes:
            has_note |= (chosen >= note_on_lo) & (chosen < note_on_hi)
            all_have_notes = bool(has_note.all())
        stop = chosen == vocab.end_id
        if limit_steps is not None or min_steps or ending is not None:
            elapsed_steps += shift_steps[chosen]
        if limit_steps is not None:
            # A TIME_SHIFT past the limit is shortened to land on it, so a piece lasts
            # exactly `seconds` (TIME_SHIFT ids are offset + steps - 1, so subtract).
            overshoot = np.maximum(elapsed_steps - limit_steps, 0)
            chosen -= overshoot
            elapsed_steps -= overshoot
            stop |= elapsed_steps >= limit_steps
        if grammar is not None:
            grammar.update(chosen)
        if only is not None:
            only.update(chosen)
        out[:, t] = chosen
        if stop.any():
            lengths[stop & ~done] = t + 1
            done |= stop
            if done.all():
                break
        fed = np.concatenate([chosen, chosen]) if guided else chosen
        step_logits = stepper.step(torch.from_numpy(fed).to(device))
        logits = step_logits.numpy() if on_cpu else step_logits.float().cpu().numpy()
        if guided:
            logits = guided_logits(logits, guidance)

    head = np.asarray(prefix, dtype=np.int64)
    return [np.concatenate([head, out[b, :lengths[b]]]) for b in range(num)]


def _repeat_state(state, num: int):
    """A (L, 2, H) state of the two primed rows as (L, 2 * num, H): num copies of each."""
    if isinstance(state, tuple):
        return tuple(s.repeat_interleave(num, dim=1) for s in state)
    return state.repeat_interleave(num, dim=1)


def _prefix(primer_ids, vocab) -> list[int]:
    """START plus the primer's events, without its END (the model is to go on from there)."""
    if primer_ids is None:
        return [vocab.start_id]
    ids = [int(i) for i in primer_ids]
    if any(not 0 <= i < vocab.size for i in ids):
        raise MidigenError("primer holds ids outside the model's vocabulary")
    if ids and ids[-1] == vocab.end_id:
        ids = ids[:-1]
    if not ids or ids[0] != vocab.start_id:
        ids = [vocab.start_id] + ids
    return ids
