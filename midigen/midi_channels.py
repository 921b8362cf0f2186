"""More instruments than MIDI has channels, written so that players play each with its own.

A MIDI file has 16 channels, one for drums, and a channel plays one program at a time. With
one track per instrument, symusic gives the 16th pitched instrument the first one's channel:
both program changes land on that channel at tick 0, so in any player one of the two
instruments played with the other's sound. A sampled piece or an orchestral score can hold
more than 15 instruments, so past that the channels are shared over time: a note goes to the
channel already set to its program, else to a free channel (the longest unused), else to the
one free soonest (of those, the longest unused), with a program change just before it. A program change does not alter
notes already sounding, so only notes that overlap on one channel in one key can clash.
"""

from __future__ import annotations

import io

import numpy as np

from midigen.gm_names import instrument_name

DRUM_CHANNEL = 9
PITCHED_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)


def assign_channels(start: np.ndarray, end: np.ndarray,
                    program: np.ndarray) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """Each pitched note's channel, and the (tick, channel, program) changes they need."""
    count = len(PITCHED_CHANNELS)
    channel_program, busy_until, last_used = [-1] * count, [0] * count, [-1] * count
    channels = np.zeros(len(start), dtype=np.int64)
    changes = []
    for k, i in enumerate(np.lexsort((program, start))):
        prog, tick = int(program[i]), int(start[i])
        slot = next((c for c in range(count) if channel_program[c] == prog), None)
        if slot is None:
            free = [c for c in range(count) if busy_until[c] <= tick]
            slot = min(free, key=last_used.__getitem__) if free else min(
                range(count), key=lambda c: (busy_until[c], last_used[c]))
            channel_program[slot] = prog
            changes.append((tick, PITCHED_CHANNELS[slot], prog))
        busy_until[slot] = max(busy_until[slot], int(end[i]))
        last_used[slot] = k
        channels[i] = PITCHED_CHANNELS[slot]
    return channels, changes


def shared_channels_midi(start: np.ndarray, end: np.ndarray, pitch: np.ndarray,
                         velocity: np.ndarray, program: np.ndarray, is_drum: np.ndarray,
                         tempo_bpm: float, ticks_per_quarter: int) -> bytes:
    """A type-1 MIDI file (bytes): a tempo track, then one track per channel used, its
    program changes in line with its notes (times in ticks)."""
    import mido

    channel = np.full(len(start), DRUM_CHANNEL, dtype=np.int64)
    pitched = ~is_drum
    channel[pitched], changes = assign_channels(start[pitched], end[pitched], program[pitched])
    events: dict[int, list] = {}  # channel -> (tick, order, message); at one tick: offs,
    for tick, ch, prog in changes:  # program changes, then ons
        events.setdefault(ch, []).append(
            (tick, 1, mido.Message("program_change", channel=ch, program=prog)))
    names: dict[int, list[str]] = {}
    for i in np.lexsort((pitch, start)):
        ch = int(channel[i])
        name = instrument_name(int(program[i]), bool(is_drum[i]))
        if name not in names.setdefault(ch, []):
            names[ch].append(name)
        events.setdefault(ch, []).extend([
            (int(start[i]), 2, mido.Message("note_on", channel=ch, note=int(pitch[i]),
                                            velocity=int(velocity[i]))),
            (int(end[i]), 0, mido.Message("note_off", channel=ch, note=int(pitch[i])))])
    midi = mido.MidiFile(type=1, ticks_per_beat=ticks_per_quarter)
    tempo = int(np.clip(round(60e6 / tempo_bpm), 1, 0xFFFFFF))
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=tempo)]))
    for ch in sorted(events):
        track = mido.MidiTrack([mido.MetaMessage("track_name", name=" / ".join(names[ch]))])
        last = 0
        for tick, _, message in sorted(events[ch], key=lambda e: (e[0], e[1])):
            track.append(message.copy(time=tick - last))
            last = tick
        midi.tracks.append(track)
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()
