"""A gauntlet of varied real scores and hand-made MIDI quirks, and what midigen makes of each.

midigen is judged on music the project does not hold: other genres, instruments, file quirks.
This builds a folder (symlinks, never copies into the project) from what the machine has:
music21's bundled corpus (MusicXML/MXL of many composers, kern, multi-tune ABC), the LilyPond
MusicXML test suite and music21's test MIDI files, plus MIDI quirks written here with mido
(type 0/2, SMPTE time, running status, notes never released, program changes on another
track, absurd tempos...). Then every file is read as `midigen corpus` reads it and taken
through the round trip encode -> decode -> write MIDI -> read, and the notes kept are counted:

- `read`: notes the reader gave, against an independent count (note-ons in the MIDI bytes by
  mido; for notation, when --reference is given, music21's notes, which is slow);
- `trip`: notes after the round trip against notes read (the tokenizer's own rules drop a
  few: same-pitch onsets in one 10 ms step, pitches it cannot spell).

    python bench/gauntlet.py build /tmp/gauntlet          # the folder
    python bench/gauntlet.py measure /tmp/gauntlet        # per category: files, skips, notes
    python bench/gauntlet.py measure /tmp/gauntlet --worst 20 --reference

Run from a worktree with PYTHONPATH=$PWD to measure that tree rather than the installed one.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# music21 corpus folder -> how many files to take (seeded sample; None = all)
CORPUS_TAKE = {"bach": 30, "palestrina": 40, "ryansMammoth": 30, "trecento": 30,
               "monteverdi": 20, "essenFolksong": None, "oneills1850": None}


def music21_root() -> Path:
    import music21

    return Path(music21.__file__).parent


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if not dst.exists():
        dst.symlink_to(src)


def build(out: Path, seed: int = 0) -> Counter:
    """Fill `out` with symlinks to real scores and with written quirk files; counts per folder."""
    rng = random.Random(seed)
    root = music21_root()
    suffixes = {".xml", ".mxl", ".musicxml", ".krn", ".abc", ".mid", ".midi"}
    for folder in sorted(p for p in (root / "corpus").iterdir() if p.is_dir()):
        files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in suffixes)
        take = CORPUS_TAKE.get(folder.name, None)
        if take is not None and len(files) > take:
            files = sorted(rng.sample(files, take))
        for f in files:
            _link(f, out / "corpus" / folder.name / "_".join(f.relative_to(folder).parts))
    for f in sorted((root / "musicxml" / "lilypondTestSuite").glob("*.xml")):
        _link(f, out / "lilypond" / f.name)
    for f in sorted(root.rglob("*.mid")):
        _link(f, out / "music21-midi" / f.name)
    write_quirks(out / "quirks")
    return Counter(p.relative_to(out).parts[0] + "/" + (p.relative_to(out).parts[1]
                   if p.parent != out / p.relative_to(out).parts[0] else "")
                   for p in out.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- quirks

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

def raw_note_ons(path: Path) -> int | None:
    """Note-ons with velocity > 0 in the file, counted by mido (None if mido cannot read it)."""
    import mido

    try:
        data = path.read_bytes()
        if data[:4] == b"RIFF":
            data = data[data.find(b"MThd"):]
        import io

        mid = mido.MidiFile(file=io.BytesIO(data), clip=True)
        return sum(1 for t in mid.tracks for m in t if m.type == "note_on" and m.velocity > 0)
    except Exception:  # noqa: BLE001
        return None


def music21_notes(path: Path) -> int | None:
    """Notes music21 finds in a notation file (chords count each pitch); None if it fails."""
    import music21

    try:
        parsed = music21.converter.parse(str(path))
        scores = parsed.scores if isinstance(parsed, music21.stream.Opus) else [parsed]
        total = 0
        for s in scores:
            for n in s.recurse().notes:
                total += len(n.pitches) if n.isChord else 1
        return total
    except Exception:  # noqa: BLE001
        return None


def round_trip(notes: np.ndarray, config, tmp: Path) -> int:
    """Notes after encode -> decode -> write_midi -> read."""
    from midigen import midi_io
    from midigen.tokenizer import decode_ids, encode_notes

    decoded = decode_ids(encode_notes(notes, config), config)
    midi_io.write_midi(decoded.notes, tmp)
    return len(midi_io.read_midi_notes(tmp)) if len(decoded.notes) else 0


class _Slow(Exception):
    pass


def measure(folder: Path, worst: int, reference: bool, timeout_s: int = 60) -> None:
    from midigen import midi_io
    from midigen.errors import MidigenError
    from midigen.tokenizer import TokenizerConfig

    config = TokenizerConfig()
    tmp = Path("/tmp/midigen-gauntlet-trip.mid")
    rows = []
    files = sorted(p for p in folder.rglob("*") if p.is_file() or p.is_symlink())

    def on_alarm(*_):
        raise _Slow

    signal.signal(signal.SIGALRM, on_alarm)
    for path in files:
        rel = path.relative_to(folder)
        category = "/".join(rel.parts[:2]) if rel.parts[0] == "corpus" else rel.parts[0]
        category += " " + path.suffix.lower()
        row = {"file": str(rel), "cat": category}
        signal.alarm(timeout_s)
        try:
            pieces = midi_io.read_score(path)
            notes = np.concatenate([p.notes for p in pieces])
            row["read"] = len(notes)
            row["pieces"] = len(pieces)
            row["reader"] = pieces[0].meta.get("reader")
            row["trip"] = sum(round_trip(p.notes, config, tmp) for p in pieces)
        except MidigenError as e:
            row["skip"] = str(e)
        except _Slow:
            row["skip"] = f"HANG (> {timeout_s} s)"
        except Exception as e:  # noqa: BLE001 - exactly what the gauntlet looks for
            row["skip"] = f"CRASH {type(e).__name__}: {e}"
        finally:
            signal.alarm(0)
        if path.suffix.lower() in (".mid", ".midi", ".kar", ".rmi"):
            row["ref"] = raw_note_ons(path)
        elif reference:
            row["ref"] = music21_notes(path)
        rows.append(row)

    by_cat = defaultdict(list)
    for row in rows:
        by_cat[row["cat"]].append(row)
    print(f"{'category':34} {'files':>5} {'read':>5} {'skip':>5} {'notes':>8} "
          f"{'read/ref':>8} {'trip/read':>9}")
    for cat, group in sorted(by_cat.items()):
        ok = [r for r in group if "read" in r]
        notes = sum(r["read"] for r in ok)
        trip = sum(r["trip"] for r in ok)
        with_ref = [r for r in ok if r.get("ref")]
        ref_ratio = (sum(r["read"] for r in with_ref) / sum(r["ref"] for r in with_ref)
                     if with_ref else float("nan"))
        print(f"{cat:34} {len(group):5} {len(ok):5} {len(group) - len(ok):5} {notes:8} "
              f"{ref_ratio:8.3f} {trip / max(notes, 1):9.3f}")
    print("\nskip reasons:")
    for reason, n in Counter(r["skip"] for r in rows if "skip" in r).most_common():
        print(f"  {n:4}  {reason}")
    print(f"\nworst files (read/ref, trip/read), {worst} each:")
    scored = [r for r in rows if "read" in r and r.get("ref")]
    for r in sorted(scored, key=lambda r: r["read"] / r["ref"])[:worst]:
        print(f"  read {r['read']:6}/{r['ref']:<6} {r['file']}")
    tripped = [r for r in rows if r.get("read")]
    for r in sorted(tripped, key=lambda r: r["trip"] / r["read"])[:worst]:
        print(f"  trip {r['trip']:6}/{r['read']:<6} {r['file']}")
    for r in rows:
        if "skip" in r:
            print(f"  skip {r['file']}: {r['skip']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["build", "measure"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--worst", type=int, default=10)
    parser.add_argument("--reference", action="store_true",
                        help="count notation notes with music21 too (about a second a file)")
    args = parser.parse_args()
    if args.action == "build":
        for folder, n in sorted(build(args.folder).items()):
            print(f"{n:5}  {folder}")
    else:
        measure(args.folder, args.worst, args.reference)


if __name__ == "__main__":
    main()
