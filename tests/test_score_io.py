"""Score readers: each format through its fast reader, fallbacks, and unexpandable repeats."""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import score_files as sf

from midigen import score_io, worker_process
from midigen.errors import MidigenError
from midigen.midi_io import read_score


def _music21_must_not_run(*args):
    raise AssertionError("music21 was used although the fast reader should have read this")


def _fails(*args):
    raise MidigenError("reader failed")


@pytest.fixture
def fast_only(monkeypatch):
    monkeypatch.setattr(score_io, "_render_music21", _music21_must_not_run)


def _musicxml(tmp_path, suffix=".musicxml"):
    path = tmp_path / f"two{suffix}"
    if suffix == ".mxl":
        path.write_bytes(sf.mxl_bytes(sf.musicxml_text()))
    else:
        path.write_text(sf.musicxml_text())
    return path


@pytest.mark.parametrize("suffix", [".musicxml", ".mxl"])
def test_musicxml_reads_through_verovio(tmp_path, fast_only, suffix):
    notes = read_score(_musicxml(tmp_path, suffix))[0].notes
    assert notes["pitch"].tolist() == [60, 64]
    # 120 bpm: a quarter then a half note, exact (verovio's one-tick-short ends are undone)
    assert notes["start_s"].tolist() == pytest.approx([0.0, 0.5])
    assert notes["end_s"].tolist() == pytest.approx([0.5, 1.5])


def test_utf16_musicxml_reads(tmp_path, fast_only):
    path = tmp_path / "wide.musicxml"
    path.write_bytes(sf.musicxml_text().encode("utf-16"))
    assert read_score(path)[0].notes["pitch"].tolist() == [60, 64]


def test_utf16_mxl_reads_through_verovio(tmp_path, fast_only):
    """Finale and Dolet write UTF-16 inside .mxl; verovio's zip loader could not read it, so
    such scores went to music21 (minutes for a string quartet) or were skipped."""
    path = tmp_path / "wide.mxl"
    path.write_bytes(sf.mxl_bytes(sf.musicxml_text().encode("utf-16"), member="wide.xml"))
    assert read_score(path)[0].notes["pitch"].tolist() == [60, 64]


def test_mxl_reads_the_score_its_container_names(tmp_path, fast_only):
    path = tmp_path / "named.mxl"
    decoy = sf.musicxml_text().replace("<step>C</step>", "<step>D</step>")
    path.write_bytes(sf.mxl_bytes(sf.musicxml_text(), member="z/score.xml",
                                  others={"a/decoy.xml": decoy}))
    assert read_score(path)[0].notes["pitch"].tolist() == [60, 64]


def test_mxl_part_files_beside_the_score_do_not_count_toward_the_size_bound(tmp_path, fast_only,
                                                                          monkeypatch):
    """Finale's .mxl also stores each part as a file; counting them sent a 4.9 MB Beethoven
    quartet (9.8 MB with its parts) to music21, 130 s instead of 6 s, so it timed out."""
    score = sf.musicxml_text()
    parts = {f"p{k}.musicxml": score + "<!--" + "x" * 3 * len(score) + "-->" for k in range(4)}
    path = tmp_path / "parts.mxl"
    path.write_bytes(sf.mxl_bytes(score, member="score.musicxml", others=parts))
    monkeypatch.setattr(score_io, "FAST_READER_MAX_MB", 2 * len(score.encode()) / 2**20)
    assert read_score(path)[0].meta["reader"] == "verovio"

def test_mxl_without_a_score_is_one_clear_reason(tmp_path, monkeypatch):
    monkeypatch.setenv(score_io.READERS_ENV, "verovio")
    path = tmp_path / "empty.mxl"
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("readme.txt", "the score was left out")
    path.write_bytes(archive.getvalue())
    with pytest.raises(MidigenError, match="no score in the .mxl archive"):
        read_score(path)


def test_kern_reads_through_verovio(tmp_path, fast_only):
    path = tmp_path / "two.krn"
    path.write_text(sf.KERN_TWO_SPINES)
    notes = read_score(path)[0].notes
    assert sorted(notes["pitch"].tolist()) == [48, 50, 52, 60, 62, 64]
    assert sorted(set(notes["start_s"].round(6).tolist())) == [0.0, 0.5, 1.0]
    assert notes["end_s"].max() == pytest.approx(2.0)


def test_abc_reads_through_abc2midi(tmp_path, fast_only):
    path = tmp_path / "tunes.abc"
    path.write_text(sf.ABC_THREE_TUNES)
    pieces = read_score(path)
    assert [p.name for p in pieces] == ["tunes#1", "tunes#2", "tunes#7"]
    assert pieces[2].notes["pitch"].tolist() == [60, 62, 64, 65]
    assert [len(p.notes) for p in pieces] == [9, 6, 4]


def test_single_abc_tune_is_named_after_the_file(tmp_path, fast_only):
    path = tmp_path / "one.abc"
    path.write_text("X:3\nT:One\nK:C\nC D E F|\n")
    pieces = read_score(path)
    assert [p.name for p in pieces] == ["one"]


def test_falls_back_to_music21_when_verovio_fails(tmp_path, monkeypatch):
    fast = read_score(_musicxml(tmp_path))[0].notes
    monkeypatch.setattr(score_io, "_render_verovio", _fails)
    slow = read_score(_musicxml(tmp_path))[0].notes
    assert slow["pitch"].tolist() == fast["pitch"].tolist() == [60, 64]
    assert slow["end_s"].tolist() == pytest.approx(fast["end_s"].tolist())


