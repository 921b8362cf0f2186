"""A folder of scores -> token ids, read in parallel once and then served from a store.

Users point midigen at hundreds of thousands of files, so reading is parallel (one process
per core, files in chunks) and remembered in a token store (midigen.token_store): per file,
its size and mtime and what reading it gave (pieces, or the reason it was skipped), with the
ids in memory-mapped shards. A second run re-reads only new, changed or damaged files. The
store lives under $MIDIGEN_CACHE (default ~/.cache/midigen), never inside the user's folder,
keyed by the folder's absolute path and the TokenizerConfig.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from midigen import midi_io
from midigen.errors import MidigenError
from midigen.fileio import write_error
from midigen.listing import (
    Listing,
    changes,
    find_score_files,  # noqa: F401 (re-exported)
    list_scores,
    position,
)
from midigen.paths import builtin_corpus_dir, cache_dir
from midigen.piece_table import FileTable, PieceTable
from midigen.reading import Progress, read_files, worker_pool
from midigen.token_store import StoreDamaged, TokenStore
from midigen.tokenizer import DRUM_KEY, TokenizerConfig, vocabulary
from midigen.worker_process import file_timeout_s, timed_out_limit

CACHE_VERSION = 2  # 1 was a JSON manifest and one .npy: left alone, never read


@dataclass
class PieceTokens:
    """One piece of a corpus as token ids, with what the summary needs to know about it."""

    name: str
    file: str  # path relative to the corpus folder
    ids: np.ndarray  # uint16
    duration_s: float
    num_notes: int
    programs: tuple[int, ...]  # GM programs used; 128 (DRUM_KEY) means drums
    key: int | None = None  # 0..23, midigen.keys: written in the score, else heard

    @property
    def instruments(self) -> list[str]:
        return [midi_io.instrument_name(p, p == DRUM_KEY) for p in self.programs]


class PieceList(Sequence):
    """The pieces of a corpus, made on access from the store's columns and shard maps.

    `midigen corpus` of 300,000 files needs none of them (its summary comes from the
    columns); training makes each one once.
    """

    def __init__(self, table: PieceTable, maps: dict[str, np.ndarray]):
        self.table, self._maps = table, maps

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        t = self.table
        offset = int(t.offset[i])
        return PieceTokens(t.name[i], t.rel[i], self._maps[t.shard[i]][offset:offset + int(t.length[i])],
                           float(t.duration_s[i]), int(t.num_notes[i]),
                           tuple(int(p) for p in t.programs[i].split(",") if p), t.key[i])

    def __iter__(self):
        return (self[i] for i in range(len(self)))


@dataclass
class Corpus:
    """The pieces of a folder, the tokenizer they were spelled with, and a summary."""

    folder: Path
    config: TokenizerConfig
    pieces: Sequence[PieceTokens]
    summary: dict = field(default_factory=dict)


def cache_root() -> Path:
    return cache_dir()


def cache_dir_for(folder: Path, config: TokenizerConfig) -> Path:
    """The cache folder of one (absolute folder, tokenizer config) pair."""
    key = json.dumps({"folder": str(folder), "config": config.to_dict(), "v": CACHE_VERSION},
                     sort_keys=True)
    return cache_root() / "corpora" / hashlib.sha256(key.encode()).hexdigest()[:20]


# --------------------------------------------------------------------------- the store

READ_BATCH_FILES = 1000  # files read between commits: a killed cold run keeps what it read


def load_corpus(folder: str | os.PathLike | None, config: TokenizerConfig | None = None,
                jobs: int | None = None, progress: Progress | None = None) -> Corpus:
    """Every piece of a folder as token ids, reading only what the token store does not know.

    `folder=None` means the built-in corpus (built on first use). Files that cannot be read
    are skipped and counted by reason in `summary`; this raises only when the folder itself
    is missing or unusable, or the store cannot be written. Piece ids are read-only views of
    memory-mapped shards. Repairs the store made are listed in summary["store_notes"].
    """
    began = time.perf_counter()
    config = config or TokenizerConfig()
    if vocabulary(config).size > np.iinfo(np.uint16).max:
        raise MidigenError("vocabulary too large for the uint16 token store")
    folder = Path(ensure_builtin_corpus(progress) if folder is None else folder).resolve()
    if not folder.is_dir():
        raise MidigenError(f"corpus folder not found: {folder}")

    listing = list_scores(folder)
    directory = cache_dir_for(folder, config)
    with TokenStore(directory) as store:
        try:
            files, pieces, num_read = _update_store(store, folder, listing, config, jobs,
                                                    progress)
        except StoreDamaged:
            store.rebuild("its database was damaged")
            files, pieces, num_read = _update_store(store, folder, listing, config, jobs,
                                                    progress)
        maps = store.maps(pieces)  # before compaction: maps stay valid after an unlink
        wrote = num_read or store.generation != store.loaded_generation
        live = None if store.others_wrote else int(pieces.length.sum())  # the store's all
        if wrote and store.compact_if_worth_it(live_ids=live):
            store.save_tables(*store.sql_tables())
        notes = store.notes
    summary = summarize(folder, files, pieces)
    summary.update(files_from_cache=len(files) - num_read, files_parsed=num_read,
                   cache=str(directory), seconds=round(time.perf_counter() - began, 3))
    if notes:
        summary["store_notes"] = notes
    return Corpus(folder=folder, config=config, pieces=PieceList(pieces, maps), summary=summary)


def _update_store(store: TokenStore, folder: Path, listing: Listing, config: TokenizerConfig,
                  jobs: int | None, progress: Progress | None) -> tuple[FileTable, PieceTable, int]:
    """Read new, changed and damaged files into the store and forget removed ones.

    Returns the records of the folder's files, their live pieces in (file, piece) order and
    the number of files read now.
    """
    files, pieces = store.tables()
    rels = listing.rels
    stale, removed = changes(listing, files.rel.tolist(), files.size, files.mtime_ns)
    gone = set(stale) | set(removed)
    damaged = sorted(store.check(pieces) - gone)
    store.forget(removed)
    retry = sorted(set(_timed_out_under(files, file_timeout_s())) - gone)
    stale = sorted(stale + damaged + retry)
    gone.update(damaged + retry)

    total, new_files, new_pieces = len(stale), [], []
    for start in range(0, total, READ_BATCH_FILES):
        at = [position(rels, rel) for rel in stale[start:start + READ_BATCH_FILES]]
        batch = [(rels[i], int(listing.sizes[i]), int(listing.mtimes[i])) for i in at]
        report = (lambda done, _n, s=start: progress(s + done, total)) if progress else None
        results = read_files([os.path.join(folder, rel) for rel, _, _ in batch], config, jobs,
                             report)
        new_pieces.append(store.record([(*b, r) for b, r in zip(batch, results)]))
        new_files += [(*b, r["status"], r.get("reason"), r.get("reader"))
                      for b, r in zip(batch, results)]

    if not store.others_wrote:  # what we know is all: change the tables in memory
        files = files.replace(gone, FileTable.from_rows(new_files))
        pieces = pieces.replace(gone, PieceTable.concat(new_pieces))
        store.save_tables(files, pieces)  # a snapshot, unless its journal already tells
        return files, pieces, total
    # Another run committed too: what the store holds now, checked, for this folder's files.
    files, pieces = store.sql_tables()
    store.save_tables(files, pieces)
    if store.check(pieces):
        raise MidigenError("the token store changed under this run and holds damaged ids; "
                           "run the command again")
    extra = set(files.rel.tolist()) - set(rels)
    return files.without(extra), pieces.without(extra), total


def _timed_out_under(files: FileTable, limit_s: int) -> list[str]:
    """Files skipped for taking longer than a limit below `limit_s`: read again now that
    more time is allowed (not under the same limit: each would cost that long every run)."""
    skipped = np.flatnonzero(files.status == "skipped")
    return [files.rel[i] for i in skipped
            if (limit := timed_out_limit(files.reason[i])) is not None and limit < limit_s]


def summarize(folder: Path, files: FileTable, pieces: PieceTable) -> dict:
    """Counts for the `midigen corpus` table: files, reasons for skips and for files read
    in part (a file's reason when it was read: 'cut short'), notes, hours, instruments, and
    which reader read how many files."""
    ok = files.status == "ok"
    readers = Counter(files.reader[ok].tolist())
    if None in readers:  # read before the store recorded readers
        readers["unknown"] = readers.pop(None)
    skipped = _by_reason(files.take(~ok))
    in_part = _by_reason(files.take(ok & files.reason.astype(bool)))
    instruments: dict[str, int] = {}
    for programs, n in Counter(pieces.programs.tolist()).items():
        for p in (int(p) for p in programs.split(",") if p):
            name = midi_io.instrument_name(p, p == DRUM_KEY)
            instruments[name] = instruments.get(name, 0) + n
    num_skipped = sum(g["count"] for g in skipped.values())
    return {
        "folder": str(folder),
        "files_found": len(files),
        "files_read": len(files) - num_skipped,
        "files_skipped": num_skipped,
        "skipped_by_reason": skipped,
        "files_read_in_part": sum(g["count"] for g in in_part.values()),
        "read_in_part_by_reason": in_part,
        "readers": dict(readers.most_common()),
        "pieces": len(pieces),
        "notes": int(pieces.num_notes.sum()),
        "events": int(pieces.length.sum()),
        "hours": round(float(pieces.duration_s.sum()) / 3600, 3),
        "instruments": dict(sorted(instruments.items(), key=lambda kv: -kv[1])),
    }


def _by_reason(files: FileTable) -> dict[str, dict]:
    """{reason: {count, examples (the first three files)}}, the most frequent first."""
    groups: dict[str, dict] = {}
    for rel, reason in zip(files.rel.tolist(), files.reason.tolist()):
        group = groups.setdefault(reason or "unknown", {"count": 0, "examples": []})
        group["count"] += 1
        if len(group["examples"]) < 3:
            group["examples"].append(rel)
    return dict(sorted(groups.items(), key=lambda kv: -kv[1]["count"]))


# --------------------------------------------------------------------------- built-in corpus

def _write_chorale(args: tuple[str, str]) -> str | None:
    name, folder = args
    try:
        midi_io.write_builtin_chorale(name, folder)
        return None
    except MidigenError:  # the disk said no (full, read-only): the build cannot go on
        raise
    except Exception as e:  # noqa: BLE001 - one odd chorale must not stop the build
        return f"{name}: {type(e).__name__}"


def ensure_builtin_corpus(progress: Progress | None = None, jobs: int | None = None) -> Path:
    """./corpora/bach-chorales, converted once from the chorales bundled with music21."""
    target = builtin_corpus_dir()
    if target.is_dir() and any(target.glob("*.mid")):
        return target
    names = midi_io.builtin_chorale_names()
    if not names:
        raise MidigenError("music21 has no bundled Bach chorales to build the built-in corpus")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".bach-chorales-"))
    except OSError as e:
        raise write_error(target, e) from None
    try:
        jobs = max(1, jobs or os.cpu_count() or 1)
        with worker_pool(jobs) as pool:
            if progress:
                progress(0, len(names))
            for done, _ in enumerate(pool.map(_write_chorale, [(n, str(tmp)) for n in names],
                                              chunksize=8), start=1):
                if progress:
                    progress(done, len(names))
        if target.exists():  # an empty or half-built folder from an older run
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target
