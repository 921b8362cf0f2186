"""The scripts a GPU session runs unattended: they must at least parse, and what they fetch
must never be committed (wheels and the licensed corpus)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["bench/gpu_check.sh", "bench/fetch_gpu_wheels.sh"])
def test_gpu_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(ROOT / script)], check=False, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr


def test_fetched_wheels_and_corpus_are_git_ignored():
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for path in (".whl/x.whl", ".gpu/asap-piano.tar.gz"):
        done = subprocess.run(["git", "check-ignore", "-q", path], check=False, cwd=ROOT)
        assert done.returncode == 0, f"{path} is not git-ignored"
