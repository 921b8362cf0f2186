"""How well a trained model predicts music it has not seen: NLL per event, per second, per note.

Pieces are scored whole, in long windows with the recurrent state carried from one window to
the next, so every event is predicted from everything before it in its piece (as when
sampling). Short independent chunks would restart the model cold every few hundred events
and overstate the loss. Pieces of similar length are batched together; padding is masked.
A batch that does not fit in device memory is scored in halves (then in shorter windows).

`nll_over_pieces` is the one scoring function: training's validation and `midigen evaluate`
both call it, so the two numbers are the same number. During training, each --eval-every
scores `validation_sample` (the same seeded sample each time, sized by `default_valid_events`
to cost a few percent of training); the end of training and `midigen evaluate` score it all.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from midigen.errors import MidigenError
from midigen.memory import free_memory
from midigen.vocabulary import vocabulary

LOG2 = math.log(2.0)
MIN_WINDOW_EVENTS = 64  # below this, halving the window to fit in memory is not worth it


def nll_over_pieces(model, pieces_ids: Sequence, device="cpu", window_events: int = 2048,
                    batch_pieces: int = 16,
                    on_progress: Callable[[int, int], None] | None = None,
                    controls: np.ndarray | None = None) -> dict:
    """Summed and per-event NLL (nats) of every event after START in every piece.

    `model(ids (B,T), state) -> (logits (B,T,V), state)`; it is put in eval mode for the
    call and left as it was found. `controls` (P, COND_WIDTH), one row per piece, is given
    to a model with controls as `cond` (midigen.controls). Returns total_nll, num_events,
    nll_per_event, perplexity, bits_per_event, num_pieces.
    """
    arrays = [np.asarray(p) for p in pieces_ids]  # as they are (mapped): int64 per batch
    if controls is not None:
        controls = np.asarray(controls)[[len(a) >= 2 for a in arrays]]
    arrays = [a for a in arrays if len(a) >= 2]
    if not arrays:
        raise MidigenError("no piece has an event to score (each needs at least two events)")
    vocab_size = getattr(getattr(model, "config", None), "vocab_size", None)
    if vocab_size is not None and max(int(a.max()) for a in arrays) >= vocab_size:
        raise MidigenError("the pieces hold events this model has no tokens for; tokenize them "
                           "with the model's own tokenizer settings")
    order = sorted(range(len(arrays)), key=lambda i: -len(arrays[i]))
    total_events = sum(len(a) - 1 for a in arrays)
    device = torch.device(device)
    was_training = model.training
    model.eval()
    total_nll = 0.0
    done = 0
    try:
        with torch.inference_mode():
            for b0 in range(0, len(order), batch_pieces):
                batch = [arrays[i] for i in order[b0:b0 + batch_pieces]]
                report = None if on_progress is None else (
                    lambda n, done=done: on_progress(done + n, total_events))
                rows = None if controls is None else controls[order[b0:b0 + batch_pieces]]
                nll, count = _fitting(model, batch, rows, device, window_events, report)
                total_nll += nll
                done += count
    finally:
        model.train(was_training)
    return summarise_nll(total_nll, done, num_pieces=len(arrays))


def _fitting(model, batch: list, controls, device: torch.device, window_events: int,
             report=None) -> tuple[float, int]:
    """_score_batch, in halves (then shorter windows) when it runs out of device memory: the
    score is the same, only the work is cut up (midigen.memory)."""
    try:
        return _score_batch(model, batch, controls, device, window_events, report)
    except torch.OutOfMemoryError:
        if len(batch) == 1 and window_events <= MIN_WINDOW_EVENTS:
            raise MidigenError(f"the device ran out of memory scoring one piece in windows of "
                               f"{window_events} events: use a smaller model or the CPU") from None
    free_memory(device)
    if len(batch) == 1:
        return _fitting(model, batch, controls, device, window_events // 2, report)
    half = (len(batch) + 1) // 2
    first = _fitting(model, batch[:half], None if controls is None else controls[:half],
                     device, window_events, report)
    second = _fitting(model, batch[half:], None if controls is None else controls[half:],
                      device, window_events, report and (lambda n: report(first[1] + n)))
    return first[0] + second[0], first[1] + second[1]


def _score_batch(model, batch: list, controls, device: torch.device, window_events: int,
                 report=None) -> tuple[float, int]:
    """Summed NLL and count of the events after START of a batch of pieces (padding masked),
    state carried from window to window; `controls` (b, COND_WIDTH) or None, as `cond`."""
    lengths = torch.tensor([len(a) for a in batch])
    padded = torch.zeros(len(batch), int(lengths.max()), dtype=torch.long)
    for row, a in enumerate(batch):
        padded[row, :len(a)] = torch.from_numpy(a.astype(np.int64))
    padded = padded.to(device)
    kw = {} if controls is None else {"cond": torch.from_numpy(controls).to(device)}
    state = None
    num_inputs = padded.shape[1] - 1
    total_nll, done = 0.0, 0
    for t0 in range(0, num_inputs, window_events):
        t1 = min(t0 + window_events, num_inputs)
        logits, state = model(padded[:, t0:t1], state, **kw)  # (B, W, V)
        targets = padded[:, t0 + 1:t1 + 1]  # (B, W)
        log_p = torch.log_softmax(logits.float(), dim=-1)
        picked = log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, W)
        positions = torch.arange(t0 + 1, t1 + 1, device=padded.device)
        valid = positions.unsqueeze(0) < lengths.to(padded.device).unsqueeze(1)
        total_nll -= float(picked[valid].sum())
        done += int(valid.sum())
        if report is not None:
            report(done)
    return total_nll, done


# Scoring an event cost 0.48x training on one (2 x 256 LSTM, CPU, pieces batched 16 at a
# time, measured), so a sample of 5% of the events trained between evaluations costs about
# 2.5% of that time.
VALID_SHARE_OF_TRAINED_EVENTS = 0.05


def default_valid_events(eval_every: int, batch_size: int, seq_len: int) -> int:
    """Validation events scored at each --eval-every: a few percent of the time in between."""
    return max(4096, round(VALID_SHARE_OF_TRAINED_EVENTS * eval_every * batch_size * seq_len))


def validation_sample(pieces_ids: Sequence, durations_s: Sequence[float], max_events: int,
                      seed: int, with_indices: bool = False) -> tuple:
    """A fixed, seeded sample of the validation pieces of at most max_events events, and the
    seconds of music it holds (and, `with_indices`, which pieces); the same arguments always
    give the same sample.

    Pieces are taken whole, in a seeded order, and scored from their START as the full
    evaluation scores them; the last one taken is cut to fit (its seconds prorated).
    """
    order = np.random.default_rng(seed).permutation(len(pieces_ids))
    chosen, seconds, left = [], 0.0, max_events
    for i in order.tolist():
        if left < 2:
            break
        ids = pieces_ids[i]
        if len(ids) < 2:
            continue
        take = min(len(ids), left)
        chosen.append((i, ids[:take]))
        seconds += float(durations_s[i]) * take / len(ids)
        left -= take
    chosen.sort(key=lambda c: c[0])
    if with_indices:  # which pieces were taken, for their per-piece controls
        return [ids for _, ids in chosen], seconds, [i for i, _ in chosen]
    return [ids for _, ids in chosen], seconds


def summarise_nll(total_nll: float, num_events: int, num_pieces: int = 0,
                  duration_s: float | None = None, num_notes: int | None = None) -> dict:
    """The usual views of one summed NLL: per event, perplexity, bits, per second, per note."""
    per_event = total_nll / max(num_events, 1)
    result = {
        "total_nll": total_nll,
        "num_events": num_events,
        "num_pieces": num_pieces,
        "nll_per_event": per_event,
        "perplexity": math.exp(min(per_event, 700.0)),
        "bits_per_event": per_event / LOG2,
    }
    if duration_s is not None:
        result["duration_s"] = duration_s
        result["nll_per_second"] = total_nll / duration_s if duration_s > 0 else None
    if num_notes is not None:
        result["num_notes"] = num_notes
        result["nll_per_note"] = total_nll / num_notes if num_notes > 0 else None
    return result


def evaluate_corpus(checkpoint: Path | None, corpus_dir: Path, device: str = "cpu",
                    window_events: int = 2048,
                    on_progress: Callable[[int, int], None] | None = None) -> dict:
    """Score every readable piece of a folder with a checkpoint; the report `midigen evaluate` prints.

    The folder is tokenized with the checkpoint's own tokenizer settings (through the token
    cache). Notes the vocabulary cannot spell (pitches outside its range, drums in a
    programs-off model, two onsets of one pitch in one step) are counted as dropped.
    """
    from midigen.checkpoint import load_model
    from midigen.corpus import load_corpus

    model, tokenizer_config, ckpt = load_model(checkpoint, device=device)
    corpus = load_corpus(Path(corpus_dir), tokenizer_config)
    pieces = [p for p in corpus.pieces if len(p.ids) >= 2]
    if not pieces:
        raise MidigenError(f"no readable piece with notes in {corpus_dir}")
    ids = [np.asarray(p.ids) for p in pieces]
    outside = sum(int((a >= model.config.vocab_size).sum()) for a in ids)
    if outside:
        raise MidigenError(f"{outside} events fall outside the model's vocabulary of "
                           f"{model.config.vocab_size}; the token cache does not match the model")
    controls = None
    if model.config.controls is not None:  # each piece's own controls, as validation gives
        from midigen.controls import ControlSpec
        from midigen.controls_train import piece_controls

        spec = ControlSpec.from_dict(model.config.controls)
        controls = piece_controls(pieces, spec, tokenizer_config).rows(spec)
    scored = nll_over_pieces(model, ids, device=device, window_events=window_events,
                             on_progress=on_progress, controls=controls)
    duration_s = float(sum(p.duration_s for p in pieces))
    notes_kept = sum(map(vocabulary(tokenizer_config).count_note_ons, ids))
    notes_read = sum(int(getattr(p, "num_notes", 0) or 0) for p in pieces)
    result = summarise_nll(scored["total_nll"], scored["num_events"], len(pieces),
                           duration_s=duration_s, num_notes=notes_kept)
    summary = dict(getattr(corpus, "summary", {}) or {})
    result.update({
        "checkpoint": str(getattr(ckpt, "path", checkpoint)),
        "corpus": str(corpus_dir),
        "notes_read": max(notes_read, notes_kept),
        "notes_kept": notes_kept,
        "notes_dropped": max(notes_read - notes_kept, 0),
        "events_outside_vocabulary": outside,
        "files_skipped": summary.get("files_skipped", summary.get("skipped", 0)),
        "model_step": getattr(ckpt, "step", None),
        "training_best_valid_nll": getattr(ckpt, "best_valid_loss", None),
    })
    return result
