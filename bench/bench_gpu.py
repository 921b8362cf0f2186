"""GPU speed (issue 11), each number a ratio against a bare PyTorch loop timed in the same run.

    python bench/bench_gpu.py [--quick] [--no-compile] [--json OUT.json] [--dry-run]

On one CUDA GPU, for a 3 x 512 LSTM over the default 519-event vocabulary:

1. Training: `midigen.train.train` tokens/s (its own count, evaluation excluded) against a bare
   cuDNN training step of the same model on a batch already on the GPU (bf16 autocast, fused
   AdamW, gradient clipping, as train does), at 256 x 256 and 64 x 256. Target: >= 0.9.
2. Batch-1 sampling: the Stepper's step loop eager, captured as a CUDA graph
   (`Stepper(cuda_graph=True)`), and `torch.compile(mode="reduce-overhead")` of the eager
   step; then the whole sampler (`sample_ids`, draws and grammar on the host) eager vs graph,
   which must give the same pieces for the same seed. Target: graph >= 10x eager.
3. Batched sampling, 64 and 1,024 pieces: `sample_ids` (graph) events/s against a bare batched
   step (embed -> nn.LSTM on one step -> head -> softmax -> torch.multinomial, all on the GPU,
   no grammar, no host). Target: >= 0.9.

Without CUDA it says so in one line and exits 2. The weights are random: speed does not
depend on what a model learnt. `--dry-run` runs every measurement once on the CPU with a tiny
model (its numbers mean nothing): it catches a call that no longer fits the library before
GPU time is spent on it (bench/gpu_check.sh does this without CUDA).
"""

from __future__ import annotations

from midigen.threads import set_openmp_wait_policy

set_openmp_wait_policy()  # as the midigen command does, before torch loads

# isort: split
import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from midigen.corpus import PieceTokens
from midigen.model import ModelConfig, MusicRNN
from midigen.sample import sample_ids
from midigen.sample_limits import MAX_SECONDS
from midigen.stepper import Stepper
from midigen.tokenizer import TokenizerConfig, vocabulary
from midigen.train import TrainConfig, train

TOK = TokenizerConfig()
V = vocabulary(TOK).size
MODEL = ModelConfig(V, embed_dim=256, hidden=512, layers=3, dropout=0.1)
DEVICE = "cuda"  # main() sets "cpu" (and a tiny MODEL) for --dry-run


