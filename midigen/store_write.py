"""Writing the token store: appending ids to a shard, committing their rows, compaction.

A writer appends only to a shard it holds an exclusive flock on, fsyncs, and only then
commits the rows that point into it: recorded bytes are never rewritten, and bytes past the
last recorded piece (a run killed mid-append) are cut off by the next writer of that shard.
Appends go to a small *tail* shard (a new one once it passes TAIL_SHARD_BYTES), so the big
shards of a corpus stay untouched and keep their checked stamp (midigen.store_check).
Compaction, the only step that deletes shards, needs store.lock exclusively and is skipped
when another run holds it.
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid

import numpy as np

from midigen.piece_table import PieceTable
from midigen.store_check import checksum

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, single runs only
    fcntl = None

TAIL_SHARD_BYTES = 64 << 20  # appends start a new shard past this size
COMPACT_DEAD_FRACTION = 0.25  # compact when dead bytes pass this share of live bytes ...
COMPACT_MIN_DEAD_BYTES = 8 << 20  # ... and this many bytes
PIECE_COLUMNS = ("rel, k, name, shard, offset, length, checksum, duration_s, num_notes, "
                 "programs, key")


def _append(f, ids: np.ndarray) -> None:
    """Ids to the end of a shard (one place, so tests can make the disk full here)."""
    f.write(memoryview(ids).cast("B"))


class ShardWriter:
    """The writing half of midigen.token_store.TokenStore (which sets db, dir, shards)."""

    def _writer_shard(self):
        """The shard this run appends to: the newest one no other writer holds, while it is
        small, else a new one."""
        if self._writer is not None and 2 * self._writer[2] < TAIL_SHARD_BYTES:
            return self._writer
        if self._writer is not None:
            self._writer[1].close()
            self._writer = None
        names = sorted(p.name for p in self.shards.glob("shard-*.u16"))
        for name in names[-1:]:
            f = open(self.shards / name, "r+b")  # noqa: SIM115 - held for the run
            if fcntl is not None:
                try:
                    fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    f.close()
                    continue
            last = self._query("SELECT offset + length FROM pieces WHERE shard=? "
                               "ORDER BY offset DESC LIMIT 1", (name,))
            end = last[0][0] if last else 0
            size = os.fstat(f.fileno()).st_size
            if size < 2 * end or 2 * end >= TAIL_SHARD_BYTES:  # damaged (re-read) or full
                f.close()
                continue
            if size > 2 * end:
                f.truncate(2 * end)  # bytes of a run killed before it recorded them
            self._writer = (name, f, end)
            return self._writer
        self._writer = self._new_shard()
        if fcntl is not None:
            fcntl.flock(self._writer[1].fileno(), fcntl.LOCK_EX)
        return self._writer

    def record(self, found: list[tuple[str, int, int, dict]]) -> PieceTable:
        """Store what reading files gave: (rel, size, mtime_ns, result of read_file_tokens).

        Ids go to the end of this run's shard and are fsynced before the rows pointing to
        them are committed in one transaction; the files' older rows are marked dead.
        Returns the new rows.
        """
        name, f, end = self._writer_shard()
        rows, position = [], end
        try:
            f.seek(2 * end)
            for rel, _, _, result in found:
                for k, piece in enumerate(result.get("pieces", [])):
                    ids = np.ascontiguousarray(piece["ids"], dtype=np.uint16)
                    _append(f, ids)
                    rows.append((rel, k, piece["name"], name, position, len(ids),
                                 checksum(ids), piece["duration_s"], piece["num_notes"],
                                 ",".join(map(str, piece["programs"])), piece.get("key")))
                    position += len(ids)
            f.flush()
            os.fsync(f.fileno())
            self._commit(found, rows)
        except (OSError, sqlite3.Error) as e:
            try:
                f.truncate(2 * end)
            except OSError:
                pass
            self._failed(e)
        self._writer = (name, f, position)
        return PieceTable.from_rows(rows)

    def _commit(self, found, rows: list[tuple]) -> None:
        file_rows = [(rel, size, mtime, r["status"], r.get("reason"), r.get("reader"))
                     for rel, size, mtime, r in found]
        rels = [rel for rel, *_ in found]
        with self.transaction(change=(rels, file_rows, rows)) as db:
            db.executemany("UPDATE pieces SET live=0 WHERE rel=? AND live=1",
                           [(rel,) for rel in rels])
            db.executemany("INSERT OR REPLACE INTO files (rel, size, mtime_ns, status, reason, "
                           "reader) VALUES (?, ?, ?, ?, ?, ?)", file_rows)
            db.executemany(f"INSERT INTO pieces ({PIECE_COLUMNS}, live) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)", rows)

    def forget(self, rels: list[str]) -> None:
        """Files no longer in the folder: their record goes, their pieces are marked dead."""
        if not rels:
            return
        try:
            with self.transaction(change=(list(rels), [], [])) as db:
                db.executemany("UPDATE pieces SET live=0 WHERE rel=? AND live=1",
                               [(r,) for r in rels])
                db.executemany("DELETE FROM files WHERE rel=?", [(r,) for r in rels])
        except (OSError, sqlite3.Error) as e:
            self._failed(e)

    # ----------------------------------------------------------------- compaction
    def compact_if_worth_it(self, force: bool = False, live_ids: int | None = None) -> bool:
        """Copy live ids into one new shard and delete the rest, when dead bytes pass the
        threshold and no other run is using the store; True if it did. `live_ids`: the
        number of live ids, where the caller knows it (else it is summed in SQL)."""
        if self._writer is not None:
            self._writer[1].close()  # our shard lock goes, so compaction may replace it
            self._writer = None
        if live_ids is None:
            live_ids = self._query("SELECT SUM(length) FROM pieces WHERE live=1")[0][0] or 0
        live_bytes = 2 * live_ids
        disk_bytes = sum(p.stat().st_size for p in self.shards.glob("shard-*.u16"))
        dead = disk_bytes - live_bytes
        if not force and (dead < COMPACT_MIN_DEAD_BYTES or dead < COMPACT_DEAD_FRACTION * live_bytes):
            return False
        if not self._flock(shared=False, wait=False):
            return False  # another run is reading or writing: next time
        try:
            rows = self.sql_tables()[1]
            old = set(self.shards.glob("shard-*.u16"))
            name, f, _ = self._new_shard()
            moved, position = [], 0
            with f:
                for i, ids in enumerate(self.arrays(rows)):
                    if len(ids) != rows.length[i]:
                        continue  # its shard was cut short: left dangling, so re-read
                    _append(f, np.ascontiguousarray(ids))
                    moved.append((name, position, rows.rel[i], int(rows.k[i])))
                    position += len(ids)
                f.flush()
                os.fsync(f.fileno())
            with self.transaction() as db:
                db.execute("DELETE FROM pieces WHERE live=0")
                db.execute("DELETE FROM shard_checks")  # the new shard is checked next run
                db.executemany("UPDATE pieces SET shard=?, offset=? WHERE rel=? AND k=? "
                               "AND live=1", moved)
            for path in old:
                path.unlink(missing_ok=True)
            return True
        except (OSError, sqlite3.Error):
            return False  # left as it was: a later run tries again
        finally:
            self._flock(shared=True)

    def _new_shard(self):
        """(name, file open for writing, 0) of a new, empty shard; names sort by age."""
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.u16"
        return name, open(self.shards / name, "x+b"), 0
