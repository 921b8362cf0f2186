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

import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from midigen.errors import MidigenError
from midigen.events import EventType
from midigen.model import MusicRNN
from midigen.stepper import Stepper
from midigen.tokenizer import TokenizerConfig, decode_ids, encode_notes
from midigen.vocabulary import NoteGrammar, vocabulary

DEFAULT_MAX_EVENTS = 2000
MAX_EVENTS = 1_000_000  # per piece: what decoding handles in seconds (see `midigen decode`)
MAX_SECONDS = 12 * 3600.0  # per piece, as for pieces read (midi_io.MAX_PIECE_HOURS)
PRIMER_CHUNK = 4096  # primer events per forward pass: a 1M-event primer took 4 GB in one
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


def event_limit(max_events: int | None, seconds: float | None) -> int:
    """New events a piece may have: `max_events`, else enough for `seconds`, else 2000."""
    if max_events is not None:
        return max_events
    if seconds is None:
        return DEFAULT_MAX_EVENTS
    return min(MAX_EVENTS, max(DEFAULT_MAX_EVENTS, math.ceil(seconds * EVENTS_PER_SECOND_CAP)))


def random_seed() -> int:
    """A fresh seed (reported to the user so a liked piece can be made again)."""
    return int.from_bytes(os.urandom(4), "little") & 0x7FFFFFFF


