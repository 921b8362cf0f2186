"""Files written whole or not at all, with one clear line when the disk says no.

Every file midigen writes for the user (checkpoints, MIDI, WAV, PNG, token text) goes through
`atomic_write`: a temp file beside the target, fsync, rename. A kill, a full disk or a
read-only folder leaves the old file (or none) and no partial one; the error names the file
("cannot write run/last.pt: no space left on device") instead of torch's
"[enforce fail at inline_container.cc]". Temp files of writers that were killed are swept
from a folder the next time this process writes into it.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from midigen.errors import MidigenError

STALE_TEMP_S = 3600  # a temp file this old is a leftover even if its writer's pid lives again
_TEMP_NAME = re.compile(r"^\..+\.(\d+)-[a-z0-9_]{8}\.tmp$")  # ours: .NAME.PID-XXXXXXXX.tmp
# Names older versions used: .NAME.PID.tmp (MIDI, PNG, WAV) and .NAME.pt.XXXXXXXX.tmp (checkpoints).
_OLD_TEMP_NAME = re.compile(r"^\..+(?:\.(\d+)|\.pt\.[a-z0-9_]{8})\.tmp$")
_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EFBIG: "file too large for this file system",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
_swept: set[str] = set()


def write_error(path: str | os.PathLike, error: OSError) -> MidigenError:
    """The one-line error for a failed write: 'cannot write PATH: no space left on device'."""
    return MidigenError(f"cannot write {path}: {disk_reason(error)}")


def disk_reason(error: OSError) -> str:
    """'no space left on device', 'read-only file system', ... (lower case, no errno)."""
    return _REASONS.get(error.errno) or (error.strerror or str(error)).lower()


def is_disk_error(error: BaseException) -> bool:
    """True for the OSErrors a user fixes on their side: full disk, quota, read-only, rights."""
    return isinstance(error, OSError) and error.errno in _REASONS


class _RecordingFile:
    """The temp file, remembering the OSError of a failed write: torch.save turns it into a
    RuntimeError, and the original is what tells the user the disk is full."""

    def __init__(self, file):
        self._file, self.error = file, None

    def write(self, data):
        try:
            return self._file.write(data)
        except OSError as e:
            self.error = e
            raise

    def flush(self):
        try:
            return self._file.flush()
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name):
        return getattr(self._file, name)


@contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[_RecordingFile]:
    """A binary file to write; when the block ends cleanly it becomes `path` (fsynced, mode
    0644 under the usual umask). On any failure the temp file is removed; a disk error
    becomes a MidigenError naming `path`, anything else (Ctrl-C included) propagates."""
    path = Path(path)
    folder = path.parent
    remove_stale_temps(folder)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}-", suffix=".tmp",
                                   dir=folder)
    except OSError as e:
        raise write_error(path, e) from None
    file = _RecordingFile(os.fdopen(fd, "wb"))
    try:
        yield file
        file.flush()
        os.fsync(file.fileno())
        os.fchmod(file.fileno(), 0o666 & ~_umask())  # mkstemp makes 0600; others are 0644
        file.close()
        os.replace(tmp, path)
    except BaseException as e:
        with suppress(OSError):
            file._file.close()
        with suppress(OSError):
            os.unlink(tmp)
        cause = file.error or (e if isinstance(e, OSError) else None)
        if cause is not None and isinstance(e, Exception):
            raise write_error(path, cause) from None
        raise
    _fsync_folder(folder)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every system can open folders)."""
    with suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def remove_stale_temps(folder: str | os.PathLike) -> list[str]:
    """Remove our temp files left in `folder` by killed writers (once per folder and process).

    Only names of our own patterns are touched, and only when their writer's process is gone
    or the file is over an hour old (names of older versions: only then). Returns the names
    removed.
    """
    key = os.path.abspath(folder)
    if key in _swept:
        return []
    _swept.add(key)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    now = time.time()
    for entry in entries:
        match = _TEMP_NAME.match(entry.name) or _OLD_TEMP_NAME.match(entry.name)
        pid = int(match.group(1)) if match and match.group(1) else None
        if not match or pid == os.getpid():
            continue
        try:
            old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMP_S
            if old or (match.re is _TEMP_NAME and not _process_alive(pid)):
                os.unlink(entry.path)
                removed.append(entry.name)
        except OSError:
            continue
    return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True
