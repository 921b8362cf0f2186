"""Hear it and see it: play a MIDI file, or turn it into a WAV and a piano-roll PNG.

The heavy lifting lives in `audio` (FluidSynth rendering to WAV) and `pianoroll` (matplotlib
pictures, training curves). This module holds what commands call: play_midi (with the
cheap audio-device check), show_midi, and render_samples for `sample --render` and `demo`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from midigen.audio import (  # noqa: F401  (re-exported)
    INSTALL_HINT,
    SAMPLE_RATE_HZ,
    RenderedAudio,
    find_fluidsynth,
    find_soundfont,
    prepare_output_path,
    read_wav,
    render_wav,
    scan_midi,
)
from midigen.errors import MidigenError
from midigen.events import empty_notes
from midigen.pianoroll import plot_piano_roll, plot_training_curves  # noqa: F401

AUDIO_DEVICE_ENV = "MIDIGEN_AUDIO_DEVICE"  # "none": never play, always write a WAV


def read_notes_for_picture(midi_path: Path | str):
    """The notes of a MIDI file (NOTE_DTYPE), with the file named in any error."""
    from midigen.midi_io import read_midi_notes

    midi_path = Path(midi_path)
    if not midi_path.is_file():
        raise MidigenError(f"{midi_path} does not exist")
    if scan_midi(midi_path).num_notes == 0:
        return empty_notes()  # drawn as an empty roll: a sample may have stopped at once
    try:
        return read_midi_notes(midi_path)
    except MidigenError as e:
        raise MidigenError(f"cannot read {midi_path.name}: {e}") from None


def show_midi(midi_path: Path | str, png_path: Path | str | None = None,
              force: bool = False) -> Path:
    """Draw a MIDI file's piano roll to `png_path` (default: beside it, NAME.png)."""
    midi_path = Path(midi_path)
    png_path = Path(png_path) if png_path is not None else midi_path.with_suffix(".png")
    prepare_output_path(png_path, force, "PNG file")  # fail before reading a long file
    notes = read_notes_for_picture(midi_path)
    return plot_piano_roll(notes, png_path, title=midi_path.name, force=force)


def audio_available(soundfont: Path | str | None = None) -> str | None:
    """None when WAVs can be rendered here, else the one-line reason (what to install)."""
    try:
        find_fluidsynth()
        find_soundfont(soundfont)
    except MidigenError as e:
        return str(e)
    return None


def render_samples(midi_paths: list[Path | str], soundfont: Path | str | None = None,
                   audio: bool = True) -> list[tuple[Path | None, Path]]:
    """NAME.wav and NAME.png beside each MIDI file: [(wav, png)], wav None if no audio/notes.

    Meant for files midigen has just written (`sample --render`, `demo`), so existing WAV and
    PNG files of the same name are replaced. With audio=True a missing FluidSynth or soundfont
    raises MidigenError before anything is drawn; callers that want pictures regardless can
    pass audio=(audio_available() is None).
    """
    if audio:
        find_fluidsynth()
        find_soundfont(soundfont)
    written = []
    for midi_path in map(Path, midi_paths):
        wav = None  # a sample with no notes (the sampler can stop at once) gets only a picture
        if audio and scan_midi(midi_path).num_notes:
            wav = render_wav(midi_path, midi_path.with_suffix(".wav"), soundfont,
                             force=True).wav_path
        png = plot_piano_roll(read_notes_for_picture(midi_path), midi_path.with_suffix(".png"),
                              title=midi_path.name, force=True)
        written.append((wav, png))
    return written


def find_player() -> list[str] | None:
    """A command that plays a WAV through a live audio device, or None (checked cheaply).

    MIDIGEN_AUDIO_DEVICE=none says there is none (servers, tests, a quiet office).
    """
    if os.environ.get(AUDIO_DEVICE_ENV, "").lower() in {"none", "0", "off"}:
        return None
    if sys.platform == "darwin":
        return ["afplay"] if shutil.which("afplay") else None
    if sys.platform.startswith("win"):
        return ["winsound"]
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.getuid()}")
    pulse = os.environ.get("PULSE_SERVER") or (runtime / "pulse" / "native").exists()
    if pulse and shutil.which("paplay"):
        return ["paplay"]
    if (runtime / "pipewire-0").exists() and shutil.which("pw-play"):
        return ["pw-play"]
    if shutil.which("aplay") and any(Path("/dev/snd").glob("pcmC*D*p")):
        return ["aplay", "-q"]
    return None


def play_wav(wav_path: Path, player: list[str]) -> str | None:
    """Play a WAV to the end; None when it played, else why it could not."""
    if player == ["winsound"]:
        import winsound  # type: ignore[import-not-found]

        winsound.PlaySound(str(wav_path), winsound.SND_FILENAME)
        return None
    done = subprocess.run([*player, str(wav_path)], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return f"{player[0]} failed" + (f": {lines[-1]}" if lines else "")
    return None


@dataclass(frozen=True)
class PlayResult:
    """What `play_midi` did: played through `player`, or wrote `wav_path` (and why)."""

    audio: RenderedAudio | None  # None when played from a temporary file that is gone
    midi_duration_s: float
    player: str | None
    wav_path: Path | None
    reason: str  # why a WAV was written instead of (or as well as) playing


def play_midi(midi_path: Path | str, wav_path: Path | str | None = None,
              soundfont: Path | str | None = None, force: bool = False) -> PlayResult:
    """Play a MIDI file through the audio device, or write a WAV when asked or when there is none."""
    midi_path = Path(midi_path)
    player = None if wav_path is not None else find_player()
    if wav_path is not None or player is None:
        reason = "as asked" if wav_path is not None else "no audio device found"
        target = Path(wav_path) if wav_path is not None else midi_path.with_suffix(".wav")
        if wav_path is None and target.exists() and not force:
            raise MidigenError(f"no audio device to play on, and {target} already exists; "
                               "pass --force to overwrite it or --wav OTHER.wav")
        audio = render_wav(midi_path, target, soundfont, force)
        return PlayResult(audio, audio.midi_duration_s, None, audio.wav_path, reason)
    with tempfile.TemporaryDirectory(prefix="midigen-play-") as tmp:
        audio = render_wav(midi_path, Path(tmp) / f"{midi_path.stem}.wav", soundfont)
        problem = play_wav(audio.wav_path, player)
        if problem is None:
            return PlayResult(None, audio.midi_duration_s, player[0], None, "")
        target = prepare_output_path(midi_path.with_suffix(".wav"), force, "WAV file")
        shutil.move(str(audio.wav_path), target)
    audio = RenderedAudio(target, audio.midi_duration_s, audio.wav_duration_s, audio.soundfont)
    return PlayResult(audio, audio.midi_duration_s, None, target, f"could not play ({problem})")
