"""Score reading: the old path (music21 for everything) against today's readers, same files.

For each format it reads the same files twice in this one process, first with music21 only
(the old path), then with `read_score` (verovio / abc2midi first, music21 as fallback), and
reports files per CPU second of both, their ratio (goal >= 3x), failures of each, and how
well the notes agree. music21 is the reference where it reads a file; for the Nottingham tunes, jukedeck's
MIDI renderings of the same ABC are a second, independent reference ("truth").

Agreement of two readings of a piece: notes matched greedily per pitch with onsets within
60 ms (after moving both to start at 0, and after scaling one to the other's first tempo
when the two disagree on it), divided by the larger note count; "+dur" also requires the
durations to agree (within 60 ms or 10 %), "+prog" the instrument.

    python bench/bench_scores.py [--files 25] [--formats musicxml,mxl,kern,abc]

Files: MusicXML/MXL/kern from music21's bundled corpus (a seeded sample), ABC tunes from
../shared/corpora/nottingham (one tune per file, written once under a temporary folder).
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from midigen import midi_io, score_io
from midigen.errors import MidigenError

NOTTINGHAM = Path(__file__).resolve().parents[1].parent / "shared" / "corpora" / "nottingham"
TOL_S = 0.06


def corpus_files(kind: str, count: int, seed: int = 0) -> list[Path]:
    """A seeded sample of one format's files."""
    if kind == "abc":
        return nottingham_tunes(count, seed)
    import music21

    root = Path(music21.__file__).parent / "corpus"
    pattern = {"musicxml": "*.xml", "mxl": "*.mxl", "kern": "*.krn"}[kind]
    files = sorted(root.rglob(pattern))
    random.Random(seed).shuffle(files)
    return files[:count]


def nottingham_tunes(count: int, seed: int) -> list[Path]:
    """Single-tune ABC files cut from the Nottingham collections, named like jukedeck's MIDI."""
    tunes = []
    for collection in sorted((NOTTINGHAM / "ABC_cleaned").glob("*.abc")):
        for text in re.split(r"(?m)^(?=X:)", collection.read_text(errors="replace")):
            number = re.match(r"X:\s*(\d+)", text)
            if number:
                tunes.append((f"{collection.stem}{number.group(1)}", text))
    random.Random(seed).shuffle(tunes)
    folder = Path(tempfile.gettempdir()) / f"midigen-bench-abc-{seed}"
    folder.mkdir(exist_ok=True)
    files = []
    for name, text in tunes[:count]:
        (folder / f"{name}.abc").write_text(text)
        files.append(folder / f"{name}.abc")
    return files


def read_old(path: Path) -> list:
    """The old path: music21 renders, symusic reads."""
    data = path.read_bytes()
    kind = midi_io.detect_format(data, path.suffix)
    rendered = score_io.render_score(path, data, kind, "music21")
    return [midi_io.midi_bytes_to_piece(midi, name) for name, midi in rendered]


def cpu_seconds() -> float:
    """CPU time of this process and the children it waited for (abc2midi): on a machine
    shared with other jobs, wall time measures the other jobs as much as the readers."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


def timed_reads(reader, files: list[Path]) -> tuple[float, dict]:
    """CPU seconds to read all files, and path -> pieces (or the failure reason)."""
    results = {}
    began = cpu_seconds()
    for path in files:
        try:
            results[path] = reader(path)
        except MidigenError as e:
            results[path] = str(e)
    return cpu_seconds() - began, results


def _match(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int]:
    """(notes matched on pitch+onset, of those with the same duration, with the same program)."""
    matched = same_duration = same_program = 0
    for pitch in np.intersect1d(a["pitch"], b["pitch"]):
        x = a[a["pitch"] == pitch]
        y = b[b["pitch"] == pitch]
        x, y = x[np.argsort(x["start_s"], kind="stable")], y[np.argsort(y["start_s"], kind="stable")]
        i = j = 0
        while i < len(x) and j < len(y):
            gap = x["start_s"][i] - y["start_s"][j]
            if abs(gap) <= TOL_S:
                dx, dy = x["end_s"][i] - x["start_s"][i], y["end_s"][j] - y["start_s"][j]
                matched += 1
                same_duration += abs(dx - dy) <= max(TOL_S, 0.1 * dx)
                same_program += (x["program"][i] == y["program"][j]) and (
                    x["is_drum"][i] == y["is_drum"][j])
                i, j = i + 1, j + 1
            elif gap < 0:
                i += 1
            else:
                j += 1
    return matched, same_duration, same_program


def agreement(ref, other, recall: bool = False) -> np.ndarray:
    """[onset, +duration, +program] agreement of two pieces, each in 0..1; with recall, the
    share of ref's notes found in other (extra notes in other cost nothing)."""
    a, b = ref.notes.copy(), other.notes.copy()
    for notes in (a, b):
        first = notes["start_s"].min()
        notes["start_s"] -= first
        notes["end_s"] -= first
    best = np.array(_match(a, b), dtype=float)
    if abs(ref.tempo_bpm - other.tempo_bpm) > 0.5:
        scaled = b.copy()
        for column in ("start_s", "end_s"):
            scaled[column] *= other.tempo_bpm / ref.tempo_bpm
        rescaled = np.array(_match(a, scaled), dtype=float)
        best = max(best, rescaled, key=lambda m: m[0])
    return best / (len(a) if recall else max(len(a), len(b), 1))


