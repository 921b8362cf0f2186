"""Copying: exact n-gram windows, planted runs found to the event, runs kept within pieces."""

from __future__ import annotations

import numpy as np
import pytest

from midigen.copying import NgramIndex, window_hashes


def test_window_hashes_equal_exactly_for_equal_windows():
    ids = np.random.default_rng(1).integers(0, 3, 200)  # tiny alphabet: many repeats
    h = window_hashes(ids, 5)
    windows = [tuple(ids[i:i + 5]) for i in range(len(ids) - 4)]
    for i in range(0, len(windows), 7):
        for j in range(len(windows)):
            assert (h[i] == h[j]) == (windows[i] == windows[j])
    assert len(window_hashes(ids[:4], 5)) == 0


def test_copying_finds_a_planted_run_exactly():
    rng = np.random.default_rng(2)
    corpus = [rng.integers(0, 400, 500) for _ in range(20)]
    index = NgramIndex.build(corpus, 16, names=[f"piece{i}" for i in range(20)])
    sample = np.concatenate([rng.integers(0, 400, 40), corpus[7][100:250], rng.integers(0, 400, 40)])
    run = index.longest_run(sample)
    assert run == {"length": 150, "sample_start": 40, "piece": "piece7", "piece_start": 100}
    # 150 - 15 windows found out of 230 - 15
    assert index.share_found(sample) == pytest.approx(135 / 215)
    fresh = rng.integers(400, 800, 300)
    assert index.share_found(fresh) == 0.0 and index.longest_run(fresh)["length"] == 0


def test_a_piece_copies_itself_completely():
    rng = np.random.default_rng(3)
    corpus = [rng.integers(0, 50, n) for n in (30, 300, 3000)]
    index = NgramIndex.build(corpus, 16)
    report = index.report(corpus[1])
    assert report["share_found"] == 1.0 and report["longest_run"] == 300
    assert index.share_found(corpus[0][:10]) is None  # shorter than one window


def test_runs_do_not_join_across_piece_boundaries():
    a, b = np.arange(100), np.arange(100, 200)
    index = NgramIndex.build([a, b], 16)
    assert index.longest_run(np.concatenate([a, b]))["length"] == 100