def test_falls_back_to_music21_when_abc2midi_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setattr(score_io, "_abc2midi_binary", lambda: str(tmp_path / "no-such-binary"))
    path = tmp_path / "tunes.abc"
    path.write_text(sf.ABC_THREE_TUNES)
    pieces = read_score(path)
    assert [p.name for p in pieces] == ["tunes#1", "tunes#2", "tunes#7"]
    assert [len(p.notes) for p in pieces] == [9, 6, 4]


def test_every_reader_failing_gives_the_last_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(score_io, "_render_verovio", _fails)
    path = tmp_path / "broken.musicxml"
    path.write_text("<?xml version='1.0'?><score-partwise><part-list>")
    with pytest.raises(MidigenError, match=r"^unreadable MusicXML \(\w+\)$"):
        read_score(path)


def test_unexpandable_repeats_give_the_unexpanded_score(tmp_path, monkeypatch):
    import music21

    text = sf.bad_repeats_musicxml_text()
    with pytest.raises(music21.repeat.ExpanderException):
        music21.midi.translate.music21ObjectToMidiFile(
            music21.converter.parse(text, format="musicxml"))
    monkeypatch.setattr(score_io, "_render_verovio", _fails)
    path = tmp_path / "repeats.musicxml"
    path.write_text(text)
    notes = read_score(path)[0].notes
    assert notes["pitch"].tolist() == [60, 61, 62]  # each bar once, as written
    assert notes["start_s"].tolist() == pytest.approx([0.0, 2.0, 4.0])


def test_files_over_the_size_bound_skip_the_fast_reader(tmp_path, monkeypatch):
    monkeypatch.setattr(score_io, "FAST_READER_MAX_MB", 0)
    monkeypatch.setattr(score_io, "_render_verovio", _music21_must_not_run)
    assert read_score(_musicxml(tmp_path))[0].notes["pitch"].tolist() == [60, 64]


def test_real_abc_collection_gives_every_tune_with_jukedecks_melody(shared_corpora, fast_only):
    """ashover.abc through abc2midi: one piece per X: header, each melody as jukedeck's MIDI."""
    import re

    import numpy as np

    from midigen.midi_io import read_midi_notes

    folder = shared_corpora / "nottingham"
    path = folder / "ABC_cleaned" / "ashover.abc"
    numbers = re.findall(r"(?m)^X:\s*(\d+)", path.read_text())
    pieces = read_score(path)
    assert [p.name for p in pieces] == [f"ashover#{n}" for n in numbers]
    melody = read_midi_notes(folder / "MIDI" / "melody" / f"ashover{numbers[0]}.mid")
    ours = pieces[0].notes
    assert ours["pitch"].tolist() == melody["pitch"].tolist()
    np.testing.assert_allclose(ours["start_s"] - ours["start_s"][0],
                               melody["start_s"] - melody["start_s"][0], atol=0.01)


def test_readers_can_be_chosen_by_environment(tmp_path, monkeypatch):
    monkeypatch.setattr(score_io, "_render_verovio", _music21_must_not_run)
    monkeypatch.setenv(score_io.READERS_ENV, "music21")
    assert read_score(_musicxml(tmp_path))[0].notes["pitch"].tolist() == [60, 64]
    monkeypatch.setenv(score_io.READERS_ENV, "music22")
    with pytest.raises(MidigenError, match="unknown reader 'music22'"):
        read_score(_musicxml(tmp_path))


def test_a_score_that_crashes_the_fast_reader_is_read_by_music21(tmp_path, monkeypatch):
    """A C++ abort kills the worker; the file is read again with music21, not skipped."""
    import os

    import music21  # noqa: F401 - imported once here, not in each forked worker

    from midigen.reading import read_files
    from midigen.tokenizer import TokenizerConfig

    monkeypatch.setattr(score_io, "_render_verovio", lambda *args: os._exit(134))
    paths = [str(_musicxml(tmp_path, f"{k}.musicxml")) for k in range(8)]
    results = read_files(paths, TokenizerConfig(), jobs=2)
    assert [r["status"] for r in results] == ["ok"] * 8
    assert all(len(r["pieces"]) == 1 for r in results)


def test_a_slow_score_is_timed_out_not_called_unreadable(tmp_path, monkeypatch):
    """The per-file alarm fired inside a reader's `except Exception`: the file was reported
    as "unreadable MusicXML (_Timeout)" and the next reader (music21) ran with no limit."""
    import time

    from midigen import reading
    from midigen.tokenizer import TokenizerConfig

    class SlowToolkit:
        def setInputFrom(self, kind):
            pass

        def loadData(self, text):
            time.sleep(5)  # interruptible, as music21's Python is
            return True

    monkeypatch.setattr(score_io, "_toolkit", SlowToolkit)
    monkeypatch.setattr(score_io, "_render_music21", _music21_must_not_run)
    monkeypatch.setattr(worker_process, "FILE_TIMEOUT_S", 1)
    path = _musicxml(tmp_path)
    result = reading._read_chunk([str(path)], TokenizerConfig().to_dict())[0]
    assert result == {"status": "skipped", "reason": worker_process.timed_out_reason(1)}
