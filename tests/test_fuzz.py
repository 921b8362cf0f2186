"""A seeded mutator over real and generated MIDI, ABC and MusicXML bytes.

Bit flips, truncations, bad chunk lengths, huge delta times, thousands of tracks, broken
headers, garbage inside tracks. Every mutant must give pieces or a skip reason: never an
internal "reader error", never a hang, never more than a bounded amount of memory; and the
unmutated files, read in one pool with all the mutants, must still be read.
"""

from __future__ import annotations

import random
import signal
import struct
from pathlib import Path

import pytest

from midigen.events import Note, notes_to_array
from midigen.midi_io import write_midi
from midigen.reading import read_file_tokens, read_files
from midigen.tokenizer import TokenizerConfig

CONFIG = TokenizerConfig()
SEED = 20261202
MIDI_MUTANTS_PER_SEED = 25
TEXT_MUTANTS_PER_SEED = 3  # music21 takes ~0.5 s a file
SECONDS_PER_FILE = 15  # a hang, on a machine shared by other jobs
MAX_EXTRA_MB_PER_FILE = 200

MUSICXML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>Piano</part-name>
</score-part></part-list><part id="P1"><measure number="1"><attributes><divisions>1</divisions>
<key><fifths>0</fifths></key><time><beats>4</beats><beat-type>4</beat-type></time>
<clef><sign>G</sign><line>2</line></clef></attributes>
<note><pitch><step>C</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type></note>
<note><pitch><step>E</step><octave>4</octave></pitch><duration>1</duration><type>quarter</type></note>
<note><pitch><step>G</step><octave>4</octave></pitch><duration>2</duration><type>half</type></note>
</measure></part></score-partwise>
"""
ABC = "X:1\nT:Fuzz\nM:4/4\nL:1/8\nK:G\nGABc dedB|dedB dedB|c2ec B2dB|A2F2 G4:|\n"


def _chunks(data: bytes) -> list[tuple[int, int]]:
    """(offset of the length field, length) of each chunk after the header."""
    found, at = [], 14
    while at + 8 <= len(data):
        length = struct.unpack(">I", data[at + 4:at + 8])[0]
        found.append((at + 4, length))
        at += 8 + length
    return found


def mutate_midi(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    """One hostile variant of a MIDI file and the name of what was done to it."""
    kind = rng.choice(["flip", "truncate", "chunk_length", "huge_delta", "many_tracks",
                       "header", "garbage", "tempo"])
    out = bytearray(data)
    chunks = _chunks(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 24)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        out = out[:rng.randrange(1, len(out))]
    elif kind == "chunk_length" and chunks:
        at, length = rng.choice(chunks)
        value = rng.choice([0, 1, length - 1, length + 1, 2**31 - 1, 2**32 - 1])
        out[at:at + 4] = struct.pack(">I", max(value, 0))
    elif kind == "huge_delta" and chunks:  # max-size delta times, each then a note-on
        _insert(out, rng.choice(chunks), b"\xff\xff\xff\x7f\x90\x3c\x64" * rng.randint(1, 50))
    elif kind == "many_tracks":
        track = b"MTrk" + struct.pack(">I", 8) + b"\x00\x90\x3c\x64\x01\x80\x3c\x00"
        count = rng.choice([600, 2000, 65535])
        out = bytearray(data[:10] + struct.pack(">H", count) + data[12:14]
                        + track * min(count, 5000))
    elif kind == "header":
        field = rng.choice(["format", "tracks", "division"])
        offset = {"format": 8, "tracks": 10, "division": 12}[field]
        out[offset:offset + 2] = struct.pack(">H", rng.choice([0, 2, 0x7FFF, 0xE728, 0xFFFF]))
    elif kind == "garbage" and chunks:
        at, length = rng.choice(chunks)
        start = at + 4 + rng.randrange(max(length, 1))
        out[start:start + 16] = bytes(rng.randrange(256) for _ in range(16))
    elif kind == "tempo" and chunks:  # tempo 0 or the slowest tempo, many times
        tempo = rng.choice([b"\x00\x00\x00", b"\xff\xff\xff"])
        _insert(out, rng.choice(chunks), (b"\x00\xff\x51\x03" + tempo) * rng.randint(1, 2000))
    return kind, bytes(out)


def _insert(out: bytearray, chunk: tuple[int, int], events: bytes) -> None:
    """Put events at the start of a track chunk and fix its length field."""
    at, length = chunk
    out[at + 4:at + 4] = events
    out[at:at + 4] = struct.pack(">I", length + len(events))


def mutate_text(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(["flip", "truncate", "repeat"])
    out = bytearray(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 12)):
            i = rng.randrange(len(out))
            out[i] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        out = out[:rng.randrange(1, len(out))]
    else:  # a line repeated many times: a long piece
        lines = bytes(out).splitlines(keepends=True)
        pick = rng.randrange(len(lines))
        out = bytearray(b"".join(lines[:pick] + lines[pick:pick + 1] * 200 + lines[pick:]))
    return kind, bytes(out)


def _seed_files(folder: Path, shared: Path | None) -> list[Path]:
    generated = folder / "generated.mid"
    notes = [Note(48 + (i * 7) % 36, 40 + i % 80, i * 0.125, i * 0.125 + 0.3, program=i % 3 * 20,
                  is_drum=i % 11 == 0) for i in range(300)]
    write_midi(notes_to_array(notes), generated)
    (folder / "score.musicxml").write_text(MUSICXML)
    (folder / "tune.abc").write_text(ABC)
    seeds = [generated, folder / "score.musicxml", folder / "tune.abc"]
    if shared is not None:
        for pattern in ("nottingham/MIDI/**/*.mid", "pop909/**/*.mid", "asap-piano/**/*.mid"):
            found = sorted(shared.glob(pattern))[:2]
            for k, path in enumerate(found):
                seeds.append(folder / f"real-{path.parent.name}-{k}.mid")
                seeds[-1].write_bytes(path.read_bytes())
    return seeds


class _Hang(Exception):
    pass


def _alarm(signum, frame):
    raise _Hang


def _read_alone(path: Path) -> tuple[dict, float | None]:
    """read_file_tokens under a time limit; its result and the peak MB it added (Linux)."""
    clear = Path("/proc/self/clear_refs")
    status = Path("/proc/self/status")
    measured = clear.exists() and status.exists()
    if measured:
        clear.write_text("5")  # VmHWM := current RSS
        base_kb = _status_kb(status, "VmRSS:")
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(SECONDS_PER_FILE)
    try:
        result = read_file_tokens(str(path), CONFIG)
    except _Hang:
        pytest.fail(f"{path.name}: no answer within {SECONDS_PER_FILE} s")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    extra = (_status_kb(status, "VmHWM:") - base_kb) / 1024 if measured else None
    return result, extra


def _status_kb(status: Path, key: str) -> int:
    return next(int(line.split()[1]) for line in status.read_text().splitlines()
                if line.startswith(key))


def test_mutated_scores_never_break_the_reader(tmp_path):
    shared = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
    seeds = _seed_files(tmp_path, shared if shared.is_dir() else None)
    rng = random.Random(SEED)
    mutants: list[tuple[Path, str]] = []
    for seed_path in seeds:
        data = seed_path.read_bytes()
        is_midi = seed_path.suffix == ".mid"
        for k in range(MIDI_MUTANTS_PER_SEED if is_midi else TEXT_MUTANTS_PER_SEED):
            kind, mutant = (mutate_midi if is_midi else mutate_text)(data, rng)
            path = tmp_path / "mutants" / f"{seed_path.stem}-{k:02d}-{kind}{seed_path.suffix}"
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(mutant)
            mutants.append((path, kind))

    for path, kind in mutants:
        result, extra_mb = _read_alone(path)
        assert result["status"] in ("ok", "skipped"), (path.name, result)
        reason = result.get("reason") or ""
        assert not reason.startswith(("reader error", "crashed")), (path.name, reason)
        if extra_mb is not None:
            assert extra_mb < MAX_EXTRA_MB_PER_FILE, f"{path.name} took {extra_mb:.0f} MB more"

    # The good files, read in one worker pool together with every mutant, are still read.
    paths = [str(p) for p in seeds] + [str(p) for p, _ in mutants]
    results = read_files(paths, CONFIG, jobs=2)
    for seed_path, result in zip(seeds, results):
        assert result["status"] == "ok", (seed_path.name, result)
    assert not [r for r in results if (r.get("reason") or "").startswith("reader error")]
