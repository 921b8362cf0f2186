"""The score files of a folder with their size and mtime: the part of a cached corpus run
that grows with the number of files, so it is kept to one stat per file and no Path objects.

A changed file is seen only by its own mtime (a directory's mtime moves when entries are
added or removed, not when a file is rewritten in place), so every file is stat'ed; what is
saved is the per-file Python work around it: names from os.listdir, stat'ed relative to the
open folder by one list comprehension, sizes and mtimes taken out in C (np.fromiter), and
each folder's names sorted on their own and walked in an order that needs no sort of all
paths.
"""

from __future__ import annotations

import os
import stat
from bisect import bisect_left
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from midigen.midi_io import SCORE_SUFFIXES

_SIZE, _MTIME, _MODE = attrgetter("st_size"), attrgetter("st_mtime_ns"), attrgetter("st_mode")
_FILE_TYPE_BITS = 0o170000  # the mask of stat.S_IFMT


class Listing(NamedTuple):
    """Score files under a folder, sorted by path relative to it (with '/')."""

    rels: list[str]
    sizes: np.ndarray  # int64 bytes
    mtimes: np.ndarray  # int64 ns


def list_scores(folder: str | os.PathLike) -> Listing:
    """Every score file under folder, recursively (suffixes of any case), with size and mtime.

    Unreadable folders and files that vanish or cannot be stat'ed are left out; links to
    files are followed, links to folders are not (as os.walk does). Paths come out sorted:
    a folder's files and sub-folders are taken in the order of name, or name + '/' for a
    sub-folder, which is the order of the full paths.
    """
    rels: list[str] = []
    sizes: list[np.ndarray] = []
    mtimes: list[np.ndarray] = []
    # Work in reverse order: ("dir", prefix, path) or ("files", prefix, names, sizes, mtimes).
    stack: list[tuple] = [("dir", "", os.fspath(folder))]
    while stack:
        item = stack.pop()
        if item[0] == "files":
            _, prefix, names, size, mtime = item
            rels += [prefix + name for name in names] if prefix else names
            sizes.append(size)
            mtimes.append(mtime)
            continue
        _, prefix, directory = item
        names, size, mtime, subdirs = _scan(directory)
        # Files before each sub-folder, the sub-folder, ... (pushed last first).
        parts, start = [], 0
        for sub in subdirs:
            cut = bisect_left(names, sub + "/", start)
            parts.append(("files", prefix, names[start:cut], size[start:cut], mtime[start:cut]))
            parts.append(("dir", prefix + sub + "/", os.path.join(directory, sub)))
            start = cut
        parts.append(("files", prefix, names[start:], size[start:], mtime[start:]))
        stack += reversed(parts)
    if not sizes:
        return Listing([], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    return Listing(rels, np.concatenate(sizes), np.concatenate(mtimes))


def _scan(directory: str) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """(score file names, their sizes, their mtimes, sub-folder names) of one folder: names
    sorted, sub-folders by name + '/'; an unreadable folder has none."""
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return [], np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), []
    try:
        try:
            names = os.listdir(fd)
        except OSError:
            names = []
        names.sort()
        scores = [name for name in names if name.lower().endswith(SCORE_SUFFIXES)]
        try:
            stats = [os.stat(name, dir_fd=fd) for name in scores]
        except OSError:  # one vanished or cannot be stat'ed: leave those out
            scores, stats = _stat_each(scores, fd)
        others = [] if len(scores) == len(names) else sorted(set(names).difference(scores))
        modes = np.fromiter(map(_MODE, stats), np.int64, len(stats))
        folders = (modes & _FILE_TYPE_BITS) == stat.S_IFDIR
        if folders.any():  # a folder named like a score file
            others += [name for name, is_dir in zip(scores, folders.tolist()) if is_dir]
            keep = np.flatnonzero(~folders).tolist()
            scores, stats = [scores[i] for i in keep], [stats[i] for i in keep]
        subdirs = []
        for name in others:
            try:
                if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                    subdirs.append(name)
            except OSError:
                continue
        subdirs.sort(key=lambda name: name + "/")
        return (scores, np.fromiter(map(_SIZE, stats), np.int64, len(stats)),
                np.fromiter(map(_MTIME, stats), np.int64, len(stats)), subdirs)
    finally:
        os.close(fd)


