"""The corpus reader: messy folders, the token cache, splits, and the round trip over real corpora."""

from __future__ import annotations

import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import score_files as sf

from midigen.corpus import find_score_files, load_corpus
from midigen.midi_io import read_midi_notes, read_score, write_midi
from midigen.split import split_pieces
from midigen.tokenizer import DRUM_KEY, TokenizerConfig, decode_ids, quantize_notes, velocity_to_bin

CONFIG = TokenizerConfig()


@pytest.fixture(scope="module")
def messy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("messy")
    return folder, sf.messy_folder(folder)


def test_find_score_files_is_recursive_and_case_insensitive(messy):
    folder, expected = messy
    found = {p.relative_to(folder).as_posix() for p in find_score_files(folder)}
    assert found == set(expected)


def test_messy_folder_reads_good_files_and_skips_bad_ones_with_reasons(messy, tmp_path,
                                                                        monkeypatch):
    folder, expected = messy
    monkeypatch.setenv("MIDIGEN_CACHE", str(tmp_path / "cache"))
    corpus = load_corpus(folder, CONFIG, jobs=2)
    s = corpus.summary
    good = {name for name, reason in expected.items() if reason is None}
    assert s["files_found"] == len(expected)
    assert s["files_read"] == len(good)
    assert {p.file for p in corpus.pieces} == good
    skipped = {ex: reason for reason, g in s["skipped_by_reason"].items() for ex in g["examples"]}
    assert skipped == {name: reason for name, reason in expected.items() if reason}
    assert s["skipped_by_reason"]["not a MIDI file"]["count"] == 2
    assert s["pieces"] == len(good) + 2  # tunes.abc holds three tunes
    assert s["readers"] == {"midi": 7, "abc2midi": 1, "verovio": 1}  # which read each file
    huge = next(p for p in corpus.pieces if p.file == "huge.mid")
    assert huge.num_notes == 200_000
    drums = next(p for p in corpus.pieces if p.file == "drums.mid")
    assert drums.programs == (DRUM_KEY,) and drums.instruments == ["Drums"]
    band = next(p for p in corpus.pieces if p.file == "band.MID")
    assert set(band.instruments) == {"Acoustic Grand Piano", "Electric Bass (finger)", "Drums"}
    assert s["instruments"]["Drums"] == 2
    assert s["notes"] == sum(p.num_notes for p in corpus.pieces)
    assert s["events"] == sum(len(p.ids) for p in corpus.pieces)
    assert all(p.ids.dtype == np.uint16 and p.ids[0] != p.ids[-1] for p in corpus.pieces)
    # Nothing was written into the user's folder.
    assert {p.name for p in folder.rglob("*")} == {Path(n).name for n in expected} | {"sub",
                                                                                     "notes.txt"}


