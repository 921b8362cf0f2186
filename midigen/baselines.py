"""Unigram and bigram baselines: the NLL per event a model must beat to be learning anything.

A model scores every event after START given the ones before it; these baselines score
exactly the same positions (ids[1:] of each piece), so their numbers sit in the same column
as the model's validation NLL. Counting is vectorised (np.bincount), so a corpus of millions
of events takes well under a second.

Smoothing is add-k. The k is chosen on the last tenth of the *training* pieces (never on the
validation pieces), from a small grid, then the counts are rebuilt on all training pieces.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from midigen.errors import MidigenError

K_GRID = (1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


def _as_arrays(pieces_ids: Sequence) -> list[np.ndarray]:
    return [np.asarray(p, dtype=np.int64) for p in pieces_ids if len(p) >= 2]


def _infer_vocab_size(*groups: list[np.ndarray]) -> int:
    top = max((int(p.max()) for g in groups for p in g if len(p)), default=1)
    return top + 1


def _unigram_counts(pieces: list[np.ndarray], vocab_size: int) -> np.ndarray:
    if not pieces:
        return np.zeros(vocab_size)
    targets = np.concatenate([p[1:] for p in pieces])
    return np.bincount(targets, minlength=vocab_size).astype(np.float64)


def _bigram_counts(pieces: list[np.ndarray], vocab_size: int) -> np.ndarray:
    """Counts of (previous id, id) as a dense V x V table (V is a few hundred)."""
    if not pieces:
        return np.zeros((vocab_size, vocab_size))
    prev = np.concatenate([p[:-1] for p in pieces])
    nxt = np.concatenate([p[1:] for p in pieces])
    flat = np.bincount(prev * vocab_size + nxt, minlength=vocab_size * vocab_size)
    return flat.reshape(vocab_size, vocab_size).astype(np.float64)


def _total_nll(counts: np.ndarray, pieces: list[np.ndarray], order: int, k: float) -> tuple[float, int]:
    """Summed NLL (nats) of `pieces` under add-k smoothed `counts`, and the number of events."""
    if not pieces:
        return 0.0, 0
    vocab_size = counts.shape[-1]
    prev = np.concatenate([p[:-1] for p in pieces])
    nxt = np.concatenate([p[1:] for p in pieces])
    if order == 1:
        log_p = np.log(counts + k) - np.log(counts.sum() + k * vocab_size)
        return float(-log_p[nxt].sum()), len(nxt)
    row_totals = counts.sum(axis=1) + k * vocab_size
    log_p = np.log(counts[prev, nxt] + k) - np.log(row_totals[prev])
    return float(-log_p.sum()), len(nxt)


def _counts(pieces, vocab_size, order):
    return _unigram_counts(pieces, vocab_size) if order == 1 else _bigram_counts(pieces, vocab_size)


def choose_k(train: list[np.ndarray], vocab_size: int, order: int) -> float:
    """The add-k constant that best predicts the last tenth of the training pieces."""
    if len(train) < 5:
        return 0.1 if order == 1 else 0.01
    cut = len(train) - max(1, len(train) // 10)
    counts = _counts(train[:cut], vocab_size, order)
    scores = [_total_nll(counts, train[cut:], order, k)[0] for k in K_GRID]
    return K_GRID[int(np.argmin(scores))]


def ngram_nll(train_pieces_ids: Sequence, valid_pieces_ids: Sequence, order: int = 1,
              vocab_size: int | None = None, k: float | None = None) -> float:
    """NLL per event (nats) of the validation pieces under an add-k unigram/bigram of the training pieces.

    `vocab_size` should be the tokenizer's vocabulary size (it sets how much mass smoothing
    gives to unseen events); without it the largest id seen decides. `k=None` picks k on
    held-out training pieces.
    """
    return ngram_report(train_pieces_ids, valid_pieces_ids, order, vocab_size, k)["nll_per_event"]


def split_baselines(train_pieces_ids: Sequence, valid_pieces_ids: Sequence,
                    vocab_size: int) -> dict[str, float]:
    """{"unigram": nll, "bigram": nll} per event on a split: what a model must clearly beat."""
    return {name: ngram_nll(train_pieces_ids, valid_pieces_ids, order, vocab_size=vocab_size)
            for order, name in ((1, "unigram"), (2, "bigram"))}


def ngram_report(train_pieces_ids: Sequence, valid_pieces_ids: Sequence, order: int = 1,
                 vocab_size: int | None = None, k: float | None = None) -> dict:
    """Like ngram_nll, with the chosen k and the number of scored events."""
    if order not in (1, 2):
        raise MidigenError("n-gram baselines are unigram (order 1) or bigram (order 2)")
    train = _as_arrays(train_pieces_ids)
    valid = _as_arrays(valid_pieces_ids)
    if not train:
        raise MidigenError("the training split has no pieces to count events in")
    if not valid:
        raise MidigenError("the validation split has no pieces to score")
    if vocab_size is None:
        vocab_size = _infer_vocab_size(train, valid)
    if max(int(p.max()) for p in train + valid) >= vocab_size:
        raise MidigenError("an event id is larger than the vocabulary; were these pieces "
                           "tokenized with another configuration?")
    if k is None:
        k = choose_k(train, vocab_size, order)
    total, num_events = _total_nll(_counts(train, vocab_size, order), valid, order, k)
    return {"order": order, "k": k, "nll_per_event": total / num_events,
            "num_events": num_events, "total_nll": total}
