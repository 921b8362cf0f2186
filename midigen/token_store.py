"""The token store of one (folder, tokenizer config): per-file records in SQLite, ids in shards.

Corpora of hundreds of thousands of files must not be rewritten, or held in memory, to take
in one new file. So the ids of each piece are appended to a shard file (raw uint16) and
readers map shards with numpy memmap; what each file gave (size, mtime, status, reason, the
reader that read it, and per piece its shard, offset, length, crc32, duration, notes,
programs) is a row in SQLite (WAL, written in transactions). A changed or removed file's
rows are marked dead; when dead bytes pass a share of the live ones, the live ids are copied
into a fresh shard (compaction). Writing is midigen.store_write, checking ids before use
midigen.store_check, and the columns a run works on (with their snapshot beside the
database, so a cached run reads no rows) midigen.piece_table.

Safety without a server:
- every run holds a shared flock on store.lock while it reads or writes; compaction, the only
  step that deletes shards, needs it exclusively and is skipped when it cannot get it; maps a
  reader already holds stay valid after the file is unlinked;
- every write transaction increments the store's generation (and draws a new random token:
  generation and token are the store's *state*): a run that sees it move by more than its
  own writes knows another run wrote, and reads the database again; the columns snapshot
  and its journal (midigen.table_journal) are used only when they lead to the state the
  database is in;
- a damaged database is moved out of the way and rebuilt, with a note.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from midigen import table_journal
from midigen.errors import MidigenError
from midigen.piece_table import (
    FileTable,
    PieceTable,
    load_snapshot,
    save_snapshot,
    snapshot_state,
)
from midigen.store_check import ShardChecker
from midigen.store_write import PIECE_COLUMNS, ShardWriter, fcntl

SCHEMA_VERSION = 2  # 2 added pieces.key (midigen.keys); added columns go to _ADDED_COLUMNS
_READABLE_VERSIONS = ("1", "2")  # older ones this code upgrades by adding columns

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS files (rel TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,
                                  status TEXT, reason TEXT, reader TEXT);
CREATE TABLE IF NOT EXISTS pieces (rel TEXT, k INTEGER, name TEXT, shard TEXT, offset INTEGER,
                                   length INTEGER, checksum INTEGER, duration_s REAL,
                                   num_notes INTEGER, programs TEXT, live INTEGER,
                                   key INTEGER);
CREATE INDEX IF NOT EXISTS pieces_by_file ON pieces (rel, live);
CREATE INDEX IF NOT EXISTS pieces_by_shard ON pieces (shard, offset);
CREATE TABLE IF NOT EXISTS shard_checks (name TEXT PRIMARY KEY, size INTEGER,
                                         mtime_ns INTEGER, ctime_ns INTEGER, ino INTEGER);
INSERT OR IGNORE INTO meta VALUES ('generation', '0');
"""
# Columns added since a table was first made, with their type: stores of older code gain
# them on opening (NULL in old rows), so an upgrade never re-reads a corpus.
# A version-1 store's pieces get key NULL (unknown: estimated from their ids when needed).
_ADDED_COLUMNS = {"files": {"reader": "TEXT"}, "pieces": {"key": "INTEGER"}}
_FILE_COLUMNS = "rel, size, mtime_ns, status, reason, reader"


class StoreDamaged(Exception):
    """The database cannot be used; the caller rebuilds the store."""


def disk_error(e: BaseException, where: Path) -> MidigenError:
    """One line for a failed write into the store; a full disk says so."""
    full = getattr(e, "errno", None) == errno.ENOSPC or "full" in str(e).lower()
    what = "the disk is full" if full else (getattr(e, "strerror", None) or str(e))
    return MidigenError(f"cannot write the token store in {where} ({what}); nothing in it "
                        "was lost: free some space (or set $MIDIGEN_CACHE) and run again")