def test_cache_is_faster_identical_and_notices_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("MIDIGEN_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "songs"
    folder.mkdir()
    for k in range(40):
        sf.melody(folder / f"m{k:02d}.mid", pitches=tuple(range(50 + k % 20, 80 + k % 20)))
    sf.many_notes(folder / "big.mid", 100_000)

    t0 = time.perf_counter()
    cold = load_corpus(folder, CONFIG, jobs=2)
    cold_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    warm = load_corpus(folder, CONFIG, jobs=2)
    warm_s = time.perf_counter() - t0
    assert warm.summary["files_parsed"] == 0 and warm.summary["files_from_cache"] == 41
    assert warm_s < cold_s
    assert [p.name for p in warm.pieces] == [p.name for p in cold.pieces]
    for a, b in zip(cold.pieces, warm.pieces):
        np.testing.assert_array_equal(a.ids, b.ids)
    assert warm.summary["notes"] == cold.summary["notes"]

    # Change one file, add one, remove one: only the changed and new files are read again.
    sf.melody(folder / "m00.mid", pitches=(40, 41))
    os.utime(folder / "m00.mid", ns=(time.time_ns(), time.time_ns() + 10**9))
    sf.melody(folder / "new.mid")
    (folder / "m01.mid").unlink()
    third = load_corpus(folder, CONFIG, jobs=2)
    assert third.summary["files_parsed"] == 2
    assert third.summary["files_found"] == 41
    m00 = next(p for p in third.pieces if p.file == "m00.mid")
    assert m00.num_notes == 2
    assert "m01.mid" not in {p.file for p in third.pieces}
    kept = {p.file: p.ids for p in cold.pieces if p.file not in ("m00.mid", "m01.mid")}
    for p in third.pieces:
        if p.file in kept:
            np.testing.assert_array_equal(p.ids, kept[p.file])


def test_split_by_file_is_seeded_and_keeps_tunes_together(messy, tmp_path, monkeypatch):
    monkeypatch.setenv("MIDIGEN_CACHE", str(tmp_path / "cache"))
    pieces = load_corpus(messy[0], CONFIG, jobs=1).pieces
    train, valid = split_pieces(pieces, 0.3, seed=1)
    assert len(train) + len(valid) == len(pieces) and valid and train
    assert not {p.file for p in train} & {p.file for p in valid}
    tunes = [p for p in train + valid if p.file == "tunes.abc"]
    assert len(tunes) == 3 and (all(p in train for p in tunes) or all(p in valid for p in tunes))
    again = split_pieces(pieces, 0.3, seed=1)
    assert [p.name for p in again[1]] == [p.name for p in valid]
    other_seeds = {tuple(p.file for p in split_pieces(pieces, 0.3, seed=s)[1]) for s in range(6)}
    assert len(other_seeds) > 1


# ----------------------------------------------------------------- round trip over real corpora

def _note_keys(notes):
    sps = CONFIG.steps_per_second
    inst = np.where(notes["is_drum"], DRUM_KEY, notes["program"]).astype(np.int64)
    on = np.rint(notes["start_s"] * sps).astype(np.int64)
    off = np.rint(notes["end_s"] * sps).astype(np.int64)
    velocity_bin = velocity_to_bin(notes["velocity"], CONFIG.num_velocity_bins)
    key = (inst * 128 + notes["pitch"].astype(np.int64)) * (1 << 40) + on
    return key, velocity_bin, on, off


def _matched(notes, back) -> np.ndarray:
    """Notes of `notes` found in `back`: same instrument, pitch, velocity bin and onset step,
    end within one step."""
    key, vbin, _, off = _note_keys(notes)
    bkey, bvbin, _, boff = _note_keys(back)
    order = np.argsort(bkey, kind="stable")
    bkey, bvbin, boff = bkey[order], bvbin[order], boff[order]
    i = np.minimum(np.searchsorted(bkey, key), max(len(bkey) - 1, 0))
    if not len(bkey):
        return np.zeros(len(notes), dtype=bool)
    return (bkey[i] == key) & (bvbin[i] == vbin) & (np.abs(boff[i] - off) <= 1)


def _explained_losses(notes) -> np.ndarray:
    """Notes the README says a round trip may change: held longer than max_note_s, or cut by
    another onset of the same pitch on the same instrument (including one in the same step)."""
    key, _, on, off = _note_keys(notes)
    pitch_key = key >> 40
    order = np.lexsort((on, pitch_key))
    next_on = np.full(len(notes), np.iinfo(np.int64).max)
    same = pitch_key[order][1:] == pitch_key[order][:-1]
    next_on[order[:-1][same]] = on[order][1:][same]
    # A note shorter than a step lasts one step, so a second onset in its step also cuts it.
    return (off - on > CONFIG.max_note_steps) | (next_on < np.maximum(off, on + 1))


def _round_trip(args) -> tuple[int, int, int, int, int]:
    """file -> notes; cached ids -> notes -> .mid -> notes; counts of what came back."""
    path, ids = args
    original = read_score(path)[0].notes
    decoded = decode_ids(ids, CONFIG)
    with tempfile.TemporaryDirectory() as d:
        write_midi(decoded.notes, Path(d) / "back.mid")
        back = read_midi_notes(Path(d) / "back.mid")
    quantized = quantize_notes(original, CONFIG)
    matched = _matched(original, back)
    unexplained = int((~matched & ~_explained_losses(original)).sum())
    return len(original), int(matched.sum()), len(quantized), int(_matched(quantized, back).sum()), \
        unexplained + decoded.num_repairs


@pytest.mark.slow  # ~10 s (nottingham) and ~30 s (pop909) on 2 cores: decoding is a Python loop
@pytest.mark.parametrize("corpus_dir, pattern", [("nottingham/MIDI", "*.mid"),
                                                 ("pop909", "POP909/*/*.mid")])
def test_round_trip_over_real_corpora(shared_corpora, corpus_dir, pattern, capsys):
    folder = shared_corpora / corpus_dir
    wanted = {str(p.resolve()) for p in folder.glob(pattern)}
    corpus = load_corpus(folder, CONFIG, jobs=2)  # parallel reader, cached across runs
    work = [(str(corpus.folder / p.file), p.ids) for p in corpus.pieces
            if str(corpus.folder / p.file) in wanted]
    assert len(work) == len(wanted) > 500  # every file was read
    with ProcessPoolExecutor(2) as pool:
        counts = np.array(list(pool.map(_round_trip, work, chunksize=16)))
    notes, matched, quantized, quantized_matched, unexplained = counts.sum(axis=0)
    with capsys.disabled():
        print(f"\n{corpus_dir}: {len(work)} files, {notes} notes, match rate "
              f"{matched / notes:.4%} of original notes, {quantized_matched / quantized:.4%} of "
              f"quantized notes")
    # Every note the tokenizer keeps comes back within a step; every other difference is one
    # the README documents; decoding clean ids needs no repair.
    assert quantized_matched == quantized
    assert unexplained == 0
    assert matched / notes > 0.9


def test_a_file_that_timed_out_is_read_again_only_when_more_time_is_allowed(tmp_path,
                                                                           monkeypatch):
    """A huge score can take music21 minutes on a slow machine: $MIDIGEN_FILE_TIMEOUT gives it
    more, and the store then reads it again; under the same limit it stays skipped (each
    retry would cost the whole limit on every run)."""
    from midigen import score_io
    from midigen import worker_process as reading

    monkeypatch.setenv("MIDIGEN_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "scores"
    folder.mkdir()
    (folder / "big.musicxml").write_text(sf.musicxml_text())
    sf.melody(folder / "tune.mid")
    real_toolkit, loads = score_io._toolkit, tmp_path / "loads"

    class SlowToolkit:
        def setInputFrom(self, kind):
            pass

        def loadData(self, text):
            with loads.open("a") as log:  # verovio runs in a child process
                log.write("load\n")
            time.sleep(5)  # interruptible, as music21's Python is
            return True

    monkeypatch.setattr(score_io, "_toolkit", SlowToolkit)
    monkeypatch.setattr(score_io, "_render_music21", lambda *a: time.sleep(5))
    monkeypatch.setenv(reading.TIMEOUT_ENV, "1")
    first = load_corpus(folder, CONFIG, jobs=1).summary
    assert list(first["skipped_by_reason"]) == [reading.timed_out_reason(1)]
    assert "MIDIGEN_FILE_TIMEOUT" in reading.timed_out_reason(1)

    again = load_corpus(folder, CONFIG, jobs=1).summary  # same limit: not tried again
    assert again["files_parsed"] == 0 and loads.read_text().count("load") == 1

    monkeypatch.setattr(score_io, "_toolkit", real_toolkit)
    monkeypatch.setenv(reading.TIMEOUT_ENV, "30")
    more = load_corpus(folder, CONFIG, jobs=1).summary
    assert more["files_parsed"] == 1 and more["files_skipped"] == 0 and more["pieces"] == 2


@pytest.mark.parametrize("value", ["soon", "0", "-5", "nan"])
def test_a_bad_file_timeout_is_one_clear_error(tmp_path, monkeypatch, value):
    from midigen.errors import MidigenError
    from midigen.worker_process import TIMEOUT_ENV

    monkeypatch.setenv("MIDIGEN_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(TIMEOUT_ENV, value)
    (tmp_path / "songs").mkdir()
    sf.melody(tmp_path / "songs" / "tune.mid")
    with pytest.raises(MidigenError, match=TIMEOUT_ENV):
        load_corpus(tmp_path / "songs", CONFIG, jobs=1)


def test_files_cut_short_are_counted_as_read_in_part(tmp_path, monkeypatch):
    """A file cut short is read up to the cut; the summary (and its table) says how many
    were, from the store too, so the user knows some music may be missing."""
    from typer.testing import CliRunner

    from midigen.cli import app

    monkeypatch.setenv("MIDIGEN_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / "songs"
    folder.mkdir()
    sf.melody(folder / "whole.mid")
    sf.cut_short(folder / "cut1.mid")
    sf.cut_short(folder / "cut2.mid", missing_bytes=20)
    for run in ("cold", "cached"):
        s = load_corpus(folder, CONFIG, jobs=1).summary
        assert s["files_parsed"] == (3 if run == "cold" else 0)
        assert s["files_read"] == 3 and s["files_skipped"] == 0
        assert s["files_read_in_part"] == 2, run
        assert s["read_in_part_by_reason"] == {
            "cut short": {"count": 2, "examples": ["cut1.mid", "cut2.mid"]}}
    table = CliRunner().invoke(app, ["corpus", str(folder), "--jobs", "1"])
    assert table.exit_code == 0 and "read in part (cut short)" in table.stdout
