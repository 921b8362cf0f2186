"""Checking the token store's ids before use, without reading every shard on every run.

Each piece's ids are checked against their recorded length and crc32. Reading all of a big
corpus's ids on every run to do that costs as much as the rest of a cached run, so a shard
whose live pieces all passed gets a *stamp*: its size, mtime, ctime and inode at the time.
While a shard still matches its stamp it is not read again; any write to it (an append, a
truncation, a flipped byte: ctime cannot be set back) breaks the stamp, and its pieces are
checked again before use. Like git's "racily clean" index entries, a shard changed within
RACY_NS of its check is not stamped: a second write in the same timestamp tick would
otherwise go unseen.
"""

from __future__ import annotations

import os
import sqlite3
import time
import zlib

import numpy as np

from midigen.piece_table import PieceTable

VERIFY_BLOCK_BYTES = 4 << 20  # ids are read this much at a time to check them: flat memory
RACY_NS = 2_000_000_000


def checksum(ids: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(ids, dtype=np.uint16))


def _stamp(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


class ShardChecker:
    """The checking half of midigen.token_store.TokenStore."""

    def check(self, pieces: PieceTable) -> set[str]:
        """Files (rel) whose pieces are not in their shard with the recorded length and crc32.

        Shards that still match their stamp are skipped; shards whose pieces all pass are
        stamped (unless changed within RACY_NS).
        """
        stamps = {name: tuple(rest) for name, *rest in
                  self._query("SELECT name, size, mtime_ns, ctime_ns, ino FROM shard_checks")}
        bad: set[str] = set()
        fresh = []
        for name in sorted(set(pieces.shard.tolist())):
            try:
                before = os.stat(self.shards / name)
            except OSError:
                before = None
            if before is not None and stamps.get(name) == _stamp(before):
                continue
            rows = pieces.take(pieces.shard == name)
            failed = self._check_shard(name, rows)
            bad |= failed
            try:
                after = os.stat(self.shards / name)
            except OSError:
                continue
            if (not failed and before is not None and _stamp(after) == _stamp(before)
                    and time.time_ns() - after.st_ctime_ns > RACY_NS):
                fresh.append((name, *_stamp(after)))
        if fresh:
            try:
                with self.transaction(count=False) as db:
                    db.executemany("INSERT OR REPLACE INTO shard_checks VALUES (?, ?, ?, ?, ?)",
                                   fresh)
            except sqlite3.OperationalError:
                pass  # busy or read-only: checked again next time
        if bad:
            self.notes.append(f"{len(bad)} file(s) had token ids in the store that failed their "
                              "length or checksum test (a truncated or damaged shard); "
                              "read them again")
        return bad

    def _check_shard(self, name: str, rows: PieceTable) -> set[str]:
        order = np.argsort(rows.offset, kind="stable")
        offsets, lengths = rows.offset[order].tolist(), rows.length[order].tolist()
        sums, rels = rows.checksum[order].tolist(), rows.rel[order].tolist()
        try:
            f = open(self.shards / name, "rb")  # noqa: SIM115 - closed below
        except OSError:
            return set(rels)
        bad = set()
        with f:
            size = os.fstat(f.fileno()).st_size
            start, block = 0, b""
            for offset, length, crc, rel in zip(offsets, lengths, sums, rels):
                lo, hi = 2 * offset, 2 * (offset + length)
                if hi > size:
                    bad.add(rel)
                    continue
                if lo < start or hi > start + len(block):
                    f.seek(lo)
                    start, block = lo, f.read(max(hi - lo, VERIFY_BLOCK_BYTES))
                if zlib.crc32(memoryview(block)[lo - start:hi - start]) != crc:
                    bad.add(rel)
        return bad
