"""The Stepper (one event at a time, weights folded ahead) agrees with MusicRNN.forward."""

from __future__ import annotations

import contextlib

import pytest
import torch

from midigen.model import ModelConfig, MusicRNN
from midigen.stepper import Stepper


def tiny_model(cell="lstm", layers=2) -> MusicRNN:
    torch.manual_seed(0)
    return MusicRNN(ModelConfig(vocab_size=85, cell=cell, embed_dim=16, hidden=32,
                                layers=layers, dropout=0.1)).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("layers", [1, 3])
def test_stepper_logits_match_forward_over_a_sequence(cell, batch, layers):
    model = tiny_model(cell, layers=layers)
    ids = torch.randint(0, model.config.vocab_size, (batch, 40), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, expected_state = model(ids)  # (B, T, V)
    stepper = Stepper(model)
    stepper.reset(batch)
    got = torch.stack([stepper.step(ids[:, t]).clone() for t in range(ids.shape[1])], 1)
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    h_expected = expected_state[0] if cell == "lstm" else expected_state
    h_got = stepper.state()[0] if cell == "lstm" else stepper.state()
    torch.testing.assert_close(h_got, h_expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_stepper_continues_from_a_forward_state_broadcast_to_the_batch(cell):
    model = tiny_model(cell)
    ids = torch.randint(0, model.config.vocab_size, (1, 30), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        expected, _ = model(ids)
        _, state = model(ids[:, :20])
    stepper = Stepper(model)
    stepper.reset(4, state)  # one primer state shared by 4 pieces
    for t in range(20, 30):
        logits = stepper.step(ids[0, t].repeat(4))
        torch.testing.assert_close(logits, expected[0, t].expand(4, -1), atol=1e-5, rtol=1e-5)


def graph_stand_in(monkeypatch, capture_error: str | None = None) -> None:
    """torch.cuda's stream and graph calls replaced, so Stepper's CUDA-graph path runs on the
    CPU: warm-up and capture run the step for real (a GPU's capture only records it, so this is
    the stricter case for the state), and a replay runs the eager step on `_ids`."""
    class Stream:
        def __init__(self, device=None):
            self.device = device

        def wait_stream(self, other):
            pass

    class Graph:
        stepper = None

        def replay(self):
            self.stepper._eager_step(self.stepper._ids)

    @contextlib.contextmanager
    def graph(g, stream=None):
        if capture_error is not None:
            raise RuntimeError(capture_error)
        g.stream = stream
        yield

    monkeypatch.setattr(torch.cuda, "Stream", Stream)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: Stream())
    monkeypatch.setattr(torch.cuda, "stream", lambda stream: contextlib.nullcontext())
    monkeypatch.setattr(torch.cuda, "CUDAGraph", Graph)
    monkeypatch.setattr(torch.cuda, "graph", graph)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("capture_error", [None, "operation not permitted when stream is capturing"])
def test_the_graph_path_starts_from_the_state_reset_made(monkeypatch, cell, capture_error):
    # Warm-up runs the step three times before capture. The state must be put back whether
    # capture works (replays follow) or fails (the eager step takes over): a failed capture
    # used to leave the state three steps on, and every piece began from it.
    graph_stand_in(monkeypatch, capture_error)
    model = tiny_model(cell)
    ids = torch.randint(0, model.config.vocab_size, (3, 12), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected, _ = model(ids)  # (B, T, V)
    stepper = Stepper(model)
    stepper.cuda_graph = True  # what a CUDA device sets
    stepper.reset(3)
    assert (stepper._graph is None) == (capture_error is not None)
    assert stepper.graph_error == capture_error
    if stepper._graph is not None:
        # Captured on a stream of the model's own device (the default capture stream may be
        # on another GPU).
        assert stepper._graph.stream.device == stepper.device
        stepper._graph.stepper = stepper
    got = torch.stack([stepper.step(ids[:, t]).clone() for t in range(ids.shape[1])], 1)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
