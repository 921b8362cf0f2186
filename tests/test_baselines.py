"""Unigram and bigram baselines: known answers, k chosen on training data, clear errors."""

from __future__ import annotations

import math

import pytest

from midigen.baselines import ngram_nll, ngram_report
from midigen.errors import MidigenError


def test_unigram_and_bigram_known_answers():
    train = [[0, 1, 1, 2]]  # targets 1, 1, 2
    # unigram add-1 over V=3: counts (0, 2, 1) + 1 -> p(1) = 3/6
    assert ngram_nll(train, [[0, 1]], 1, vocab_size=3, k=1.0) == pytest.approx(math.log(2))
    # bigram add-1: row 0 counts (0, 1, 0) + 1 -> p(1 | 0) = 2/4
    assert ngram_nll(train, [[0, 1]], 2, vocab_size=3, k=1.0) == pytest.approx(math.log(2))
    # row 1 counts (0, 1, 1) + 1 -> p(2 | 1) = 2/5
    assert ngram_nll(train, [[1, 2]], 2, vocab_size=3, k=1.0) == pytest.approx(-math.log(0.4))


def test_bigram_beats_unigram_on_a_pattern_and_k_is_chosen_on_training_data():
    pattern = [[0] + [1, 2, 3] * 50 for _ in range(20)]
    uni = ngram_report(pattern, pattern[:2], 1, vocab_size=10)
    bi = ngram_report(pattern, pattern[:2], 2, vocab_size=10)
    assert bi["nll_per_event"] < 0.1 < uni["nll_per_event"]
    assert bi["k"] <= 0.01  # a deterministic pattern wants almost no smoothing


def test_baselines_refuse_what_they_cannot_score():
    with pytest.raises(MidigenError, match="unigram .* or bigram"):
        ngram_nll([[0, 1]], [[0, 1]], order=3)
    with pytest.raises(MidigenError, match="larger than the vocabulary"):
        ngram_nll([[0, 1]], [[0, 5]], vocab_size=3)
    with pytest.raises(MidigenError, match="no pieces to score"):
        ngram_nll([[0, 1]], [[0]])  # a one-event piece has nothing after START


def test_split_baselines_names_both_orders():
    from midigen.baselines import split_baselines

    train = [[0, 1, 1, 2]]
    assert split_baselines(train, [[0, 1]], 3) == {
        "unigram": pytest.approx(ngram_nll(train, [[0, 1]], 1, vocab_size=3)),
        "bigram": pytest.approx(ngram_nll(train, [[0, 1]], 2, vocab_size=3))}
