"""Run folders and the built-in corpus are found in one place, moved by environment variables."""

from __future__ import annotations

import re

import pytest

from midigen.checkpoint import newest_run_dir, resolve_checkpoint
from midigen.errors import MidigenError
from midigen.paths import builtin_corpus_dir, checkpoints_dir, new_run_dir


def test_defaults_are_relative_to_the_current_folder(monkeypatch):
    monkeypatch.delenv("MIDIGEN_CHECKPOINTS", raising=False)
    monkeypatch.delenv("MIDIGEN_CORPORA", raising=False)
    assert str(checkpoints_dir()) == "checkpoints"
    assert str(builtin_corpus_dir()) == "corpora/bach-chorales"
    assert re.fullmatch(r"checkpoints/\d{8}-\d{6}-folk", new_run_dir("folk").as_posix())


def test_environment_moves_checkpoints_and_corpora(tmp_path, monkeypatch):
    monkeypatch.setenv("MIDIGEN_CHECKPOINTS", str(tmp_path / "runs"))
    monkeypatch.setenv("MIDIGEN_CORPORA", str(tmp_path / "music"))
    assert builtin_corpus_dir() == tmp_path / "music" / "bach-chorales"
    assert new_run_dir("x").parent == tmp_path / "runs"
    with pytest.raises(MidigenError, match=str(tmp_path / "runs")):
        resolve_checkpoint(None)
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "last.pt").write_bytes(b"")
    assert newest_run_dir() == tmp_path / "runs" / "a"
    assert resolve_checkpoint(None) == tmp_path / "runs" / "a" / "last.pt"
