"""Processes that read untrusted files for midigen: they die with it, stay off its terminal,
and are bounded in memory; and one call of a C/C++ reader isolated in a child of its own.

verovio (C++) aborts the whole process on some hostile scores: a MusicXML time signature
over 0 raised SIGFPE and a tempo of 1e300 SIGABRT, which ended `midigen train` on a small
folder (read in-process) with no message. Reader pool workers are already isolated (a
crash breaks the pool and midigen.reading retries those files alone); elsewhere
`run_isolated` forks a child for the call, so a crash is one file's reason instead.
"""

from __future__ import annotations

import ctypes
import faulthandler
import math
import os
import pickle
import re
import select
import signal
import sys
import time

from midigen.errors import MidigenError
from midigen.stopping import STOP_SIGNALS

FILE_TIMEOUT_S = 60  # a file that takes longer is skipped as "timed out"; TIMEOUT_ENV: more
TIMEOUT_ENV = "MIDIGEN_FILE_TIMEOUT"
_TIMED_OUT = re.compile(r"timed out \(> (\d+) s")
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
WORKER_MEMORY_MIN, WORKER_MEMORY_MAX = 512 * 2**20, 4 * 2**30
_isolated = False  # True in a process whose crash its parent already handles


def file_timeout_s() -> int:
    """Seconds one file may take to read: $MIDIGEN_FILE_TIMEOUT, else FILE_TIMEOUT_S. Huge
    orchestral scores can take music21 minutes on a slow machine."""
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    if not text:
        return FILE_TIMEOUT_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 1 <= seconds < 10**6:
        raise MidigenError(f"${TIMEOUT_ENV} must be seconds between 1 and 999999, not {text!r}")
    return math.ceil(seconds)


def timed_out_reason(seconds: int) -> str:
    return f"timed out (> {seconds} s; ${TIMEOUT_ENV}=SECONDS allows more)"


def timed_out_limit(reason: str | None) -> int | None:
    """The limit a file was skipped under, if it was skipped for taking too long."""
    found = _TIMED_OUT.match(reason or "")
    return int(found.group(1)) if found else None


def mark_isolated() -> None:
    global _isolated
    _isolated = True


def is_isolated() -> bool:
    """True in a reader pool worker (or a child of run_isolated)."""
    return _isolated


class ReaderCrashed(MidigenError):
    """A reader's call ended its process (a signal) or overran; the message says which."""


def run_isolated(function, *args, timeout_s: float | None = None):
    """function(*args) in a forked child (Linux/macOS), its result or exception passed back
    by pickle; ReaderCrashed if the child dies of a signal or outlives `timeout_s` (default:
    a little over file_timeout_s()). In a reader worker, or without fork, it is called
    here. A time limit or Ctrl-C in this process kills the child too."""
    if _isolated or not hasattr(os, "fork"):
        return function(*args)
    timeout_s = timeout_s or file_timeout_s() + 5  # past the reader's own alarm, which names it
    try:
        read_end, write_end = os.pipe()
    except OSError:  # out of file descriptors: no isolation rather than no reading
        return function(*args)
    parent = os.getpid()
    try:
        pid = os.fork()
    except OSError:  # no memory for a child (strict overcommit) or a process limit
        os.close(read_end)
        os.close(write_end)
        return function(*args)
    if pid == 0:  # the child: never returns
        os.close(read_end)
        try:
            start_worker(parent, worker_memory_bytes(1))
            try:
                payload = pickle.dumps((True, function(*args)))
            except Exception as e:  # noqa: BLE001 - passed back to be raised in the parent
                error = e if isinstance(e, MidigenError) else MidigenError(
                    f"reader error ({type(e).__name__})")
                payload = pickle.dumps((False, error))
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(payload)
        finally:
            os._exit(0)
    os.close(write_end)
    try:
        payload = _read_until(read_end, time.monotonic() + timeout_s)
        if payload is None:
            raise ReaderCrashed(f"took over {math.ceil(timeout_s)} s")
        status = os.waitpid(pid, 0)[1]
        pid = 0
    finally:
        os.close(read_end)
        if pid:  # timed out or interrupted (Ctrl-C): the child must not outlive the call
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    if os.WIFSIGNALED(status) or not payload:
        number = os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0
        name = signal.Signals(number).name if number else "no result"
        raise ReaderCrashed(f"crashed: {name}")
    ok, value = pickle.loads(payload)
    if not ok:
        raise value
    return value


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything written to pipe `fd` until its writer closes it; None at the deadline."""
    chunks = []
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return None
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def start_worker(parent_pid: int, memory_bytes: int | None) -> None:
    """Worker initializer: never outlive the parent, never touch its terminal or pipes, and
    never take more than `memory_bytes` beyond what the fork already mapped.

    Without this, killing `midigen corpus` left its workers running forever, re-parented to
    PID 1 and holding the parent's stdout/stderr open, so a pipe reading them never ended.
    """
    for signum in STOP_SIGNALS:  # forked: the parent's Python handlers were inherited
        signal.signal(signum, signal.SIG_IGN if signum == signal.SIGINT else signal.SIG_DFL)
    if hasattr(signal, "SIGPROF"):  # ends a worker stuck in C++ (midigen.reading)
        signal.signal(signal.SIGPROF, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        try:  # the kernel sends SIGKILL when the parent dies, however it dies
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)
    mark_isolated()
    faulthandler.disable()  # a crash is this file's reason, told by the parent
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    if memory_bytes is not None:
        _limit_address_space(memory_bytes)


def worker_memory_bytes(jobs: int) -> int | None:
    """What one reader process may add: half the machine's memory shared by the workers
    (512 MB to 4 GB each), so a folder of hostile files cannot take the machine down."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None
    return int(min(max(total / 2 / max(jobs, 1), WORKER_MEMORY_MIN), WORKER_MEMORY_MAX))


def _limit_address_space(memory_bytes: int) -> None:
    """RLIMIT_AS = what is mapped now + memory_bytes: past it allocations fail (MemoryError,
    which read_file_tokens reports as "out of memory") instead of the machine swapping."""
    try:
        import resource

        with open("/proc/self/status") as f:
            mapped_kb = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
        limit = mapped_kb * 1024 + memory_bytes
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    except (ImportError, OSError, ValueError, StopIteration):
        pass  # not Linux: the per-file bounds in midi_io still hold
