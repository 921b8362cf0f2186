"""One event at a time through a trained MusicRNN, fast: the inner loop of sampling.

Sampling needs the logits of one new event per piece per step. Calling `nn.LSTM` with a
length-1 sequence pays its per-call set-up (on CPU its oneDNN path re-plans every call) and
reads more weights than needed. `Stepper` does the same arithmetic with the weights folded
once, ahead of time:

- layer 0's input projection of every vocabulary entry is precomputed as one (V, G) table
  (embedding @ W_ih0.T + biases), so a layer-0 input is a row lookup, not a matmul;
- the hidden states of all layers live side by side in one (B, L*H) buffer, so an upper
  LSTM layer's [input | own h] is a slice of it, read against [W_ih | W_hh] concatenated and
  transposed once: one addmm per layer and no copies between layers;
- state, gate buffers and every slice of them are made once per batch and updated in place.

At batch 1 on CPU the step is bound by reading the weights (~21 MB for 3 x 512); what is
left is per-op dispatch, which is why the buffers and their views are built ahead of time
(bench/bench_sample.py measures it against the plain nn.LSTM loop).

On CUDA a batch-1 step is a few dozen tiny kernels, each launched from Python, so the GPU
waits on the launches. With `cuda_graph=True` the step is captured once per batch as a CUDA
graph (the buffers above already stay put, which is what a graph needs) and each event is one
replay of the same kernels, so the logits are the same as the eager step's.

A model with controls (midigen.controls_model) reads a per-piece control vector beside every
event's embedding; that part of layer 0's input projection is the same at every step, so
`reset` folds it into a (B, G) gate offset added after the table lookup.

The recurrent state is carried from step to step; the sequence is never re-run. Logits agree
with `MusicRNN.forward` to float rounding (tests/test_sample.py checks LSTM and GRU).
The model must be in eval mode semantics: dropout is not applied.
"""

from __future__ import annotations

import torch

from midigen.model import MusicRNN