def synchronize() -> None:
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def seconds_per_call(fn, calls: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize()
    return (time.perf_counter() - start) / calls


def bare_train_tokens_per_s(batch: int, seq_len: int, steps: int) -> float:
    """A cuDNN bf16 training step of the same model on a batch already on the GPU."""
    torch.manual_seed(0)
    model = MusicRNN(MODEL).to(DEVICE).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    x = torch.randint(0, V, (batch, seq_len), device=DEVICE)
    y = torch.randint(0, V, (batch, seq_len), device=DEVICE)

    def step():
        # bf16 on the GPU as midigen trains; a CPU without AVX-512 has no bf16 oneDNN LSTM
        with torch.autocast(DEVICE, dtype=torch.bfloat16, enabled=DEVICE == "cuda"):
            logits, _ = model(x)  # (B, T, V)
            loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return batch * seq_len / seconds_per_call(step, steps, warmup=5)


def midigen_train_tokens_per_s(batch: int, seq_len: int, steps: int) -> float:
    """train() on a synthetic corpus of 2M events; its own tokens/s (evaluation excluded)."""
    rng = np.random.default_rng(0)
    events = 100_000 if DEVICE == "cuda" else 2_000
    pieces = [PieceTokens(f"p{k}", f"f{k}.mid", rng.integers(0, V, events).astype(np.uint16),
                          600.0, num_notes=0, programs=(0,)) for k in range(20)]
    config = TrainConfig(seq_len=seq_len, batch_size=batch, steps=steps, eval_every=10 ** 9,
                         log_every=50, device=DEVICE, valid_fraction=0.05)
    with tempfile.TemporaryDirectory() as run:
        result = train(pieces, TOK, MODEL, config, Path(run))
    return result.tokens_per_s


def step_loop_events_per_s(step, batch: int, steps: int) -> float:
    """Events/s of `step(ids) -> logits`, feeding back the argmax on the GPU (no host trips)."""
    ids = torch.zeros(batch, dtype=torch.long, device=DEVICE)

    def run():
        nonlocal ids
        ids = step(ids).argmax(-1)

    return batch / seconds_per_call(run, steps, warmup=10)


def bare_batched_sampling(model: MusicRNN, batch: int, steps: int) -> float:
    """Events/s of the plainest batched sampler: nn.LSTM step, head, multinomial, on the GPU."""
    ids = torch.zeros(batch, 1, dtype=torch.long, device=DEVICE)
    state = None

    @torch.inference_mode()
    def run():
        nonlocal ids, state
        y, state = model.rnn(model.embed(ids), state)  # (B, 1, H)
        probs = torch.softmax(model.head(y[:, -1]), -1)  # (B, V)
        ids = torch.multinomial(probs, 1)  # (B, 1)

    return batch / seconds_per_call(run, steps, warmup=10)


def sampler_events_per_s(model, batch: int, events: int, graph: bool) -> tuple[float, list]:
    # min_seconds holds END back, so every piece runs the full length.
    sample_ids(model, TOK, num=batch, max_events=20, seed=0, cuda_graph=graph)  # warm up
    synchronize()
    start = time.perf_counter()
    pieces = sample_ids(model, TOK, num=batch, max_events=events, seed=1, cuda_graph=graph,
                        min_seconds=MAX_SECONDS)
    elapsed = time.perf_counter() - start
    return sum(len(p) - 1 for p in pieces) / elapsed, pieces


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--dry-run", action="store_true",
                        help="each measurement once on the CPU, tiny model: checks the calls")
    args = parser.parse_args()
    global DEVICE, MODEL
    if args.dry_run:
        DEVICE, MODEL = "cpu", ModelConfig(V, embed_dim=16, hidden=32, layers=2, dropout=0.1)
        args.no_compile = True
    elif not torch.cuda.is_available():
        print("bench_gpu: no CUDA GPU here (torch.cuda.is_available() is False); "
              "run it on a machine with one", file=sys.stderr)
        return 2
    scale = 0.2 if args.quick else 1.0
    n = lambda k: 1 if args.dry_run else max(10, int(k * scale))
    device_name = "CPU dry run, numbers mean nothing" if args.dry_run else torch.cuda.get_device_name()
    results: dict = {"device": device_name, "torch": torch.__version__, "rows": []}

    def row(name, value, baseline, target=None):
        target = None if args.dry_run else target  # a tiny model on the CPU: no verdicts
        ratio = value / baseline if baseline else float("nan")
        results["rows"].append({"name": name, "value": value, "baseline": baseline,
                                "ratio": ratio, "target": target})
        mark = "" if target is None else ("  ok" if ratio >= target else f"  BELOW {target}")
        print(f"{name:<52} {value:>14,.0f} /s  vs {baseline:>14,.0f} /s  = {ratio:5.2f}x{mark}",
              flush=True)
        if args.json:  # after every row: a run cut short by a timeout keeps what it measured
            args.json.write_text(json.dumps(results, indent=2))

    print(f"device: {device_name}, torch {torch.__version__}; {MODEL.layers} x {MODEL.hidden} "
          f"LSTM, vocabulary {V}")
    seq_len = 16 if args.dry_run else 256
    for batch, steps in ((256, 150), (64, 300)):
        batch = 4 if args.dry_run else batch
        bare = bare_train_tokens_per_s(batch, seq_len, n(steps))
        ours = midigen_train_tokens_per_s(batch, seq_len, n(steps))
        row(f"train tokens, batch {batch} x {seq_len} (bf16)", ours, bare, 0.9)

    torch.manual_seed(0)
    model = MusicRNN(MODEL).to(DEVICE).eval()
    eager, graphed = Stepper(model), Stepper(model, cuda_graph=True)
    eager.reset(1)
    graphed.reset(1)
    if graphed.graph_error:
        print(f"CUDA graph capture failed: {graphed.graph_error}")
    eager_rate = step_loop_events_per_s(eager.step, 1, n(3000))
    row("batch-1 step loop, CUDA graph", step_loop_events_per_s(graphed.step, 1, n(3000)),
        eager_rate, 10)
    eager_sampler, eager_pieces = sampler_events_per_s(model, 1, n(2000), graph=False)
    graph_sampler, graph_pieces = sampler_events_per_s(model, 1, n(2000), graph=True)
    row("batch-1 whole sampler (sample_ids), CUDA graph", graph_sampler, eager_sampler, 10)
    same = all(np.array_equal(a, b) for a, b in zip(eager_pieces, graph_pieces))
    results["batch1_same_pieces_eager_vs_graph"] = same
    print(f"same pieces for the same seed, eager vs graph: {same}")

    for batch in (64, 1024):
        bare = bare_batched_sampling(model, batch, n(500))
        ours, _ = sampler_events_per_s(model, batch, n(500), graph=True)
        row(f"batched sampler, {batch} pieces (graph)", ours, bare, 0.9)

    # Last, as it may take a minute to compile: the graph's alternative.
    if not args.no_compile:
        try:
            compiled = torch.compile(eager._eager_step, mode="reduce-overhead")
            rate = step_loop_events_per_s(lambda ids: compiled(ids).clone(), 1, n(3000))
            row("batch-1 step loop, torch.compile reduce-overhead", rate, eager_rate)
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"torch.compile(reduce-overhead) of the step failed: {type(e).__name__}: "
                  f"{str(e).splitlines()[0][:200]}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
