"""Score files -> token ids in worker processes: one bad or slow file never stops a run.

Moved out of corpus.py so the pool (how workers start, are timed out, and die) is one job
in one place; corpus.py keeps the cache.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager

import numpy as np

from midigen import midi_io, score_io
from midigen.errors import MidigenError
from midigen.events import instrument_keys
from midigen.keys import piece_key
from midigen.tokenizer import TokenizerConfig, encode_notes
from midigen.worker_process import (
    file_timeout_s,
    is_isolated,
    start_worker,
    timed_out_reason,
    worker_memory_bytes,
)

HARD_STOP_GRACE_S = 15  # CPU seconds past the limit before a stuck pool worker ends itself

Progress = Callable[[int, int], None]  # (files done, files to read)


def read_file_tokens(path: str, config: TokenizerConfig) -> dict:
    """What one file gives: {'status': 'ok', 'pieces': [...], 'reader': 'midi' (or the score
    reader that read it: verovio, abc2midi, music21)} or {'status': 'skipped', 'reason'}.
    A file read in part ('cut short') is 'ok' with that as its 'reason'.

    Never raises: this runs in worker processes, where one bad file must not stop the run.
    """
    try:
        pieces, read = [], midi_io.read_score(path)
        for piece in read:
            ids = encode_notes(piece.notes, config)
            if len(ids) <= 2:
                continue
            keys = instrument_keys(piece.notes)
            key, _ = piece_key(piece.notes, piece.meta.get("key_signature"))
            pieces.append({"name": piece.name, "ids": ids.astype(np.uint16),
                           "duration_s": round(piece.duration_s, 3),
                           "num_notes": len(piece.notes),
                           "programs": sorted({int(k) for k in np.unique(keys)}),
                           "key": key})  # written in the score, else heard (midigen.keys)
        if not pieces:
            return {"status": "skipped", "reason": "no notes in the tokenizer's range"}
        in_part = next((p.meta["read_in_part"] for p in read if "read_in_part" in p.meta), None)
        return {"status": "ok", "pieces": pieces, "reader": read[0].meta.get("reader"),
                "reason": in_part}
    except MidigenError as e:
        return {"status": "skipped", "reason": str(e)}
    except MemoryError:
        return {"status": "skipped", "reason": "out of memory"}
    except Exception as e:  # noqa: BLE001 - a reader bug must not end a corpus run
        return {"status": "skipped", "reason": f"reader error ({type(e).__name__})"}


class _Timeout(BaseException):
    """Not an Exception: the readers' `except Exception` must not turn it into a reason
    such as "unreadable MusicXML (_Timeout)" and go on to the next, unlimited, reader."""


def _on_alarm(signum, frame):
    raise _Timeout


def _read_chunk(paths: list[str], config_dict: dict, score_readers: str = "",
                timeout_s: int | None = None) -> list[dict]:
    """Worker entry: read a chunk of files, each under a time limit where signals allow
    (default file_timeout_s()). `score_readers` overrides $MIDIGEN_SCORE_READERS in this
    (worker) process."""
    timeout_s = timeout_s or file_timeout_s()
    if score_readers:
        os.environ[score_io.READERS_ENV] = score_readers
    config = TokenizerConfig.from_dict(config_dict)
    use_alarm = threading.current_thread() is threading.main_thread() and hasattr(signal,
                                                                                   "SIGALRM")
    # The alarm's handler is Python: it cannot run while a C++ reader loops (a hostile score
    # sent verovio into an endless loop, and `midigen corpus` waited forever). A pool worker
    # then ends itself and the pool's retry reads that file alone, then with music21.
    hard_stop = use_alarm and is_isolated() and hasattr(signal, "ITIMER_PROF")
    results = []
    for path in paths:
        if not use_alarm:
            results.append(read_file_tokens(path, config))
            continue
        previous = signal.signal(signal.SIGALRM, _on_alarm)
        signal.alarm(timeout_s)
        if hard_stop:  # CPU seconds; SIGPROF's default action ends this worker
            signal.setitimer(signal.ITIMER_PROF, timeout_s + HARD_STOP_GRACE_S)
        try:
            results.append(read_file_tokens(path, config))
        except _Timeout:
            results.append({"status": "skipped", "reason": timed_out_reason(timeout_s)})
        finally:
            if hard_stop:
                signal.setitimer(signal.ITIMER_PROF, 0)
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)
    return results


@contextmanager
def worker_pool(jobs: int) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers die with this process, and are ended at once (not
    waited for) when the block is left by any exception, Ctrl-C or stop signal included."""
    # fork: workers start in milliseconds with numpy/symusic/the tokenizer already imported.
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context, initializer=start_worker,
                               initargs=(os.getpid(), worker_memory_bytes(jobs)))
    try:
        yield pool
    except BaseException:
        _end_workers(pool)
        raise
    pool.shutdown(wait=True)


def _end_workers(pool: ProcessPoolExecutor) -> None:
    """Kill the pool's workers now; a plain shutdown would first finish every queued file."""
    workers = list((getattr(pool, "_processes", None) or {}).values())  # no public accessor
    pool.shutdown(wait=False, cancel_futures=True)
    for process in workers:
        process.kill()
    for process in workers:
        process.join(timeout=5)


def read_files(paths: list[str], config: TokenizerConfig, jobs: int | None = None,
               progress: Progress | None = None) -> list[dict]:
    """read_file_tokens over many files, in parallel; results in the order of paths."""
    jobs = max(1, jobs or os.cpu_count() or 1)
    total = len(paths)
    results: list[dict | None] = [None] * total
    config_dict, timeout_s = config.to_dict(), file_timeout_s()
    if jobs == 1 or total < 8:
        for i, path in enumerate(paths):
            results[i] = _read_chunk([path], config_dict, "", timeout_s)[0]
            if progress:
                progress(i + 1, total)
        return results  # type: ignore[return-value]

    chunk = max(1, min(32, total // (jobs * 8)))
    starts = list(range(0, total, chunk))
    done = 0
    retry: list[int] = []
    with worker_pool(jobs) as pool:
        futures = {pool.submit(_read_chunk, paths[s:s + chunk], config_dict, "", timeout_s): s
                   for s in starts}
        if progress:
            progress(0, total)
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                s = futures[future]
                try:
                    for k, result in enumerate(future.result()):
                        results[s + k] = result
                except BrokenProcessPool:
                    retry += range(s, min(s + chunk, total))
                    continue
                done += min(chunk, total - s)
                if progress:
                    progress(done, total)
    # A worker died (a crash inside a C library): read those files one at a time to find it;
    # a score that crashes a C++ reader (verovio) gets one more try with music21 alone.
    for i in retry:
        results[i] = {"status": "skipped", "reason": "crashed or hung the reader"}
        for score_readers in ("", "music21"):
            with worker_pool(1) as pool:
                try:
                    results[i] = pool.submit(_read_chunk, [paths[i]], config_dict,
                                             score_readers, timeout_s).result()[0]
                    break
                except BrokenProcessPool:
                    pass
        done += 1
        if progress:
            progress(done, total)
    return results  # type: ignore[return-value]
