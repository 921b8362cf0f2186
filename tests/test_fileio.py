"""Writes on a full disk: one line naming the file, the old file kept, nothing partial left.

The disk is a real 256 KiB tmpfs where the test may mount one (root on Linux); elsewhere
ENOSPC is injected by pointing the temp file at /dev/full.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from midigen import fileio
from midigen.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from midigen.errors import MidigenError
from midigen.events import Note, notes_to_array
from midigen.midi_io import write_midi
from midigen.model import ModelConfig, MusicRNN
from midigen.tokenizer import TokenizerConfig, vocabulary

TOK = TokenizerConfig(steps_per_second=20, use_programs=False)


def tiny_checkpoint(step: int) -> Checkpoint:
    model_config = ModelConfig(vocab_size=vocabulary(TOK).size, hidden=16, embed_dim=8, layers=1)
    return Checkpoint(TOK, model_config, {}, MusicRNN(model_config).state_dict(), step=step)


def _try_tmpfs(folder: Path) -> bool:
    if sys.platform != "linux" or os.geteuid() != 0:
        return False
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                          capture_output=True, check=False)
    return done.returncode == 0


@pytest.fixture
def disk(tmp_path, monkeypatch):
    """(folder, fill): a folder whose disk is full once fill() has been called."""
    folder = tmp_path / "disk"
    folder.mkdir()
    mounted = _try_tmpfs(folder)
    full = []
    real_mkstemp = tempfile.mkstemp

    def fill():
        if mounted:
            with open(folder / "filler", "wb", buffering=0) as f, pytest.raises(OSError):
                while True:
                    f.write(b"\0" * 4096)
        else:
            full.append(True)

    def mkstemp_on_full_disk(*args, **kwargs):
        fd, name = real_mkstemp(*args, **kwargs)
        if full and Path(name).parent == folder:
            dev_full = os.open("/dev/full", os.O_WRONLY)
            os.dup2(dev_full, fd)
            os.close(dev_full)
        return fd, name

    if not mounted:
        if not Path("/dev/full").exists():
            pytest.skip("neither a tmpfs mount nor /dev/full to make a full disk")
        monkeypatch.setattr(fileio.tempfile, "mkstemp", mkstemp_on_full_disk)
    yield folder, fill
    if mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != "filler")


def test_a_checkpoint_save_on_a_full_disk_keeps_the_old_one(disk):
    folder, fill = disk
    save_checkpoint(folder / "last.pt", tiny_checkpoint(step=5))
    fill()
    with pytest.raises(MidigenError, match=r"^cannot write .*last\.pt: no space left on device$"):
        save_checkpoint(folder / "last.pt", tiny_checkpoint(step=6))
    assert leftovers(folder) == ["last.pt"]
    assert load_checkpoint(folder / "last.pt").step == 5


def test_midi_and_encode_on_a_full_disk_leave_nothing(disk, tmp_path):
    folder, fill = disk
    fill()
    notes = notes_to_array([Note(60 + i % 12, 80, i * 0.1, i * 0.1 + 0.1) for i in range(2000)])
    with pytest.raises(MidigenError, match="no space left on device"):
        write_midi(notes, folder / "piece.mid")
    assert leftovers(folder) == []

    from typer.testing import CliRunner

    from midigen.cli import app

    source = tmp_path / "source.mid"
    write_midi(notes, source)
    for _ in range(2):  # the retry gets the same clear error, not "already exists"
        result = CliRunner().invoke(app, ["encode", str(source), "-o", str(folder / "out.txt")])
        lines = (result.stdout + (result.stderr or "")).strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1, lines
        assert lines[0] == f"error: cannot write {folder / 'out.txt'}: no space left on device"
        assert leftovers(folder) == []


def test_a_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "keep.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), fileio.atomic_write(target) as f:
        f.write(b"new, half")
        raise RuntimeError("a bug mid-write")
    assert target.read_text() == "old" and leftovers(tmp_path) == ["keep.txt"]
    with (pytest.raises(MidigenError, match="cannot write .*: no such file or directory"),
          fileio.atomic_write(tmp_path / "missing" / "x.txt")):
        pass


def test_checkpoints_are_0644_like_other_run_files(tmp_path):
    previous = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "best.pt", tiny_checkpoint(step=1))
        write_midi(np.zeros(0, dtype=notes_to_array([]).dtype), tmp_path / "empty.mid")
    finally:
        os.umask(previous)
    assert (tmp_path / "best.pt").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "empty.mid").stat().st_mode & 0o777 == 0o644


def test_temp_files_of_killed_writers_are_swept(tmp_path):
    dead = tmp_path / ".last.pt.999999999-abcd1234.tmp"  # no such pid
    live = tmp_path / f".best.pt.{os.getppid()}-abcd1234.tmp"  # a writer that still runs
    old = tmp_path / f".x.mid.{os.getppid()}-zzzz9999.tmp"
    not_ours = tmp_path / ".something.tmp"
    legacy_old, legacy_new = tmp_path / ".best.pt.k2j4_x9a.tmp", tmp_path / ".a.mid.999999999.tmp"
    for path in (dead, live, old, not_ours, legacy_old, legacy_new):
        path.write_bytes(b"partial")
    os.utime(old, (0, 0))
    os.utime(legacy_old, (0, 0))
    save_checkpoint(tmp_path / "last.pt", tiny_checkpoint(step=1))
    assert sorted(leftovers(tmp_path)) == sorted(["last.pt", live.name, not_ours.name,
                                                  legacy_new.name])
