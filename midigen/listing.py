"""The score files of a folder with their size and mtime: the part of a cached corpus run
that grows with the number of files, so it is kept to one stat per file and no Path objects.

A changed file is seen only by its own mtime (a directory's mtime moves when entries are
added or removed, not when a file is rewritten in place), so every file is stat'ed; what is
saved is the per-file Python work around it: names from os.listdir, stat'ed relative to the
open folder, relative paths built by one string concatenation.
"""

from __future__ import annotations

import os
import stat
from bisect import bisect_left
from pathlib import Path
from typing import NamedTuple

import numpy as np

from midigen.midi_io import SCORE_SUFFIXES


class Listing(NamedTuple):
    """Score files under a folder, sorted by path relative to it (with '/')."""

    rels: list[str]
    sizes: np.ndarray  # int64 bytes
    mtimes: np.ndarray  # int64 ns


def list_scores(folder: str | os.PathLike) -> Listing:
    """Every score file under folder, recursively (suffixes of any case), with size and mtime.

    Unreadable folders and files that vanish or cannot be stat'ed are left out; links to
    files are followed, links to folders are not (as os.walk does). Names are stat'ed
    relative to an open folder (fstatat): a third less work per file than os.scandir's.
    """
    found: list[tuple[str, int, int]] = []
    stack = [("", os.fspath(folder))]
    while stack:
        prefix, directory = stack.pop()
        try:
            fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            for name in os.listdir(fd):
                try:
                    if name.lower().endswith(SCORE_SUFFIXES):
                        st = os.stat(name, dir_fd=fd)
                        if not stat.S_ISDIR(st.st_mode):
                            found.append((prefix + name, st.st_size, st.st_mtime_ns))
                            continue
                    if stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                        stack.append((prefix + name + "/", os.path.join(directory, name)))
                except OSError:
                    continue
        except OSError:
            pass
        finally:
            os.close(fd)
    found.sort()
    return Listing([f[0] for f in found], np.array([f[1] for f in found], dtype=np.int64),
                   np.array([f[2] for f in found], dtype=np.int64))


def find_score_files(folder: str | os.PathLike) -> list[Path]:
    """Every score file under folder, recursively (suffixes of any case), sorted."""
    return [Path(folder, rel) for rel in list_scores(folder).rels]


def changes(listing: Listing, rels: list[str], sizes: np.ndarray,
            mtimes: np.ndarray) -> tuple[list[str], list[str]]:
    """(new or changed, removed) files of `listing` against what was known of them (sorted
    `rels` with their sizes and mtimes), found in bulk: added and removed names by array
    comparisons of the two sorted lists (or set differences when there are many), then one
    array comparison of the sizes and mtimes of the rest."""
    now = listing.rels
    if now == rels:
        added, removed = [], []
        keep_now = keep_before = np.ones(len(now), dtype=bool)
    else:
        added, removed = _few_differences(now, rels) or (sorted(set(now).difference(rels)),
                                                          sorted(set(rels).difference(now)))
        keep_now, keep_before = _without(now, added), _without(rels, removed)
        if not _same(now, keep_now, rels, keep_before):  # not sorted as expected
            known = dict(zip(rels, zip(sizes.tolist(), mtimes.tolist())))
            stale = [rel for rel, size, mtime in zip(now, listing.sizes.tolist(),
                                                     listing.mtimes.tolist())
                     if known.get(rel) != (size, mtime)]
            return stale, sorted(set(rels).difference(now))
    differ = ((listing.sizes[keep_now] != sizes[keep_before])
              | (listing.mtimes[keep_now] != mtimes[keep_before]))
    changed = [now[i] for i in np.flatnonzero(keep_now)[differ]]
    return sorted(added + changed), removed


def _few_differences(now: list[str], before: list[str], most: int = 8):
    """(added, removed) between two sorted lists that differ in at most `most` names, found
    by array comparisons of the two from each difference on (no set of every name); None
    when they differ in more."""
    a, b = np.empty(len(now), dtype=object), np.empty(len(before), dtype=object)
    a[:], b[:] = now, before
    added, removed, i, j = [], [], 0, 0
    for _ in range(most + 1):
        n = min(len(a) - i, len(b) - j)
        differ = np.flatnonzero(a[i:i + n] != b[j:j + n][:n])
        if not len(differ):
            return added + now[i + n:], removed + before[j + n:]
        i, j = i + differ[0], j + differ[0]
        if a[i] < b[j]:
            added.append(now[i])
            i += 1
        else:
            removed.append(before[j])
            j += 1
    return None


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
