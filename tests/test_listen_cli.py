"""`midigen play` and `midigen show` through the CLI, with the real FluidSynth and matplotlib."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pretty_midi
import pytest
from matplotlib.image import imread
from typer.testing import CliRunner

from midigen.audio import read_wav
from midigen.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def no_speakers(monkeypatch):
    """Tests never make noise: play behaves as on a machine without an audio device."""
    monkeypatch.setenv("MIDIGEN_AUDIO_DEVICE", "none")


@pytest.fixture
def song(tmp_path):
    pm = pretty_midi.PrettyMIDI()
    for program, pitches in ((0, [60, 64, 67, 72]), (33, [36, 43, 36, 43])):
        inst = pretty_midi.Instrument(program)
        for i, pitch in enumerate(pitches):
            inst.notes.append(pretty_midi.Note(90, pitch, i * 0.5, (i + 1) * 0.5))
        pm.instruments.append(inst)
    path = tmp_path / "song.mid"
    pm.write(str(path))
    return path


def one_error_line(result) -> str:
    assert result.exit_code == 1, result.output
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ")
    return lines[0]


def test_play_writes_wav_when_asked(tmp_path, song, fluidsynth):
    out = tmp_path / "out.wav"
    result = runner.invoke(app, ["play", str(song), "--wav", str(out)])
    assert result.exit_code == 0, result.output
    assert str(out) in result.stdout and "44.1 kHz" in result.stdout
    samples, rate = read_wav(out)
    assert rate == 44100 and 2.0 - 0.5 <= len(samples) / rate <= 2.0 + 0.5 + 3.0


def test_play_without_audio_device_writes_wav_beside_the_midi(song, fluidsynth):
    result = runner.invoke(app, ["play", str(song)])
    assert result.exit_code == 0, result.output
    assert "no audio device" in result.stdout
    assert song.with_suffix(".wav").is_file()
    line = one_error_line(runner.invoke(app, ["play", str(song)]))
    assert "already exists" in line and "--wav" in line


def test_play_never_overwrites_without_force(tmp_path, song, fluidsynth):
    out = tmp_path / "taken.wav"
    out.write_bytes(b"someone's recording")
    line = one_error_line(runner.invoke(app, ["play", str(song), "--wav", str(out)]))
    assert "already exists" in line and "--force" in line
    assert out.read_bytes() == b"someone's recording"
    result = runner.invoke(app, ["play", str(song), "--wav", str(out), "--force"])
    assert result.exit_code == 0, result.output
    assert read_wav(out)[1] == 44100


def test_play_errors_are_one_line(tmp_path, song):
    text = tmp_path / "letter.mid"
    text.write_text("Dear Sir,\n")
    assert "not a MIDI file" in one_error_line(
        runner.invoke(app, ["play", str(text), "--wav", str(tmp_path / "a.wav")]))
    assert "soundfont not found" in one_error_line(runner.invoke(
        app, ["play", str(song), "--wav", str(tmp_path / "b.wav"),
              "--soundfont", str(tmp_path / "missing.sf2")]))
    assert "does not exist" in one_error_line(runner.invoke(
        app, ["play", str(song), "--wav", str(tmp_path / "no" / "dir" / "c.wav")]))
    assert "cannot read" in one_error_line(runner.invoke(app, ["play", str(tmp_path / "x.mid")]))
    assert not list(tmp_path.glob("*.wav"))


def test_missing_synthesizer_names_what_to_install(tmp_path, song, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # a machine without the fluidsynth program
    line = one_error_line(runner.invoke(app, ["play", str(song), "--wav", str(tmp_path / "a.wav")]))
    assert "FluidSynth is not installed" in line and "apt-get install fluidsynth" in line


def test_show_draws_a_piano_roll(tmp_path, song):
    out = tmp_path / "roll.png"
    result = runner.invoke(app, ["show", str(song), "-o", str(out)])
    assert result.exit_code == 0, result.output
    image = imread(out)
    assert image.shape[:2] == (800, 1600)
    plot_area = image[100:700, 200:1400, :3]
    assert (plot_area.mean(axis=-1) < 0.9).mean() > 0.01  # notes, not an empty white box
    line = one_error_line(runner.invoke(app, ["show", str(song), "-o", str(out)]))
    assert "already exists" in line


def test_show_errors_are_one_line(tmp_path, song):
    text = tmp_path / "letter.mid"
    text.write_text("Dear Sir,\n")
    assert "not a MIDI file" in one_error_line(runner.invoke(app, ["show", str(text)]))
    assert "does not exist" in one_error_line(runner.invoke(
        app, ["show", str(song), "-o", str(tmp_path / "no" / "roll.png")]))


def test_installed_command_shows(tmp_path, song):
    """One real process: the `midigen` entry point, default output beside the MIDI file."""
    exe = shutil.which("midigen")
    cmd = [exe] if exe else [sys.executable, "-m", "midigen"]
    done = subprocess.run([*cmd, "show", str(song)], check=False, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert song.with_suffix(".png").is_file()
