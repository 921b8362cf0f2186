"""Training / validation split by groups of files that are versions of one piece.

A by-file split leaks: Nottingham keeps each tune as MIDI/x.mid, MIDI/melody/x.mid and
MIDI/chords/x.mid, and piano-performance sets keep several performances of a piece in one
folder (asap-piano: Composer/Work/Piece/Performer.mid). With versions of one piece on both
sides, validation NLL measures memory, not music. So files are grouped first and whole groups
are held out:

- `file`:   every file is its own group (the old split; an ABC file's tunes stay together).
- `folder`: the files of one folder are one group; files at the top of the corpus stand alone.
- `name`:   files with the same normalised name (lower case, letters and digits) are one group,
            wherever they are.
- `auto` (default): a *piece folder* (one with no subfolders of scores, below the top, and
            holding at most half the validation share of the corpus's files) is one group, as a
            folder of performances is; every other file is grouped by name. A folder of
            hundreds of different tunes is too big to be one piece, and grouping it would throw
            a whole sub-corpus to one side, so there names decide.
"""

from __future__ import annotations

import posixpath
import random
import re
from collections import Counter

from midigen.errors import MidigenError

SPLIT_MODES = ("auto", "file", "folder", "name")


def normalised_name(file: str) -> str:
    """'MIDI/melody/Ashover_1.mid' -> 'ashover1': what versions of one piece share."""
    stem = posixpath.splitext(posixpath.basename(file))[0]
    return re.sub(r"[^a-z0-9]", "", stem.lower()) or stem


def piece_folders(files: list[str], valid_fraction: float) -> set[str]:
    """Folders whose files `auto` treats as versions of one piece (see the module docstring)."""
    per_folder = Counter(posixpath.dirname(f) for f in files)
    largest = max(1.0, valid_fraction * len(files) / 2)
    parents = {posixpath.dirname(d) for d in per_folder if d}
    has_sub = set()
    for d in parents:  # every ancestor of a folder with scores has scores below it
        while d and d not in has_sub:
            has_sub.add(d)
            d = posixpath.dirname(d)
    return {d for d, n in per_folder.items() if d and d not in has_sub and n <= largest}


def group_files(files: list[str], by: str = "auto", valid_fraction: float = 0.1) -> dict[str, str]:
    """{file: group key}: files with one key are versions of one piece and stay on one side."""
    if by not in SPLIT_MODES:
        raise MidigenError(f"unknown split mode {by!r}: use one of {', '.join(SPLIT_MODES)}")
    if by == "file":
        return {f: "file:" + f for f in files}
    if by == "name":
        return {f: "name:" + normalised_name(f) for f in files}
    if by == "folder":
        return {f: ("folder:" + posixpath.dirname(f)) if posixpath.dirname(f) else "file:" + f
                for f in files}
    folders = piece_folders(files, valid_fraction)
    return {f: "folder:" + posixpath.dirname(f) if posixpath.dirname(f) in folders
            else "name:" + normalised_name(f) for f in files}


def split_pieces(pieces: list, valid_fraction: float = 0.1, seed: int = 0,
                 by: str = "auto") -> tuple[list, list]:
    """(train, valid) pieces with whole groups of files held out (see group_files); seeded.

    Groups are shuffled and taken for validation until they hold `valid_fraction` of the
    files; both sides get at least one group. Pieces need `.file` (path relative to the corpus).
    """
    if not 0 < valid_fraction < 1:
        raise MidigenError("the validation fraction must be between 0 and 1")
    files = sorted({str(p.file) for p in pieces})
    key_of = group_files(files, by, valid_fraction)
    members: dict[str, list[str]] = {}
    for f in files:
        members.setdefault(key_of[f], []).append(f)
    if len(members) < 2:
        raise MidigenError(
            f"the corpus has {len(files)} readable file(s) in {len(members)} group(s) when split "
            f"by {by}: at least 2 are needed to hold some out for validation"
            + (" (try --split-by file)" if by != "file" and len(files) >= 2 else ""))
    keys = sorted(members)
    random.Random(seed).shuffle(keys)
    target = round(len(files) * valid_fraction)
    valid_files: set[str] = set()
    for key in keys[:-1]:  # the last group always trains
        if valid_files and len(valid_files) >= target:
            break
        valid_files.update(members[key])
    train = [p for p in pieces if str(p.file) not in valid_files]
    valid = [p for p in pieces if str(p.file) in valid_files]
    return train, valid
