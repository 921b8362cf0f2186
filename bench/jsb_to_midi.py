"""JSB Chorales (Coconet's voice-separated 16th-note JSON) -> MIDI files, one folder per split.

Each time step of `Jsb16thSeparated.json` holds four pitches [S, A, T, B] (-1 = silent). Every
voice becomes its own instrument (string quartet programs, so a type-1 file keeps four tracks
and the tokenizer sees voice changes), at a fixed tempo. The piano roll cannot tell a held
note from a repeated one, so consecutive steps with the same pitch in a voice merge into one
note (legato), as the dataset's README suggests.

    python bench/jsb_to_midi.py OUT_DIR [--tempo-bpm 100]   # writes OUT_DIR/{train,valid,test}/*.mid
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from midigen.events import NOTE_DTYPE, sort_notes
from midigen.midi_io import write_midi

JSB_JSON = Path(__file__).resolve().parents[2] / "shared" / "corpora" / "jsb-chorales" / "Jsb16thSeparated.json"
VOICE_PROGRAMS = (40, 41, 42, 43)  # violin, viola, cello, contrabass for S, A, T, B
VELOCITY = 80


def steps_to_notes(steps, step_s: float, programs=VOICE_PROGRAMS) -> np.ndarray:
    """Notes (NOTE_DTYPE) of one chorale: a held pitch in a voice is one note, -1 is a rest."""
    roll = np.asarray(steps, dtype=np.int64).reshape(len(steps), -1)  # (T, voices)
    rows = []
    for voice in range(roll.shape[1]):
        line = roll[:, voice]
        # a note starts where the pitch changes (and is not a rest)
        change = np.ones(len(line), dtype=bool)
        change[1:] = line[1:] != line[:-1]
        starts = np.flatnonzero(change)
        ends = np.append(starts[1:], len(line))
        for s, e in zip(starts, ends):
            if line[s] >= 0:
                rows.append((s * step_s, e * step_s, line[s], VELOCITY, programs[voice], False))
    return sort_notes(np.array(rows, dtype=NOTE_DTYPE))


def convert(out_dir: Path, tempo_bpm: float = 100.0, json_path: Path = JSB_JSON) -> dict:
    """Write every chorale as OUT_DIR/<split>/<split>_NNN.mid; returns counts per split."""
    data = json.loads(Path(json_path).read_text())
    step_s = 60.0 / tempo_bpm / 4  # a 16th note
    counts = {}
    for split in ("train", "valid", "test"):
        folder = Path(out_dir) / split
        folder.mkdir(parents=True, exist_ok=True)
        for i, steps in enumerate(data[split]):
            path = folder / f"{split}_{i:03d}.mid"
            if not path.exists():
                write_midi(steps_to_notes(steps, step_s), path, tempo_bpm=tempo_bpm)
        counts[split] = len(data[split])
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--tempo-bpm", type=float, default=100.0)
    parser.add_argument("--json", type=Path, default=JSB_JSON)
    args = parser.parse_args()
    print(convert(args.out_dir, args.tempo_bpm, args.json))


if __name__ == "__main__":
    main()
