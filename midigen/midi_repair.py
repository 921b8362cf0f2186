"""MIDI files that symusic would misread, rewritten into files it reads as players play them.

Kinds of valid (or common) files that lost music silently or were refused:

- SMPTE time division (frames per second x ticks per frame, no tempo map): symusic refuses
  it, so the file was skipped as "corrupt". `smpte_ticks_per_s` reads the header and
  `with_tick_division` gives symusic a quarter-note division it accepts; midi_io then times
  the ticks as seconds itself.
- Notes never released (drum machines often write only note-ons; a held note may lack its
  note-off): symusic drops a note without a note-off, so a whole drum track vanished.
  `close_hanging_notes` adds the missing note-offs where a player would hear the note end:
  at the next onset of that key, for drums after a sixteenth note at most, else at the end
  of the track. Only files with a track that symusic reads without any note, or cut short
  (whose last notes lost their note-offs), are repaired: finding a single unreleased note
  among others would mean walking every file's events in Python (+35% to +60% on reading,
  against symusic's one parse) or parsing it twice.
- Files cut short, or whose track length runs past the end: symusic refused them whole;
  `salvage_truncated` keeps every complete event, as players do, and the caller says so.
- A data byte above 127 (a controller value of 168 in a pop song): symusic refused the whole
  file, where FluidSynth plays it all but that event; it is now read with the value clamped.
- Program changes in one track for the notes of another (a setup track): symusic applies
  them to their own track only, so the notes came out as piano; midigen.midi_programs.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict, deque

import symusic

from midigen import midi_programs
from midigen.errors import MidigenError
from midigen.midi_bytes import DATA_BYTES, read_vlq

MAX_REPAIR_BYTES = 4 * 2**20  # mido parses in Python (~1 s a MB): larger files stay as read
DRUM_CHANNEL = 9


def parse_midi(data: bytes) -> tuple[symusic.Score, float | None, bool]:
    """symusic's Score of standard MIDI file bytes, repaired where needed (see above), the
    ticks per second of an SMPTE file (None: time by its tempo map), and whether the file
    was cut short (read up to its last complete event). MidigenError with a short reason
    ("corrupt MIDI: truncated") when nothing can be read."""
    ticks_per_s = smpte_ticks_per_s(data)
    if ticks_per_s:  # symusic refuses SMPTE time; the caller times its ticks as seconds
        data = with_tick_division(data, 480)
    salvaged = None
    try:
        score = _parse(data)
    except MidigenError as error:  # a file cut short: play what is there, as players do
        salvaged = salvage_truncated(data) if "truncated" in str(error) else None
        if salvaged is None:
            raise
        try:
            score = _parse(salvaged)
        except MidigenError:
            raise error from None
        data, truncated = salvaged, error
    if salvaged is not None or any(len(t.notes) == 0 for t in score.tracks):  # never released
        repaired = close_hanging_notes(data)
        if repaired:
            data, score = repaired, _parse(repaired)
    if midi_programs.may_need_shared_programs(score, data):  # programs set in another track
        shared = midi_programs.share_programs(data)
        score = _parse(shared) if shared else score
    if salvaged is not None and not any(len(track.notes) for track in score.tracks):
        raise truncated  # cut before its first note: "truncated" says more than "no notes"
    return score, ticks_per_s, salvaged is not None


def _parse(data: bytes) -> symusic.Score:
    try:
        return symusic.Score.from_midi(data)
    except Exception as e:  # noqa: BLE001 - symusic raises RuntimeError with C++ text
        reason = _short_reason(str(e))
    if reason == "value out of range":  # a data byte above 127: FluidSynth ignores that one
        try:  # event and plays the rest; symusic clamps it
            return symusic.Score.from_midi(data, sanitize_data=True)
        except TypeError:  # symusic < 0.6
            pass
        except Exception as e:  # noqa: BLE001 - what else is wrong (cut short: salvaged)
            reason = _short_reason(str(e))
    raise MidigenError(f"corrupt MIDI: {reason}")


_SYMUSIC_REASONS = (
    ("less than 14", "truncated"),
    ("Invalid chunk length", "truncated"),
    ("Unexpected EOF", "truncated"),
    ("not MThd", "bad header"),
    ("first chunk length", "bad header"),
    ("status", "bad event byte"),
    ("Get ", "value out of range"),
)


def _short_reason(message: str) -> str:
    """symusic's message reduced to a few words without numbers, so reasons group."""
    for needle, reason in _SYMUSIC_REASONS:
        if needle in message:
            return reason
    message = message.replace("MiniMidi: ", "").replace(": iostream error", "")
    return re.sub(r"\d+", "N", message)[:60]


def smpte_ticks_per_s(data: bytes) -> float | None:
    """Ticks per second of a standard MIDI file with SMPTE division; None for quarter-note
    division (the usual kind). 29 frames per second means 29.97 (drop frame)."""
    if len(data) < 14 or not data[12] & 0x80:
        return None
    frames_per_s = 256 - data[12]
    ticks_per_frame = data[13]
    if frames_per_s not in (24, 25, 29, 30) or ticks_per_frame == 0:
        return None  # not a valid SMPTE word: left for the reader to refuse
    return (29.97 if frames_per_s == 29 else frames_per_s) * ticks_per_frame


def with_tick_division(data: bytes, ticks_per_quarter: int) -> bytes:
    """The same file with its header's division replaced by `ticks_per_quarter`."""
    return data[:12] + int(ticks_per_quarter).to_bytes(2, "big") + data[14:]