@torch.inference_mode()
def sample_ids(model: MusicRNN, tokenizer_config: TokenizerConfig, num: int = 1,
               max_events: int | None = None, seconds: float | None = None,
               temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
               seed: int | None = None, primer_ids=None, constrain: bool = True,
               min_seconds: float | None = None, max_note_s: float | None = None,
               cuda_graph: bool = False) -> list[np.ndarray]:
    """`num` new pieces as id arrays: START, the primer (if any), then the sampled events.

    `max_events` and `seconds` count only the new events and the new music after the
    primer; the last TIME_SHIFT is shortened so a piece cut by `seconds` lasts exactly that.
    A piece that reached END ends with it; one cut by a limit does not. END is not drawn
    before a piece has at least one NOTE_ON, so no file comes out empty, nor before
    `min_seconds` of new music. `constrain` draws only events that decode without repair
    (see the module docstring); False samples the model's raw distribution. `max_note_s`
    (with `constrain`): no note of the current instrument sounds longer; where a drawn time
    shift would carry one past it, the note's NOTE_OFF is fed to the model instead.
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

    # The primer (or START) in one pass through the model; then one event at a time. The
    # network runs in torch (on any device); the draws and the bookkeeping run in numpy on
    # the host, where a small op costs a fraction of torch's dispatch.
    state = None
    for start in range(0, len(prefix), PRIMER_CHUNK):  # a long primer in flat memory
        chunk = torch.as_tensor(prefix[start:start + PRIMER_CHUNK], device=device)[None]
        logits, state = model(chunk, state)  # (1, T, V)
    stepper = Stepper(model, cuda_graph=cuda_graph)  # a graph only on CUDA (same logits)
    stepper.reset(num, state)
    logits = np.repeat(logits[:, -1].float().cpu().numpy(), num, axis=0)  # (B, V)
    on_cpu = device.type == "cpu"

    out = np.empty((num, max_events), dtype=np.int64)
    lengths = np.full(num, max_events, dtype=np.int64)
    done = np.zeros(num, dtype=bool)
    shift_steps = vocab.shift_steps
    elapsed_steps = np.zeros(num, dtype=np.int64)
    limit_steps = None if seconds is None else math.ceil(seconds * tokenizer_config.steps_per_second)
    min_steps = 0 if min_seconds is None else math.ceil(min_seconds * tokenizer_config.steps_per_second)
    grammar = NoteGrammar(vocab, num, prefix, max_note_s) if constrain else None
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
        if grammar is not None:
            grammar.mask(logits)
            logits[:, vocab.start_id] = -np.inf
        chosen = next_ids(logits, temperature, top_k, top_p, rng)  # (B,)
        if grammar is not None:
            chosen = grammar.cap_notes(chosen)
        if not all_have_notes:
            has_note |= (chosen >= note_on_lo) & (chosen < note_on_hi)
            all_have_notes = bool(has_note.all())
        stop = chosen == vocab.end_id
        if limit_steps is not None or min_steps:
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
        out[:, t] = chosen
        if stop.any():
            lengths[stop & ~done] = t + 1
            done |= stop
            if done.all():
                break
        step_logits = stepper.step(torch.from_numpy(chosen).to(device))
        logits = step_logits.numpy() if on_cpu else step_logits.float().cpu().numpy()

    head = np.asarray(prefix, dtype=np.int64)
    return [np.concatenate([head, out[b, :lengths[b]]]) for b in range(num)]


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


def primer_to_ids(path: str | os.PathLike, config: TokenizerConfig,
                  primer_seconds: float | None = None) -> np.ndarray:
    """The ids of a score's opening (its first piece): START, the events of the first
    `primer_seconds` (all of it when None), no END, so a sampled piece continues it.

    The cut is made in the event line, not on the notes: notes sounding at the cut stay
    open, and the model decides how long they last.
    """
    from midigen.midi_io import read_score

    try:
        pieces = read_score(path)
    except MidigenError as e:  # the reader's reasons are short; say which file
        raise MidigenError(f"primer {path}: {e}") from None
    if not pieces or not len(pieces[0].notes):
        raise MidigenError(f"primer {path} holds no notes")
    ids = encode_notes(pieces[0].notes, config)[:-1]  # drop END
    if len(ids) <= 1:
        raise MidigenError(f"primer {path} holds no notes this model's vocabulary can spell")
    if primer_seconds is not None:
        if not primer_seconds > 0:
            raise MidigenError(f"primer seconds must be above 0 (got {primer_seconds})")
        clock = np.cumsum(vocabulary(config).shift_steps[ids])  # steps after each id
        ids = ids[clock <= round(min(primer_seconds, MAX_SECONDS) * config.steps_per_second)]
    return ids


def next_free_paths(out_dir: Path, count: int, force: bool = False,
                    stem: str = "sample") -> list[Path]:
    """`count` file names sample-001.mid, ... in `out_dir`: the first unused numbers, or
    from 001 overwriting what is there when `force`."""
    paths, number = [], 1
    while len(paths) < count:
        path = out_dir / f"{stem}-{number:03d}.mid"
        if force or not path.exists():
            paths.append(path)
        number += 1
    return paths


def sample_to_files(checkpoint: str | os.PathLike | None, out_dir: str | os.PathLike,
                    num: int = 1, max_events: int | None = None, seconds: float | None = None,
                    temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None, seed: int | None = None,
                    primer: str | os.PathLike | None = None,
                    primer_seconds: float | None = None, force: bool = False,
                    device: str = "cpu", constrain: bool = True,
                    min_seconds: float | None = None) -> list[dict]:
    """Sample `num` pieces from a checkpoint (file, run dir, or None for the newest run) and
    write them as MIDI in `out_dir`; one summary dict per file written.

    Each dict: path, duration_s, notes, events, instruments, repairs, ended (True when the
    model chose to end the piece, False when a limit cut it), stop (see stop_reason), seed.
    Lengths not given come from the checkpoint's training lengths (see length_limits). The same dict, with the
    checkpoint and every option, goes beside each piece as NAME.json (see `write_sidecar`),
    so a report can say how to make the piece again.
    """
    from midigen.checkpoint import load_model
    from midigen.midi_io import instrument_name, write_midi

    check_options(temperature, top_k, top_p, num, max_events, seconds)
    model, config, ckpt = load_model(checkpoint, device=device)
    primer_ids = None if primer is None else primer_to_ids(primer, config, primer_seconds)
    seed = random_seed() if seed is None else int(seed)
    limits = length_limits(ckpt.split.get("lengths") or {}, seconds, max_events, min_seconds)
    pieces = sample_ids(model, config, num=num, max_events=limits["max_events"],
                        seconds=limits["seconds"], temperature=temperature, top_k=top_k,
                        top_p=top_p, seed=seed, primer_ids=primer_ids, constrain=constrain,
                        min_seconds=limits["min_seconds"], max_note_s=limits["max_note_s"],
                        cuda_graph=True)  # on CUDA only; the same pieces as the eager step
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MidigenError(f"cannot create {out_dir} ({e.strerror or e})") from None
    end_id = vocabulary(config).end_id
    num_primer = len(_prefix(primer_ids, vocabulary(config)))
    options = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "num": num,
               "max_events": max_events, "seconds": seconds, "min_seconds": min_seconds,
               "primer": None if primer is None else str(Path(primer).resolve()),
               "primer_seconds": primer_seconds, "constrain": constrain,
               "from_training_lengths": {k: limits[k] for k in ("longest", "max_note_s")
                                         if limits[k] is not None} or None}
    rows = []
    for index, (ids, path) in enumerate(zip(pieces, next_free_paths(out_dir, num, force))):
        decoded = decode_ids(ids, config)
        notes = decoded.notes
        write_midi(notes, path)
        keys = sorted({(bool(d), 0 if d else int(p))
                       for d, p in zip(notes["is_drum"], notes["program"])})
        rows.append({
            "path": str(path),
            "duration_s": round(float(notes["end_s"].max()) if len(notes) else 0.0, 3),
            "notes": len(notes),
            "events": len(ids),
            "instruments": [instrument_name(p, d) for d, p in keys],
            "repairs": {k: int(v) for k, v in sorted(decoded.repairs.items())},
            "ended": bool(len(ids) and ids[-1] == end_id),
            "stop": stop_reason(ids, end_id, num_primer, limits),
            "seed": seed,
        })
        write_sidecar(path, {**rows[-1], "path": path.name, "index": index + 1,
                             "checkpoint": str(Path(ckpt.path).resolve()), "options": options})
    return rows


def length_limits(lengths: dict, seconds: float | None, max_events: int | None,
                  min_seconds: float | None) -> dict:
    """The sampler's length settings: the user's where given, else from the training music's
    lengths saved in the checkpoint (midigen.lengths; empty for older checkpoints).

    With neither `seconds` nor `max_events`, a piece ends when the model says END, not before
    the training pieces' 5th-percentile length, and is cut at their longest (`longest`), with
    twice the longest piece's events as a net for a model that stops moving time. Notes never
    sound longer than the longest training note.
    """
    piece_s, piece_events = lengths.get("piece_s", {}), lengths.get("piece_events", {})
    open_ended = seconds is None and max_events is None
    longest = piece_s.get("max") if open_ended else None
    if open_ended and piece_events.get("max"):
        max_events = min(MAX_EVENTS, max(DEFAULT_MAX_EVENTS, 2 * int(piece_events["max"])))
    if min_seconds is None and open_ended:
        min_seconds = piece_s.get("p5")
    return {"seconds": seconds if longest is None else longest, "longest": longest,
            "max_events": max_events, "min_seconds": min_seconds,
            "max_note_s": lengths.get("note_s", {}).get("max")}


def stop_reason(ids, end_id: int, num_primer: int, limits: dict) -> str:
    """How a sampled piece ended: END (the model), events (the event limit), longest (the
    training music's longest piece) or seconds (the user's limit)."""
    if len(ids) and ids[-1] == end_id:
        return "END"
    if len(ids) - num_primer >= event_limit(limits["max_events"], limits["seconds"]):
        return "events"
    return "longest" if limits["longest"] is not None else "seconds"


def write_sidecar(midi_path: Path, info: dict) -> None:
    """NAME.json beside NAME.mid: how the piece was made (checkpoint, options, seed, its place
    `index` in the batch of `options.num`, since a seed makes a whole batch) and how it stopped.
    """
    from midigen import __version__
    from midigen.fileio import atomic_write

    text = json.dumps({"midigen_version": __version__, **info}, indent=2) + "\n"
    with atomic_write(midi_path.with_suffix(".json")) as f:
        f.write(text.encode())
