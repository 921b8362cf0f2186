"""Rendering with the real FluidSynth, piano rolls and training curves with real matplotlib.

MIDI inputs are written with pretty_midi directly (or as raw bytes where a file must be odd),
so these tests do not depend on midigen's own writer.
"""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from matplotlib.image import imread

from midigen.audio import (
    SAMPLE_RATE_HZ,
    _pretty_midi_soundfont,
    find_soundfont,
    prepare_output_path,
    read_wav,
    render_wav,
    scan_midi,
)
from midigen.errors import MidigenError
from midigen.events import Note, empty_notes, notes_to_array
from midigen.metrics import MetricsRow
from midigen.render import find_player, plot_piano_roll, plot_training_curves, render_samples

RELEASE_TAIL_S = 3.0  # reverb + the slowest release in FluidR3_GM of the programs used here
RMS_FLOOR = 0.02


def write_phrase(path: Path, program: int = 0, is_drum: bool = False,
                 end_s: float = 3.0) -> Path:
    """A C major arpeggio up to `end_s`, the last note held to the very end."""
    pm = pretty_midi.PrettyMIDI()
    inst = pretty_midi.Instrument(program, is_drum=is_drum)
    pitches = [60, 64, 67, 72]
    step_s = end_s / len(pitches)
    for i, pitch in enumerate(pitches):
        inst.notes.append(pretty_midi.Note(100, pitch, i * step_s, (i + 1) * step_s))
    pm.instruments.append(inst)
    pm.write(str(path))
    return path


def raw_midi(path: Path, track: bytes, division: int = 480, fmt: int = 0) -> Path:
    path.write_bytes(b"MThd" + struct.pack(">IHHH", 6, fmt, 1, division)
                     + b"MTrk" + struct.pack(">I", len(track)) + track)
    return path


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2))) if samples.size else 0.0


# --- audio ----------------------------------------------------------------------------------

def test_wav_lasts_as_long_as_the_midi_and_is_not_silent(tmp_path, fluidsynth):
    midi = write_phrase(tmp_path / "phrase.mid", end_s=3.0)
    audio = render_wav(midi, tmp_path / "phrase.wav")
    samples, rate = read_wav(audio.wav_path)
    duration_s = len(samples) / rate
    assert rate == SAMPLE_RATE_HZ and samples.shape[1] == 2
    assert abs(audio.midi_duration_s - 3.0) < 0.05
    assert 3.0 - 0.5 <= duration_s <= 3.0 + 0.5 + RELEASE_TAIL_S
    assert duration_s == pytest.approx(audio.wav_duration_s)
    assert rms(samples) > RMS_FLOOR
    # Not cut early: the last held note still sounds in the final half second of the music.
    assert rms(samples[int(2.5 * rate):int(3.0 * rate)]) > RMS_FLOOR / 4
    assert not list(tmp_path.glob(".*tmp"))  # the temporary WAV was moved into place