def compare(ref: dict, other: dict, recall: bool = False) -> dict:
    """Mean agreement over the pieces both read (matched by name), and counts."""
    scores, tempo_differs = [], 0
    for path, pieces in ref.items():
        if isinstance(pieces, str) or isinstance(other.get(path), str):
            continue
        theirs = {p.name: p for p in other[path]}
        for piece in pieces:
            if piece.name in theirs:
                scores.append(agreement(piece, theirs[piece.name], recall))
                tempo_differs += abs(piece.tempo_bpm - theirs[piece.name].tempo_bpm) > 0.5
    scores = np.array(scores).reshape(-1, 3)
    mean = scores.mean(axis=0) if len(scores) else np.full(3, np.nan)
    return {"pieces": len(scores), "onset": mean[0], "dur": mean[1], "prog": mean[2],
            "low": int((scores[:, 0] < 0.9).sum()), "tempo_differs": tempo_differs}


def nottingham_truth(files: list[Path], subfolder: str = "") -> dict:
    """jukedeck's MIDI of each tune (melody + chords, or `melody`), read the same way."""
    truth = {}
    for path in files:
        midi = NOTTINGHAM / "MIDI" / subfolder / f"{path.stem}.mid"
        truth[path] = [midi_io.midi_bytes_to_piece(midi.read_bytes(), path.stem)]
    return truth


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=25, help="files per format")
    parser.add_argument("--formats", default="musicxml,mxl,kern,abc")
    args = parser.parse_args()

    kinds = args.formats.split(",")
    if "abc" in kinds and not NOTTINGHAM.exists():
        print(f"(no {NOTTINGHAM}: ABC left out)")
        kinds.remove("abc")
    warm = corpus_files("kern", 1)[0]
    midi_io.read_score(warm)  # imports and toolkit set-up, not timed ...
    read_old(warm)  # ... for both paths
    print("| format | files | old files/s | new files/s | speed-up | failures old / new "
          "| agreement new vs old: onset / +dur / +prog | pieces < 0.9 | first tempo differs |")
    print("|---|---|---|---|---|---|---|---|---|")
    total_old = total_new = total_files = 0.0
    for kind in kinds:
        files = corpus_files(kind, args.files)
        old_s, old = timed_reads(read_old, files)
        new_s, new = timed_reads(midi_io.read_score, files)
        total_old, total_new, total_files = total_old + old_s, total_new + new_s, total_files + len(
            files)
        c = compare(old, new)
        fails = [sum(isinstance(v, str) for v in r.values()) for r in (old, new)]
        print(f"| {kind} | {len(files)} | {len(files) / old_s:.2f} | {len(files) / new_s:.2f} "
              f"| {old_s / new_s:.1f}x | {fails[0]} / {fails[1]} "
              f"| {c['onset']:.3f} / {c['dur']:.3f} / {c['prog']:.3f} | {c['low']} of "
              f"{c['pieces']} | {c['tempo_differs']} |")
        if kind == "abc":
            for what, subfolder, recall in (("melody recall", "melody", True),
                                            ("melody+chords", "", False)):
                truth = nottingham_truth(files, subfolder)
                for label, result in (("old", old), ("new", new)):
                    t = compare(truth, result, recall)
                    print(f"| abc vs jukedeck MIDI ({what}), {label} | {t['pieces']} | | | | "
                          f"| {t['onset']:.3f} / {t['dur']:.3f} / {t['prog']:.3f} "
                          f"| {t['low']} | {t['tempo_differs']} |")
    print(f"\nAll formats: old {total_files / total_old:.2f} files/s, new "
          f"{total_files / total_new:.2f} files/s, {total_old / total_new:.1f}x (goal >= 3x); "
          "one process, CPU seconds (abc2midi's included), timed in the same run.")


if __name__ == "__main__":
    main()
