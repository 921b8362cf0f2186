"""New models start from the initialisation the LSTM sweep chose (bench/bench_lstm_sweep.py)."""

from __future__ import annotations

import math

import torch

from midigen.model import LSTM_INPUT_BOUND, ModelConfig, MusicRNN


def test_a_new_lstm_opens_its_gates_and_widens_its_input_weights():
    torch.manual_seed(0)
    model = MusicRNN(ModelConfig(50, "lstm", embed_dim=64, hidden=128, layers=2))
    H = 128
    for layer, fan_in in ((0, 64), (1, H)):
        w = getattr(model.rnn, f"weight_ih_l{layer}")
        bound = LSTM_INPUT_BOUND / math.sqrt(fan_in)
        assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound  # uniform up to it
        assert w.abs().max() > 2 / math.sqrt(H)  # wider than PyTorch's +-1/sqrt(hidden)
        b = getattr(model.rnn, f"bias_ih_l{layer}")
        assert (b[:3 * H] == torch.cat([torch.ones(2 * H), torch.zeros(H)])).all()  # i, f open; g 0
        assert (b[3 * H:] == 1).all()  # o open
    assert model.rnn.weight_hh_l0.abs().max() <= 1 / math.sqrt(H)  # recurrent: PyTorch's


def test_a_new_gru_keeps_pytorchs_input_weights():
    model = MusicRNN(ModelConfig(50, "gru", embed_dim=64, hidden=128, layers=2))
    assert model.rnn.weight_ih_l0.abs().max() <= 1 / math.sqrt(128)