def _spectrum(samples: np.ndarray) -> np.ndarray:
    mono = samples.mean(axis=1)[: 2 * SAMPLE_RATE_HZ]
    magnitude = np.abs(np.fft.rfft(mono))
    bands = np.array_split(magnitude[: len(magnitude) // 4], 200)  # 0 .. 11 kHz in 200 bands
    energy = np.array([b.sum() for b in bands])
    return energy / np.linalg.norm(energy)


def test_two_programs_sound_different(tmp_path, fluidsynth):
    piano = render_wav(write_phrase(tmp_path / "piano.mid", program=0), tmp_path / "piano.wav")
    flute = render_wav(write_phrase(tmp_path / "flute.mid", program=73), tmp_path / "flute.wav")
    piano_again = render_wav(tmp_path / "piano.mid", tmp_path / "piano2.wav")
    a, b, c = (read_wav(x.wav_path)[0] for x in (piano, flute, piano_again))
    same = float(_spectrum(a) @ _spectrum(c))
    different = float(_spectrum(a) @ _spectrum(b))
    assert same > 0.999  # rendering is deterministic enough to compare
    assert different < 0.9, (same, different)  # measured: piano vs flute 0.73


def test_drums_render_on_channel_10(tmp_path, fluidsynth):
    midi = write_phrase(tmp_path / "drums.mid", is_drum=True)
    samples, _ = read_wav(render_wav(midi, tmp_path / "drums.wav").wav_path)
    assert rms(samples) > RMS_FLOOR


def test_a_note_never_released_still_ends(tmp_path, fluidsynth):
    # Note on with no note off and the sustain pedal down: FluidSynth alone renders forever.
    track = (b"\x00\xc0\x30" b"\x00\xb0\x40\x7f" b"\x00\x90\x3c\x64"
             b"\x83\x60\xff\x2f\x00")  # 480 ticks, then end of track
    midi = raw_midi(tmp_path / "hanging.mid", track)
    audio = render_wav(midi, tmp_path / "hanging.wav")
    assert audio.midi_duration_s == pytest.approx(0.5)
    assert 0.5 <= audio.wav_duration_s <= 0.5 + RELEASE_TAIL_S + 2.0


def test_scan_follows_tempo_changes(tmp_path):
    # One quarter at 120 bpm (0.5 s), then 60 bpm for one quarter (1 s).
    track = (b"\x00\xff\x51\x03\x07\xa1\x20" b"\x00\x90\x3c\x64" b"\x83\x60\xff\x51\x03\x0f\x42\x40"
             b"\x83\x60\x80\x3c\x00" b"\x00\xff\x2f\x00")
    scan = scan_midi(raw_midi(tmp_path / "tempo.mid", track))
    assert scan.num_notes == 1 and scan.end_tick == 960
    assert scan.duration_s == pytest.approx(1.5)


def test_non_midi_is_refused(tmp_path):
    text = tmp_path / "notes.mid"
    text.write_text("these are not notes\n")
    with pytest.raises(MidigenError, match="not a MIDI file"):
        scan_midi(text)
    with pytest.raises(MidigenError, match="not a MIDI file"):
        render_wav(text, tmp_path / "out.wav")


def test_soundfont_choice(tmp_path, monkeypatch):
    with pytest.raises(MidigenError, match="soundfont not found"):
        find_soundfont(tmp_path / "missing.sf2")
    fake = tmp_path / "fake.sf2"
    fake.write_bytes(b"not a soundfont at all")
    with pytest.raises(MidigenError, match="not a SoundFont"):
        find_soundfont(fake)
    bundled = _pretty_midi_soundfont()
    assert bundled.is_file()
    monkeypatch.setenv("MIDIGEN_SOUNDFONT", str(bundled))
    assert find_soundfont() == bundled
    monkeypatch.setenv("MIDIGEN_SOUNDFONT", str(tmp_path / "gone.sf2"))
    with pytest.raises(MidigenError, match="MIDIGEN_SOUNDFONT not found"):
        find_soundfont()


def test_bundled_soundfont_renders(tmp_path, fluidsynth):
    midi = write_phrase(tmp_path / "p.mid")
    audio = render_wav(midi, tmp_path / "p.wav", soundfont=_pretty_midi_soundfont())
    assert audio.soundfont.name == "TimGM6mb.sf2"
    assert rms(read_wav(audio.wav_path)[0]) > RMS_FLOOR


def test_output_paths_are_checked_before_work(tmp_path):
    existing = tmp_path / "there.wav"
    existing.write_bytes(b"keep me")
    with pytest.raises(MidigenError, match="already exists; pass --force"):
        prepare_output_path(existing, force=False)
    assert prepare_output_path(existing, force=True) == existing
    with pytest.raises(MidigenError, match="does not exist"):
        prepare_output_path(tmp_path / "no" / "such" / "out.wav", force=False)
    with pytest.raises(MidigenError, match="is not a folder"):
        prepare_output_path(existing / "out.wav", force=False)
    with pytest.raises(MidigenError, match="is a folder"):
        prepare_output_path(tmp_path, force=True)
    assert existing.read_bytes() == b"keep me"


def test_audio_device_can_be_switched_off(monkeypatch):
    monkeypatch.setenv("MIDIGEN_AUDIO_DEVICE", "none")
    assert find_player() is None


# --- pictures -------------------------------------------------------------------------------

def _coloured(image: np.ndarray, rgb: tuple[float, float, float]) -> np.ndarray:
    """Boolean mask of pixels near `rgb` (any alpha over white lands on the same hue line)."""
    pixels = image[..., :3]
    white = np.ones(3)
    direction = white - np.array(rgb)
    # A pixel p = white - a * direction for some shade a in (0.2, 1]: solve and check residual.
    shade = ((white - pixels) @ direction) / (direction @ direction)
    residual = np.linalg.norm(white - pixels - shade[..., None] * direction, axis=-1)
    return (shade > 0.2) & (residual < 0.05)


def test_piano_roll_shows_each_instrument_where_its_notes_are(tmp_path):
    notes = notes_to_array([
        Note(84, 110, 0.0, 4.0, program=0),   # high, early: blue (first colour)
        Note(48, 110, 4.0, 8.0, program=40),  # low, late: orange (second colour)
    ])
    png = plot_piano_roll(notes, tmp_path / "roll.png")
    image = imread(png)
    assert image.shape[:2] == (800, 1600)
    blue = np.argwhere(_coloured(image, (0.122, 0.467, 0.706)))  # tab:blue, (row, col)
    orange = np.argwhere(_coloured(image, (1.0, 0.498, 0.055)))  # tab:orange
    assert len(blue) > 2000 and len(orange) > 2000  # note boxes, not just legend swatches
    blue_row, blue_col = np.median(blue, axis=0)
    orange_row, orange_col = np.median(orange, axis=0)
    assert blue_row < orange_row  # higher pitch is drawn higher up
    assert blue_col < orange_col  # earlier is drawn further left


def test_piano_roll_velocity_is_shade(tmp_path):
    loud = plot_piano_roll(notes_to_array([Note(60, 127, 0.0, 8.0)]), tmp_path / "loud.png")
    soft = plot_piano_roll(notes_to_array([Note(60, 10, 0.0, 8.0)]), tmp_path / "soft.png")
    loud_px, soft_px = imread(loud)[400:420, 600:1000, :3], imread(soft)[400:420, 600:1000, :3]
    assert soft_px.mean() > loud_px.mean() + 0.1  # the soft note is paler


def test_piano_roll_with_drums_and_edge_cases(tmp_path):
    band = notes_to_array([Note(60, 90, 0.0, 1.0, program=33)]
                          + [Note(36 + 6 * (i % 2), 100, i * 0.5, i * 0.5 + 0.1, is_drum=True)
                             for i in range(360)])  # 3 minutes of kick and hi-hat
    for name, notes in (("band", band), ("only_drums", band[band["is_drum"]]),
                        ("empty", empty_notes())):
        image = imread(plot_piano_roll(notes, tmp_path / f"{name}.png"))
        assert image.shape[:2] == (800, 1600)
        ink = (image[..., :3].mean(axis=-1) < 0.5).mean()
        assert 0.001 < ink < 0.5, name  # axes and text at least, never a black picture


def test_training_curves(tmp_path):
    rows = [MetricsRow(step=s, tokens=s * 4096, train_loss=3 * math.exp(-s / 300) + 1.2,
                       valid_nll=3 * math.exp(-s / 300) + 1.4 if s % 100 == 0 else None)
            for s in range(0, 1001, 20)]
    path = tmp_path / "curves.png"
    for n in (0, 1, 2, len(rows)):  # every evaluation redraws the same file
        assert plot_training_curves(rows[:n], path) == path
        image = imread(path)
        assert image.shape[:2] == (500, 900)
    assert _coloured(image, (1.0, 0.498, 0.055)).sum() > 300  # the validation curve is drawn
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png"]  # no temp files left


def test_render_samples_writes_wav_and_png_beside_each_midi(tmp_path, fluidsynth):
    first = write_phrase(tmp_path / "sample_1.mid")
    second = write_phrase(tmp_path / "sample_2.mid", program=24)
    silent = tmp_path / "sample_3.mid"
    pretty_midi.PrettyMIDI().write(str(silent))
    (tmp_path / "sample_1.wav").write_bytes(b"old")  # samples are fresh: old renders go
    written = render_samples([first, second, silent])
    assert [(w and w.name, p.name) for w, p in written] == [
        ("sample_1.wav", "sample_1.png"), ("sample_2.wav", "sample_2.png"),
        (None, "sample_3.png")]
    assert rms(read_wav(tmp_path / "sample_1.wav")[0]) > RMS_FLOOR
    assert all(p.stat().st_size > 1000 for _, p in written)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), fmt=st.integers(0, 2), division=st.integers(0, 0xFFFF))
@example(body=b"\x00\x90\x3c\x64\x00\xff\x2f\x00", fmt=0, division=0xE800)  # SMPTE, 0 ticks
@example(body=b"\x00\x90\x3c\x64\x00\xff\x2f\x00", fmt=0, division=0)
def test_scan_never_crashes_on_damaged_files(tmp_path_factory, body, fmt, division):
    path = tmp_path_factory.mktemp("fuzz") / "damaged.mid"
    raw_midi(path, body, division=division, fmt=fmt)
    try:
        scan = scan_midi(path)
    except MidigenError:
        return
    assert scan.end_tick >= 0 and scan.num_notes >= 0 and math.isfinite(scan.duration_s)
