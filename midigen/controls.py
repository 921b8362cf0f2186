"""Controls a model can be steered by (style, key, density, instruments), learned with no labels.

Every control comes from the corpus itself:
- style: a piece's first folder under the corpus root (`corpus/jigs/x.mid` -> "jigs"; pieces at
  the root have none), or a label from a CSV/JSON file the user gives (path or name -> label);
- key: the score's written key signature, else estimated from the notes (midigen.keys), stored
  per piece at ingest; transposition augmentation moves it with the notes;
- density: notes per second of each training window (Performance RNN style), in bins whose
  edges are quantiles of the corpus's windows, so every bin holds music;
- instruments: the set of GM programs / drums (DRUM_KEY) a piece uses.

A model's controls and their vocabularies are one ControlSpec, saved in its ModelConfig.
A control's value travels as one row of a (B, COND_WIDTH) int64 tensor: style, key and
density-bin indices (the control's size means "not given"), then a 129-wide multi-hot of
instruments (all zero: not given). Every control is optional at sampling time.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from midigen.errors import MidigenError
from midigen.events import DRUM_KEY
from midigen.gm_names import GM_PROGRAM_NAMES, instrument_name
from midigen.keys import KEY_NAMES, NUM_KEYS, parse_key
from midigen.records import DictRecord

CONTROL_NAMES = ("style", "key", "density", "instruments")
STYLE, KEY, DENSITY, INSTRUMENTS = 0, 1, 2, 3  # columns of a conditioning row; 3.. multi-hot
NUM_INSTRUMENTS = DRUM_KEY + 1
COND_WIDTH = 3 + NUM_INSTRUMENTS
DENSITY_BINS = 8


@dataclass(frozen=True)
class ControlSpec(DictRecord):
    """Which controls a model knows and their vocabularies (saved in its ModelConfig)."""

    names: tuple[str, ...]
    styles: tuple[str, ...] = ()
    density_edges: tuple[float, ...] = ()  # notes per second between the bins, ascending
    instruments: tuple[int, ...] = ()  # instrument keys seen in training (0..127, 128 drums)
    dim: int = 16  # embedding size per control
    dropout: float = 0.2  # chance, per window and control, that training hides it
    styles_file: str | None = None  # where style labels came from (None: folders)

    def __post_init__(self):
        for name in ("names", "styles", "density_edges", "instruments"):
            object.__setattr__(self, name, tuple(getattr(self, name)))  # lists once JSON
        check_names(self.names)

    @property
    def num_density_bins(self) -> int:
        return len(self.density_edges) + 1

    def sizes(self) -> dict[str, int]:
        """Known values per control; index `size` of style/key/density means "not given"."""
        return {"style": len(self.styles), "key": NUM_KEYS, "density": self.num_density_bins,
                "instruments": NUM_INSTRUMENTS}

    def describe(self) -> dict[str, list]:
        """Each control's known values, for `midigen inspect` and error messages."""
        known = {"style": list(self.styles), "key": list(KEY_NAMES),
                 "density": [f"{lo:.3g}-{hi:.3g}" for lo, hi in
                             zip((0.0, *self.density_edges), (*self.density_edges, math.inf))],
                 "instruments": [instrument_label(k) for k in self.instruments]}
        return {name: known[name] for name in self.names}


def check_names(names) -> tuple[str, ...]:
    """The control names, checked: a subset of CONTROL_NAMES, each once, at least one."""
    names = tuple(n.strip().lower() for n in names if n.strip())
    bad = [n for n in names if n not in CONTROL_NAMES]
    if bad or not names or len(set(names)) != len(names):
        raise MidigenError(f"unknown or repeated control {', '.join(bad) or ','.join(names)!r}: "
                           f"choose from {', '.join(CONTROL_NAMES)}")
    return names


def parse_control_names(text: str) -> tuple[str, ...]:
    """"style,key" -> ("style", "key"); "all" -> every control."""
    if text.strip().lower() == "all":
        return CONTROL_NAMES
    return check_names(text.split(","))


# --------------------------------------------------------------------------- style

def style_of_path(rel: str) -> str | None:
    """A piece's style from its path under the corpus root: its first folder (None at the root)."""
    parts = PurePosixPath(rel).parts
    return parts[0] if len(parts) > 1 else None


def load_style_map(path: str | Path) -> dict[str, str]:
    """Labels from a file: JSON {path-or-name: label}, or CSV rows `path-or-name,label`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise MidigenError(f"cannot read styles file {path} ({getattr(e, 'strerror', None) or e})") from None
    if path.suffix.lower() == ".json":
        try:
            mapping = json.loads(text)
        except json.JSONDecodeError as e:
            raise MidigenError(f"styles file {path} is not valid JSON ({e.msg}, line {e.lineno})") from None
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise MidigenError(f"styles file {path} must hold one object of \"file\": \"label\"")
        return {str(k): v.strip() for k, v in mapping.items() if v.strip()}
    rows = [r for r in csv.reader(text.splitlines()) if r and not r[0].startswith("#")]
    if rows and [c.strip().lower() for c in rows[0][:2]] in (["file", "style"], ["path", "style"]):
        rows = rows[1:]  # a header
    if any(len(r) < 2 for r in rows):
        raise MidigenError(f"styles file {path}: each line must be `file,label`")
    return {r[0].strip(): r[1].strip() for r in rows if r[1].strip()}


def style_of(piece, mapping: dict[str, str] | None) -> str | None:
    """A piece's style: from `mapping` (by path, file name, stem or piece name), else folder."""
    if mapping is None:
        return style_of_path(piece.file)
    rel = PurePosixPath(piece.file)
    for key in (piece.file, rel.name, rel.stem, piece.name):
        if key in mapping:
            return mapping[key]
    return None


