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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from midigen import midi_io
from midigen.errors import MidigenError
from midigen.fileio import write_error
from midigen.paths import builtin_corpus_dir, cache_dir
from midigen.reading import Progress, read_files, worker_pool
from midigen.token_store import StoreDamaged, TokenStore
from midigen.tokenizer import DRUM_KEY, TokenizerConfig, vocabulary

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


@dataclass
class Corpus:
    """The pieces of a folder, the tokenizer they were spelled with, and a summary."""

    folder: Path
    config: TokenizerConfig
    pieces: list[PieceTokens]
    summary: dict = field(default_factory=dict)


def find_score_files(folder: str | os.PathLike) -> list[Path]:
    """Every score file under folder, recursively (suffixes of any case), sorted."""
    return [Path(full) for _, full in _walk_scores(folder)]


def _walk_scores(folder: str | os.PathLike) -> list[tuple[str, str]]:
    """(path relative to folder with '/', full path) of every score file, sorted.

    Plain strings, not Path objects: on a cached run over thousands of files, walking the
    folder is most of the work, and pathlib would double it.
    """
    top = os.fspath(folder)
    found = []
    for root, dirs, files in os.walk(top):
        dirs.sort()
        rel_root = os.path.relpath(root, top).replace(os.sep, "/")
        prefix = "" if rel_root == "." else rel_root + "/"
        found += [(prefix + f, os.path.join(root, f)) for f in files
                  if os.path.splitext(f)[1].lower() in midi_io.SCORE_SUFFIXES]
    found.sort()
    return found


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

    files = _walk_scores(folder)
    directory = cache_dir_for(folder, config)
    with TokenStore(directory) as store:
        try:
            entries, rows, num_read = _update_store(store, files, config, jobs, progress)
        except StoreDamaged:
            store.rebuild("its database was damaged")
            entries, rows, num_read = _update_store(store, files, config, jobs, progress)
        arrays = store.arrays(rows)
        store.compact_if_worth_it()
        notes = store.notes
    pieces = [PieceTokens(r.name, r.rel, ids, r.duration_s, r.num_notes,
                          tuple(int(p) for p in r.programs.split(",") if p), r.key)
              for r, ids in zip(rows, arrays)]
    summary = summarize(folder, entries, pieces)
    summary.update(files_from_cache=len(entries) - num_read, files_parsed=num_read,
                   cache=str(directory), seconds=round(time.perf_counter() - began, 3))
    if notes:
        summary["store_notes"] = notes
    return Corpus(folder=folder, config=config, pieces=pieces, summary=summary)


def _update_store(store: TokenStore, files: list[tuple[str, str]], config: TokenizerConfig,
                  jobs: int | None, progress: Progress | None):
    """Read new, changed and damaged files into the store and forget removed ones.

    Returns ({rel: {'status', 'reason'}} of the folder's files, live piece rows of those
    files in (file, piece) order, number of files read now).
    """
    version = store.data_version()
    known = store.files()
    stale: list[tuple[str, str, int, int]] = []
    present: dict[str, tuple[int, int]] = {}
    for rel, path in files:
        try:
            st = os.stat(path)
        except OSError:
            continue
        present[rel] = (st.st_size, st.st_mtime_ns)
        record = known.get(rel)
        if record is None or record[0] != st.st_size or record[1] != st.st_mtime_ns:
            stale.append((rel, path, st.st_size, st.st_mtime_ns))
    removed = [rel for rel in known if rel not in present]
    store.forget(removed)
    stale_rels = {s[0] for s in stale}
    unchanged = [r for r in store.live_pieces() if r.rel in present and r.rel not in stale_rels]
    damaged = store.verify(unchanged)
    path_of = dict(files)
    stale += [(rel, path_of[rel], *present[rel]) for rel in sorted(damaged)]
    verified = {(r.shard, r.offset) for r in unchanged if r.rel not in damaged}

    total, read_now, fresh_rows = len(stale), {}, []
    for start in range(0, total, READ_BATCH_FILES):
        batch = stale[start:start + READ_BATCH_FILES]
        report = (lambda done, _n, s=start: progress(s + done, total)) if progress else None
        results = read_files([path for _, path, _, _ in batch], config, jobs, report)
        written = store.record([(rel, size, mtime, result)
                                for (rel, _, size, mtime), result in zip(batch, results)])
        verified.update((r.shard, r.offset) for r in written)
        fresh_rows += written
        read_now.update((rel, (r["status"], r.get("reason"))) for (rel, *_), r in zip(batch, results))

    if store.data_version() == version:  # no other run committed: what we know is all
        status = {rel: known[rel][2:] for rel in present if rel not in read_now}
        status.update(read_now)
        entries = {rel: {"status": status[rel][0], "reason": status[rel][1]} for rel in present}
        rows = [r for r in unchanged if r.rel not in damaged] + fresh_rows
        return entries, sorted(rows, key=lambda r: (r.rel, r.k)), total
    # What the store holds now (a concurrent run may have committed too: check its rows).
    rows = [r for r in store.live_pieces() if r.rel in present]
    unchecked = [r for r in rows if (r.shard, r.offset) not in verified]
    if unchecked and store.verify(unchecked):
        raise MidigenError("the token store changed under this run and holds damaged ids; "
                           "run the command again")
    records = store.files()
    entries = {rel: {"status": records[rel][2], "reason": records[rel][3]}
               for rel in present if rel in records}
    return entries, [r for r in rows if r.rel in entries], total


def summarize(folder: Path, entries: dict[str, dict], pieces: list[PieceTokens]) -> dict:
    """Counts for the `midigen corpus` table: files, reasons for skips, notes, hours, instruments."""
    skipped: dict[str, dict] = {}
    for rel, entry in entries.items():
        if entry["status"] != "ok":
            group = skipped.setdefault(entry["reason"] or "unknown", {"count": 0, "examples": []})
            group["count"] += 1
            if len(group["examples"]) < 3:
                group["examples"].append(rel)
    instruments: dict[str, int] = {}
    for piece in pieces:
        for name in piece.instruments:
            instruments[name] = instruments.get(name, 0) + 1
    num_skipped = sum(g["count"] for g in skipped.values())
    return {
        "folder": str(folder),
        "files_found": len(entries),
        "files_read": len(entries) - num_skipped,
        "files_skipped": num_skipped,
        "skipped_by_reason": dict(sorted(skipped.items(), key=lambda kv: -kv[1]["count"])),
        "pieces": len(pieces),
        "notes": int(sum(p.num_notes for p in pieces)),
        "events": int(sum(len(p.ids) for p in pieces)),
        "hours": round(sum(p.duration_s for p in pieces) / 3600, 3),
        "instruments": dict(sorted(instruments.items(), key=lambda kv: -kv[1])),
    }


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
