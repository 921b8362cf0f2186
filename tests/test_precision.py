"""The precision of training steps: bf16 autocast on CUDA and on CPUs with AMX, fp32 elsewhere,
and `--precision` to choose. Runs on any CPU: bf16 autocast works (slowly) without AMX too."""

from __future__ import annotations

import pytest
import torch
from test_train import TOK, phrase_pieces, tiny_model, tiny_train
from typer.testing import CliRunner

from midigen import device as device_module
from midigen.checkpoint import load_checkpoint
from midigen.cli.app import app
from midigen.device import autocast, autocast_dtype, set_precision
from midigen.errors import MidigenError
from midigen.model import MusicRNN
from midigen.step import make_optimizer, train_step
from midigen.train import train

CPU, CUDA, MPS = torch.device("cpu"), torch.device("cuda"), torch.device("mps")


@pytest.fixture(autouse=True)
def auto_precision_after():
    yield
    set_precision("auto")


@pytest.mark.parametrize("amx", [False, True])
def test_auto_is_bf16_on_a_cpu_with_amx_only(monkeypatch, amx):
    monkeypatch.setattr(device_module, "cpu_has_amx", lambda: amx)
    set_precision("auto")
    assert autocast_dtype(CPU) is (torch.bfloat16 if amx else None)
    assert autocast_dtype(MPS) is None


@pytest.mark.parametrize(("capability", "dtype"), [((7, 5), None), ((7, 0), None),
                                                   ((8, 0), torch.bfloat16),
                                                   ((9, 0), torch.bfloat16)])
def test_auto_is_bf16_on_ampere_and_later_gpus_only(monkeypatch, capability, dtype):
    # A T4 (7.5) or V100 (7.0) only emulates bf16 (older torch refused it there).
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    set_precision("auto")
    assert autocast_dtype(CUDA) is dtype


def test_without_a_usable_gpu_there_is_no_bf16_to_pick(monkeypatch):
    def no_driver(device=None):
        raise RuntimeError("Found no NVIDIA driver on your system")

    monkeypatch.setattr(torch.cuda, "get_device_capability", no_driver)
    assert not device_module.gpu_has_bf16(CUDA)


def test_a_chosen_precision_overrides_the_machine(monkeypatch):
    monkeypatch.setattr(device_module, "cpu_has_amx", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    set_precision("fp32")
    assert autocast_dtype(CPU) is None and autocast_dtype(CUDA) is None
    monkeypatch.setattr(device_module, "cpu_has_amx", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    set_precision("bf16")
    assert autocast_dtype(CPU) is torch.bfloat16 and autocast_dtype(CUDA) is torch.bfloat16
    assert autocast_dtype(MPS) is None  # no bf16 autocast there


def test_an_unknown_precision_is_a_clear_error():
    with pytest.raises(MidigenError, match="unknown precision 'fp8'"):
        set_precision("fp8")


def test_a_bf16_step_runs_the_network_in_bf16_and_keeps_fp32_weights():
    torch.manual_seed(0)
    config = tiny_model()
    x = torch.randint(0, config.vocab_size, (4, 24))
    y = torch.randint(0, config.vocab_size, (4, 24))
    losses = {}
    for name in ("fp32", "bf16"):
        set_precision(name)
        torch.manual_seed(1)
        model = MusicRNN(config)  # the same initial weights for both
        with torch.no_grad(), autocast(CPU):
            logits, _ = model(x)
        assert logits.dtype is (torch.bfloat16 if name == "bf16" else torch.float32)
        optimizer = make_optimizer(model, tiny_train(), CPU)
        losses[name] = float(train_step(model, optimizer, x, y))
        assert all(p.dtype is torch.float32 for p in model.parameters())
        assert all(torch.isfinite(p).all() for p in model.parameters())
    # bf16 keeps 8 bits of mantissa: the first loss (about log V = 5.9) agrees to ~1%.
    assert losses["bf16"] == pytest.approx(losses["fp32"], rel=0.01)


def test_a_tiny_model_learns_in_bf16_and_its_checkpoint_says_so(tmp_path):
    set_precision("bf16")
    result = train(phrase_pieces(), TOK, tiny_model(), tiny_train(steps=150), tmp_path / "run")
    assert load_checkpoint(tmp_path / "run" / "last.pt").train_config["precision_used"] == "bf16"
    # As in fp32 (test_train): the deterministic phrase is learned, far below its bigram floor.
    assert result.last_eval.valid_nll < 0.3
    assert result.train_losses[-1][1] < 0.3


def test_the_cli_refuses_an_unknown_precision():
    result = CliRunner().invoke(app, ["train", "--precision", "fp8"])
    assert result.exit_code == 2
    assert "fp8" in result.output