# --------------------------------------------------------------------------- density

def density_of_ids(ids: np.ndarray, note_on: range, shift_steps: np.ndarray,
                   steps_per_second: int) -> np.ndarray:
    """Notes per second of each row of ids (..., T): NOTE_ONs over the time its shifts span
    (at least one step, so a chord alone is dense, not infinite)."""
    ids = np.asarray(ids, dtype=np.int64)
    notes = ((ids >= note_on.start) & (ids < note_on.stop)).sum(axis=-1)
    steps = np.maximum(shift_steps[ids].sum(axis=-1), 1)
    return notes * steps_per_second / steps


def density_edges(densities: np.ndarray, num_bins: int = DENSITY_BINS) -> tuple[float, ...]:
    """Bin edges at quantiles of window densities (log-spaced if the corpus is too small)."""
    d = np.asarray(densities, dtype=np.float64)
    d = d[np.isfinite(d) & (d > 0)]
    if len(d) >= 4 * num_bins:
        edges = np.quantile(d, np.arange(1, num_bins) / num_bins)
    else:
        edges = np.geomspace(0.5, 32.0, num_bins - 1)
    edges = np.unique(np.round(edges, 3))
    return tuple(float(e) for e in edges if e > 0)


def density_bin(value, edges) -> np.ndarray:
    """Bin index of notes-per-second values (0 .. len(edges))."""
    return np.searchsorted(np.asarray(edges, dtype=np.float64), value, side="right")


# --------------------------------------------------------------------------- instruments

def instrument_label(key: int) -> str:
    return instrument_name(key, key == DRUM_KEY)


def parse_instrument(text: str, known: tuple[int, ...]) -> int:
    """An instrument key from a GM number (0..127), "drums", or a name or part of one
    ("piano", "violin"); a part matching several prefers what the model knows, then the
    lowest program."""
    s = text.strip().lower()
    if s.isdigit() and 0 <= int(s) <= 127:
        return int(s)
    if s in ("drums", "drum", "percussion", str(DRUM_KEY)):
        return DRUM_KEY
    names = [n.lower() for n in GM_PROGRAM_NAMES]
    if s in names:
        return names.index(s)
    matches = [k for k, n in enumerate(names) if s and s in n]
    preferred = [k for k in matches if k in known] or matches
    if not preferred:
        raise MidigenError(f"unknown instrument {text!r}: give a General MIDI name or number "
                           "(0-127), or drums")
    return preferred[0]


# --------------------------------------------------------------------------- asking

def unknown_row(spec: ControlSpec) -> np.ndarray:
    """A conditioning row with no control given."""
    row = np.zeros(COND_WIDTH, dtype=np.int64)
    sizes = spec.sizes()
    row[STYLE], row[KEY], row[DENSITY] = sizes["style"], sizes["key"], sizes["density"]
    return row


def _not_known(what: str, value, spec: ControlSpec) -> MidigenError:
    known = spec.describe().get(what, [])
    listed = ", ".join(map(str, known)) if known else "none"
    return MidigenError(f"this model knows no {what.rstrip('s')} {value!r}; it knows: {listed}")


def asked_row(spec: ControlSpec | None, style: str | None = None, key: str | None = None,
              density: float | None = None, instruments: str | None = None) -> np.ndarray | None:
    """The conditioning row for what a user asked (any subset), checked against the model."""
    asked = {"style": style, "key": key, "density": density, "instruments": instruments}
    given = [name for name, value in asked.items() if value is not None]
    if spec is None:
        if given:
            raise MidigenError(f"this model was trained without controls, so --{given[0]} "
                               "cannot steer it (train with --controls)")
        return None
    missing = [name for name in given if name not in spec.names]
    if missing:
        raise MidigenError(f"this model was not trained with the {missing[0]} control; it "
                           f"knows: {', '.join(spec.names)}")
    row = unknown_row(spec)
    if style is not None:
        if style not in spec.styles:
            raise _not_known("style", style, spec)
        row[STYLE] = spec.styles.index(style)
    if key is not None:
        row[KEY] = parse_key(key)
    if density is not None:
        if not (math.isfinite(density) and density > 0):
            raise MidigenError(f"--density is notes per second and must be above 0 (got {density})")
        row[DENSITY] = int(density_bin(density, spec.density_edges))
    if instruments is not None:
        keys = [parse_instrument(t, spec.instruments) for t in instruments.split(",") if t.strip()]
        if not keys:
            raise MidigenError("--instruments needs at least one name or number")
        for k in keys:
            if k not in spec.instruments:
                raise _not_known("instruments", instrument_label(k), spec)
        row[3 + np.array(keys)] = 1
    return row


def asked_instruments(row: np.ndarray | None) -> list[int] | None:
    """The instrument keys a conditioning row asks for (None: the row leaves them open)."""
    keys = [] if row is None else np.flatnonzero(row[INSTRUMENTS:]).tolist()
    return keys or None


def model_controls(model) -> ControlSpec | None:
    """The ControlSpec of a MusicRNN (None: trained without controls)."""
    spec = getattr(model.config, "controls", None)
    return None if spec is None else ControlSpec.from_dict(spec)
