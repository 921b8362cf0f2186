"""music21's bundled Bach chorales as MIDI files: the corpus that needs no download."""

from __future__ import annotations

import os
from pathlib import Path

from midigen.fileio import atomic_write


def builtin_chorale_names() -> list[str]:
    """music21's names of the Bach chorales it bundles (Riemenschneider order, ~370)."""
    from music21 import corpus

    return list(corpus.chorales.Iterator(returnType="filename"))


def write_builtin_chorale(name: str, folder: str | os.PathLike) -> Path:
    """Convert one of music21's bundled chorales (e.g. 'bach/bwv269') to folder/bwv269.mid."""
    import music21

    score = music21.corpus.parse(name)
    target = Path(folder) / f"{name.rsplit('/', 1)[-1]}.mid"
    with atomic_write(target) as f:
        f.write(music21.midi.translate.music21ObjectToMidiFile(score).writestr())
    return target
