"""The token store of one (folder, tokenizer config): per-file records in SQLite, ids in shards.

Corpora of hundreds of thousands of files must not be rewritten, or held in memory, to take
in one new file. So the ids of each piece are appended to a shard file (raw uint16) and
readers map shards with numpy memmap; what each file gave (size, mtime, status, reason, and
per piece its shard, offset, length, crc32, duration, notes, programs) is a row in SQLite
(WAL, written in transactions). A changed or removed file's rows are marked dead; when dead
bytes pass a share of the live ones, the live ids are copied into a fresh shard (compaction).

Safety without a server:
- a writer appends only to a shard it holds an exclusive flock on, fsyncs, and only then
  commits the rows that point into it: recorded bytes are never rewritten, and bytes past the
  last recorded piece (a run killed mid-append) are cut off by the next writer of that shard;
- every run holds a shared flock on store.lock while it reads or writes; compaction, the only
  step that deletes shards, needs it exclusively and is skipped when it cannot get it; maps a
  reader already holds stay valid after the file is unlinked;
- each piece's ids are checked against their recorded length and crc32 before use
  (`verify`); a piece that fails is reported and its file read again;
- a damaged database is moved out of the way and rebuilt, with a note.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
import uuid
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from midigen.errors import MidigenError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no flock, single runs only
    fcntl = None

SCHEMA_VERSION = 2  # 2 added pieces.key (midigen.keys); a version-1 store gains the column
SHARD_MAX_IDS = 1 << 30  # 2 GiB of uint16 per shard, then a new one
COMPACT_DEAD_FRACTION = 0.25  # compact when dead bytes pass this share of live bytes ...
COMPACT_MIN_DEAD_BYTES = 8 << 20  # ... and this many bytes
VERIFY_BLOCK_BYTES = 4 << 20  # ids are read this much at a time to check them: flat memory

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files (rel TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
                                  status TEXT, reason TEXT);
CREATE TABLE IF NOT EXISTS pieces (rel TEXT, k INTEGER, name TEXT, shard TEXT, offset INTEGER,
                                   length INTEGER, checksum INTEGER, duration_s REAL,
                                   num_notes INTEGER, programs TEXT, live INTEGER,
                                   key INTEGER);
CREATE INDEX IF NOT EXISTS pieces_by_file ON pieces (rel, live);
CREATE INDEX IF NOT EXISTS pieces_by_shard ON pieces (shard, offset);
"""
_PIECE_COLUMNS = ("rel, k, name, shard, offset, length, checksum, duration_s, num_notes, "
                  "programs, key")


class StoreDamaged(Exception):
    """The database cannot be used; the caller rebuilds the store."""


class PieceRow(NamedTuple):
    """Where one piece's ids are and what the summary needs about it."""

    rel: str
    k: int
    name: str
    shard: str
    offset: int  # in ids, not bytes
    length: int
    checksum: int
    duration_s: float
    num_notes: int
    programs: str  # "0,33,128"
    key: int | None = None  # 0..23 (midigen.keys); None: no pitched notes, or read before v2


def checksum(ids: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(ids, dtype=np.uint16))


def _append(f, ids: np.ndarray) -> None:
    """Ids to the end of a shard (one place, so tests can make the disk full here)."""
    f.write(memoryview(ids).cast("B"))


def disk_error(e: BaseException, where: Path) -> MidigenError:
    """One line for a failed write into the store; a full disk says so."""
    full = getattr(e, "errno", None) == errno.ENOSPC or "full" in str(e).lower()
    what = "the disk is full" if full else (getattr(e, "strerror", None) or str(e))
    return MidigenError(f"cannot write the token store in {where} ({what}); nothing in it "
                        "was lost: free some space (or set $MIDIGEN_CACHE) and run again")


