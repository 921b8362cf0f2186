"""MIDI files with the oddities real files have, written with mido for bench/gauntlet.py.

Each file's name says what it holds: type 0 and 2, SMPTE time, running status, drums
without note-offs, zero-length notes, 16 channels, sysex, huge ticks, absurd tempos, an hour
of music, files cut short, RIFF-wrapped, karaoke, MusicXML or text named .mid, UTF-16 ABC.
"""

from __future__ import annotations

import random
from pathlib import Path


def music21_root() -> Path:
    import music21

    return Path(music21.__file__).parent


def _notes(track, channel=0, pitches=(60, 62, 64, 65), ticks=240, velocity=80):
    import mido

    for p in pitches:
        track.append(mido.Message("note_on", channel=channel, note=p, velocity=velocity))
        track.append(mido.Message("note_off", channel=channel, note=p, time=ticks))


def write_quirks(out: Path) -> None:
    """MIDI files with the oddities real files have; each name says what it holds."""
    import mido

    out.mkdir(parents=True, exist_ok=True)
    M, T, Msg, Meta = mido.MidiFile, mido.MidiTrack, mido.Message, mido.MetaMessage

    def save(name, mid):
        mid.save(out / name)

    m = M(type=0); t = T(); m.tracks.append(t)
    t += [Msg("program_change", channel=0, program=24), Msg("program_change", channel=1,
                                                               program=33)]
    for k in range(16):
        t += [Msg("note_on", channel=0, note=60 + k % 5, velocity=80),
              Msg("note_on", channel=1, note=40, velocity=80),
              Msg("note_on", channel=9, note=36, velocity=100),
              Msg("note_off", channel=0, note=60 + k % 5, time=240),
              Msg("note_off", channel=1, note=40), Msg("note_off", channel=9, note=36)]
    save("type0_three_channels.mid", m)

    m = M(type=2)
    for k in range(3):
        t = T(); m.tracks.append(t); _notes(t, pitches=[60 + k] * 4)
    save("type2_sequences.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t); _notes(t, pitches=range(60, 72))
    save("smpte_25fps.mid", m)
    data = bytearray((out / "smpte_25fps.mid").read_bytes())
    data[12], data[13] = 0xE7, 40  # -25 frames/s, 40 ticks a frame: 1000 ticks a second
    (out / "smpte_25fps.mid").write_bytes(bytes(data))

    m = M(type=1); t = T(); m.tracks.append(t)
    for k in range(12):  # velocity-0 note-ons as note-offs (mido writes running status)
        t += [Msg("note_on", note=60 + k, velocity=90), Msg("note_on", note=60 + k, velocity=0,
                                                             time=120)]
    save("running_status_vel0_off.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t)
    for k in range(16):  # a drum track of note-ons only, as many drum machines write
        t.append(Msg("note_on", channel=9, note=(36, 42, 38, 42)[k % 4], velocity=100,
                     time=0 if k == 0 else 120))
    save("drums_without_note_offs.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t)
    t += [Msg("note_on", note=48, velocity=70)]  # a held bass note never released
    _notes(t, pitches=range(60, 68))
    save("note_never_released.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t)
    for k in range(8):
        t += [Msg("note_on", note=60, velocity=80, time=0 if k == 0 else 60)]
    t += [Msg("note_off", note=60, time=60)] * 8
    save("same_pitch_overlaps.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t)
    for k in range(8):
        t += [Msg("note_on", note=60 + k, velocity=80, time=120), Msg("note_off", note=60 + k)]
    _notes(t, pitches=[72])
    save("zero_length_notes.mid", m)

    m = M(type=1); setup, t = T(), T(); m.tracks += [setup, t]
    setup += [Meta("set_tempo", tempo=600000), Msg("program_change", channel=0, program=73),
              Msg("program_change", channel=1, program=32)]
    _notes(t, channel=0, pitches=range(72, 80))
    t2 = T(); m.tracks.append(t2); _notes(t2, channel=1, pitches=range(36, 44))
    save("programs_in_setup_track.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t)
    t.append(Msg("program_change", program=0)); _notes(t, pitches=range(60, 64))
    t.append(Msg("program_change", program=48)); _notes(t, pitches=range(64, 68))
    save("program_change_mid_track.mid", m)

    m = M(type=1)
    for ch in range(16):
        t = T(); m.tracks.append(t)
        t.append(Msg("program_change", channel=ch, program=ch * 8))
        t.append(Msg("pitchwheel", channel=ch, pitch=ch * 500))
        t.append(Msg("control_change", channel=ch, control=7, value=100))
        _notes(t, channel=ch, pitches=range(40 + ch * 2, 44 + ch * 2))
    save("sixteen_channels.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t)
    t += [Msg("sysex", data=[0x7E, 0x7F, 0x09, 0x01]), Meta("text", text="GM on"),
          Meta("key_signature", key="Bb"), Meta("time_signature", numerator=7, denominator=8)]
    _notes(t, pitches=range(58, 66))
    t.append(Msg("sysex", data=[0x41, 0x10, 0x42, 0x12] + [0x40] * 200))
    save("sysex_and_meta.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t)
    _notes(t, pitches=[60, 62]); t.append(Msg("note_on", note=64, velocity=80,
                                               time=0x0FFFFFF))
    t.append(Msg("note_off", note=64, time=240))
    save("huge_delta.mid", m)

    for name, tempo in (("tempo_fast_limit.mid", 1), ("tempo_slowest.mid", 0xFFFFFF)):
        m = M(type=1); t = T(); m.tracks.append(t)
        t.append(Meta("set_tempo", tempo=tempo)); _notes(t, pitches=range(60, 68))
        save(name, m)
    m = M(type=1); t = T(); m.tracks.append(t)
    t.append(Meta("set_tempo", tempo=500000)); _notes(t, pitches=range(60, 68))
    save("tempo_zero.mid", m)
    data = (out / "tempo_zero.mid").read_bytes().replace(b"\xff\x51\x03\x07\xa1\x20",
                                                         b"\xff\x51\x03\x00\x00\x00")
    (out / "tempo_zero.mid").write_bytes(data)

    m = M(type=1); t = T(); m.tracks.append(t)
    for k in range(20):  # tempo changes every bar: a rubato performance map
        t.append(Meta("set_tempo", tempo=400000 + 20000 * k))
        _notes(t, pitches=[60 + k % 12] * 4)
    save("tempo_changes.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t)
    rng = random.Random(0)
    for k in range(7200):  # an hour of quarter notes at 120 bpm
        pitch = rng.randrange(48, 84)
        t += [Msg("note_on", note=pitch, velocity=64), Msg("note_off", note=pitch, time=480)]
    t2 = T(); m.tracks.append(t2)
    for k in range(7200):
        t2 += [Msg("note_on", note=36 + k % 12, velocity=64), Msg("note_off", note=36 + k % 12,
                                                                  time=240)]
    save("one_hour.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t); _notes(t, pitches=[60])
    save("one_note.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t); _notes(t, pitches=range(60, 68))
    save("trailing_garbage.mid", m)
    with open(out / "trailing_garbage.mid", "ab") as f:
        f.write(b"\x00" * 100 + b"garbage")

    m = M(type=1); t = T(); m.tracks.append(t); _notes(t, pitches=range(60, 68))
    m.save(out / "truncated_track.mid")
    data = (out / "truncated_track.mid").read_bytes()
    (out / "truncated_track.mid").write_bytes(data[:-12])

    m = M(type=1); t = T(); m.tracks.append(t); _notes(t, pitches=range(60, 68))
    m.save(out / "rmid_wrapped.rmi")
    smf = (out / "rmid_wrapped.rmi").read_bytes()
    body = b"RMID" + b"data" + len(smf).to_bytes(4, "little") + smf
    (out / "rmid_wrapped.rmi").write_bytes(b"RIFF" + len(body).to_bytes(4, "little") + body)

    m = M(type=1); t = T(); m.tracks.append(t)
    for k, word in enumerate(["Hel", "lo ", "world"]):
        t.append(Meta("lyrics", text=word)); _notes(t, pitches=[60 + k])
    save("karaoke.kar", m)

    m = M(type=1); t = T(); m.tracks.append(t)
    t.append(Msg("control_change", control=64, value=127))
    _notes(t, pitches=range(60, 68), ticks=60)
    t.append(Msg("control_change", control=64, value=0, time=480))
    save("sustain_pedal.mid", m)

    m = M(type=1); t = T(); m.tracks.append(t)
    _notes(t, channel=9, pitches=[0, 1, 127, 35, 81])  # drum keys outside the GM kit
    _notes(t, pitches=[0, 127, 21, 108])
    save("extreme_pitches.mid", m)

    (out / "musicxml_named.mid").write_bytes((music21_root() / "corpus" / "demos"
                                              / "two-parts.xml").read_bytes())
    (out / "not_music.xml").write_text('<?xml version="1.0"?>\n<project><version>1'
                                       '</version></project>\n')
    (out / "svg_drawing.xml").write_text('<?xml version="1.0"?>\n<svg xmlns="http://www.w3.'
                                         'org/2000/svg"><circle r="4"/></svg>\n')
    (out / "text_as.mid").write_text("this is not a MIDI file\n")
    (out / "abc_no_header.abc").write_text("T:No X line\nM:4/4\nK:G\nGABc dedB|dedB dedB|\n")
    (out / "kern_minimal.krn").write_text("**kern\n*M4/4\n4c\n4d\n4e\n4f\n=\n2g\n2a\n*-\n")
    (out / "utf16.abc").write_bytes("X:1\nT:UTF-16\nM:4/4\nK:D\nDEFG ABcd|\n".encode("utf-16"))


# --------------------------------------------------------------------------- measuring
