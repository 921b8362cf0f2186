"""A reader that crashes its process (a C++ library on a hostile score) costs one file, not
the run: midigen.worker_process.run_isolated, and verovio's known crashers end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "fixtures"))
import score_files as sf

from midigen import worker_process
from midigen.errors import MidigenError
from midigen.midi_io import read_score
from midigen.worker_process import ReaderCrashed, run_isolated

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")


def _die(signum):
    os.kill(os.getpid(), signum)
    time.sleep(5)


def _fail(kind):
    raise kind("bad score")


@pytest.mark.parametrize("signum", [signal.SIGFPE, signal.SIGABRT, signal.SIGSEGV])
def test_a_crash_in_the_call_is_an_error_for_the_caller(signum):
    with pytest.raises(ReaderCrashed, match=signal.Signals(signum).name):
        run_isolated(_die, signum)


def test_results_and_errors_come_back_from_the_child():
    assert run_isolated(lambda a, b: (a + b, os.getpid()), 2, 3)[0] == 5
    assert run_isolated(os.getpid) != os.getpid()  # it did run in another process
    with pytest.raises(MidigenError, match="^bad score$"):
        run_isolated(_fail, MidigenError)
    with pytest.raises(MidigenError, match=r"reader error \(ValueError\)"):
        run_isolated(_fail, ValueError)


def test_a_time_limit_in_the_caller_kills_the_child():
    class Late(BaseException):
        pass

    def late(*_):
        raise Late

    children_before = _children()
    previous = signal.signal(signal.SIGALRM, late)
    signal.alarm(1)
    started = time.monotonic()
    try:
        with pytest.raises(Late):
            run_isolated(time.sleep, 30)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - started < 10
    assert _children() == children_before  # killed and reaped, not left running


def test_in_a_reader_worker_the_call_runs_in_place(monkeypatch):
    """Pool workers are isolated already (a crash breaks the pool, and those files are
    retried alone); a second fork per file would only cost time."""
    monkeypatch.setattr(worker_process, "_isolated", True)
    assert run_isolated(os.getpid) == os.getpid()


def _children() -> set[int]:
    try:
        text = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text()
    except OSError:
        return set()
    return {int(pid) for pid in text.split()}


def _score(tmp_path, name, old, new):
    path = tmp_path / name
    path.write_text(sf.musicxml_text().replace(old, new))
    return path


def test_scores_that_crash_verovio_do_not_end_midigen(tmp_path):
    """verovio 5/6 ended the process on these (SIGFPE, SIGABRT): `midigen encode` and any
    folder read in-process (under 8 files) died without a word."""
    over_zero = _score(tmp_path, "over_zero.musicxml", "<beat-type>4</beat-type>",
                       "<beat-type>0</beat-type>")
    huge_tempo = _score(tmp_path, "huge_tempo.musicxml", "<note>",
                        '<direction><sound tempo="1e300"/></direction><note>')
    for path in (over_zero, huge_tempo):
        try:
            pieces = read_score(path)
        except MidigenError as e:  # music21 could not read it either: one reason
            assert "unreadable MusicXML" in str(e)
        else:
            assert pieces[0].notes["pitch"].tolist() == [60, 64]
        done = subprocess.run([sys.executable, "-m", "midigen", "encode", str(path)],
                              capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode in (0, 1), done.stderr
        assert "Traceback" not in done.stderr and "Warning" not in done.stderr
        assert done.returncode == 0 or done.stderr.count("\n") == 1, done.stderr


def test_a_child_that_outlives_its_time_is_killed():
    before, started = _children(), time.monotonic()
    with pytest.raises(ReaderCrashed, match="took over 1 s"):
        run_isolated(time.sleep, 30, timeout_s=1)
    assert time.monotonic() - started < 10 and _children() == before


def test_a_pool_worker_stuck_where_no_alarm_reaches_ends_itself(tmp_path, monkeypatch):
    """A hostile score sent verovio into an endless loop in C++: the per-file alarm's Python
    handler never ran, and `midigen corpus` waited forever. The worker now ends itself after
    the limit in CPU seconds; the pool reads that file alone, then with music21."""
    from midigen import reading, score_io
    from midigen.tokenizer import TokenizerConfig

    class StuckToolkit:
        def setInputFrom(self, kind):
            pass

        def loadData(self, text):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})  # as in C++ code
            while True:
                pass

    def music21_fails(*_):
        raise MidigenError("unreadable MusicXML (music21 gave up)")

    monkeypatch.setattr(score_io, "_toolkit", StuckToolkit)
    monkeypatch.setattr(score_io, "_render_music21", music21_fails)
    monkeypatch.setenv(worker_process.TIMEOUT_ENV, "1")
    monkeypatch.setattr(reading, "HARD_STOP_GRACE_S", 1)
    paths = [str(sf.melody(tmp_path / f"tune{k}.mid")) for k in range(8)]
    stuck = tmp_path / "stuck.musicxml"
    stuck.write_text(sf.musicxml_text())

    def give_up(*_):
        raise TimeoutError("the corpus read hung")

    previous = signal.signal(signal.SIGALRM, give_up)
    signal.alarm(120)
    try:
        results = reading.read_files([*paths, str(stuck)], TokenizerConfig(), jobs=2)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert [r["status"] for r in results] == ["ok"] * 8 + ["skipped"]
    assert results[-1]["reason"] == "unreadable MusicXML (music21 gave up)"


def test_without_a_child_the_call_runs_here(monkeypatch):
    """Forking a large process can fail (strict overcommit, a process limit): read anyway."""
    def no_fork():
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(os, "fork", no_fork)
    assert run_isolated(os.getpid) == os.getpid()