def close_hanging_notes(data: bytes) -> bytes | None:
    """The file with a note-off added for every note-on that never gets one; None when
    there is none to add or mido cannot read the file (then the file stays as it was)."""
    if len(data) > MAX_REPAIR_BYTES:
        return None
    import mido

    try:
        midi = mido.MidiFile(file=io.BytesIO(data), clip=True)
    except Exception:  # noqa: BLE001 - mido raises assorted types on damaged files
        return None
    sixteenth = max(1, midi.ticks_per_beat // 4)
    added = 0
    for k, track in enumerate(midi.tracks):
        closing = _missing_note_offs(track, sixteenth)
        if closing:
            midi.tracks[k] = _with_note_offs(track, closing)
            added += len(closing)
    if not added:
        return None
    out = io.BytesIO()
    try:
        midi.save(file=out)
    except Exception:  # noqa: BLE001
        return None
    return out.getvalue()


def _missing_note_offs(track, drum_ticks: int) -> list[tuple[int, int, int]]:
    """(tick, channel, key) of the note-offs a track lacks. Note-offs are matched to
    note-ons first in, first out, per channel and key."""
    tick, end = 0, 0
    open_on: dict[tuple[int, int], deque] = defaultdict(deque)
    onsets: dict[tuple[int, int], list[int]] = defaultdict(list)
    for message in track:
        tick += message.time
        end = tick
        if message.type == "note_on" and message.velocity > 0:
            open_on[(message.channel, message.note)].append(tick)
            onsets[(message.channel, message.note)].append(tick)
        elif message.type in ("note_off", "note_on"):
            queue = open_on.get((message.channel, message.note))
            if queue:
                queue.popleft()
    closing = []
    for (channel, key), ticks in open_on.items():
        later = onsets[(channel, key)]
        for start in ticks:
            next_onset = next((t for t in later if t > start), None)
            if channel == DRUM_CHANNEL:  # a drum rings by itself: a short note
                stop = start + drum_ticks if next_onset is None else min(
                    next_onset, start + drum_ticks)
            else:  # held to the end of the track (a beat if it starts there)
                stop = next_onset or (end if end > start else start + 4 * drum_ticks)
            closing.append((stop, channel, key))
    return closing


def _with_note_offs(track, closing: list[tuple[int, int, int]]):
    """A copy of the track with the note-offs inserted (before anything else at their tick,
    so a note struck again at that tick is not the one closed)."""
    import mido

    timed, tick = [], 0
    for order, message in enumerate(track):
        tick += message.time
        if message.type != "end_of_track":
            timed.append((tick, 1, order, message))
    for order, (at, channel, key) in enumerate(closing):
        timed.append((at, 0, order, mido.Message("note_off", channel=channel, note=key)))
    timed.sort(key=lambda row: row[:3])
    rebuilt, last = mido.MidiTrack(), 0
    for at, _, _, message in timed:
        rebuilt.append(message.copy(time=at - last))
        last = at
    rebuilt.append(mido.MetaMessage("end_of_track", time=0))
    return rebuilt


def salvage_truncated(data: bytes) -> bytes | None:
    """The file cut after its last complete event, as players play it: each track's length
    fixed and its end-of-track added; None when not one event is left.

    Files cut short (a broken download, a full disk) or whose last track claims more bytes
    than it has were skipped whole as "corrupt MIDI: truncated"."""
    if data[:4] != b"MThd" or len(data) < 14:
        return None
    pos, tracks = 8 + int.from_bytes(data[4:8], "big"), []
    while pos + 8 <= len(data):
        chunk_id, length = data[pos:pos + 4], int.from_bytes(data[pos + 4:pos + 8], "big")
        body = data[pos + 8:pos + 8 + length]
        pos += 8 + length
        if chunk_id == b"MTrk":
            end = _complete_events_end(body)
            if end:
                ended = body[:end].endswith(_END_OF_TRACK[1:])
                tracks.append(body[:end] + (b"" if ended else _END_OF_TRACK))
    if not tracks:
        return None
    fmt = min(int.from_bytes(data[8:10], "big"), 2) if len(tracks) > 1 else 0
    header = b"MThd" + (6).to_bytes(4, "big") + fmt.to_bytes(2, "big") + len(
        tracks).to_bytes(2, "big") + data[12:14]
    return header + b"".join(b"MTrk" + len(t).to_bytes(4, "big") + t for t in tracks)


_END_OF_TRACK = b"\x00\xff\x2f\x00"


def _complete_events_end(body: bytes) -> int:
    """Where the last complete event of a track's bytes ends (just after its end-of-track,
    if it has one); 0 when not one event is complete."""
    i = done = status = 0
    try:
        while i < len(body):
            _, i = read_vlq(body, i)  # delta time
            byte = body[i]
            if byte == 0xFF:  # meta event: type, length, data
                kind = body[i + 1]
                length, i = read_vlq(body, i + 2)
                i += length
                if i <= len(body):
                    done = i
                if kind == 0x2F:
                    break
                continue
            if byte in (0xF0, 0xF7):  # sysex: length, data
                length, i = read_vlq(body, i + 1)
                i += length
            elif byte & 0x80 and byte < 0xF0:  # a channel event with its status
                status, i = byte, i + 1
                i += DATA_BYTES[status & 0xF0]
            elif status and not byte & 0x80:  # running status
                i += DATA_BYTES[status & 0xF0]
            else:
                break  # system bytes or data without status: damaged from here
            if i <= len(body):
                done = i
    except IndexError:
        pass
    return done
