"""Checkpoints: self-contained, code-free to load, atomic, and clear about what they are not."""

from __future__ import annotations

import os

import pytest
import torch

from midigen.checkpoint import (
    FORMAT_NAME,
    Checkpoint,
    load_checkpoint,
    load_model,
    resolve_checkpoint,
    save_checkpoint,
)
from midigen.errors import MidigenError
from midigen.model import ModelConfig, MusicRNN
from midigen.tokenizer import TokenizerConfig, vocabulary

TOK = TokenizerConfig(steps_per_second=20, num_velocity_bins=8)


def make_checkpoint(seed: int = 0, step: int = 3) -> Checkpoint:
    torch.manual_seed(seed)
    config = ModelConfig(vocabulary(TOK).size, cell="gru", embed_dim=16, hidden=24, layers=2)
    model = MusicRNN(config)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.zeros(1, 4, dtype=torch.long))[0].sum().backward()
    optimizer.step()
    return Checkpoint(tokenizer_config=TOK, model_config=config,
                      train_config={"seq_len": 64, "total_steps": 10, "corpus": None},
                      model_state=model.state_dict(), optimizer_state=optimizer.state_dict(),
                      step=step, best_valid_loss=2.5, split={"train": ["a"], "valid": ["b"]},
                      corpus_summary={"folder": "x", "pieces": 2},
                      rng_state={"data": torch.Generator().manual_seed(1).get_state()})


def test_reloaded_checkpoint_gives_identical_logits(tmp_path):
    ckpt = make_checkpoint()
    save_checkpoint(tmp_path / "best.pt", ckpt)
    original = MusicRNN(ckpt.model_config).eval()
    original.load_state_dict(ckpt.model_state)
    model, tok, loaded = load_model(tmp_path / "best.pt")
    ids = torch.randint(0, ckpt.model_config.vocab_size, (2, 30))
    with torch.no_grad():
        assert torch.equal(model(ids)[0], original(ids)[0])
    assert not model.training
    assert tok == TOK and loaded.model_config == ckpt.model_config
    assert loaded.step == 3 and loaded.best_valid_loss == 2.5
    assert loaded.split == {"train": ["a"], "valid": ["b"]}
    assert torch.equal(loaded.rng_state["data"], ckpt.rng_state["data"])
    assert loaded.optimizer_state["state"][0]["step"] == ckpt.optimizer_state["state"][0]["step"]


def test_checkpoint_is_plain_data_loadable_with_weights_only(tmp_path):
    save_checkpoint(tmp_path / "c.pt", make_checkpoint())
    payload = torch.load(tmp_path / "c.pt", weights_only=True)
    assert payload["format"] == FORMAT_NAME
    assert payload["tokenizer_config"] == TOK.to_dict()
    assert isinstance(payload["model_config"], dict)


def test_a_failed_write_leaves_the_previous_checkpoint_intact(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, make_checkpoint(step=3))
    before = path.read_bytes()
    broken = make_checkpoint(step=4)
    broken.rng_state = {"data": lambda: None}  # torch.save cannot pickle a lambda
    with pytest.raises(Exception, match="(?i)pickl"):
        save_checkpoint(path, broken)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["last.pt"]  # no temp file left behind
    assert load_checkpoint(path).step == 3


def test_not_a_checkpoint_and_other_versions_are_one_line_errors(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(MidigenError, match="not a midigen checkpoint"):
        load_checkpoint(tmp_path / "notes.txt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(MidigenError, match="not a midigen checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    save_checkpoint(tmp_path / "new.pt", make_checkpoint())
    payload = torch.load(tmp_path / "new.pt", weights_only=True)
    payload["format_version"] = 99
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(MidigenError, match="format 99") as e:
        load_checkpoint(tmp_path / "future.pt")
    assert "\n" not in str(e.value)


def test_resolve_finds_files_run_folders_and_the_newest_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MidigenError, match="no trained model"):
        resolve_checkpoint(None)
    old, new = tmp_path / "checkpoints" / "1-old", tmp_path / "checkpoints" / "2-new"
    save_checkpoint(old / "best.pt", make_checkpoint())
    save_checkpoint(new / "last.pt", make_checkpoint())  # interrupted before its first eval
    os.utime(old / "best.pt", (1, 1))
    assert resolve_checkpoint(None).resolve() == new / "last.pt"
    save_checkpoint(new / "best.pt", make_checkpoint())
    assert resolve_checkpoint(new) == new / "best.pt"
    assert resolve_checkpoint(old / "best.pt") == old / "best.pt"
    (tmp_path / "empty").mkdir()
    with pytest.raises(MidigenError, match="no best.pt"):
        resolve_checkpoint(tmp_path / "empty")
    with pytest.raises(MidigenError, match="does not exist"):
        resolve_checkpoint(tmp_path / "missing.pt")
