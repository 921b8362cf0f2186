"""One event at a time through a trained MusicRNN, fast: the inner loop of sampling.

Sampling needs the logits of one new event per piece per step. Calling `nn.LSTM` with a
length-1 sequence pays its per-call set-up (on CPU its oneDNN path re-plans every call) and
reads more weights than needed. `Stepper` does the same arithmetic with the weights folded
once, ahead of time:

- layer 0's input projection of every vocabulary entry is precomputed as one (V, G) table
  (embedding @ W_ih0.T + biases), so a layer-0 input is a row lookup, not a matmul;
- an upper LSTM layer reads [x | h] from one buffer against [W_ih | W_hh] concatenated and
  transposed once, so it is one addmm;
- state and gate buffers are allocated once per batch and updated in place.

The recurrent state is carried from step to step; the sequence is never re-run. Logits agree
with `MusicRNN.forward` to float rounding (tests/test_sample.py checks LSTM and GRU).
The model must be in eval mode semantics: dropout is not applied.
"""

from __future__ import annotations

import torch

from midigen.model import MusicRNN


class Stepper:
    """Feeds ids one step at a time and returns the next-event logits, carrying the state."""

    def __init__(self, model: MusicRNN):
        cfg = model.config
        self.cell = cfg.cell
        self.layers = cfg.layers
        self.hidden = H = cfg.hidden
        self.vocab_size = cfg.vocab_size
        rnn = model.rnn
        with torch.no_grad():
            first = next(model.parameters())
            self.device, self.dtype = first.device, first.dtype

            def w(name):
                return getattr(rnn, name).detach()

            if self.cell == "lstm":
                # Gate rows reordered from PyTorch's (i, f, g, o) to (i, f, o, g), so the three
                # sigmoids are one call on a contiguous slice.
                order = torch.cat([torch.arange(0, 2 * H), torch.arange(3 * H, 4 * H),
                                   torch.arange(2 * H, 3 * H)]).to(self.device)
                _w = w

                def w(name):
                    return _w(name)[order]

                bias0 = w("bias_ih_l0") + w("bias_hh_l0")
                self.table0 = torch.addmm(bias0, model.embed.weight.detach(), w("weight_ih_l0").t())
                self.w_hh0_t = w("weight_hh_l0").t().contiguous()  # (H, 4H)
                # Upper layers: gates = b + [x | h] @ [W_ih | W_hh].T, one addmm each.
                self.w_cat_t = [torch.cat([w(f"weight_ih_l{k}"), w(f"weight_hh_l{k}")], 1).t().contiguous()
                                for k in range(1, self.layers)]  # (2H, 4H)
                self.b_cat = [w(f"bias_ih_l{k}") + w(f"bias_hh_l{k}") for k in range(1, self.layers)]
            else:
                # GRU: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), so b_hn must stay on the
                # hidden side; the r and z parts of b_hh can join the input side.
                def split_bias(k):
                    b_hh = w(f"bias_hh_l{k}")
                    to_input = b_hh.clone()
                    to_input[2 * H:] = 0
                    to_hidden = b_hh - to_input  # (3H,) only b_hn non-zero
                    return w(f"bias_ih_l{k}") + to_input, to_hidden

                b_in0, self.b_hid0 = split_bias(0)
                self.table0 = torch.addmm(b_in0, model.embed.weight.detach(), w("weight_ih_l0").t())
                self.w_hh0_t = w("weight_hh_l0").t().contiguous()  # (H, 3H)
                pairs = [split_bias(k) for k in range(1, self.layers)]
                self.b_in = [p[0] for p in pairs]
                self.b_hid = [p[1] for p in pairs]
                self.w_ih_t = [w(f"weight_ih_l{k}").t().contiguous() for k in range(1, self.layers)]
                self.w_hh_t = [w(f"weight_hh_l{k}").t().contiguous() for k in range(1, self.layers)]
            self.table0 = self.table0.contiguous()  # (V, G)
            self.head_w_t = model.head.weight.detach().t().contiguous()  # (H, V)
            self.head_b = model.head.bias.detach()
        self.batch_size = 0

    def reset(self, batch_size: int, state=None) -> None:
        """Zero state for `batch_size` pieces, or start from an nn.LSTM/nn.GRU style state.

        `state` is what `MusicRNN.forward` returns: (h, c) each (L, B, H) for LSTM, h for GRU;
        a batch of 1 is broadcast to `batch_size` (a primer shared by every piece).
        """
        B, H, L = batch_size, self.hidden, self.layers
        kw = {"device": self.device, "dtype": self.dtype}
        self.batch_size = B
        gates = 4 * H if self.cell == "lstm" else 3 * H
        self._gates = torch.empty(B, gates, **kw)
        self._logits = torch.empty(B, self.vocab_size, **kw)
        self._tmp = torch.empty(B, H, **kw)
        if self.cell == "lstm":
            # xh[k] holds [input | own h] of layer k (k >= 1); layer 0's h is separate.
            self._h0 = torch.zeros(B, H, **kw)
            self._xh = [torch.zeros(B, 2 * H, **kw) for _ in range(1, L)]
            self._c = [torch.zeros(B, H, **kw) for _ in range(L)]
        else:
            self._h = [torch.zeros(B, H, **kw) for _ in range(L)]
            self._gates_h = torch.empty(B, 3 * H, **kw)
        if state is not None:
            self.set_state(state)

    def _h_views(self) -> list[torch.Tensor]:
        """Each layer's hidden state, (B, H), as views of the buffers the step writes."""
        if self.cell == "gru":
            return self._h
        return [self._h0] + [xh[:, self.hidden:] for xh in self._xh]

    def set_state(self, state) -> None:
        h, c = state if self.cell == "lstm" else (state, None)
        with torch.no_grad():
            for k, view in enumerate(self._h_views()):
                view.copy_(h[k].expand_as(view))
                if k + 1 < self.layers and self.cell == "lstm":
                    self._xh[k][:, : self.hidden].copy_(h[k].expand_as(view))
            if c is not None:
                for k in range(self.layers):
                    self._c[k].copy_(c[k].expand_as(self._c[k]))

    def state(self):
        """The current state in nn.LSTM/nn.GRU layout: (h, c) (L, B, H) for LSTM, h for GRU."""
        h = torch.stack([v.clone() for v in self._h_views()])
        if self.cell == "lstm":
            return h, torch.stack([c.clone() for c in self._c])
        return h

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) of the event after `ids` (B,); the returned buffer is reused next step."""
        if self.cell == "lstm":
            self._lstm_step(ids)
            top_h = self._xh[-1][:, self.hidden:] if self._xh else self._h0
        else:
            self._gru_step(ids)
            top_h = self._h[-1]
        return torch.addmm(self.head_b, top_h, self.head_w_t, out=self._logits)

    def _lstm_step(self, ids: torch.Tensor) -> None:
        H, g, tmp = self.hidden, self._gates, self._tmp
        for k in range(self.layers):
            if k == 0:
                torch.index_select(self.table0, 0, ids, out=g)  # (B, 4H)
                g.addmm_(self._h0, self.w_hh0_t)
                h_out = self._h0
            else:
                xh = self._xh[k - 1]
                torch.addmm(self.b_cat[k - 1], xh, self.w_cat_t[k - 1], out=g)  # (B, 4H)
                h_out = xh[:, H:]
            g[:, : 3 * H].sigmoid_()
            g[:, 3 * H:].tanh_()
            i, f, o, cand = g.chunk(4, 1)
            c = self._c[k]
            c.mul_(f).addcmul_(i, cand)
            torch.tanh(c, out=tmp)
            torch.mul(tmp, o, out=h_out)
            if k + 1 < self.layers:
                self._xh[k][:, :H].copy_(h_out)  # the next layer's input

    def _gru_step(self, ids: torch.Tensor) -> None:
        H, gi, gh = self.hidden, self._gates, self._gates_h
        for k in range(self.layers):
            h = self._h[k]
            if k == 0:
                torch.index_select(self.table0, 0, ids, out=gi)  # (B, 3H)
                torch.addmm(self.b_hid0, h, self.w_hh0_t, out=gh)
            else:
                torch.addmm(self.b_in[k - 1], self._h[k - 1], self.w_ih_t[k - 1], out=gi)
                torch.addmm(self.b_hid[k - 1], h, self.w_hh_t[k - 1], out=gh)
            rz = gi[:, : 2 * H].add_(gh[:, : 2 * H]).sigmoid_()
            r, z = rz[:, :H], rz[:, H:]
            n = gi[:, 2 * H:].addcmul_(r, gh[:, 2 * H:]).tanh_()
            # h' = (1 - z) * n + z * h  =  n + z * (h - n)
            torch.sub(h, n, out=self._tmp)
            h.copy_(n).addcmul_(z, self._tmp)