class Stepper:
    """Feeds ids one step at a time and returns the next-event logits, carrying the state."""

    def __init__(self, model: MusicRNN, cuda_graph: bool = False):
        cfg = model.config
        self.cell = cfg.cell
        self.layers = cfg.layers
        self.hidden = H = cfg.hidden
        self.vocab_size = cfg.vocab_size
        rnn = model.rnn
        self.model = model
        E = cfg.embed_dim
        with torch.no_grad():
            first = next(model.parameters())
            self.device, self.dtype = first.device, first.dtype

            def w(name):
                weight = getattr(rnn, name).detach()
                return weight[:, :E] if name == "weight_ih_l0" else weight  # the event part

            w_cond = rnn.weight_ih_l0.detach()[:, E:]  # (G, C): the controls' part, or empty

            # Weights stay (out, in) and are used as transposed views: MKL reads them as they
            # lie, as fast as a transposed copy would be, and loading needs no copies.
            if self.cell == "lstm":
                def ifog(t):
                    """Gate rows from PyTorch's (i, f, g, o) to (i, f, o, g), so the three
                    sigmoids are one call on a contiguous slice."""
                    return torch.cat([t[:2 * H], t[3 * H:], t[2 * H:3 * H]])

                bias0 = ifog(w("bias_ih_l0") + w("bias_hh_l0"))
                self.table0 = torch.addmm(bias0, model.embed.weight.detach(),
                                          ifog(w("weight_ih_l0")).t())  # (V, 4H)
                self.w_hh0_t = ifog(w("weight_hh_l0")).t()  # (H, 4H)
                self.w_cond_t = ifog(w_cond).t()  # (C, 4H)
                # Upper layers: gates = b + [x | h] @ [W_ih | W_hh].T, one addmm each.
                self.w_cat_t = [ifog(torch.cat([w(f"weight_ih_l{k}"), w(f"weight_hh_l{k}")], 1)).t()
                                for k in range(1, self.layers)]  # (2H, 4H)
                self.b_cat = [ifog(w(f"bias_ih_l{k}") + w(f"bias_hh_l{k}"))
                              for k in range(1, self.layers)]
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
                self.w_hh0_t = w("weight_hh_l0").t()  # (H, 3H)
                self.w_cond_t = w_cond.t()  # (C, 3H)
                pairs = [split_bias(k) for k in range(1, self.layers)]
                self.b_in = [p[0] for p in pairs]
                self.b_hid = [p[1] for p in pairs]
                self.w_ih_t = [w(f"weight_ih_l{k}").t() for k in range(1, self.layers)]
                self.w_hh_t = [w(f"weight_hh_l{k}").t() for k in range(1, self.layers)]
            self.table0 = self.table0.contiguous()  # (V, G)
            self.head_w_t = model.head.weight.detach().t()  # (H, V)
            self.head_b = model.head.bias.detach()
        self.batch_size = 0
        self.cuda_graph = cuda_graph and self.device.type == "cuda"
        self._graph, self.graph_error = None, None

    def reset(self, batch_size: int, state=None, cond: torch.Tensor | None = None) -> None:
        """Zero state for `batch_size` pieces, or start from an nn.LSTM/nn.GRU style state.

        `state` is what `MusicRNN.forward` returns: (h, c) each (L, B, H) for LSTM, h for GRU;
        a batch of 1 is broadcast to `batch_size` (a primer shared by every piece). `cond`:
        the controls (1 or B, COND_WIDTH) of a model that has them (None: none given).
        """
        B, H, L = batch_size, self.hidden, self.layers
        kw = {"device": self.device, "dtype": self.dtype}
        self.batch_size = B
        self._hidden = torch.zeros(B, L * H, **kw)  # [h_0 | h_1 | ... | h_L-1]
        self._h = [self._hidden[:, k * H:(k + 1) * H] for k in range(L)]
        # Layer k >= 1 reads [h_k-1 | h_k]: its new input and its own state, side by side.
        self._xh = [None] + [self._hidden[:, (k - 1) * H:(k + 1) * H] for k in range(1, L)]
        self._logits = torch.empty(B, self.vocab_size, **kw)
        self._tmp = torch.empty(B, H, **kw)
        if self.cell == "lstm":
            self._c = [torch.zeros(B, H, **kw) for _ in range(L)]
            g = self._gates = torch.empty(B, 4 * H, **kw)  # i, f, o, candidate
            self._sig, self._cand = g[:, :3 * H], g[:, 3 * H:]
            self._i, self._f, self._o = g[:, :H], g[:, H:2 * H], g[:, 2 * H:3 * H]
        else:
            gi = self._gates = torch.empty(B, 3 * H, **kw)
            gh = self._gates_h = torch.empty(B, 3 * H, **kw)
            self._rz_i, self._rz_h = gi[:, :2 * H], gh[:, :2 * H]
            self._r, self._z = gi[:, :H], gi[:, H:2 * H]  # after rz_i holds the sigmoid
            self._n_i, self._n_h = gi[:, 2 * H:], gh[:, 2 * H:]
        self._cond_gates = None
        if self.model.config.controls is not None:
            with torch.inference_mode():
                vector = self.model.control(cond, B, self.device).to(self.dtype)  # (B, C)
                self._cond_gates = (vector @ self.w_cond_t).contiguous()  # (B, G)
        self._graph = None
        if self.cuda_graph:
            try:
                self._graph = self._capture()
            except RuntimeError as e:  # a driver that cannot capture: the eager step still works
                self.graph_error = str(e)
        if state is not None:
            self.set_state(state)

    def set_state(self, state) -> None:
        h, c = state if self.cell == "lstm" else (state, None)
        with torch.no_grad():
            for k, view in enumerate(self._h):
                view.copy_(h[k].expand_as(view))
            if c is not None:
                for k in range(self.layers):
                    self._c[k].copy_(c[k].expand_as(self._c[k]))

    def state(self):
        """The current state in nn.LSTM/nn.GRU layout: (h, c) (L, B, H) for LSTM, h for GRU."""
        h = torch.stack([v.clone() for v in self._h])
        if self.cell == "lstm":
            return h, torch.stack([c.clone() for c in self._c])
        return h

    @torch.inference_mode()
    def step(self, ids: torch.Tensor) -> torch.Tensor:
        """Logits (B, V) of the event after `ids` (B,); the returned buffer is reused next step."""
        if self._graph is not None:
            self._ids.copy_(ids)
            self._graph.replay()
            return self._logits
        return self._eager_step(ids)

    def _eager_step(self, ids: torch.Tensor) -> torch.Tensor:
        if self.cell == "lstm":
            self._lstm_step(ids)
        else:
            self._gru_step(ids)
        return torch.addmm(self.head_b, self._h[-1], self.head_w_t, out=self._logits)

    @torch.inference_mode()
    def _capture(self):
        """The eager step recorded as a CUDA graph reading `self._ids`. The state is left as it
        was, also when capture fails: the warm-up steps really ran, and the eager step that
        then takes over must start from the state `reset` made."""
        self._ids = torch.zeros(self.batch_size, dtype=torch.long, device=self.device)
        saved = self.state()
        try:
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(3):  # warm up: cuBLAS handles and workspaces exist before capture
                    self._eager_step(self._ids)
            torch.cuda.current_stream(self.device).wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            # On `side`, a stream of this model's GPU: torch.cuda.graph's own default stream
            # lives on whichever GPU was current when the process first captured, and a step
            # on another GPU would run outside the capture, leaving an empty graph.
            with torch.cuda.graph(graph, stream=side):
                self._eager_step(self._ids)
        finally:
            self.set_state(saved)
        return graph

    def _lstm_step(self, ids: torch.Tensor) -> None:
        g, tmp, i, f, o = self._gates, self._tmp, self._i, self._f, self._o
        for k in range(self.layers):
            if k == 0:
                torch.index_select(self.table0, 0, ids, out=g)  # (B, 4H)
                if self._cond_gates is not None:
                    g.add_(self._cond_gates)
                g.addmm_(self._h[0], self.w_hh0_t)
            else:
                torch.addmm(self.b_cat[k - 1], self._xh[k], self.w_cat_t[k - 1], out=g)
            self._sig.sigmoid_()
            self._cand.tanh_()
            c = self._c[k]
            c.mul_(f).addcmul_(i, self._cand)
            torch.tanh(c, out=tmp)
            torch.mul(tmp, o, out=self._h[k])  # also the next layer's input

    def _gru_step(self, ids: torch.Tensor) -> None:
        gi, gh = self._gates, self._gates_h
        for k in range(self.layers):
            h = self._h[k]
            if k == 0:
                torch.index_select(self.table0, 0, ids, out=gi)  # (B, 3H)
                if self._cond_gates is not None:
                    gi.add_(self._cond_gates)
                torch.addmm(self.b_hid0, h, self.w_hh0_t, out=gh)
            else:
                torch.addmm(self.b_in[k - 1], self._h[k - 1], self.w_ih_t[k - 1], out=gi)
                torch.addmm(self.b_hid[k - 1], h, self.w_hh_t[k - 1], out=gh)
            self._rz_i.add_(self._rz_h).sigmoid_()
            n = self._n_i.addcmul_(self._r, self._n_h).tanh_()
            # h' = (1 - z) * n + z * h  =  n + z * (h - n)
            torch.sub(h, n, out=self._tmp)
            h.copy_(n).addcmul_(self._z, self._tmp)
