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
  few: same-pitch onsets in one 10 ms step, pitches it cannot spell);
- `dist`: against distinct notes read, a unison on one instrument (doubled tracks, common in
  pop MIDI) counted once, as it sounds and as the tokenizer spells it.

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
from gauntlet_quirks import music21_root, write_quirks

# music21 corpus folder -> how many files to take (seeded sample; None = all)
CORPUS_TAKE = {"bach": 30, "palestrina": 40, "ryansMammoth": 30, "trecento": 30,
               "monteverdi": 20, "essenFolksong": None, "oneills1850": None}


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


def distinct_notes(notes: np.ndarray, config) -> int:
    """Notes left when unisons on one instrument (same program or drums, pitch and onset
    step) count once: doubled tracks sound as one note, and the tokenizer spells it once."""
    from midigen.events import instrument_keys

    step = np.round(notes["start_s"] * config.steps_per_second).astype(np.int64)
    keys = np.stack([instrument_keys(notes), notes["pitch"].astype(np.int64), step], axis=1)
    return len(np.unique(keys, axis=0)) if len(notes) else 0


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
            row["distinct"] = sum(distinct_notes(p.notes, config) for p in pieces)
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
          f"{'read/ref':>8} {'trip/read':>9} {'trip/dist':>9}")
    for cat, group in sorted(by_cat.items()):
        ok = [r for r in group if "read" in r]
        notes = sum(r["read"] for r in ok)
        trip = sum(r["trip"] for r in ok)
        distinct = sum(r["distinct"] for r in ok)
        with_ref = [r for r in ok if r.get("ref")]
        ref_ratio = (sum(r["read"] for r in with_ref) / sum(r["ref"] for r in with_ref)
                     if with_ref else float("nan"))
        print(f"{cat:34} {len(group):5} {len(ok):5} {len(group) - len(ok):5} {notes:8} "
              f"{ref_ratio:8.3f} {trip / max(notes, 1):9.3f} {trip / max(distinct, 1):9.3f}")
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
