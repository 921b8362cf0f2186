"""Stop signals on real `midigen corpus` and `midigen train` processes: exit codes, what is
saved, and that no worker process outlives its parent (checked in /proc)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from midigen.events import Note, notes_to_array
from midigen.midi_io import write_midi
from midigen.stopping import StopOnSignals, Stopped, raising_on_stop_signals

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(),
                                reason="the process-tree checks read Linux's /proc")

TINY = ["--layers", "1", "--hidden", "32", "--embed", "16", "--seq-len", "32", "--batch-size",
        "4", "--device", "cpu", "--steps-per-second", "20", "--no-programs"]


def children_of(pid: int) -> set[int]:
    """Live (not zombie) processes whose parent is pid."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.add(int(entry))
    return found


def alive(pids: set[int]) -> set[int]:
    """The pids still running (a zombie waiting to be reaped counts as ended)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def start(args: list[str], tmp_path: Path, **extra_env: str) -> subprocess.Popen:
    env = {**os.environ, "MIDIGEN_CACHE": str(tmp_path / "cache"), "PYTHONUNBUFFERED": "1",
           **extra_env}
    # Its own session, so a group Ctrl-C reaches it and its workers but not pytest.
    return subprocess.Popen([sys.executable, "-m", "midigen", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
                            start_new_session=True)


@pytest.fixture(scope="module")
def slow_scores(tmp_path_factory) -> Path:
    """Ten ABC tunes that take music21 a few seconds each: the workers are busy when hit.
    (Read with MIDIGEN_SCORE_READERS=music21: abc2midi would finish them at once.)"""
    folder = tmp_path_factory.mktemp("slow")
    body = " ".join("CDEF GABc dcBA GFED" for _ in range(40))
    for k in range(10):
        (folder / f"tune{k}.abc").write_text(f"X:1\nT:t{k}\nM:4/4\nL:1/8\nK:C\n{body}\n")
    return folder


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL],
                         ids=["TERM", "INT", "KILL"])
def test_stopping_corpus_leaves_no_workers(slow_scores, tmp_path, signum, started):
    proc = started(start(["corpus", str(slow_scores), "--jobs", "2", "--json"], tmp_path,
                         MIDIGEN_SCORE_READERS="music21"))
    deadline = time.monotonic() + 60
    while len(workers := children_of(proc.pid)) < 2:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.05)
    time.sleep(0.5)  # now they are reading
    if signum == signal.SIGINT:
        os.killpg(proc.pid, signum)  # what Ctrl-C in a terminal does: the whole group
    else:
        proc.send_signal(signum)
    # communicate() ends only when every holder of the pipes has gone: no orphan keeps them.
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == (-9 if signum == signal.SIGKILL else 128 + signum), stderr
    if signum != signal.SIGKILL:
        assert "Traceback" not in stderr and stderr.count("error:") == 1, stderr
    deadline = time.monotonic() + 10
    while alive(workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(workers), f"workers {alive(workers)} outlived their parent"


def test_sigterm_stops_train_like_ctrl_c(tmp_path, started):
    from midigen.checkpoint import load_checkpoint

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for k, root in enumerate((60, 62, 65, 67)):
        notes = [Note(root + [0, 2, 4, 5][i % 4], 90, i * 0.25, i * 0.25 + 0.25) for i in range(32)]
        write_midi(notes_to_array(notes), corpus / f"tune{k}.mid")
    run = tmp_path / "run"
    proc = started(start(["train", str(corpus), *TINY, "--steps", "1000000",
                          "--eval-every", "1000", "--run-dir", str(run)], tmp_path))
    deadline = time.monotonic() + 120
    while not (run / "metrics.jsonl").exists() or not (run / "metrics.jsonl").read_text():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "training never started"
        time.sleep(0.1)
    assert not (run / "last.pt").exists()  # nothing saved yet: the signal must save it
    proc.send_signal(signal.SIGTERM)  # what Slurm, Kubernetes and systemd send
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    assert "stopped at step" in stdout and "--resume" in stdout and "Traceback" not in stderr
    assert load_checkpoint(run / "last.pt").step >= 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_the_first_stop_signal_asks_the_second_raises(signum):
    with StopOnSignals() as stop:
        os.kill(os.getpid(), signum)
        assert stop.signum == signum and stop.requested
        with pytest.raises(Stopped) as raised:
            os.kill(os.getpid(), signum)
    assert raised.value.exit_code == 128 + signum
    assert signal.getsignal(signum) is not stop._handle  # handlers are put back


def test_signals_someone_ignored_stay_ignored():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # what nohup does
    try:
        with raising_on_stop_signals(), StopOnSignals() as stop:
            os.kill(os.getpid(), signal.SIGHUP)
            assert not stop.requested
        with raising_on_stop_signals():
            assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
            with pytest.raises(Stopped):
                os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGHUP, previous)
