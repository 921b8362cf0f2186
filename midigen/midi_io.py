"""Files <-> notes: with score_io and midi_repair, the only modules that touch symusic, verovio, music21.

MIDI is read with symusic (a C++ reader, ~100x faster than pretty_midi) because corpora hold
tens of thousands of files. MusicXML, kern and ABC are rendered to MIDI bytes by score_io
(verovio, abc2midi, music21 as the fallback), which then take the same path, so every format
ends up with identical semantics:

- times are computed from ticks with our own float64 tempo map (midigen.midi_timing; tempos
  clamped to a sane range, so a corrupt tempo of 0 cannot collapse or explode a piece);
- the sustain pedal (CC64 >= 64) extends a note released while the pedal is down until the
  pedal lifts, or until the same pitch is struck again on that track if that comes first;
- notes that end where they start (zero length, even after the pedal) are dropped, as
  pretty_midi does: they make no sound on a pitched instrument; a drum sounds however short
  its note (drum machines often write the note-off at the note-on's tick), so a zero-length
  drum note is kept, one tick long;
- drums are the notes on MIDI channel 10; their program is stored as 0;
- SMPTE time, notes never released, files cut short and program changes set in another
  track (a setup track) are handled by midigen.midi_repair.

Every failure is a MidigenError whose message is a short reason ("empty file", "no notes",
"corrupt MIDI: truncated") so that a corpus summary can group files by it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import symusic

from midigen import midi_channels, midi_repair, score_io
from midigen.builtin_chorales import builtin_chorale_names, write_builtin_chorale  # noqa: F401  (re-exported)
from midigen.errors import MidigenError
from midigen.events import NOTE_DTYPE, Piece, sort_notes
from midigen.fileio import atomic_write
from midigen.gm_names import GM_PROGRAM_NAMES, instrument_name  # noqa: F401  (re-exported)
from midigen.midi_timing import MAX_BPM, MIN_BPM, apply_sustain, tempo_map

MIDI_SUFFIXES = (".mid", ".midi", ".rmi", ".kar")
NOTATION_SUFFIXES = (".musicxml", ".mxl", ".xml", ".krn", ".abc")
SCORE_SUFFIXES = MIDI_SUFFIXES + NOTATION_SUFFIXES

MAX_FILE_MB = 64  # larger score files are almost always something else
# What one MIDI file may cost. A hostile 50 MB file of 8 million notes took 3 GB in a reader
# process; real pieces have well under 100,000 notes and MIDI files rarely pass 2 MB.
MAX_MIDI_MB = 16
MAX_NOTES_PER_PIECE = 250_000
MAX_TRACKS = 1024  # each costs ~0.4 ms: 5,000 one-note tracks took 2.5 s; real files have < 100
MAX_PIECE_HOURS = 12.0  # a longer piece means a broken tempo map, not music
SUSTAIN_CC = 64


def read_score(path: str | os.PathLike, sustain_pedal: bool = True) -> list[Piece]:
    """The pieces of one score file (one per tune for multi-tune ABC), notes in seconds.

    The format is recognised by content, falling back on the suffix, so MusicXML saved as
    `.mid` is still read. `sustain_pedal=False` keeps the written note ends. Raises MidigenError with a short reason on anything unreadable.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as e:
        raise MidigenError(f"cannot open file ({e.strerror or e})") from None
    if size == 0:
        raise MidigenError("empty file")
    if size > MAX_FILE_MB * 1024 * 1024:
        raise MidigenError(f"too large (> {MAX_FILE_MB} MB)")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise MidigenError(f"cannot open file ({e.strerror or e})") from None

    kind = detect_format(data, path.suffix)
    if kind == "midi":
        piece = midi_bytes_to_piece(_strip_rmid(data), path.stem, sustain_pedal)
        piece.meta["reader"] = "midi"
        return [piece]
    if kind == "musicxml" and not _is_musicxml_score(data):
        raise MidigenError("not a MusicXML score (an XML file of another kind)")
    if kind in ("musicxml", "mxl", "kern", "abc"):
        return _read_notation(path, data, kind, sustain_pedal)
    if path.suffix.lower() in MIDI_SUFFIXES:
        raise MidigenError("not a MIDI file")
    raise MidigenError(f"unsupported file type {path.suffix.lower() or '(no suffix)'}")


