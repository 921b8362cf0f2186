"""Program changes in one track for notes in another, applied as players apply them.

A program change is channel state: a player applies it to every later note on its channel,
whatever track holds it. Many type-1 files (older GM sequencers, type-0-to-1 converters) put
every channel's program change in a setup track and the notes in other tracks; symusic, like
pretty_midi, applies a program change only to the notes of its own track, so those notes
came out as piano. `share_programs` copies each track's leading program changes (those
before its first note: all of them in a track without notes) into the other tracks, where
symusic applies them. Program changes among a track's notes stay in that track only.

Cheap by design, since symusic reads a typical file in ~0.2 ms and a walk over all its bytes
in Python costs ~1 ms: only files where symusic found pitched notes of program 0 in several
tracks are looked at, and each track only up to its first note (~0.05 ms a file; searching
the bytes for a program change with a regular expression cost more).
"""

from __future__ import annotations

from collections.abc import Iterator

import symusic

from midigen.midi_bytes import DATA_BYTES, read_vlq, vlq

DRUM_CHANNEL = 9  # drum kits: midigen stores every drum note as program 0


class _Damaged(Exception):
    """A track's bytes stop making sense: its file is left as symusic read it."""


def may_need_shared_programs(score: symusic.Score, data: bytes) -> bool:
    """Whether a file could hold notes whose program is set in another track: it has
    several tracks and some pitched notes came out as program 0."""
    return data[10:12] not in (b"\x00\x00", b"\x00\x01") and any(
        t.program == 0 and not t.is_drum and len(t.notes) for t in score.tracks)


def share_programs(data: bytes) -> bytes | None:
    """The file with each track's leading program changes copied into every other track
    that has notes, at their ticks (before that track's own events at the same tick: a
    setup is meant for the notes it starts with, whichever track comes first), or None when
    no track plays a channel whose program another track sets (it reads right as it is)."""
    chunks = _chunks(data)
    tracks = [(start, end) for kind, start, end in chunks if kind == b"MTrk"]
    if len(tracks) < 2:
        return None
    heads = {}
    for start, end in tracks:
        try:
            heads[start] = _leading_programs(data[start:end])
        except _Damaged:
            heads[start] = ([], None)
    if not _needed(list(heads.values())):
        return None
    out, pos = bytearray(data[:chunks[0][1] - 8]), 0
    for kind, start, end in chunks:
        body = data[start:end]
        if kind == b"MTrk" and heads[start][1] is not None:  # a track with notes
            inserts = sorted((tick, other, n, channel, program)
                             for other, (changes, _) in heads.items() if other != start
                             for n, (tick, channel, program) in enumerate(changes))
            try:
                body = _with_programs(body, inserts)
            except _Damaged:
                return None
        out += kind + len(body).to_bytes(4, "big") + body
        pos = end
    return bytes(out + data[pos:])  # trailing bytes as they were


def _needed(heads: list[tuple[list, int | None]]) -> bool:
    """Whether a track's first note is on a channel that another track sets to a program
    other than 0 (what symusic would have read without the copy)."""
    for k, (_, first_channel) in enumerate(heads):
        if first_channel is None or first_channel == DRUM_CHANNEL:
            continue
        if any(channel == first_channel and program
               for j, (changes, _) in enumerate(heads) if j != k
               for _, channel, program in changes):
            return True
    return False


def _chunks(data: bytes) -> list[tuple[bytes, int, int]]:
    """(kind, start, end of its body) of each whole chunk after the header."""
    if data[:4] != b"MThd" or len(data) < 14:
        return []
    pos, chunks = 8 + int.from_bytes(data[4:8], "big"), []
    while pos + 8 <= len(data):
        end = pos + 8 + int.from_bytes(data[pos + 4:pos + 8], "big")
        if end > len(data):
            break
        chunks.append((data[pos:pos + 4], pos + 8, end))
        pos = end
    return chunks


def _events(body: bytes) -> Iterator[tuple[int, int, int, int, bool]]:
    """(tick, start of the event after its delta, end, status, running status) of each
    event up to and with the end-of-track; _Damaged where the bytes stop making sense."""
    i = tick = status = 0
    try:
        while i < len(body):
            delta, i = read_vlq(body, i)
            tick += delta
            start, byte = i, body[i]
            running = False
            if byte == 0xFF:  # meta event: type, length, data
                length, i = read_vlq(body, i + 2)
                i += length
            elif byte in (0xF0, 0xF7):  # sysex: length, data
                length, i = read_vlq(body, i + 1)
                i += length
            elif 0x80 <= byte < 0xF0:
                status = byte
                i += 1 + DATA_BYTES[status & 0xF0]
            elif byte < 0x80 and status:
                i += DATA_BYTES[status & 0xF0]
                running = True
            else:
                raise _Damaged
            if i > len(body):
                raise _Damaged
            yield tick, start, i, status if byte < 0xF0 else byte, running
            if byte == 0xFF and body[start + 1] == 0x2F:
                return
    except IndexError:
        raise _Damaged from None


def _leading_programs(body: bytes) -> tuple[list[tuple[int, int, int]], int | None]:
    """The (tick, channel, program) of a track's program changes before its first note
    (drum channel left out), and the channel of that note (None: a track without notes)."""
    changes = []
    for tick, start, _, status, running in _events(body):
        kind, channel = status & 0xF0, status & 0x0F
        data = start + (not running)
        if kind == 0x90 and status < 0xF0 and body[data + 1] > 0:
            return changes, channel
        if kind == 0xC0 and status < 0xF0 and channel != DRUM_CHANNEL:
            changes.append((tick, channel, body[data]))
    return changes, None


def _with_programs(body: bytes, inserts: list[tuple]) -> bytes:
    """A track's bytes with program changes (tick, ..., channel, program) inserted, sorted,
    each before the track's own events at its tick."""
    out, last, at, restate = bytearray(), 0, 0, False
    for tick, start, end, status, running in _events(body):
        while at < len(inserts) and inserts[at][0] <= tick:
            when, _, _, channel, program = inserts[at]
            out += vlq(when - last) + bytes((0xC0 | channel, program))
            last, at, restate = when, at + 1, True
        out += vlq(tick - last)
        if running and restate:  # an inserted program change took the running status
            out.append(status)
        restate = restate and status >= 0xF0  # meta and sysex events keep it
        out += body[start:end]
        last = tick
    if not out.endswith(b"\xff\x2f\x00"):  # a track without its end-of-track
        out += b"\x00\xff\x2f\x00"
    return bytes(out)
