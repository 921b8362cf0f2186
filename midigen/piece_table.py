"""What the token store knows, as columns: one numpy array per field, not one object per row.

A corpus of 300,000 files has 300,000 file records and as many pieces. Fetched from SQLite
as Python tuples and turned into objects they cost about a second on every run, more than
the rest of a cached run together. As columns they are compared with the folder listing in
bulk, changed in bulk (`drop`, `merge`), and saved beside the database as one .npz (the
*snapshot*) that the next run loads in milliseconds, keyed by the store's state (generation
and token, both new in every write transaction), so a snapshot that any write made stale
is never used unless midigen.table_journal's lines lead from it to the database's state.
"""

from __future__ import annotations

import json
import os
import time
import uuid
import zipfile
from bisect import bisect_left, bisect_right
from collections import Counter
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

FILE_FIELDS = {"rel": object, "size": np.int64, "mtime_ns": np.int64, "status": object,
               "reason": object, "reader": object}
PIECE_FIELDS = {"rel": object, "k": np.int32, "name": object, "shard": object,
                "offset": np.int64, "length": np.int64, "checksum": np.int64,
                "duration_s": np.float64, "num_notes": np.int64, "programs": object,
                "key": object}


STALE_TMP_S = 600  # a snapshot still being written after this long was abandoned
_MOSTLY_UNIQUE = {"rel", "name"}  # saved as plain lists; other text columns as codes


@dataclass
class Columns:
    """Equal-length numpy columns, rows sorted by (rel, k)."""

    def __len__(self) -> int:
        return len(self.rel)  # type: ignore[attr-defined]

    @classmethod
    def from_rows(cls, rows: list[tuple]):
        """From SQL rows in the order of the class's fields."""
        spec = cls.spec()
        cols = list(zip(*rows)) if rows else [()] * len(spec)
        return cls(**{name: _column(values, dtype)
                      for (name, dtype), values in zip(spec.items(), cols)})

    @classmethod
    def spec(cls) -> dict:
        return FILE_FIELDS if cls is FileTable else PIECE_FIELDS

    @classmethod
    def concat(cls, tables: list):
        if not tables:
            return cls.from_rows([])
        return cls(**{f.name: np.concatenate([getattr(t, f.name) for t in tables])
                      for f in fields(cls)})

    def take(self, index) -> Columns:
        """The rows at `index` (a boolean mask or positions)."""
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def without(self, rels: set[str]) -> Columns:
        """These rows less those of files `rels` (found by bisection: rows are sorted)."""
        if not rels:
            return self
        column = self.rel.tolist()  # type: ignore[attr-defined]
        keep = np.ones(len(self), dtype=bool)
        for rel in rels:
            lo = bisect_left(column, rel)
            keep[lo:bisect_right(column, rel, lo)] = False
        return self if keep.all() else self.take(keep)

    def replace(self, rels: set[str], other: Columns) -> Columns:
        """These rows with those of files `rels` replaced by `other`'s (rows of files in
        `rels` only, sorted): written over in place where each file keeps its number of
        rows (a changed file, no copy of every column), else by without() and merge()."""
        if not rels:
            return self.merge(other)
        column = self.rel.tolist()  # type: ignore[attr-defined]
        now = Counter(other.rel.tolist())  # type: ignore[attr-defined]
        where = []
        for rel in sorted(rels):
            lo = bisect_left(column, rel)
            hi = bisect_right(column, rel, lo)
            if hi - lo != now.get(rel, 0):
                return self.without(rels).merge(other)
            where += range(lo, hi)
        for f in fields(self):
            getattr(self, f.name)[where] = getattr(other, f.name)
        return self

    def merge(self, other: Columns) -> Columns:
        """These rows and `other`'s (whose files these rows do not hold), in (rel, k) order."""
        if not len(other):
            return self
        if len(self) and len(other) <= 64:  # a few new rows (sorted): insert them, no sort
            where = np.searchsorted(self.rel, other.rel)  # type: ignore[attr-defined]
            return type(self)(**{f.name: np.insert(getattr(self, f.name), where,
                                                   getattr(other, f.name))
                                 for f in fields(self)})
        both = type(self)(**{f.name: np.concatenate([getattr(self, f.name),
                                                     getattr(other, f.name)])
                             for f in fields(self)})
        k = getattr(both, "k", np.zeros(len(both), dtype=np.int32))
        order = sorted(range(len(both)), key=lambda i: (both.rel[i], k[i]))  # type: ignore[attr-defined]
        return both.take(np.asarray(order, dtype=np.int64))


@dataclass
class FileTable(Columns):
    rel: np.ndarray
    size: np.ndarray
    mtime_ns: np.ndarray
    status: np.ndarray
    reason: np.ndarray
    reader: np.ndarray


