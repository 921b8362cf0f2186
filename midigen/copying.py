"""Does a sample copy its training pieces? An n-gram index over the token cache answers it fast.

Every n-event window of every corpus piece is hashed (a polynomial hash mod 2**64, then
mixed) into one sorted uint64 array; a sample's windows are looked up with searchsorted.
Building is O(N log N) numpy over the whole cache (about a second per ten million events),
lookups are O(M log N), so tens of thousands of pieces are fine.

Two numbers per sample:
- `share_found`: the fraction of its n-event windows (n = 16) that occur somewhere in the corpus.
- `longest_run`: the longest run of consecutive events it shares with one corpus piece.
  Matched windows of the sample are paired with their corpus positions; a shared run is a
  stretch of consecutive sample positions on one diagonal (corpus position - sample
  position). Windows that occur more than `max_hits_per_window` times in the corpus (say,
  bars of rests) are paired with only that many occurrences, so the run is exact unless the
  longest run lies wholly inside such ubiquitous material.

Hash collisions are possible in principle (64-bit hashes, so about one in 10**10 lookups for
ten million windows) and would only ever overstate copying.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from midigen.errors import MidigenError

_BASE = np.uint64(0x9E3779B97F4A7C15)  # odd, so invertible mod 2**64


def _inverse_mod_2_64(a: int) -> int:
    x = 1
    for _ in range(7):  # Newton: each step doubles the correct low bits
        x = (x * (2 - a * x)) % (1 << 64)
    return x


_BASE_INV = np.uint64(_inverse_mod_2_64(int(_BASE)))


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads polynomial hashes over all 64 bits."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def window_hashes(ids: np.ndarray, n: int) -> np.ndarray:
    """Hash of every n-event window of one id sequence (len - n + 1 values; none if shorter).

    With prefix sums P[i] = sum_{j<i} (x_j + 1) * B**-j, the window at i hashes to
    (P[i+n] - P[i]) * B**i = sum_j (x_{i+j} + 1) * B**-j, independent of where it sits.
    uint64 arithmetic wraps, which is exactly arithmetic mod 2**64.
    """
    x = np.asarray(ids, dtype=np.uint64) + np.uint64(1)
    if len(x) < n:
        return np.zeros(0, dtype=np.uint64)
    with np.errstate(over="ignore"):
        inv_pow = np.empty(len(x), dtype=np.uint64)
        inv_pow[0] = 1
        if len(x) > 1:
            inv_pow[1:] = _BASE_INV
            inv_pow = np.cumprod(inv_pow, dtype=np.uint64)
        pow_ = np.empty(len(x) - n + 1, dtype=np.uint64)
        pow_[0] = 1
        if len(pow_) > 1:
            pow_[1:] = _BASE
            pow_ = np.cumprod(pow_, dtype=np.uint64)
        prefix = np.zeros(len(x) + 1, dtype=np.uint64)
        np.cumsum(x * inv_pow, dtype=np.uint64, out=prefix[1:])
        h = (prefix[n:] - prefix[:-n]) * pow_
        return _mix(h)


@dataclass
class NgramIndex:
    """Sorted hashes of every n-event window of a corpus, with where each window came from."""

    n: int
    hashes: np.ndarray  # (W,) uint64, sorted
    positions: np.ndarray  # (W,) int64, start of each window in the concatenated corpus
    piece_starts: np.ndarray  # (P+1,) int64, offsets of the pieces in the concatenation
    names: list[str]

    @classmethod
    def build(cls, pieces_ids: Sequence, n: int = 16, names: Sequence[str] | None = None
              ) -> NgramIndex:
        """The index of a corpus's pieces (token id arrays)."""
        if n < 1:
            raise MidigenError("n-gram length must be at least 1")
        arrays = [np.asarray(p) for p in pieces_ids]
        lengths = np.array([len(a) for a in arrays], dtype=np.int64)
        piece_starts = np.concatenate([[0], np.cumsum(lengths)])
        all_hashes, all_pos = [], []
        for start, a in zip(piece_starts[:-1], arrays):
            h = window_hashes(a, n)
            all_hashes.append(h)
            all_pos.append(np.arange(len(h), dtype=np.int64) + start)
        hashes = np.concatenate(all_hashes) if all_hashes else np.zeros(0, np.uint64)
        positions = np.concatenate(all_pos) if all_pos else np.zeros(0, np.int64)
        order = np.argsort(hashes, kind="stable")
        names = list(names) if names is not None else [str(i) for i in range(len(arrays))]
        return cls(n, hashes[order], positions[order], piece_starts, names)

    @property
    def num_windows(self) -> int:
        return len(self.hashes)

    def share_found(self, ids: np.ndarray) -> float | None:
        """Fraction of the sample's n-event windows found in the corpus; None if it is shorter than n."""
        h = window_hashes(ids, self.n)
        if len(h) == 0:
            return None
        return float(self._found(h).mean())

    def _found(self, h: np.ndarray) -> np.ndarray:
        if self.num_windows == 0:
            return np.zeros(len(h), dtype=bool)
        at = np.searchsorted(self.hashes, h)
        at = np.minimum(at, self.num_windows - 1)
        return self.hashes[at] == h

    def longest_run(self, ids: np.ndarray, max_hits_per_window: int = 256) -> dict:
        """The longest run of events the sample shares with one corpus piece.

        Returns length (events; 0 when no n-event window matches, since shorter runs are not
        indexed), sample_start, piece (name) and piece_start (event offset in that piece).
        """
        h = window_hashes(ids, self.n)
        none = {"length": 0, "sample_start": None, "piece": None, "piece_start": None}
        if len(h) == 0 or self.num_windows == 0:
            return none
        lo = np.searchsorted(self.hashes, h, side="left")
        hi = np.searchsorted(self.hashes, h, side="right")
        hits = np.minimum(hi - lo, max_hits_per_window)
        if hits.sum() == 0:
            return none
        sample_pos = np.repeat(np.arange(len(h), dtype=np.int64), hits)
        rank = np.arange(len(sample_pos)) - np.repeat(np.cumsum(hits) - hits, hits)
        corpus_pos = self.positions[np.repeat(lo, hits) + rank]
        diagonal = corpus_pos - sample_pos
        order = np.lexsort((sample_pos, diagonal))
        d, s = diagonal[order], sample_pos[order]
        # A new run starts where the diagonal changes or the sample position jumps.
        breaks = np.ones(len(d), dtype=bool)
        breaks[1:] = (d[1:] != d[:-1]) | (s[1:] != s[:-1] + 1)
        run_id = np.cumsum(breaks) - 1
        run_len = np.bincount(run_id)
        best = int(np.argmax(run_len))
        first = int(np.flatnonzero(breaks)[best])
        start_s, start_c = int(s[first]), int(s[first] + d[first])
        piece = int(np.searchsorted(self.piece_starts, start_c, side="right")) - 1
        return {
            "length": int(run_len[best]) + self.n - 1,
            "sample_start": start_s,
            "piece": self.names[piece],
            "piece_start": start_c - int(self.piece_starts[piece]),
        }

    def report(self, ids: np.ndarray) -> dict:
        """share_found and longest_run of one sample, plus its length in events."""
        run = self.longest_run(ids)
        return {"num_events": len(ids), "share_found": self.share_found(ids),
                "longest_run": run["length"], "longest_run_piece": run["piece"],
                "longest_run_sample_start": run["sample_start"],
                "longest_run_piece_start": run["piece_start"]}
