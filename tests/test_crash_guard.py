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
