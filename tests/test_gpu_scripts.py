"""The scripts a GPU session runs unattended: they must at least parse, and what they fetch
must never be committed (wheels and the licensed corpus)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["bench/gpu_check.sh", "bench/fetch_gpu_wheels.sh"])
def test_gpu_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(ROOT / script)], check=False, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_the_gpu_check_runs_every_cuda_test_file():
    # A GPU session is rare: a cuda-marked test in a file the check does not name never runs.
    script = (ROOT / "bench" / "gpu_check.sh").read_text()
    marker = re.compile(r"^(@pytest\.mark\.cuda|pytestmark = .*cuda)", re.MULTILINE)
    marked = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "tests").glob("test_*.py")
                    if marker.search(p.read_text()))
    assert marked and all(name in script for name in marked), marked


def test_fetched_wheels_and_corpus_are_git_ignored():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in (".whl/x.whl", ".gpu/asap-piano.tar.gz"):
        done = subprocess.run(["git", "check-ignore", "-q", path], check=False, cwd=ROOT)
        assert done.returncode == 0, f"{path} is not git-ignored"


def test_the_gpu_benchmark_still_fits_the_library():
    # Its calls run once on the CPU with a tiny model, so a changed API (as when sampling
    # began to refuse min_seconds over 12 hours) is found here, not in GPU time.
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_gpu.py"), "--dry-run"],
                          check=False, capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "same pieces for the same seed, eager vs graph: True" in done.stdout, done.stdout
    assert "batched sampler, 1024 pieces" in done.stdout


def test_training_and_sampling_import_nothing_the_lean_wheels_leave_out():
    # `fetch_gpu_wheels.sh --lean` carries symusic and its two only: what the GPU check runs
    # (train, sample, evaluate, inspect, the CUDA tests) must not import the score, audio or
    # pretty_midi packages at module level.
    code = ("import sys, midigen.cli, midigen.train, midigen.sample, midigen.sample_files, "
            "midigen.evaluate, midigen.runs, midigen.memory, midigen.stepper, midigen.distributed, "
            "midigen.midi_io, midigen.corpus;"
            "print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                          text=True, cwd=ROOT)
    loaded = set(done.stdout.split())
    assert "symusic" in loaded and "torch" in loaded
    assert not loaded & {"music21", "verovio", "soundfile", "pretty_midi", "mido"}, loaded
