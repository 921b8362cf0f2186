"""The grouped split: versions of one piece (same folder of performances, same tune name in
several folders) never land on both sides; the mode is saved and a resumed run keeps it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from midigen.errors import MidigenError
from midigen.split import group_files, piece_folders, split_pieces

SHARED = Path(__file__).resolve().parents[2] / "shared" / "corpora"


@dataclass
class P:
    name: str
    file: str


def nottingham_like(tunes: int = 60) -> list[P]:
    """Each tune three times: full arrangement, melody, chords (as Nottingham's MIDI/)."""
    return [P(f"{d}{k}", f"{d}tune_{k}.mid") for k in range(tunes) for d in ("", "melody/", "chords/")]


def asap_like(pieces: int = 60) -> list[P]:
    """Composer/Work/Piece/Performer.mid, 2-5 performances per piece, performers recurring."""
    files = []
    for k in range(pieces):
        for j in range(2 + k % 4):
            files.append(P(f"{k}-{j}", f"Comp{k % 3}/Work{k % 7}/piece{k}/Performer{(k + j) % 9}.mid"))
    return files


def _sides_of_groups(pieces, train, valid, key):
    side = {p.file: "train" for p in train} | {p.file: "valid" for p in valid}
    groups: dict[str, set] = {}
    for p in pieces:
        groups.setdefault(key(p.file), set()).add(side[p.file])
    return groups


@pytest.mark.parametrize("make, key", [
    (nottingham_like, lambda f: os.path.basename(f)),  # a tune's three versions
    (asap_like, lambda f: os.path.dirname(f)),  # a piece's performances
])
def test_auto_split_keeps_versions_of_a_piece_together(make, key):
    pieces = make()
    for seed in range(8):
        train, valid = split_pieces(pieces, 0.1, seed)
        assert train and valid and len(train) + len(valid) == len(pieces)
        groups = _sides_of_groups(pieces, train, valid, key)
        assert all(len(sides) == 1 for sides in groups.values()), seed
        assert 0.05 <= len(valid) / len(pieces) <= 0.2


def test_by_file_split_leaks_where_grouped_split_does_not():
    pieces = nottingham_like()
    train, valid = split_pieces(pieces, 0.1, 0, by="file")
    groups = _sides_of_groups(pieces, train, valid, lambda f: os.path.basename(f))
    assert any(len(sides) == 2 for sides in groups.values())


def test_modes_group_as_documented():
    files = ["a.mid", "b.mid", "x/one.mid", "x/two.mid", "y/A.mid", "y/z/b.MID"]
    assert len(set(group_files(files, "file").values())) == 6
    by_folder = group_files(files, "folder")
    assert by_folder["x/one.mid"] == by_folder["x/two.mid"] != by_folder["a.mid"] != by_folder["b.mid"]
    by_name = group_files(files, "name")
    assert by_name["a.mid"] == by_name["y/A.mid"] and by_name["b.mid"] == by_name["y/z/b.MID"]
    # y holds a subfolder, so it is not a piece folder; the top folder never is one.
    assert piece_folders(files, valid_fraction=0.9) == {"x", "y/z"}
    with pytest.raises(MidigenError, match="split mode"):
        group_files(files, "composer")


def test_too_few_groups_is_a_clear_error():
    with pytest.raises(MidigenError, match="at least 2"):
        split_pieces([P("a", "x/1.mid"), P("b", "x/2.mid")], 0.5, 0, by="folder")
    train, valid = split_pieces([P("a", "x/1.mid"), P("b", "x/2.mid")], 0.5, 0, by="file")
    assert len(train) == len(valid) == 1


@pytest.mark.skipif(not (SHARED / "asap-piano").is_dir(), reason="../shared/corpora/asap-piano absent")
def test_asap_piano_performances_of_a_piece_stay_on_one_side():
    root = SHARED / "asap-piano"
    pieces = [P(str(f), f.relative_to(root).as_posix()) for f in sorted(root.rglob("*.mid"))]
    train, valid = split_pieces(pieces, 0.1, 0)
    groups = _sides_of_groups(pieces, train, valid, lambda f: os.path.dirname(f))
    assert len(groups) > 100 and all(len(s) == 1 for s in groups.values())