class TokenStore(ShardWriter, ShardChecker):
    """Open with `with TokenStore(directory) as store:`; notes on repairs go to store.notes."""

    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.shards = self.dir / "shards"
        self.snapshot = self.dir / "tables.npz"
        self.journal = self.dir / "tables.journal"
        self.notes: list[str] = []
        self._lock_fd: int | None = None
        self._writer = None  # (name, file, end in ids) of the shard this run appends to
        self.db: sqlite3.Connection | None = None
        self.generation, self.token = -1, ""  # the state of the tables this run last read
        self.others_wrote = False  # another run committed since then
        self.loaded_generation, self.from_snapshot = -1, False  # what tables() found
        self.journal_ok = False  # the snapshot and its journal lead to this run's state
        self._journal_bytes = 0

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
            self.db.execute("INSERT OR IGNORE INTO meta VALUES ('token', ?)",
                            (uuid.uuid4().hex[:12],))
            for table, added in _ADDED_COLUMNS.items():
                have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
                for column, kind in added.items():
                    if column not in have:
                        self.db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
            version = self.db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if version is not None and version[0] not in _READABLE_VERSIONS:
                raise StoreDamaged
            if version is None or version[0] != str(SCHEMA_VERSION):
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)",
                                (str(SCHEMA_VERSION),))
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
        self.snapshot.unlink(missing_ok=True)
        self.journal.unlink(missing_ok=True)
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

    # ----------------------------------------------------------------- transactions
    @property
    def state(self) -> str:
        return f"{self.generation}:{self.token}"

    def _read_state(self, db) -> tuple[int, str]:
        rows = dict(db.execute("SELECT key, value FROM meta WHERE key IN "
                               "('generation', 'token')").fetchall())
        return int(rows["generation"]), rows.get("token", "")

    @contextmanager
    def transaction(self, count: bool = True, change: tuple | None = None):
        """BEGIN IMMEDIATE .. COMMIT (ROLLBACK on any exception); `count` moves the store to
        a new state and notes whether another run wrote since this one last looked.
        `change`: (files touched, their file rows, their piece rows) after it, journaled
        once committed; a counted transaction without one ends this run's journal."""
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if count:
                now, token = self._read_state(db)
                if (now, token) != (self.generation, self.token):
                    self.others_wrote, self.journal_ok = True, False
                start = f"{now}:{token}"
                self.generation, self.token = now + 1, uuid.uuid4().hex[:12]
                db.executemany("UPDATE meta SET value=? WHERE key=?",
                               [(str(self.generation), "generation"), (self.token, "token")])
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        if count:
            self._journal(start, change)

    def _journal(self, start: str, change: tuple | None) -> None:
        if not self.journal_ok or change is None:
            self.journal_ok = False
            return
        try:
            self._journal_bytes += table_journal.append(self.journal, start, self.state,
                                                        *change)
        except OSError:
            self.journal_ok = False  # this run writes a snapshot instead
            return
        self.journal_ok = self._journal_bytes < table_journal.JOURNAL_MAX_BYTES

    def _failed(self, e: BaseException):
        if isinstance(e, sqlite3.DatabaseError) and not isinstance(e, sqlite3.OperationalError):
            raise StoreDamaged from None
        raise disk_error(e, self.dir) from None

    # ----------------------------------------------------------------- reading
    def _query(self, sql: str, args=()) -> list:
        try:
            return self.db.execute(sql, args).fetchall()
        except sqlite3.OperationalError as e:
            raise MidigenError(f"cannot read the token store in {self.dir} ({e})") from None
        except sqlite3.DatabaseError:
            raise StoreDamaged from None

    def tables(self) -> tuple[FileTable, PieceTable]:
        """Every file record and live piece: from the snapshot and its journal when they lead
        to the database's state, else the database (in one read transaction, with the state
        it was read at)."""
        try:
            now, token = self._read_state(self.db)
        except sqlite3.OperationalError as e:
            raise MidigenError(f"cannot read the token store in {self.dir} ({e})") from None
        except sqlite3.DatabaseError:
            raise StoreDamaged from None
        base, snap = snapshot_state(self.snapshot), None
        if base is not None:
            change = table_journal.follow(self.journal, base, f"{now}:{token}")
            snap = None if change is None else load_snapshot(self.snapshot, base)
        self.from_snapshot = snap is not None
        if snap is not None:
            snap = table_journal.apply(*snap, change)
            self.generation, self.token, self.others_wrote = now, token, False
            self._journal_bytes = table_journal.size(self.journal)
            self.journal_ok = self._journal_bytes < table_journal.JOURNAL_MAX_BYTES
        else:
            snap = self.sql_tables()
        self.loaded_generation = self.generation
        return snap

    def sql_tables(self) -> tuple[FileTable, PieceTable]:
        try:
            self.db.execute("BEGIN")
            try:
                now, token = self._read_state(self.db)
                files = self._query(f"SELECT {_FILE_COLUMNS} FROM files ORDER BY rel")
                pieces = self._query(f"SELECT {PIECE_COLUMNS} FROM pieces WHERE live=1 "
                                     "ORDER BY rel, k")
            finally:
                self.db.execute("COMMIT")
        except sqlite3.OperationalError as e:
            raise MidigenError(f"cannot read the token store in {self.dir} ({e})") from None
        except sqlite3.DatabaseError:
            raise StoreDamaged from None
        self.generation, self.token, self.others_wrote = now, token, False
        return FileTable.from_rows(files), PieceTable.from_rows(pieces)

    def save_tables(self, files: FileTable, pieces: PieceTable) -> None:
        """Leave the tables as of this run's state for the next run to load: nothing to do
        where the snapshot and its journal already lead there, else a new snapshot (and an
        empty journal)."""
        if self.journal_ok:
            return
        if save_snapshot(self.snapshot, self.state, files, pieces):
            self.journal.unlink(missing_ok=True)
            self.journal_ok, self._journal_bytes = True, 0

    def maps(self, pieces: PieceTable) -> dict[str, np.ndarray]:
        """{shard: its ids memory-mapped, read-only} for the shards pieces point into."""
        maps = {}
        for shard in set(pieces.shard.tolist()):
            path = self.shards / shard
            size = os.path.getsize(path) // 2 if path.exists() else 0
            # A plain ndarray over the map: slicing it skips np.memmap's per-view upkeep.
            maps[shard] = (np.asarray(np.memmap(path, dtype=np.uint16, mode="r", shape=(size,)))
                           if size else np.zeros(0, dtype=np.uint16))
        return maps

    def arrays(self, pieces: PieceTable) -> list[np.ndarray]:
        """Each piece's ids as a read-only view of its memory-mapped shard."""
        maps = self.maps(pieces)
        return [maps[s][o:o + n] for s, o, n in zip(pieces.shard.tolist(),
                                                    pieces.offset.tolist(),
                                                    pieces.length.tolist())]
