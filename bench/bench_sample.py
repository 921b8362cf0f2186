"""Sampling speed: events/s of the midigen Stepper against the obvious alternatives.

    python bench/bench_sample.py [--device cpu|cuda] [--threads N] [--seconds S]

Rows, each at batch 1 and batch 64, for a 3 x 512 LSTM over the default vocabulary
(random weights: speed does not depend on what the model learnt):

- `Stepper` (midigen.stepper): folded weights, state carried, one addmm per layer;
- `sample_ids`: the whole sampler, set-up included: the Stepper plus the draws, the grammar
  mask and the stop checks, over pieces of `--piece-events` events (1,000 by default: a
  40 s chorale is about 700);
- plain `nn.LSTM` step loop: embed -> nn.LSTM on a length-1 sequence -> head, state carried
  (on CPU its default oneDNN path, and again with oneDNN bypassed);
- re-running the whole sequence each step (what a sampler without state does), on a
  shorter piece because its cost grows with the square of the length.

It also checks that the Stepper's logits match `MusicRNN.forward` over a sequence.
Ratios are against the plain nn.LSTM step loop at the same batch size.
"""

from __future__ import annotations

from midigen.threads import set_openmp_wait_policy

set_openmp_wait_policy()  # as the midigen command does, before torch loads

# isort: split
import argparse
import os
import platform
import time

import torch

from midigen.model import ModelConfig, MusicRNN
from midigen.sample import sample_ids
from midigen.stepper import Stepper
from midigen.tokenizer import TokenizerConfig, vocabulary


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_call(fn, calls: int, device) -> float:
    """Seconds per call of `fn`, over `calls` calls."""
    _sync(device)
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / calls


def bench_batch(model: MusicRNN, config: TokenizerConfig, batch: int, steps: int,
                piece_events: int, rerun_len: int, rounds: int, device
                ) -> list[tuple[str, float]]:
    """(method, events/s) rows for one batch size.

    The methods take turns for `rounds` rounds and each keeps its best round, so a burst of
    load from another process on a shared machine does not land on one method only.
    """
    vocab_size = model.config.vocab_size
    end_id = vocabulary(config).end_id
    ids = torch.randint(0, vocab_size, (batch,), device=device)
    x = ids[:, None]  # (B, 1)
    seq = torch.randint(0, vocab_size, (batch, rerun_len), device=device)
    stepper = Stepper(model)
    stepper.reset(batch)
    state = [None]

    def plain_step():
        y, state[0] = model.rnn(model.embed(x), state[0])  # (B, 1, H)
        model.head(y)

    def plain_step_no_onednn():
        with torch.backends.mkldnn.flags(enabled=False):
            plain_step()

    def sample_piece():
        sample_ids(model, config, num=batch, max_events=piece_events, seed=0)

    def rerun_piece():
        for t in range(1, rerun_len + 1):
            model(seq[:, :t])  # (B, t, V): the whole piece so far, every step

    cpu = device.type == "cpu"
    methods = [  # name, function, events per call, calls per round
        ("Stepper (midigen)", lambda: stepper.step(ids), batch, steps),
        (f"sample_ids (whole sampler, {piece_events}-event pieces)", sample_piece,
         batch * piece_events, 1),
        ("plain nn.LSTM step loop" + (" (oneDNN)" if cpu else " (cuDNN)"), plain_step, batch,
         steps),
    ]
    if cpu:
        methods.append(("plain nn.LSTM step loop (oneDNN off)", plain_step_no_onednn, batch,
                        steps))
    methods.append((f"re-run whole sequence each step (T={rerun_len})", rerun_piece,
                    batch * rerun_len, 1))

    best = {name: 0.0 for name, *_ in methods}
    with torch.inference_mode():
        with torch.no_grad():  # a model that never says END, so every piece runs `steps` events
            saved_end_bias = model.head.bias[end_id].item()
            model.head.bias[end_id] = -1e4
        try:
            for name, fn, _, _ in methods:  # warm-up (oneDNN plans on first calls)
                for _ in range(3):
                    fn()
            for _ in range(rounds):
                for name, fn, events, calls in methods:
                    state[0] = None
                    best[name] = max(best[name], events / time_call(fn, calls, device))
        finally:
            model.head.bias[end_id] = saved_end_bias
    return list(best.items())


def logits_agreement(model: MusicRNN, batch: int, length: int, device) -> float:
    """Largest |Stepper logit - MusicRNN.forward logit| over a random sequence."""
    seq = torch.randint(0, model.config.vocab_size, (batch, length), device=device)
    with torch.inference_mode():
        expected, _ = model(seq)
    stepper = Stepper(model)
    stepper.reset(batch)
    worst = 0.0
    for t in range(length):
        worst = max(worst, (stepper.step(seq[:, t]) - expected[:, t]).abs().max().item())
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--layers", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--steps", type=int, default=200, help="timed steps per repeat")
    parser.add_argument("--piece-events", type=int, default=1000,
                        help="events per piece for the sample_ids row")
    parser.add_argument("--rerun-len", type=int, default=64)
    parser.add_argument("--batches", default="1,64")
    parser.add_argument("--rounds", type=int, default=3, help="best of this many rounds")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = TokenizerConfig()
    model_config = ModelConfig(vocab_size=vocabulary(config).size, layers=args.layers,
                               hidden=args.hidden)
    model = MusicRNN(model_config).to(device).eval()

    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"# Sampling speed: {args.layers} x {args.hidden} LSTM, vocab {model_config.vocab_size}, "
          f"float32, {device.type} ({where}), torch {torch.__version__}\n")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average before the run: {load:.1f} (other processes slow every row)\n")
    for batch in (1, 3):
        diff = logits_agreement(model, batch, 64, device)
        print(f"Stepper vs MusicRNN.forward, batch {batch}, 64 steps: max |logit diff| = {diff:.2e}")
    print()
    print("| method | batch | events/s | x plain nn.LSTM step |")
    print("|---|---:|---:|---:|")
    for batch in (int(b) for b in args.batches.split(",")):
        steps = args.steps if batch == 1 else max(20, args.steps // 4)
        piece_events = args.piece_events if batch == 1 else max(50, args.piece_events // 4)
        rows = bench_batch(model, config, batch, steps, piece_events, args.rerun_len,
                           args.rounds, device)
        reference = next(v for name, v in rows if name.startswith("plain") and "off" not in name)
        for name, events_per_s in rows:
            print(f"| {name} | {batch} | {events_per_s:,.0f} | {events_per_s / reference:.2f} |")


if __name__ == "__main__":
    main()
