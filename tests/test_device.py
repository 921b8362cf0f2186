"""Getting each training batch onto the device without the host waiting for the device.

No GPU is needed: the CUDA branch of `to_device` is checked with torch.Tensor's methods
recorded, and the training loop is checked to send every batch through it.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from test_train import TOK, phrase_pieces, tiny_model, tiny_train

import midigen.train
from midigen import device as device_module
from midigen.controls import COND_WIDTH
from midigen.controls_train import build_spec
from midigen.corpus import PieceTokens
from midigen.device import to_device
from midigen.train import train


def test_to_cuda_copies_from_pinned_memory_without_waiting(monkeypatch):
    calls = []
    real_to = torch.Tensor.to

    def pin_memory(self):
        calls.append(("pin", self.is_contiguous()))
        return self.clone()

    def to(self, *args, **kwargs):
        if args and isinstance(args[0], torch.device) and args[0].type == "cuda":
            calls.append(("to", args[0].type, kwargs.get("non_blocking", False)))
            return self
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "pin_memory", pin_memory)
    monkeypatch.setattr(torch.Tensor, "to", to)
    window = torch.arange(30).reshape(3, 10)
    x = window[:, :-1]  # a strided view, as random_windows returns
    assert torch.equal(to_device(x, torch.device("cuda", 0)), x)
    # A plain .to("cuda") waits for the GPU; so does a strided or pageable source.
    assert calls == [("pin", True), ("to", "cuda", True)]
    calls.clear()
    to_device(torch.empty(2, device="meta"), torch.device("cuda", 0))  # not on the host
    assert calls == [("to", "cuda", False)]  # nothing to pin


def test_to_the_cpu_is_the_tensor_itself():
    x = torch.arange(6).reshape(2, 3)[:, :2]
    assert to_device(x, torch.device("cpu")) is x


def test_every_training_batch_goes_through_to_device(tmp_path, monkeypatch):
    sent = []

    def recording(tensor, device):
        sent.append(tuple(tensor.shape))
        return device_module.to_device(tensor, device)

    monkeypatch.setattr(midigen.train, "to_device", recording)
    pieces = [PieceTokens(p.name, p.file, p.ids, p.duration_s, num_notes=0, programs=(0,))
              for p in phrase_pieces()]
    spec = build_spec(("key", "density"), pieces, TOK, 48)
    config = tiny_train(steps=3, eval_every=3)
    train(pieces, TOK, replace(tiny_model(), controls=spec.to_dict()), config, tmp_path / "r")
    rows, seq_len = config.batch_size, config.seq_len
    # Each step: its controls (drawn from the targets on the host), then x and y.
    assert sent == [(rows, COND_WIDTH), (rows, seq_len), (rows, seq_len)] * 3


def test_a_run_resumed_on_another_device_steps_with_that_devices_adamw(tmp_path, monkeypatch):
    # A GPU run saves fused=True in its optimizer groups; resumed on the CPU (or a CPU run on
    # a GPU) the optimizer must step the way this device's was made to, not the first one's.
    from midigen.checkpoint import load_checkpoint

    config = tiny_train(steps=6)
    train(phrase_pieces(), TOK, tiny_model(), config, tmp_path / "r", stop_after_steps=3)
    ckpt = load_checkpoint(tmp_path / "r" / "last.pt")
    for group in ckpt.optimizer_state["param_groups"]:
        group["fused"] = True  # as on CUDA
    seen, real_step = [], torch.optim.AdamW.step

    def step(self, *args, **kwargs):
        seen.append(self.param_groups[0]["fused"])
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    done = train(phrase_pieces(), TOK, tiny_model(), config, tmp_path / "r", resume_from=ckpt)
    assert done.step == 6 and seen == [None] * 3