def detect_format(data: bytes, suffix: str = "") -> str:
    """'midi', 'musicxml', 'mxl', 'kern', 'abc' or 'unknown', from the bytes first."""
    if data[:4] == b"MThd":
        return "midi"
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":
        return "midi"
    if data[:4] == b"PK\x03\x04":  # zip: compressed MusicXML
        return "mxl"
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n")
    if head.startswith((b"<?xml", b"<score-partwise", b"<score-timewise", b"<!DOCTYPE score")):
        return "musicxml" if (b"<score-" in data[:20000] or suffix.lower() != ".mid") else "unknown"
    if b"**kern" in head:
        return "kern"
    if re.search(rb"(?m)^X:\s*\d*\s*$", head):
        return "abc"
    suffix = suffix.lower()
    if suffix in (".musicxml", ".xml"):
        return "musicxml"
    return {".mxl": "mxl", ".krn": "kern", ".abc": "abc"}.get(suffix, "unknown")


def _is_musicxml_score(data: bytes) -> bool:
    """Whether XML text opens a MusicXML score: .xml files in music folders are often
    something else (a library, an SVG, MEI), which every reader then tried and failed on."""
    head = score_io.decode_text(data[:65536])
    return "<score-partwise" in head or "<score-timewise" in head


def _strip_rmid(data: bytes) -> bytes:
    """The standard MIDI file inside a RIFF RMID wrapper (or the data unchanged)."""
    if data[:4] == b"RIFF":
        start = data.find(b"MThd")
        if start < 0:
            raise MidigenError("corrupt MIDI: RIFF file without MIDI data")
        return data[start:]
    return data


def midi_bytes_to_piece(data: bytes, name: str, sustain_pedal: bool = True) -> Piece:
    """One Piece from standard MIDI file bytes (see the module docstring for the rules)."""
    if len(data) > MAX_MIDI_MB * 1024 * 1024:
        raise MidigenError(f"too large for a MIDI file (> {MAX_MIDI_MB} MB)")
    score, ticks_per_s, cut_short = midi_repair.parse_midi(data)
    if len(score.tracks) > MAX_TRACKS:
        raise MidigenError(f"too many tracks (> {MAX_TRACKS:,})")
    # Parsed, the file costs ~4x its bytes; everything after costs ~300 bytes per note/event.
    counts = [len(t.notes) + len(t.pedals) for t in score.tracks] + [len(score.tempos)]
    if sum(counts) > MAX_NOTES_PER_PIECE:
        raise MidigenError(f"too many notes and events (> {MAX_NOTES_PER_PIECE:,} in one piece)")

    tpq = score.ticks_per_quarter
    if tpq <= 0:
        raise MidigenError("corrupt MIDI: bad header")
    ticks_to_s, first_bpm = tempo_map(score.tempos.numpy(), tpq)
    if ticks_per_s:
        ticks_to_s, first_bpm = (lambda ticks: ticks / ticks_per_s), 120.0

    columns = []
    for track in score.tracks:
        arrays = track.notes.numpy()
        if len(arrays["time"]) == 0:
            continue
        start = arrays["time"].astype(np.int64)
        end = start + arrays["duration"].astype(np.int64)
        if track.is_drum:
            end = np.maximum(end, start + 1)
        pitch = arrays["pitch"].astype(np.int16)
        pedals = track.pedals.numpy() if sustain_pedal and not track.is_drum else None
        if pedals is not None and len(pedals["time"]):
            pedal_start = pedals["time"].astype(np.int64)
            end = apply_sustain(start, end, pitch, pedal_start,
                                pedal_start + pedals["duration"].astype(np.int64))
        notes = np.zeros(len(start), dtype=NOTE_DTYPE)
        notes["start_s"] = ticks_to_s(start)
        notes["end_s"] = ticks_to_s(end)
        notes["pitch"] = pitch
        notes["velocity"] = arrays["velocity"]
        notes["program"] = 0 if track.is_drum else track.program
        notes["is_drum"] = track.is_drum
        columns.append(notes)

    if not columns:
        raise MidigenError("no notes")
    notes = np.concatenate(columns)
    sounding = (notes["end_s"] > notes["start_s"]) & (notes["velocity"] > 0)
    dropped = int(len(notes) - sounding.sum())
    notes = notes[sounding]
    if len(notes) == 0:
        raise MidigenError("no notes")
    if notes["end_s"].max() > MAX_PIECE_HOURS * 3600:
        raise MidigenError(f"too long (> {MAX_PIECE_HOURS:g} hours; broken tempo?)")

    signatures = score.time_signatures.numpy()
    time_signature = (4, 4)
    if len(signatures["time"]):
        time_signature = (int(signatures["numerator"][0]), int(signatures["denominator"][0]))
    meta = {"dropped_zero_length": dropped}
    if cut_short:  # read up to its last complete event: the summary says so
        meta["read_in_part"] = "cut short"
    keys = score.key_signatures.numpy()
    if len(keys["time"]):  # the first one written: (sharps, minor), for midigen.keys
        first = int(np.argmin(keys["time"]))
        meta["key_signature"] = (int(keys["key"][first]), bool(keys["tonality"][first]))
    return Piece(name=name, notes=sort_notes(notes), tempo_bpm=first_bpm,
                 time_signature=time_signature, meta=meta)


