"""The score reader and MIDI writer: real files against pretty_midi, and every kind of bad file."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import score_files as sf

from midigen.errors import MidigenError
from midigen.events import NOTE_DTYPE, Note, notes_to_array, sort_notes
from midigen.midi_io import detect_format, read_midi_notes, read_score, write_midi
from midigen.midi_timing import apply_sustain


def pretty_midi_notes(path) -> np.ndarray:
    import pretty_midi

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pm = pretty_midi.PrettyMIDI(str(path))
    rows = [(n.start, n.end, n.pitch, n.velocity, 0 if i.is_drum else i.program, i.is_drum)
            for i in pm.instruments for n in i.notes]
    return sort_notes(np.array(rows, dtype=NOTE_DTYPE))


def overlapping_restrikes(notes: np.ndarray) -> np.ndarray:
    """Notes whose pitch is struck again (same instrument) before they end."""
    order = np.lexsort((notes["start_s"], notes["pitch"], notes["program"], notes["is_drum"]))
    n = notes[order]
    same = ((n["pitch"][1:] == n["pitch"][:-1]) & (n["program"][1:] == n["program"][:-1])
            & (n["is_drum"][1:] == n["is_drum"][:-1]))
    hit = np.zeros(len(n), dtype=bool)
    hit[:-1] = same & (n["start_s"][1:] < n["end_s"][:-1])
    result = np.zeros(len(n), dtype=bool)
    result[order] = hit
    return result


def test_real_files_agree_with_pretty_midi(shared_corpora):
    """Without the pedal, notes equal pretty_midi's; only overlapping re-strikes of one pitch
    may pair note-offs differently (symusic closes the oldest note, pretty_midi all of them)."""
    files = sorted((shared_corpora / "nottingham" / "MIDI").glob("*.mid"))[::25]
    files += sorted((shared_corpora / "pop909" / "POP909").glob("*/*.mid"))[::40]
    assert len(files) > 50
    exact_files = total = differing = 0
    for path in files:
        ours = read_score(path, sustain_pedal=False)[0].notes
        ref = pretty_midi_notes(path)
        assert len(ours) == len(ref), path
        key = lambda a: np.lexsort((a["start_s"].round(6), a["pitch"], a["program"]))
        o, r = ours[key(ours)], ref[key(ref)]
        for field in ("pitch", "velocity", "program", "is_drum"):
            assert np.array_equal(o[field], r[field]), (path, field)
        np.testing.assert_allclose(o["start_s"], r["start_s"], atol=1e-6)
        bad_end = np.abs(o["end_s"] - r["end_s"]) > 1e-6
        assert not (bad_end & ~overlapping_restrikes(r)).any(), path
        exact_files += not bad_end.any()
        total += len(ours)
        differing += int(bad_end.sum())
    assert exact_files >= 0.9 * len(files)
    assert differing <= 0.01 * total


def test_sustain_pedal_extends_notes(tmp_path):
    # 120 bpm, 480 tpq: 480 ticks = 0.5 s. Pedal down 0..1.5 s (value 70 still counts as down).
    messages = [sf.cc(64, 100), sf.on(60), sf.off(60, 240),  # released at 0.25 s, pedal down
                sf.on(62), sf.off(62, 120),                    # released at 0.375 s
                sf.on(60, 120), sf.off(60, 120),               # 60 again at 0.5 s: cuts the first
                sf.cc(64, 70, 240), sf.cc(64, 10, 600),        # pedal up at 1.5 s
                sf.on(64, 240), sf.off(64, 240)]               # after the pedal: unchanged
    path = sf.write_mido(tmp_path / "pedal.mid", [messages])
    got = {(int(n["pitch"]), round(float(n["start_s"]), 3)): round(float(n["end_s"]), 3)
           for n in read_score(path)[0].notes}
    assert got == {(60, 0.0): 0.5, (62, 0.25): 1.5, (60, 0.5): 1.5, (64, 1.75): 2.0}
    plain = {(int(n["pitch"]), round(float(n["start_s"]), 3)): round(float(n["end_s"]), 3)
             for n in read_score(path, sustain_pedal=False)[0].notes}
    assert plain == {(60, 0.0): 0.25, (62, 0.25): 0.375, (60, 0.5): 0.625, (64, 1.75): 2.0}


def test_apply_sustain_never_shortens():
    rng = np.random.default_rng(1)
    start = np.sort(rng.integers(0, 1000, 300))
    end = start + rng.integers(1, 200, 300)
    pitch = rng.integers(60, 64, 300)
    pedal_start = np.array([100, 500])
    new_end = apply_sustain(start, end, pitch, pedal_start, pedal_start + 150)
    assert (new_end >= end).all()
    assert (new_end > end).any()


def test_drums_and_programs_kept(tmp_path):
    notes = read_score(sf.band(tmp_path / "band.mid"))[0].notes
    instruments = {(bool(n["is_drum"]), int(n["program"])) for n in notes}
    assert instruments == {(False, 0), (False, 33), (True, 0)}
    drums = notes[notes["is_drum"]]
    assert sorted(drums["pitch"].tolist()) == [36, 38]
    bass = notes[notes["program"] == 33]
    assert bass["pitch"].tolist() == [36] and bass["end_s"][0] == pytest.approx(1.0)


def test_tempo_and_time_signature(tmp_path):
    piece = read_score(sf.melody(tmp_path / "m.mid"))[0]
    assert piece.tempo_bpm == pytest.approx(120.0)
    assert piece.time_signature == (3, 4)
    assert piece.notes["start_s"].tolist() == pytest.approx([0, 0.5, 1.0, 1.5, 2.0])


def test_write_then_read_keeps_notes(tmp_path):
    notes = notes_to_array([
        Note(60, 100, 0.0, 0.5), Note(64, 90, 0.5, 1.25, program=40),
        Note(36, 120, 0.25, 0.3, is_drum=True), Note(67, 30, 1.0, 1.0004),  # shorter than a tick
    ])
    path = tmp_path / "w.mid"
    write_midi(notes, path, tempo_bpm=120)
    back = read_midi_notes(path)
    assert len(back) == 4
    np.testing.assert_array_equal(back["pitch"], notes["pitch"])
    np.testing.assert_array_equal(back["program"], notes["program"])
    np.testing.assert_array_equal(back["is_drum"], notes["is_drum"])
    np.testing.assert_allclose(back["start_s"], notes["start_s"], atol=1.1e-3)
    assert (back["end_s"] > back["start_s"]).all()
    # Other readers open it too: pretty_midi sees three instruments, drums on channel 10.
    ref = pretty_midi_notes(path)
    assert len(ref) == 4 and ref["is_drum"].sum() == 1
    import music21

    parsed = music21.converter.parse(str(path))
    assert len(parsed.flatten().notes) >= 3


def test_long_file_with_huge_ticks_is_read(tmp_path):
    path = sf.long_ticks(tmp_path / "long.mid")
    import pretty_midi

    with pytest.raises(ValueError):
        pretty_midi.PrettyMIDI(str(path))
    notes = read_score(path)[0].notes
    assert len(notes) == 12
    # 960 tpq at 120 bpm: 1,000,480 ticks per note = 521.08 s
    assert notes["start_s"][-1] == pytest.approx(11 * 1_000_480 / 1920)


def test_musicxml_named_mid_is_read_as_musicxml(tmp_path):
    path = tmp_path / "score.mid"
    path.write_text(sf.musicxml_text())
    assert detect_format(path.read_bytes(), ".mid") == "musicxml"
    notes = read_score(path)[0].notes
    assert notes["pitch"].tolist() == [60, 64]
    assert notes["end_s"][1] - notes["start_s"][1] == pytest.approx(2 * notes["end_s"][0])


def test_abc_file_with_several_tunes(tmp_path):
    path = tmp_path / "tunes.abc"
    path.write_text(sf.ABC_THREE_TUNES)
    pieces = read_score(path)
    assert [p.name for p in pieces] == ["tunes#1", "tunes#2", "tunes#7"]
    assert [len(p.notes) for p in pieces] == [9, 6, 4]
    assert pieces[1].time_signature == (3, 4)


def test_kern(tmp_path):
    path = tmp_path / "two.krn"
    path.write_text(sf.KERN_TWO_SPINES)
    notes = read_score(path)[0].notes
    assert sorted(notes["pitch"].tolist()) == [48, 50, 52, 60, 62, 64]


def test_absurd_tempos_are_clamped(tmp_path):
    fast = read_score(sf.absurd_tempo(tmp_path / "zero.mid", tempo=0))[0]
    assert fast.tempo_bpm == pytest.approx(6000)
    assert (fast.notes["end_s"] > fast.notes["start_s"]).all()
    slow = read_score(sf.absurd_tempo(tmp_path / "slow.mid", tempo=16_777_215))[0]
    assert slow.duration_s < 12 * 3600


def test_zero_length_notes_are_dropped(tmp_path):
    path = sf.write_mido(tmp_path / "z.mid", [[sf.on(60), sf.off(60, 0), sf.on(62), sf.off(62, 10)]])
    piece = read_score(path)[0]
    assert piece.notes["pitch"].tolist() == [62]
    assert piece.meta["dropped_zero_length"] == 1


def test_zero_length_drum_notes_are_kept(tmp_path):
    """A drum sounds however short its note: drum machines write note-on and note-off at one
    tick, and such a kit vanished."""
    hits = [m for k in range(4) for m in (sf.on(36 + k, 0 if k == 0 else 120, channel=9),
                                           sf.off(36 + k, 0, channel=9))]
    notes = read_score(sf.write_mido(tmp_path / "kit.mid", [hits]))[0].notes
    assert notes["pitch"].tolist() == [36, 37, 38, 39]
    assert notes["is_drum"].all() and (notes["end_s"] > notes["start_s"]).all()


def test_drum_notes_never_released_are_kept(tmp_path):
    """Note-ons without note-offs (as drum machines write them) were all dropped."""
    hits = [sf.on((36, 42, 38, 42)[k % 4], 0 if k == 0 else 240, channel=9) for k in range(8)]
    bass = [sf.program(33, 1), sf.on(40, 0, channel=1), sf.off(40, 1920, channel=1)]
    notes = read_score(sf.write_mido(tmp_path / "machine.mid", [hits, bass]))[0].notes
    drums = notes[notes["is_drum"]]
    assert drums["pitch"].tolist() == [36, 42, 38, 42, 36, 42, 38, 42]
    assert drums["start_s"].tolist() == pytest.approx([k * 0.25 for k in range(8)])
    # each hit ends at the next of its key or a sixteenth note later, whichever is first
    assert (drums["end_s"] - drums["start_s"]).tolist() == pytest.approx([0.125] * 8)
    assert notes[~notes["is_drum"]]["program"].tolist() == [33]


def test_a_track_of_pitched_notes_never_released_is_kept(tmp_path):
    held = [sf.on(60), sf.on(64, 480), sf.on(60, 480), sf.on(67, 480)]
    notes = read_score(sf.write_mido(tmp_path / "held.mid", [held]))[0].notes
    # 60 ends when struck again, the others with the track; the last one a beat later
    assert sorted(zip(notes["pitch"].tolist(), notes["start_s"].tolist(),
                      notes["end_s"].tolist())) == [(60, 0.0, 1.0), (60, 1.0, 1.5),
                                                    (64, 0.5, 1.5), (67, 1.5, 2.0)]


@pytest.mark.parametrize("frames_per_s, ticks_per_frame", [(25, 40), (30, 80), (24, 4)])
def test_smpte_time_division_is_read_in_seconds(tmp_path, frames_per_s, ticks_per_frame):
    """SMPTE files (frames x ticks per second, tempo events ignored) were refused as corrupt."""
    ticks_per_s = frames_per_s * ticks_per_frame
    notes = [m for k in range(4) for m in (sf.on(60 + k), sf.off(60 + k, ticks_per_s // 2))]
    path = sf.write_mido(tmp_path / "smpte.mid", [notes], tempo=1_000_000)
    data = bytearray(path.read_bytes())
    data[12], data[13] = 256 - frames_per_s, ticks_per_frame
    path.write_bytes(bytes(data))
    read = read_score(path)[0].notes
    assert read["pitch"].tolist() == [60, 61, 62, 63]
    assert read["start_s"].tolist() == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert read["end_s"].tolist() == pytest.approx([0.5, 1.0, 1.5, 2.0])


def test_a_file_cut_short_keeps_what_it_has(tmp_path):
    """Players play a truncated file up to the cut; it was skipped whole as corrupt."""
    notes = read_score(sf.cut_short(tmp_path / "cut.mid"))[0].notes
    whole = read_score(sf.melody(tmp_path / "whole.mid"))[0]
    assert notes.tolist() == whole.notes.tolist()  # the last note, cut before its note-off,
    # sounds to the end of the file as a player plays it: where it starts, so a beat long


def test_a_file_cut_short_keeps_its_last_notes_that_lost_their_note_off(tmp_path):
    """A file cut short loses the note-offs of the notes sounding at the cut; symusic then
    dropped those notes, though players play them."""
    held = [sf.on(48), sf.on(60), sf.off(60, 480), sf.on(62), sf.off(62, 480), sf.on(64),
            sf.off(64, 480), sf.off(48, 480)]
    path = sf.write_mido(tmp_path / "cut.mid", [held])
    path.write_bytes(path.read_bytes()[:-6])  # cut inside the bass note's note-off
    notes = read_score(path)[0].notes
    assert sorted(zip(notes["pitch"].tolist(), notes["start_s"].tolist(),
                      notes["end_s"].tolist())) == [(48, 0.0, 1.5), (60, 0.0, 0.5),
                                                    (62, 0.5, 1.0), (64, 1.0, 1.5)]


def test_a_file_cut_short_says_it_was_read_in_part(tmp_path):
    """It was read up to the cut with no word to the user."""
    assert read_score(sf.cut_short(tmp_path / "cut.mid"))[0].meta["read_in_part"] == "cut short"
    assert "read_in_part" not in read_score(sf.melody(tmp_path / "whole.mid"))[0].meta


def test_a_file_cut_inside_running_status_keeps_its_complete_notes(tmp_path):
    body = (b"\x00\x90\x3c\x40" b"\x60\x3c\x00"  # C4 on, off (running status, velocity 0)
            b"\x00\x3e\x40" b"\x60\x3e\x00"  # D4 on, off
            b"\x00\x40\x40" b"\x60\x40")  # E4 on, then cut inside its note-off
    data = (b"MThd" + bytes([0, 0, 0, 6, 0, 0, 0, 1, 0, 96]) + b"MTrk"
            + (len(body) + 4).to_bytes(4, "big") + body)  # claims its end-of-track too
    (tmp_path / "cut.mid").write_bytes(data)
    notes = read_score(tmp_path / "cut.mid")[0].notes
    assert notes["pitch"].tolist() == [60, 62, 64]  # E4, cut in its note-off, sounds a beat


def test_a_data_byte_above_127_does_not_lose_the_file(tmp_path):
    """A controller value of 168 in a pop song made symusic refuse the whole file ("value out
    of range"); FluidSynth plays it all but that event."""
    body = (b"\x00\x90\x3c\x40" b"\x60\xb0\x07\xa8"  # C4 on; volume 168
            b"\x00\x80\x3c\x40" b"\x00\x90\x3e\x40" b"\x60\x80\x3e\x40"  # C4 off; D4
            b"\x00\xff\x2f\x00")
    data = (b"MThd" + bytes([0, 0, 0, 6, 0, 0, 0, 1, 0, 96]) + b"MTrk"
            + len(body).to_bytes(4, "big") + body)
    (tmp_path / "loud.mid").write_bytes(data)
    notes = read_score(tmp_path / "loud.mid")[0].notes
    assert notes["pitch"].tolist() == [60, 62]
    assert notes["start_s"].tolist() == pytest.approx([0.0, 0.5])
    cut_body = body[:12] + b"\x00\x90\x3e"  # and cut inside D4's note-on, track length true
    (tmp_path / "loud_cut.mid").write_bytes(data[:18] + len(cut_body).to_bytes(4, "big")
                                            + cut_body)
    cut = read_score(tmp_path / "loud_cut.mid")[0]
    assert cut.notes["pitch"].tolist() == [60] and cut.meta["read_in_part"] == "cut short"


def test_a_track_longer_than_the_file_is_read(tmp_path):
    path = sf.melody(tmp_path / "long_claim.mid")
    data = bytearray(path.read_bytes())
    last = data.rindex(b"MTrk")
    data[last + 4:last + 8] = (10**6).to_bytes(4, "big")  # the last track claims 1 MB
    path.write_bytes(bytes(data))
    assert read_score(path)[0].notes["pitch"].tolist() == [60, 62, 64, 65, 67]


def test_many_notes(tmp_path):
    notes = read_score(sf.many_notes(tmp_path / "huge.mid"))[0].notes
    assert len(notes) == 200_000


@pytest.mark.parametrize("make, reason", [
    (lambda p: p.write_bytes(b""), "empty file"),
    (sf.truncated, "corrupt MIDI: truncated"),
    (lambda p: p.write_bytes(np.random.default_rng(3).bytes(500)), "not a MIDI file"),
    (lambda p: p.write_bytes(b"MThd" + np.random.default_rng(3).bytes(500)),
     "corrupt MIDI: bad header"),
    (sf.header_only, "no notes"),
    (sf.no_notes, "no notes"),
])
def test_bad_files_give_short_reasons(tmp_path, make, reason):
    path = tmp_path / "bad.mid"
    make(path)
    with pytest.raises(MidigenError) as e:
        read_score(path)
    assert str(e.value) == reason


@pytest.mark.parametrize("text", [
    '<?xml version="1.0"?>\n<project><version>1</version></project>\n',
    '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg"><circle r="4"/></svg>',
    '<mei xmlns="http://www.music-encoding.org/ns/mei"><music/></mei>',
])
def test_xml_that_is_not_a_score_says_so(tmp_path, monkeypatch, text):
    from midigen import score_io

    monkeypatch.setattr(score_io, "render_score", lambda *a: pytest.fail("a reader was tried"))
    path = tmp_path / "library.xml"
    path.write_text(text)
    with pytest.raises(MidigenError, match=r"^not a MusicXML score \(an XML file of another kind\)$"):
        read_score(path)


def test_unsupported_suffix_and_missing_file(tmp_path):
    other = tmp_path / "song.xyz"
    other.write_text("hello")
    with pytest.raises(MidigenError, match=r"^unsupported file type \.xyz$"):
        read_score(other)
    with pytest.raises(MidigenError, match="cannot open"):
        read_score(tmp_path / "missing.mid")


def _programs_heard(path) -> list[tuple[float, int, int]]:
    """(time, key, program) of every note as a player hears it: each channel plays with the
    last program change it received."""
    import mido

    heard, current, now = [], {}, 0.0
    for message in mido.MidiFile(str(path)):  # merged in time order, times in seconds
        now += message.time
        if message.type == "program_change":
            current[message.channel] = message.program
        elif message.type == "note_on" and message.velocity and message.channel != 9:
            heard.append((round(now, 3), message.note, current.get(message.channel, 0)))
    return sorted(heard)


def test_more_than_15_instruments_each_sound_as_themselves(tmp_path):
    """symusic gave the 16th pitched instrument the first one's channel: players played one
    of them with the other's sound."""
    notes = notes_to_array([Note(40 + k, 80, 0.1 * k, 3.0, program=4 * k) for k in range(20)]
                           + [Note(60 + k % 3, 80, 3.0 + 0.2 * k, 3.1 + 0.2 * k, program=k)
                              for k in range(30)]
                           + [Note(36, 100, 0.0, 0.1, is_drum=True)])
    write_midi(notes, tmp_path / "orchestra.mid")
    pitched = notes[~notes["is_drum"]]
    written = sorted((round(float(s), 3), int(p), int(g))
                     for s, p, g in zip(pitched["start_s"], pitched["pitch"], pitched["program"]))
    assert _programs_heard(tmp_path / "orchestra.mid") == written
    back = read_score(tmp_path / "orchestra.mid")[0].notes  # and midigen reads it back
    assert sorted(zip(back["start_s"].round(3).tolist(), back["pitch"].tolist(),
                      back["program"].tolist(), back["is_drum"].tolist())) == sorted(
        zip(notes["start_s"].round(3).tolist(), notes["pitch"].tolist(),
            notes["program"].tolist(), notes["is_drum"].tolist()))


def test_program_changes_in_a_setup_track_apply_to_the_other_tracks(tmp_path):
    """Older GM files set every channel's program in one track and play the notes in others;
    players apply a program change to its channel whatever track holds it, symusic only to
    its own track, so these notes were read as piano."""
    import mido

    setup = [sf.program(40, 1), sf.program(73, 2), sf.cc(7, 100, channel=1),
             mido.Message("program_change", channel=1, program=41, time=960)]
    band = [sf.on(60, channel=1), sf.on(64, channel=2), sf.off(60, 480, channel=1),
            sf.off(64, channel=2), sf.on(62, 480, channel=1), sf.off(62, 480, channel=1)]
    drums = [sf.on(36, channel=9), sf.off(36, 240, channel=9)]
    path = sf.write_mido(tmp_path / "setup.mid", [setup, band, drums])
    notes = read_score(path)[0].notes
    pitched = notes[~notes["is_drum"]]
    got = sorted(zip(pitched["start_s"].round(3).tolist(), pitched["pitch"].tolist(),
                     pitched["program"].tolist()))
    assert got == [(0.0, 60, 40), (0.0, 64, 73), (1.0, 62, 41)]  # 41 from its time on
    assert got == _programs_heard(path)
    assert notes[notes["is_drum"]]["program"].tolist() == [0]


def test_shared_program_changes_keep_the_running_status_of_the_notes(tmp_path):
    """A program change inserted among notes written with running status must not take
    over the status of the notes after it."""
    setup = b"\x00\xc0\x28" b"\x60\xc0\x29" b"\x00\xff\x2f\x00"  # ch 1: 40, then 41 at 96
    body = (b"\x00\x90\x3c\x40" b"\x60\x3c\x00"  # C4 on, off at 96 (running status)
            b"\x00\x3e\x40" b"\x60\x3e\x00" b"\x00\xff\x2f\x00")  # D4 at 96 .. 192
    data = b"MThd" + bytes([0, 0, 0, 6, 0, 1, 0, 2, 0, 96]) + b"".join(
        b"MTrk" + len(t).to_bytes(4, "big") + t for t in (setup, body))
    (tmp_path / "running.mid").write_bytes(data)
    notes = read_score(tmp_path / "running.mid")[0].notes
    assert list(zip(notes["pitch"].tolist(), notes["program"].tolist(),
                    notes["end_s"].tolist())) == [(60, 40, 0.5), (62, 41, 1.0)]


def test_a_setup_track_and_drums_never_released_are_both_repaired(tmp_path):
    """Both repairs at once: the program changes are copied into the repaired file, not
    into the file as it was (whose drum notes symusic drops)."""
    hits = [sf.on((36, 42)[k % 2], 0 if k == 0 else 240, channel=9) for k in range(4)]
    bass = [sf.on(40, channel=1), sf.off(40, 960, channel=1)]
    path = sf.write_mido(tmp_path / "machine.mid", [[sf.program(33, 1)], hits, bass])
    notes = read_score(path)[0].notes
    assert notes[notes["is_drum"]]["pitch"].tolist() == [36, 42, 36, 42]
    assert notes[~notes["is_drum"]]["program"].tolist() == [33]
