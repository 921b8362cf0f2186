"""The data every stage passes along: notes in seconds, and the events they become.

Notes travel as numpy structured arrays (NOTE_DTYPE) because corpora hold millions of them
and every stage (reading, tokenizing, statistics) works on whole columns at once. The small
`Note` dataclass exists for readable tests and worked examples.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np

NOTE_DTYPE = np.dtype(
    [
        ("start_s", "f8"),
        ("end_s", "f8"),
        ("pitch", "i2"),
        ("velocity", "i2"),
        ("program", "i2"),  # General MIDI program 0..127; ignored for drums
        ("is_drum", "?"),
    ]
)


DRUM_KEY = 128  # instrument key of drums; GM programs are 0..127
PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def pitch_name(pitch: int) -> str:
    """Scientific pitch name of a MIDI key: 60 -> "C4"."""
    return f"{PITCH_CLASS_NAMES[int(pitch) % 12]}{int(pitch) // 12 - 1}"


def instrument_keys(notes: np.ndarray) -> np.ndarray:
    """Each note's instrument key (int64): its GM program, or DRUM_KEY for drums."""
    return np.where(notes["is_drum"], DRUM_KEY, notes["program"]).astype(np.int64)


@dataclass(frozen=True)
class Note:
    """One sounding note, with its instrument, in seconds."""

    pitch: int
    velocity: int
    start_s: float
    end_s: float
    program: int = 0
    is_drum: bool = False


def notes_to_array(notes: list[Note] | tuple[Note, ...]) -> np.ndarray:
    """A NOTE_DTYPE array from Note objects, sorted by start time then pitch."""
    rows = [(n.start_s, n.end_s, n.pitch, n.velocity, n.program, n.is_drum) for n in notes]
    return sort_notes(np.array(rows, dtype=NOTE_DTYPE))


def array_to_notes(notes: np.ndarray) -> list[Note]:
    """Note objects from a NOTE_DTYPE array, in array order."""
    return [
        Note(int(n["pitch"]), int(n["velocity"]), float(n["start_s"]), float(n["end_s"]),
             int(n["program"]), bool(n["is_drum"]))
        for n in notes
    ]


def empty_notes() -> np.ndarray:
    return np.zeros(0, dtype=NOTE_DTYPE)


def sort_notes(notes: np.ndarray) -> np.ndarray:
    """Notes in a canonical order (start, drum flag, program, pitch, end) so arrays compare."""
    order = np.lexsort(
        (notes["end_s"], notes["pitch"], notes["program"], notes["is_drum"], notes["start_s"])
    )
    return notes[order]


@dataclass
class Piece:
    """One piece of music read from a file (an ABC file can hold many)."""

    name: str
    notes: np.ndarray  # NOTE_DTYPE, sorted
    tempo_bpm: float = 120.0  # first tempo of the source, for writers that want a grid
    time_signature: tuple[int, int] = (4, 4)
    meta: dict = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return float(self.notes["end_s"].max()) if len(self.notes) else 0.0


class EventType(enum.Enum):
    """The kinds of event a piece is spelled with; the vocabulary is one block per kind."""

    START = "START"
    END = "END"
    NOTE_ON = "NOTE_ON"
    NOTE_OFF = "NOTE_OFF"
    TIME_SHIFT = "TIME_SHIFT"
    VELOCITY = "VELOCITY"
    PROGRAM = "PROGRAM"
    DRUMS = "DRUMS"


@dataclass(frozen=True)
class Event:
    """One symbol of a piece: a type and its value (pitch, steps, bin or program)."""

    type: EventType
    value: int = 0