def _read_notation(path: Path, data: bytes, kind: str, sustain_pedal: bool = True) -> list[Piece]:
    """Pieces of a MusicXML / kern / ABC file: each reader of its chain in turn, until one
    gives notes (see score_io); the last reader's reason when none does."""
    reasons = []
    for reader in score_io.readers_for(kind):
        try:
            rendered = score_io.render_score(path, data, kind, reader)
        except MidigenError as e:
            reasons.append(str(e))
            continue
        pieces = []
        for name, midi in rendered:
            try:
                pieces.append(midi_bytes_to_piece(midi, name, sustain_pedal))
            except MidigenError as e:
                reasons.append(str(e))
        if pieces:
            for piece in pieces:
                piece.meta["reader"] = reader
            return pieces
    raise MidigenError(reasons[-1] if reasons else "no notes")


def read_midi_notes(path: str | os.PathLike) -> np.ndarray:
    """All notes of any MIDI file as one NOTE_DTYPE array (seconds, pedal applied)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_MIDI_MB * 1024 * 1024:
            raise MidigenError(f"{path.name} is too large for a MIDI file (> {MAX_MIDI_MB} MB)")
        data = path.read_bytes()
    except OSError as e:
        raise MidigenError(f"cannot open {path.name} ({e.strerror or e})") from None
    if not data:
        raise MidigenError("empty file")
    if detect_format(data, path.suffix) != "midi":
        raise MidigenError("not a MIDI file")
    return midi_bytes_to_piece(_strip_rmid(data), path.stem).notes


def write_midi(notes: np.ndarray, path: str | os.PathLike, tempo_bpm: float = 120.0,
               ticks_per_quarter: int = 480) -> None:
    """A type-1 MIDI file: one track per instrument, GM program changes, drums on channel 10
    (past 15 pitched instruments, channels are shared over time: midigen.midi_channels).

    Times are seconds; they land on a grid of `ticks_per_quarter` at `tempo_bpm`. Every note
    lasts at least one tick so no reader drops it. Written whole or not at all (midigen.fileio).
    """
    path = Path(path)
    tempo_bpm = float(np.clip(tempo_bpm, MIN_BPM, MAX_BPM))
    ticks_per_s = ticks_per_quarter * tempo_bpm / 60.0
    score = symusic.Score(ticks_per_quarter)
    score.tempos.append(symusic.Tempo(0, tempo_bpm))
    if len(notes):
        start = np.round(np.maximum(notes["start_s"], 0.0) * ticks_per_s).astype(np.int64)
        end = np.round(np.maximum(notes["end_s"], 0.0) * ticks_per_s).astype(np.int64)
        duration = np.maximum(end - start, 1)
        pitch = np.clip(notes["pitch"], 0, 127)
        velocity = np.clip(notes["velocity"], 1, 127)
        program = np.where(notes["is_drum"], 0, np.clip(notes["program"], 0, 127))
        keys = sorted({(bool(d), int(p)) for d, p in zip(notes["is_drum"], program)})
        if sum(not drum for drum, _ in keys) > len(midi_channels.PITCHED_CHANNELS):
            data = midi_channels.shared_channels_midi(
                start, start + duration, pitch, velocity, program, notes["is_drum"],
                tempo_bpm, ticks_per_quarter)
            with atomic_write(path) as f:
                f.write(data)
            return
        for is_drum, prog in keys:
            sel = (notes["is_drum"] == is_drum) & (program == prog)
            order = np.lexsort((pitch[sel], start[sel]))
            track = symusic.Track(name=instrument_name(prog, is_drum), program=prog,
                                  is_drum=is_drum)
            track.notes.extend(symusic.Note.from_numpy(
                start[sel][order].astype(np.int32), duration[sel][order].astype(np.int32),
                pitch[sel][order].astype(np.int8), velocity[sel][order].astype(np.int8)))
            score.tracks.append(track)
    with atomic_write(path) as f:
        f.write(score.dumps_midi())