@dataclass
class PieceTable(Columns):
    rel: np.ndarray
    k: np.ndarray
    name: np.ndarray
    shard: np.ndarray
    offset: np.ndarray  # in ids, not bytes
    length: np.ndarray
    checksum: np.ndarray
    duration_s: np.ndarray
    num_notes: np.ndarray
    programs: np.ndarray  # "0,33,128"
    key: np.ndarray  # 0..23 (midigen.keys); None: no pitched notes, or read before keys


def _column(values, dtype) -> np.ndarray:
    if dtype is object:
        out = np.empty(len(values), dtype=object)
        out[:] = list(values)
        return out
    return np.asarray(values, dtype=dtype)


# --------------------------------------------------------------------------- the snapshot

def save_snapshot(path: Path, state: str, files: FileTable, pieces: PieceTable) -> bool:
    """Write both tables, as of the store's `state`, to `path` whole or not at all (a
    failure leaves the old one); True if written."""
    arrays = {"state": np.frombuffer(state.encode(), dtype=np.uint8)}
    file_index = {rel: i for i, rel in enumerate(files.rel.tolist())}
    for prefix, table in (("files.", files), ("pieces.", pieces)):
        for f in fields(table):
            column = getattr(table, f.name)
            if table is pieces and f.name == "rel":
                try:
                    arrays["pieces.rel.file"] = np.fromiter(
                        map(file_index.__getitem__, column.tolist()), np.int64, len(column))
                    continue
                except KeyError:  # a piece of a file without a record: saved as text
                    pass
            if column.dtype == object:
                values = column.tolist()
                if f.name not in _MOSTLY_UNIQUE:  # few values (status, shard): codes
                    uniques = list(dict.fromkeys(values))
                    code_of = {v: i for i, v in enumerate(uniques)}
                    arrays[prefix + f.name + ".codes"] = np.fromiter(
                        map(code_of.__getitem__, values), dtype=np.int32, count=len(values))
                    values = uniques
                suffix, text = _encode_text(values)
                arrays[prefix + f.name + suffix] = text
            else:
                arrays[prefix + f.name] = column
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    for old in path.parent.glob(f".{path.name}.*.tmp"):  # left by a run killed while saving
        try:
            if time.time() - old.stat().st_mtime > STALE_TMP_S:
                old.unlink()
        except OSError:
            pass
    try:
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
        return True
    except OSError:
        return False  # only a cache: the next run reads the database instead
    finally:
        tmp.unlink(missing_ok=True)


def snapshot_state(path: Path) -> str | None:
    """The store state the snapshot was saved at (None: missing, damaged, or older code's)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            return bytes(data["state"]).decode()
    except (OSError, KeyError, ValueError, EOFError, UnicodeDecodeError, zipfile.BadZipFile):
        return None


def load_snapshot(path: Path, state: str) -> tuple[FileTable, PieceTable] | None:
    """The tables saved at `state`, or None (missing, stale or damaged: zip CRCs)."""
    try:
        with np.load(path, allow_pickle=False) as data:
            if bytes(data["state"]).decode() != state:
                return None
            tables = []
            for prefix, cls in (("files.", FileTable), ("pieces.", PieceTable)):
                columns = {}
                for name, dtype in cls.spec().items():
                    if prefix + name + ".file" in data:  # pieces.rel: files.rel by index
                        columns[name] = tables[0].rel[data[prefix + name + ".file"]]
                    elif dtype is object:
                        values = _column(_decode_text(data, prefix + name), object)
                        codes = prefix + name + ".codes"
                        columns[name] = values[data[codes]] if codes in data else values
                    else:
                        columns[name] = data[prefix + name]
                tables.append(cls(**columns))
            return tables[0], tables[1]  # type: ignore[return-value]
    except (OSError, KeyError, ValueError, IndexError, EOFError, UnicodeDecodeError,
            zipfile.BadZipFile):
        return None


def _encode_text(values: list) -> tuple[str, np.ndarray]:
    """Plain strings without NUL are saved NUL-joined (a third of JSON's cost), others as JSON."""
    if values and all(type(v) is str for v in values):
        joined = "\0".join(values)
        if joined.count("\0") == len(values) - 1:
            return ".nul", np.frombuffer(joined.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    return ".values", np.frombuffer(json.dumps(values).encode(), dtype=np.uint8)


def _decode_text(data, key: str) -> list:
    if key + ".nul" in data:
        return bytes(data[key + ".nul"]).decode("utf-8", "surrogatepass").split("\0")
    return json.loads(bytes(data[key + ".values"]))
