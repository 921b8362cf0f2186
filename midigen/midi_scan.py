"""A byte-level check of a MIDI file for the renderer: format, last tick, length in seconds."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from midigen.errors import MidigenError
from midigen.midi_bytes import read_vlq


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


def _scan_track(body: bytes) -> tuple[int, int, list[tuple[int, int]]]:
    """(last tick, note-ons, [(tick, microseconds per quarter)]) of one track's bytes."""
    i = tick = notes = status = 0
    tempos = []
    try:
        while i < len(body):
            delta, i = read_vlq(body, i)
            tick += delta
            byte = body[i]
            if byte == 0xFF:  # meta event
                kind = body[i + 1]
                length, i = read_vlq(body, i + 2)
                if kind == 0x51 and length == 3:
                    tempos.append((tick, int.from_bytes(body[i:i + 3], "big")))
                i += length
                if kind == 0x2F:
                    break
            elif byte in (0xF0, 0xF7):  # sysex
                length, i = read_vlq(body, i + 1)
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
