"""Statistics and distances on hand-built music with known answers."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from midigen.events import Note, notes_to_array
from midigen.midi_io import write_midi
from midigen.stats import (
    compare_sets,
    kl_divergence,
    overlap,
    piece_stats,
    polyphony_levels,
    summarise,
)
from midigen.stats_files import stats_report

C_MAJOR = [60, 62, 64, 65, 67, 69, 71, 72]


def scale_notes(pitches=C_MAJOR, step_s=0.5, velocity=80, program=0):
    return notes_to_array([Note(p, velocity, i * step_s, (i + 1) * step_s, program)
                           for i, p in enumerate(pitches)])


def test_c_major_scale_statistics():
    s = piece_stats(scale_notes(), "scale")["stats"]
    assert (s["pitch_low"], s["pitch_high"], s["pitch_span"]) == (60, 72, 12)
    assert s["num_notes"] == 8 and s["duration_s"] == pytest.approx(4.0)
    assert s["note_density"] == pytest.approx(2.0)  # 8 notes in 4 s
    pc = s["pitch_class_histogram"]
    assert pc["C"] == pytest.approx(0.25)  # C4 and C5
    for name in ("D", "E", "F", "G", "A", "B"):
        assert pc[name] == pytest.approx(0.125)
    for name in ("C#", "Eb", "F#", "Ab", "Bb"):
        assert pc[name] == 0
    assert s["mean_polyphony"] == pytest.approx(1.0) and s["max_polyphony"] == 1
    assert s["ioi_median_s"] == pytest.approx(0.5) and s["duration_median_s"] == pytest.approx(0.5)
    assert s["velocity_mean"] == 80 and s["instruments"] == {"Acoustic Grand Piano": 8}


def test_polyphony_of_a_chord_then_a_melody_note():
    # C-E-G held 2 s, then one note for 2 s: mean polyphony (3*2 + 1*2) / 4 = 2
    notes = notes_to_array([Note(60, 80, 0, 2), Note(64, 80, 0, 2), Note(67, 80, 0, 2),
                            Note(72, 80, 2, 4)])
    level, span = polyphony_levels(notes)
    assert dict(zip(level.tolist(), span.tolist())) == {3: 2.0, 1: 2.0}
    s = piece_stats(notes)["stats"]
    assert s["mean_polyphony"] == pytest.approx(2.0) and s["max_polyphony"] == 3


def test_drums_do_not_count_as_pitches():
    notes = notes_to_array([Note(36, 100, 0, 0.1, is_drum=True), Note(60, 80, 0, 1)])
    s = piece_stats(notes)["stats"]
    assert (s["pitch_low"], s["pitch_high"]) == (60, 60)
    assert set(s["instruments"]) == {"Drums", "Acoustic Grand Piano"}


def test_overlap_and_kl_known_values():
    p = np.array([0.5, 0.5, 0.0])
    q = np.array([0.0, 0.5, 0.5])
    assert overlap(p, p) == pytest.approx(1.0) and kl_divergence(p, p) == pytest.approx(0.0)
    assert overlap(p, q) == pytest.approx(0.5)
    assert overlap(np.array([1.0, 0]), np.array([0, 1.0])) == 0
    assert kl_divergence(p, q) > 1.0  # half of p's mass sits where q has (almost) none


def test_identical_sets_have_distance_zero_and_different_ones_do_not():
    a = [piece_stats(scale_notes(), "a"), piece_stats(scale_notes(C_MAJOR[::-1]), "b")]
    same = compare_sets(a, a)
    for feature, d in same.items():
        assert d["overlap"] == pytest.approx(1.0), feature
        assert d["kl"] == pytest.approx(0.0, abs=1e-9), feature
    high = [piece_stats(scale_notes([p + 24 for p in C_MAJOR], velocity=30), "high")]
    far = compare_sets(high, a)
    assert far["pitch"]["overlap"] == pytest.approx(0.0)
    assert far["velocity"]["kl"] > 1.0
    assert far["pitch_class"]["overlap"] == pytest.approx(1.0)  # two octaves up: same classes


def test_leave_one_out_spread_says_a_corpus_piece_is_inside():
    rng = np.random.default_rng(0)
    corpus = [piece_stats(scale_notes(rng.choice(C_MAJOR, 16)), f"p{i}") for i in range(30)]
    inside = compare_sets([corpus[0]], corpus[1:])["pitch_class"]
    assert inside["corpus_loo_overlap"]["p5"] <= inside["piece_overlap_mean"]
    assert inside["pieces_inside"] == 1.0
    chromatic = [piece_stats(scale_notes([61, 63, 66, 68, 70] * 3), "black keys")]
    outside = compare_sets(chromatic, corpus)["pitch_class"]
    assert outside["pieces_inside"] == 0.0 and outside["overlap"] == pytest.approx(0.0)


def test_summary_pools_pieces():
    s = summarise([piece_stats(scale_notes(), "a"), piece_stats(scale_notes(step_s=0.25), "b")])
    assert s["num_pieces"] == 2 and s["num_notes"] == 16
    assert s["note_density_mean"] == pytest.approx(3.0)  # mean of 2 and 4 notes/s
    assert (s["pitch_low"], s["pitch_high"]) == (60, 72)


# --------------------------------------------------------------------------- files

def test_two_identical_files_have_distance_zero_and_copy_completely(tmp_path):
    path = tmp_path / "scale.mid"
    write_midi(scale_notes(), path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(path, corpus / "same.mid")
    report = stats_report([path], against=corpus)
    assert report["pieces"][0]["pitch_low"] == 60
    for feature, d in report["against"]["features"].items():
        assert d["overlap"] == pytest.approx(1.0), feature
        assert d["kl"] == pytest.approx(0.0, abs=1e-9), feature
    copying = report["against"]["copying"]
    assert copying["share_found_mean"] == 1.0
    piece = copying["pieces"][0]
    assert piece["longest_run"] == piece["num_events"] and piece["longest_run_piece"] == "same.mid"