class TokenStore:
    """Open with `with TokenStore(directory) as store:`; notes on repairs go to store.notes."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.shards = self.dir / "shards"
        self.notes: list[str] = []
        self._lock_fd: int | None = None
        self._writer = None  # (name, file, end in ids) of the shard this run appends to
        self.db: sqlite3.Connection | None = None

    # ----------------------------------------------------------------- opening and locking
    def __enter__(self) -> TokenStore:  # noqa: PYI034
        try:
            self.shards.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.dir / "store.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise disk_error(e, self.dir) from None
        self._flock(shared=True)
        try:
            self._connect()
        except StoreDamaged:
            self.rebuild("its database was damaged")
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _flock(self, shared: bool, wait: bool = True) -> bool:
        if fcntl is None:
            return True
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(self._lock_fd, mode)
            return True
        except BlockingIOError:
            return False

    def _connect(self) -> None:
        try:
            self.db = sqlite3.connect(self.dir / "store.sqlite", timeout=60,
                                      isolation_level=None, check_same_thread=False)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            self.db.executescript(_SCHEMA)
            version = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is None:
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                                (str(SCHEMA_VERSION),))
            elif version[0] == "1":  # keys unknown for its pieces: estimated from their ids
                self.db.execute("BEGIN IMMEDIATE")
                if "key" not in {r[1] for r in self.db.execute("PRAGMA table_info(pieces)")}:
                    self.db.execute("ALTER TABLE pieces ADD COLUMN key INTEGER")
                self.db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(SCHEMA_VERSION),))
                self.db.execute("COMMIT")
            elif version[0] != str(SCHEMA_VERSION):
                raise StoreDamaged
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise MidigenError(f"the token store in {self.dir} is busy ({e})") from None
            raise disk_error(e, self.dir) from None
        except sqlite3.DatabaseError:
            raise StoreDamaged from None

    def rebuild(self, why: str) -> None:
        """Move the database aside (once no other run uses the store) and start a new one."""
        if self.db is not None:
            self.db.close()
            self.db = None
        self._flock(shared=False)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for suffix in ("", "-wal", "-shm"):
            path = self.dir / f"store.sqlite{suffix}"
            if path.exists():
                os.replace(path, self.dir / f"damaged-{stamp}-{uuid.uuid4().hex[:6]}.sqlite{suffix}")
        self._flock(shared=True)
        self.notes.append(f"the token store in {self.dir} was rebuilt: {why}")
        self._connect()

    def close(self) -> None:
        if self._writer is not None:
            self._writer[1].close()
            self._writer = None
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flocks
            self._lock_fd = None

    # ----------------------------------------------------------------- reading
    def files(self) -> dict[str, tuple[int, int, str, str | None]]:
        """rel -> (size, mtime_ns, status, reason) of every file the store knows."""
        rows = self._query("SELECT rel, size, mtime_ns, status, reason FROM files")
        return {r[0]: r[1:] for r in rows}

    def data_version(self) -> int:
        """A number that changes when another connection commits (not when this one does)."""
        return self._query("PRAGMA data_version")[0][0]

    def live_pieces(self) -> list[PieceRow]:
        rows = self._query(f"SELECT {_PIECE_COLUMNS} FROM pieces WHERE live=1 ORDER BY rel, k")
        return [PieceRow(*r) for r in rows]

    def _query(self, sql: str, args=()) -> list:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            raise MidigenError(f"cannot read the token store in {self.dir} ({e})") from None
        except sqlite3.DatabaseError:
            raise StoreDamaged from None

    def verify(self, rows: list[PieceRow]) -> set[str]:
        """Files (rel) whose pieces are not in their shard with the recorded length and crc32."""
        bad: set[str] = set()
        by_shard: dict[str, list[PieceRow]] = {}
        for row in rows:
            by_shard.setdefault(row.shard, []).append(row)
        for shard, shard_rows in by_shard.items():
            shard_rows.sort(key=lambda r: r.offset)
            try:
                f = open(self.shards / shard, "rb")  # noqa: SIM115 - closed below
            except OSError:
                bad.update(r.rel for r in shard_rows)
                continue
            with f:
                size = os.fstat(f.fileno()).st_size
                start, block = 0, b""
                for row in shard_rows:
                    lo, hi = 2 * row.offset, 2 * (row.offset + row.length)
                    if hi > size:
                        bad.add(row.rel)
                        continue
                    if lo < start or hi > start + len(block):
                        f.seek(lo)
                        start, block = lo, f.read(max(hi - lo, VERIFY_BLOCK_BYTES))
                    if zlib.crc32(memoryview(block)[lo - start:hi - start]) != row.checksum:
                        bad.add(row.rel)
        if bad:
            self.notes.append(f"{len(bad)} file(s) had token ids in the store that failed their "
                              "length or checksum test (a truncated or damaged shard); "
                              "read them again")
        return bad

    def arrays(self, rows: list[PieceRow]) -> list[np.ndarray]:
        """Each row's ids as a read-only view of its memory-mapped shard."""
        maps: dict[str, np.ndarray] = {}
        out = []
        for row in rows:
            mm = maps.get(row.shard)
            if mm is None:
                path = self.shards / row.shard
                size = os.path.getsize(path) // 2 if path.exists() else 0
                # A plain ndarray over the map: slicing it skips np.memmap's per-view upkeep.
                mm = (np.asarray(np.memmap(path, dtype=np.uint16, mode="r", shape=(size,)))
                      if size else np.zeros(0, dtype=np.uint16))
                maps[row.shard] = mm
            out.append(mm[row.offset:row.offset + row.length])
        return out

    # ----------------------------------------------------------------- writing
    def _writer_shard(self):
        """The shard this run appends to: the newest one no other writer holds, else a new one."""
        if self._writer is not None:
            return self._writer
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
            if size < 2 * end or end >= SHARD_MAX_IDS:  # damaged (verify re-reads) or full
                f.close()
                continue
            f.truncate(2 * end)  # bytes of a run killed before it recorded them
            self._writer = (name, f, end)
            return self._writer
        self._writer = self._new_shard()
        if fcntl is not None:
            fcntl.flock(self._writer[1].fileno(), fcntl.LOCK_EX)
        return self._writer

    def record(self, found: list[tuple[str, int, int, dict]]) -> list[PieceRow]:
        """Store what reading files gave: (rel, size, mtime_ns, result of read_file_tokens).

        Ids go to the end of this run's shard and are fsynced before the rows pointing to
        them are committed in one transaction; the files' older rows are marked dead.
        """
        name, f, end = self._writer_shard()
        rows, position = [], end
        try:
            f.seek(2 * end)
            for rel, _, _, result in found:
                for k, piece in enumerate(result.get("pieces", [])):
                    ids = np.ascontiguousarray(piece["ids"], dtype=np.uint16)
                    _append(f, ids)
                    rows.append(PieceRow(rel, k, piece["name"], name, position, len(ids),
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
            if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError):
                raise StoreDamaged from None
            raise disk_error(e, self.dir) from None
        self._writer = (name, f, position)
        return rows

    def _commit(self, found, rows: list[PieceRow]) -> None:
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            rels = [(rel,) for rel, *_ in found]
            db.executemany("UPDATE pieces SET live=0 WHERE rel=? AND live=1", rels)
            db.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)",
                           [(rel, size, mtime, r["status"], r.get("reason"))
                            for rel, size, mtime, r in found])
            db.executemany(f"INSERT INTO pieces ({_PIECE_COLUMNS}, live) VALUES "
                           "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)",
                           rows)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def forget(self, rels: list[str]) -> None:
        """Files no longer in the folder: their record goes, their pieces are marked dead."""
        if not rels:
            return
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany("UPDATE pieces SET live=0 WHERE rel=? AND live=1",
                                    [(r,) for r in rels])
                self.db.executemany("DELETE FROM files WHERE rel=?", [(r,) for r in rels])
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as e:
            raise disk_error(e, self.dir) from None

    # ----------------------------------------------------------------- compaction
    def compact_if_worth_it(self, force: bool = False) -> bool:
        """Copy live ids into one new shard and delete the rest, when dead bytes pass the
        threshold and no other run is using the store; True if it did."""
        if self._writer is not None:
            self._writer[1].close()  # our shard lock goes, so compaction may replace it
            self._writer = None
        live_bytes = 2 * (self._query("SELECT SUM(length) FROM pieces WHERE live=1")[0][0] or 0)
        disk_bytes = sum(p.stat().st_size for p in self.shards.glob("shard-*.u16"))
        dead = disk_bytes - live_bytes
        if not force and (dead < COMPACT_MIN_DEAD_BYTES or dead < COMPACT_DEAD_FRACTION * live_bytes):
            return False
        if not self._flock(shared=False, wait=False):
            return False  # another run is reading or writing: next time
        try:
            rows = self.live_pieces()
            old = set(self.shards.glob("shard-*.u16"))
            self._writer = None
            name, f, _ = self._new_shard()
            moved, position = [], 0
            with f:
                for row, ids in zip(rows, self.arrays(rows)):
                    if len(ids) != row.length:
                        continue  # its shard was cut short: left dangling, so re-read
                    _append(f, np.ascontiguousarray(ids))
                    moved.append((name, position, row.rel, row.k))
                    position += row.length
                f.flush()
                os.fsync(f.fileno())
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute("DELETE FROM pieces WHERE live=0")
            self.db.executemany("UPDATE pieces SET shard=?, offset=? WHERE rel=? AND k=? "
                                "AND live=1", moved)
            self.db.execute("COMMIT")
            for path in old:
                path.unlink(missing_ok=True)
            return True
        except (OSError, sqlite3.Error):
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            return False  # left as it was: a later run tries again
        finally:
            self._flock(shared=True)

    def _new_shard(self):
        """(name, file open for writing, 0) of a new, empty shard; names sort by age."""
        name = f"shard-{time.time_ns():020d}-{uuid.uuid4().hex[:8]}.u16"
        return name, open(self.shards / name, "x+b"), 0
