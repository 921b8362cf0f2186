"""Hear a MIDI file: FluidSynth renders it to a 44.1 kHz WAV with a General MIDI soundfont.

FluidSynth is driven as a subprocess (the Debian `fluidsynth` binary), so midigen needs no
compiled binding. Two FluidSynth habits shape this module:
- it exits 0 even when it cannot read the soundfont or write the WAV, so every input and the
  output are checked here and the WAV is verified afterwards;
- in fast-render mode it keeps rendering while any voice sounds, so a note that is never
  released (or a sustain pedal left down) renders forever. We therefore hand it a copy of
  the file with one extra track that lifts the pedal and sends all-notes-off on every
  channel at the last tick: notes then fade with their natural release tail.
The byte-level scan (midigen.midi_scan) only finds that last tick (and the tempo map, for the duration in
seconds); reading notes is midi_io's job.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from midigen.errors import MidigenError
from midigen.fileio import atomic_write
from midigen.midi_bytes import vlq
from midigen.midi_scan import MidiScan, scan_midi

SAMPLE_RATE_HZ = 44100
SOUNDFONT_ENV = "MIDIGEN_SOUNDFONT"
INSTALL_HINT = "apt-get install fluidsynth fluid-soundfont-gm (macOS: brew install fluid-synth)"
PEAK_LEVEL = 0.89  # -1 dBFS: FluidSynth's default gain is quiet, so rendered audio is normalized
TAIL_FLOOR_DB = -60.0  # trailing audio quieter than this (relative to the peak) is trimmed
TAIL_KEEP_S = 0.25

# Places a General MIDI soundfont usually lives, best first; pretty_midi's small
# TimGM6mb.sf2 is the last resort (found without importing pretty_midi).
_SOUNDFONT_PLACES = [
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/opt/homebrew/share/soundfonts/default.sf2",
    "/usr/local/share/soundfonts/default.sf2",
]
_SOUNDFONT_DIRS = ["/usr/share/soundfonts", "/usr/share/sounds/sf2", "~/.local/share/soundfonts"]


def prepare_output_path(path: Path | str, force: bool, what: str = "file") -> Path:
    """The output path, checked before any work: its folder exists and it may be written."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise MidigenError(f"{path} is a folder; give a {what} name")
    if path.exists() and not force:
        raise MidigenError(f"{path} already exists; pass --force to overwrite it")
    folder = path.parent
    if not folder.is_dir():
        problem = "is not a folder" if folder.exists() else "does not exist"
        raise MidigenError(f"cannot write {path}: {folder} {problem}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise MidigenError(f"cannot write {path}: folder {folder} is not writable")
    return path


def find_fluidsynth() -> str:
    """The fluidsynth program to run, or a one-line error naming what to install."""
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise MidigenError(f"FluidSynth is not installed; install it with: {INSTALL_HINT}")
    return exe


def find_soundfont(explicit: Path | str | None = None) -> Path:
    """A General MIDI soundfont: `explicit`, then $MIDIGEN_SOUNDFONT, then the usual places."""
    for given, source in ((explicit, "soundfont"), (os.environ.get(SOUNDFONT_ENV), SOUNDFONT_ENV)):
        if given:
            path = Path(given).expanduser()
            if not path.is_file():
                raise MidigenError(f"{source} not found: {path}")
            _check_soundfont(path)
            return path
    candidates = [Path(p) for p in _SOUNDFONT_PLACES]
    for folder in _SOUNDFONT_DIRS:
        candidates += sorted(Path(folder).expanduser().glob("*.sf2"))
    candidates.append(_pretty_midi_soundfont())
    for path in candidates:
        if path.is_file():
            return path
    raise MidigenError(f"no General MIDI soundfont found; install one with: {INSTALL_HINT} "
                       f"(or pass --soundfont FILE.sf2)")


def _pretty_midi_soundfont() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("pretty_midi")  # finds the package without running it
    if spec is None or spec.origin is None:
        return Path("/nonexistent/TimGM6mb.sf2")
    return Path(spec.origin).parent / "TimGM6mb.sf2"


def _check_soundfont(path: Path) -> None:
    with open(path, "rb") as f:
        head = f.read(12)
    if head[:4] != b"RIFF" or head[8:12] != b"sfbk":
        raise MidigenError(f"{path} is not a SoundFont (.sf2) file")


def _with_release_track(scan: MidiScan) -> bytes:
    """The file plus a track that lifts the sustain pedal and releases all notes at the end."""
    events = bytearray()
    for channel in range(16):
        events += vlq(scan.end_tick if channel == 0 else 0) + bytes([0xB0 | channel, 64, 0])
        events += b"\x00" + bytes([0xB0 | channel, 123, 0])  # all notes off (release, not cut)
    events += b"\x00\xff\x2f\x00"  # end of track
    header_len = int.from_bytes(scan.data[4:8], "big")
    header = b"MThd" + struct.pack(">IHHH", 6, 1 if scan.format == 0 else scan.format,
                                   scan.num_tracks + 1, scan.division)
    return (header + scan.data[8 + header_len:] + b"MTrk" + len(events).to_bytes(4, "big")
            + bytes(events))


@dataclass(frozen=True)
class RenderedAudio:
    """A WAV written from a MIDI file, with the lengths that show nothing was cut."""

    wav_path: Path
    midi_duration_s: float
    wav_duration_s: float
    soundfont: Path


def render_wav(midi_path: Path | str, wav_path: Path | str, soundfont: Path | str | None = None,
               force: bool = False) -> RenderedAudio:
    """Render a MIDI file to a 44.1 kHz stereo WAV with FluidSynth and a GM soundfont."""
    midi_path = Path(midi_path)
    wav_path = prepare_output_path(wav_path, force, "WAV file")
    scan = scan_midi(midi_path)
    if scan.num_notes == 0:
        raise MidigenError(f"{midi_path.name} has no notes to play")
    font = find_soundfont(soundfont)  # a mistyped --soundfont is reported first
    exe = find_fluidsynth()
    with tempfile.TemporaryDirectory(prefix="midigen-render-") as tmp:
        patched, raw_wav = Path(tmp) / "in.mid", Path(tmp) / "out.wav"
        patched.write_bytes(_with_release_track(scan))
        cmd = [exe, "-niq", "-F", str(raw_wav), "-T", "wav", "-O", "s16",
               "-r", str(SAMPLE_RATE_HZ), str(font), str(patched)]
        try:
            done = subprocess.run(cmd, check=False, capture_output=True, text=True,
                                  timeout=60 + 2 * scan.duration_s)
        except subprocess.TimeoutExpired:
            raise MidigenError(f"FluidSynth did not finish rendering {midi_path.name}") from None
        if not raw_wav.is_file() or raw_wav.stat().st_size <= 44:
            lines = (done.stderr or done.stdout).strip().splitlines()
            raise MidigenError(f"FluidSynth could not render {midi_path.name}"
                               + (f": {lines[-1]}" if lines else ""))
        wav_duration_s = _finish_wav(raw_wav, wav_path, scan.duration_s)
    return RenderedAudio(wav_path, scan.duration_s, wav_duration_s, font)


def read_wav(path: Path | str) -> tuple[np.ndarray, int]:
    """(samples as float32 in [-1, 1], shape (frames, channels), sample rate) of a 16-bit WAV."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise MidigenError(f"{path}: only 16-bit WAV files are supported")
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
        return frames.reshape(-1, w.getnchannels()).astype(np.float32) / 32768, w.getframerate()


def _finish_wav(raw: Path, path: Path, music_s: float) -> float:
    """`raw` normalized to PEAK_LEVEL, its silent end trimmed (never inside the music), written
    whole to `path`; the new length."""
    with wave.open(str(raw), "rb") as w:
        channels, rate = w.getnchannels(), w.getframerate()
        frames = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, channels)
    loudness = np.abs(frames.astype(np.int32)).max(axis=1)  # (frames,)
    peak = int(loudness.max()) if len(loudness) else 0
    if peak > 0:
        audible = np.flatnonzero(loudness > peak * 10 ** (TAIL_FLOOR_DB / 20))
        keep = max(int(audible[-1]) + int(TAIL_KEEP_S * rate), int(np.ceil(music_s * rate)))
        gain = PEAK_LEVEL * 32767 / peak
        frames = np.clip(np.rint(frames[:keep] * gain), -32768, 32767).astype("<i2")
    with atomic_write(path) as f, wave.open(f, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(frames.tobytes())
    return len(frames) / rate
