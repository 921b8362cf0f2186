"""Which sampling options differ between a report's pieces, and the pieces grouped by them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from midigen.report import PieceEntry

GROUP_KEYS = ("checkpoint", "temperature", "top_k", "top_p", "seconds", "max_events",
              "min_seconds", "primer", "primer_seconds", "constrain",
              "style", "key", "density", "instruments",  # midigen.controls
              "guidance")  # midigen.guidance


def varying_keys(entries: list[PieceEntry]) -> list[str]:
    """The sampling options (and seed) whose values differ between the pieces."""
    keys = []
    for key in GROUP_KEYS + ("seed",):
        values = {json.dumps(option_of(e, key)) for e in entries if e.info}
        if len(values) > 1:
            keys.append(key)
    return keys


def option_of(e: PieceEntry, key: str):
    return e.info.get(key) if key in ("seed", "checkpoint") else e.info.get("options", {}).get(key)


def group_pieces(entries: list[PieceEntry], varying: list[str]
                 ) -> list[tuple[str, list[PieceEntry]]]:
    """Pieces grouped by the varying options other than seed (sorted by value), each group
    sorted by seed, then batch position, then name; pieces without a record come last."""
    group_by = [k for k in varying if k != "seed"]

    def sort_key(value):
        return (value is None, value if isinstance(value, (int, float)) else str(value))

    groups: dict[tuple, list[PieceEntry]] = {}
    for e in entries:
        key = tuple(option_of(e, k) for k in group_by) if e.info else None
        groups.setdefault(key, []).append(e)
    ordered = sorted((k for k in groups if k is not None),
                     key=lambda k: tuple(sort_key(v) for v in k))
    result = []
    for key in ordered + ([None] if None in groups else []):
        members = sorted(groups[key], key=lambda e: (sort_key(e.info.get("seed")),
                                                     e.info.get("index", 0), e.name))
        if key is None:
            title = "pieces with no record of how they were made" if group_by or \
                len(groups) > 1 else ""
        else:
            title = ", ".join(f"{label(k)} {show_value(v)}" for k, v in zip(group_by, key))
        result.append((title, members))
    return result


# Option keys whose plain spelling would not read as words (the rest lose their underscores).
LABELS = {"from_training_lengths": "from the training lengths:", "longest": "longest piece (s)",
          "max_note_s": "longest note (s)", "target_length_s": "target length (s)"}


def label(key: str) -> str:
    return LABELS.get(key) or key.replace("_", " ").replace("top ", "top-")


def show_value(value) -> str:
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):  # nested options, e.g. the lengths taken from training
        return ", ".join(f"{label(k)} {show_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return "–".join(show_value(v) for v in value) if len(value) == 2 else \
            ", ".join(show_value(v) for v in value)
    if isinstance(value, str) and os.sep in value:
        return Path(value).parent.name + "/" + Path(value).name
    return str(value)
