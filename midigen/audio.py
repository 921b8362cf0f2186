"""Hear a MIDI file: FluidSynth renders it to a 44.1 kHz WAV with a General MIDI soundfont.

FluidSynth is driven as a subprocess (the Debian `fluidsynth` binary), so midigen needs no
compiled binding. Two FluidSynth habits shape this module:
- it exits 0 even when it cannot read the soundfont or write the WAV, so every input and the
  output are checked here and the WAV is verified afterwards;
- in fast-render mode it keeps rendering while any voice sounds, so a note that is never
  released (or a sustain pedal left down) renders forever. We therefore hand it a copy of
  the file with one extra track that lifts the pedal and sends all-notes-off on every
  channel at the last tick: notes then fade with their natural release tail.
The byte-level scan below only finds that last tick (and the tempo map, for the duration in
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


@dataclass(frozen=True)
class MidiScan:
    """What the renderer needs to know about a MIDI file before handing it to FluidSynth."""

    format: int
    num_tracks: int
    division: int  # ticks per quarter note, or the raw SMPTE word when bit 15 is set
    end_tick: int  # last tick of the longest track (its end-of-track event)
    duration_s: float  # end_tick in seconds, through the tempo map
    num_notes: int
    data: bytes  # header + tracks as read (without trailing junk)


def scan_midi(path: Path | str) -> MidiScan:
    """Check that `path` is a Standard MIDI File and find its length; MidigenError if not."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise MidigenError(f"cannot read {path}: {e.strerror or e}") from None
    if raw[:4] == b"RIFF" and raw[8:12] == b"RMID":  # a MIDI file in a RIFF wrapper
        raw = raw[max(raw.find(b"MThd"), 0):]
    if raw[:4] != b"MThd" or len(raw) < 14:
        raise MidigenError(f"{path.name} is not a MIDI file (no MThd header)")
    header_len, fmt, _, division = struct.unpack(">IHHH", raw[4:14])
    if division in (0, 0x8000) or (division & 0x8000 and not division & 0xFF):
        raise MidigenError(f"{path.name} is a damaged MIDI file (no time division)")
    pos = 8 + header_len
    end_ticks, tempos, num_notes, num_tracks, data_end = [], [], 0, 0, pos
    while pos + 8 <= len(raw):
        chunk_id, chunk_len = raw[pos:pos + 4], int.from_bytes(raw[pos + 4:pos + 8], "big")
        body = raw[pos + 8:pos + 8 + chunk_len]
        pos += 8 + chunk_len
        if chunk_id == b"MTrk":  # other chunk types are skipped, as the standard says
            end_tick, notes, track_tempos = _scan_track(body)
            end_ticks.append(end_tick)
            num_notes += notes
            tempos += track_tempos
            num_tracks += 1
            data_end = min(pos, len(raw))
    if num_tracks == 0:
        raise MidigenError(f"{path.name} is not a usable MIDI file (it has no tracks)")
    end_tick = max(end_ticks)
    return MidiScan(fmt, num_tracks, division, end_tick, _ticks_to_s(end_tick, division, tempos),
                    num_notes, raw[:data_end])


def _read_vlq(body: bytes, i: int) -> tuple[int, int]:
    value = 0
    while True:
        byte = body[i]
        i += 1
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            return value, i


def _scan_track(body: bytes) -> tuple[int, int, list[tuple[int, int]]]:
    """(last tick, note-ons, [(tick, microseconds per quarter)]) of one track's bytes."""
    i = tick = notes = status = 0
    tempos = []
    try:
        while i < len(body):
            delta, i = _read_vlq(body, i)
            tick += delta
            byte = body[i]
            if byte == 0xFF:  # meta event
                kind = body[i + 1]
                length, i = _read_vlq(body, i + 2)
                if kind == 0x51 and length == 3:
                    tempos.append((tick, int.from_bytes(body[i:i + 3], "big")))
                i += length
                if kind == 0x2F:
                    break
            elif byte in (0xF0, 0xF7):  # sysex
                length, i = _read_vlq(body, i + 1)
                i += length
            elif byte > 0xF0:  # system common bytes (not allowed in files, but seen)
                i += 1 + {0xF1: 1, 0xF2: 2, 0xF3: 1}.get(byte, 0)
            else:
                if byte & 0x80:
                    status = byte
                    i += 1
                elif not status:
                    break  # data byte with no running status: the rest is damaged
                kind = status & 0xF0
                if kind == 0x90 and body[i + 1] > 0:
                    notes += 1
                i += 1 if kind in (0xC0, 0xD0) else 2
    except IndexError:
        pass  # a truncated track: keep what was read, as most players do
    return tick, notes, tempos


def _ticks_to_s(tick: int, division: int, tempos: list[tuple[int, int]]) -> float:
    if division & 0x8000:  # SMPTE: frames per second and ticks per frame, no tempo map
        frames_per_s = 256 - (division >> 8)
        return tick / (frames_per_s * (division & 0xFF))
    seconds, last_tick, us_per_quarter = 0.0, 0, 500_000
    for at, tempo in sorted(tempos):
        if at >= tick:
            break
        seconds += (at - last_tick) * us_per_quarter / 1e6 / division
        last_tick, us_per_quarter = at, min(max(tempo, 10_000), 60_000_000)  # 6000..1 bpm
    return seconds + (tick - last_tick) * us_per_quarter / 1e6 / division


def _vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.insert(0, (value & 0x7F) | 0x80)
        value >>= 7
    return bytes(out)


def _with_release_track(scan: MidiScan) -> bytes:
    """The file plus a track that lifts the sustain pedal and releases all notes at the end."""
    events = bytearray()
    for channel in range(16):
        events += _vlq(scan.end_tick if channel == 0 else 0) + bytes([0xB0 | channel, 64, 0])
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
