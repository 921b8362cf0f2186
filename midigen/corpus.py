"""A folder of scores -> token ids, read in parallel once and then served from a cache.

Users point midigen at tens of thousands of files, so reading is parallel (one process per
core, files in chunks) and remembered: the cache keeps, per file, its size and mtime and
what reading it gave (pieces, or the reason it was skipped), plus all token ids in one
uint16 array. A second run re-reads only new or changed files. The cache lives under
$MIDIGEN_CACHE (default ~/.cache/midigen), never inside the user's folder, keyed by the
folder's absolute path and the TokenizerConfig, and is replaced atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from midigen import midi_io
from midigen.errors import MidigenError
from midigen.reading import Progress, read_files, worker_pool
from midigen.tokenizer import DRUM_KEY, TokenizerConfig, vocabulary

CACHE_VERSION = 1
BUILTIN_CORPUS = Path("corpora") / "bach-chorales"


@dataclass
class PieceTokens:
    """One piece of a corpus as token ids, with what the summary needs to know about it."""

    name: str
    file: str  # path relative to the corpus folder
    ids: np.ndarray  # uint16
    duration_s: float
    num_notes: int
    programs: tuple[int, ...]  # GM programs used; 128 (DRUM_KEY) means drums

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


def builtin_corpus_dir() -> Path:
    """Where the built-in corpus lives: ./corpora/bach-chorales (relative to the cwd)."""
    return BUILTIN_CORPUS


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
    return Path(os.environ.get("MIDIGEN_CACHE") or Path.home() / ".cache" / "midigen")


def cache_dir_for(folder: Path, config: TokenizerConfig) -> Path:
    """The cache folder of one (absolute folder, tokenizer config) pair."""
    key = json.dumps({"folder": str(folder), "config": config.to_dict(), "v": CACHE_VERSION},
                     sort_keys=True)
    return cache_root() / "corpora" / hashlib.sha256(key.encode()).hexdigest()[:20]


# --------------------------------------------------------------------------- the cache

def _load_cache(cache: Path) -> tuple[dict, np.ndarray]:
    """The previous manifest and ids (empty ones if there is no usable cache)."""
    try:
        manifest = json.loads((cache / "manifest.json").read_text())
        if manifest.get("version") != CACHE_VERSION:
            raise ValueError("old cache")
        ids = np.load(cache / manifest["ids_file"])
        return manifest, ids
    except (OSError, ValueError, KeyError):
        return {"files": {}}, np.zeros(0, dtype=np.uint16)


def _save_cache(cache: Path, manifest: dict, ids: np.ndarray) -> None:
    """Write ids under a fresh name, then swap the manifest in: readers never see a mix."""
    cache.mkdir(parents=True, exist_ok=True)
    ids_file = f"ids-{uuid.uuid4().hex[:12]}.npy"
    with open(cache / ids_file, "wb") as f:
        np.save(f, ids)
    manifest["ids_file"] = ids_file
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=".manifest", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(manifest, f)
    os.replace(tmp, cache / "manifest.json")
    for stale in cache.glob("ids-*.npy"):
        if stale.name != ids_file:
            stale.unlink(missing_ok=True)


def load_corpus(folder: str | os.PathLike | None, config: TokenizerConfig | None = None,
                jobs: int | None = None, progress: Progress | None = None) -> Corpus:
    """Every piece of a folder as token ids, reading only what the cache does not know.

    `folder=None` means the built-in corpus (built on first use). Files that cannot be read
    are skipped and counted by reason in `summary`; this raises only when the folder itself
    is missing or unusable.
    """
    began = time.perf_counter()
    config = config or TokenizerConfig()
    if vocabulary(config).size > np.iinfo(np.uint16).max:
        raise MidigenError("vocabulary too large for the uint16 token cache")
    folder = Path(ensure_builtin_corpus(progress) if folder is None else folder).resolve()
    if not folder.is_dir():
        raise MidigenError(f"corpus folder not found: {folder}")

    files = _walk_scores(folder)
    cache = cache_dir_for(folder, config)
    manifest, old_ids = _load_cache(cache)
    old_files = manifest.get("files", {})

    entries: dict[str, dict] = {}
    stale: list[tuple[str, Path, os.stat_result]] = []
    for rel, path in files:
        try:
            st = os.stat(path)
        except OSError:
            continue
        known = old_files.get(rel)
        if known and known["size"] == st.st_size and known["mtime_ns"] == st.st_mtime_ns:
            entries[rel] = known
        else:
            stale.append((rel, path, st))

    results = read_files([str(p) for _, p, _ in stale], config, jobs, progress)
    new_arrays: dict[str, list[np.ndarray]] = {}
    for (rel, _, st), result in zip(stale, results):
        entry = {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "status": result["status"],
                 "reason": result.get("reason"), "pieces": []}
        arrays = []
        for piece in result.get("pieces", []):
            arrays.append(piece.pop("ids"))
            entry["pieces"].append(piece)
        entries[rel] = entry
        new_arrays[rel] = arrays

    # Lay all ids out in file order; reuse old slices for files the cache already knew.
    changed = bool(stale) or set(old_files) != set(entries)
    chunks, offset, pieces = [], 0, []
    for rel in sorted(entries):
        entry = entries[rel]
        fresh = new_arrays.get(rel)
        for k, meta in enumerate(entry["pieces"]):
            if fresh is not None:
                arr = fresh[k]
            else:
                arr = old_ids[meta["offset"]:meta["offset"] + meta["length"]]
            if changed:
                meta = dict(meta, offset=offset, length=len(arr))
                entry["pieces"][k] = meta
                chunks.append(arr)
                offset += len(arr)
            pieces.append(PieceTokens(meta["name"], rel, arr, meta["duration_s"],
                                      meta["num_notes"], tuple(meta["programs"])))
    if changed:
        ids = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.uint16)
        manifest = {"version": CACHE_VERSION, "folder": str(folder), "config": config.to_dict(),
                    "files": entries}
        try:
            _save_cache(cache, manifest, ids.astype(np.uint16, copy=False))
        except OSError as e:
            raise MidigenError(f"cannot write the token cache in {cache} ({e.strerror})") from None

    summary = summarize(folder, entries, pieces)
    summary.update(files_from_cache=len(files) - len(stale), files_parsed=len(stale),
                   cache=str(cache), seconds=round(time.perf_counter() - began, 3))
    return Corpus(folder=folder, config=config, pieces=pieces, summary=summary)


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


def split_pieces(pieces: list[PieceTokens], valid_fraction: float = 0.1,
                 seed: int = 0) -> tuple[list[PieceTokens], list[PieceTokens]]:
    """(train, valid) split by file, so tunes of one ABC file never straddle it; seeded.

    With two or more files and valid_fraction > 0, both sides get at least one file.
    """
    if not 0 <= valid_fraction < 1:
        raise MidigenError("the validation fraction must be in [0, 1)")
    files = sorted({p.file for p in pieces})
    random.Random(seed).shuffle(files)
    num_valid = round(len(files) * valid_fraction)
    if valid_fraction > 0 and len(files) >= 2:
        num_valid = min(max(num_valid, 1), len(files) - 1)
    valid_files = set(files[:num_valid])
    train = [p for p in pieces if p.file not in valid_files]
    valid = [p for p in pieces if p.file in valid_files]
    return train, valid


# --------------------------------------------------------------------------- built-in corpus

def _write_chorale(args: tuple[str, str]) -> str | None:
    name, folder = args
    try:
        midi_io.write_builtin_chorale(name, folder)
        return None
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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=".bach-chorales-"))
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