def _stat_each(names: list[str], fd: int) -> tuple[list[str], list[os.stat_result]]:
    kept, stats = [], []
    for name in names:
        try:
            stats.append(os.stat(name, dir_fd=fd))
            kept.append(name)
        except OSError:
            continue
    return kept, stats


def find_score_files(folder: str | os.PathLike) -> list[Path]:
    """Every score file under folder, recursively (suffixes of any case), sorted."""
    return [Path(folder, rel) for rel in list_scores(folder).rels]


def changes(listing: Listing, rels: list[str], sizes: np.ndarray,
            mtimes: np.ndarray) -> tuple[list[str], list[str]]:
    """(new or changed, removed) files of `listing` against what was known of them (sorted
    `rels` with their sizes and mtimes), found in bulk: added and removed names by a walk
    of the two sorted lists that compares them a run at a time (or set differences when
    there are many), then one array comparison of the sizes and mtimes of the rest."""
    now = listing.rels
    if now == rels:
        added, removed = [], []
        keep_now = keep_before = np.ones(len(now), dtype=bool)
    elif (few := _few_differences(now, rels)) is not None:
        keep_now, keep_before = np.ones(len(now), dtype=bool), np.ones(len(rels), dtype=bool)
        keep_now[few[0]], keep_before[few[1]] = False, False
        added, removed = [now[i] for i in few[0]], [rels[j] for j in few[1]]
    else:
        added, removed = sorted(set(now).difference(rels)), sorted(set(rels).difference(now))
        keep_now, keep_before = _without(now, added), _without(rels, removed)
        if not _same(now, keep_now, rels, keep_before):  # not sorted as expected
            known = dict(zip(rels, zip(sizes.tolist(), mtimes.tolist())))
            stale = [rel for rel, size, mtime in zip(now, listing.sizes.tolist(),
                                                     listing.mtimes.tolist())
                     if known.get(rel) != (size, mtime)]
            return stale, removed
    differ = ((listing.sizes[keep_now] != sizes[keep_before])
              | (listing.mtimes[keep_now] != mtimes[keep_before]))
    changed = [now[i] for i in np.flatnonzero(keep_now)[differ]]
    return sorted(added + changed), sorted(removed)


def _few_differences(now: list[str], before: list[str], most: int = 8
                     ) -> tuple[list[int], list[int]] | None:
    """(positions in `now` of added names, positions in `before` of removed ones) between
    two sorted lists that differ in at most `most` names; None when they differ in more.
    Every name not reported was compared equal with its partner, a run at a time."""
    added, removed, i, j = [], [], 0, 0
    for _ in range(most + 1):
        k = _first_difference(now, i, before, j)
        if k is None:
            n = min(len(now) - i, len(before) - j)
            return (added + list(range(i + n, len(now))),
                    removed + list(range(j + n, len(before))))
        i, j = i + k, j + k
        if now[i] < before[j]:
            added.append(i)
            i += 1
        else:
            removed.append(j)
            j += 1
    return None


def _first_difference(a: list[str], i: int, b: list[str], j: int) -> int | None:
    """The least k with a[i + k] != b[j + k] (None if there is none within both lists), by
    halving: list slices compare in C, about 2 comparisons a name in all."""
    n = min(len(a) - i, len(b) - j)
    if a[i:i + n] == b[j:j + n]:
        return None
    lo, hi = 0, n  # a[i:i + lo] == b[j:j + lo], and they differ before hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[i + lo:i + mid] == b[j + lo:j + mid]:
            lo = mid
        else:
            hi = mid
    return lo


def position(rels: list[str], rel: str) -> int:
    """Where rel is in sorted rels."""
    return bisect_left(rels, rel)


def _without(rels: list[str], leave_out: list[str]) -> np.ndarray:
    keep = np.ones(len(rels), dtype=bool)
    keep[[bisect_left(rels, rel) for rel in leave_out]] = False
    return keep


def _same(a: list[str], keep_a: np.ndarray, b: list[str], keep_b: np.ndarray) -> bool:
    if keep_a.sum() != keep_b.sum():
        return False
    left, right = np.empty(len(a), dtype=object), np.empty(len(b), dtype=object)
    left[:], right[:] = a, b
    return bool((left[keep_a] == right[keep_b]).all())
