"""Run by tests/test_distributed.py under `torchrun --nproc-per-node 2` (gloo, CPU).

Trains the toy corpus three ways inside one process group, so the test pays for one launch:
  full/  8 steps without a break;
  half/  rank 1 alone asks to stop after 4 steps (rank 0 must stop with it), then the group
         resumes from half/last.pt to step 8 (a copy of the step-4 checkpoint is kept as
         half4.pt for a single-process resume in the test);
  clock/ a --minutes run: rank 0's clock plans and ends it, and both ranks end at one step;
  split/ as full/, but rank 1 alone "runs out of GPU memory" above 2 windows: both ranks must
         agree on micro-batches of 2 and train the same model.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from midigen import memory
from midigen.checkpoint import load_checkpoint
from midigen.corpus import PieceTokens
from midigen.device import set_precision
from midigen.distributed import session
from midigen.events import Note, notes_to_array
from midigen.model import ModelConfig, MusicRNN
from midigen.tokenizer import TokenizerConfig, encode_notes, vocabulary
from midigen.train import TrainConfig, train

TOK = TokenizerConfig(steps_per_second=10, use_programs=False)
MODEL = ModelConfig(vocabulary(TOK).size, embed_dim=16, hidden=32, layers=2, dropout=0.0)
CONFIG = TrainConfig(seq_len=32, batch_size=8, lr=1e-2, warmup_steps=3, steps=8, eval_every=4,
                     log_every=1, transpose=2, valid_fraction=0.3, device="cpu")



def toy_pieces(count: int = 7) -> list[PieceTokens]:
    """Seeded random melodies over a bass, of different lengths (so validation shards differ)."""
    rng = np.random.default_rng(0)
    pieces = []
    for k in range(count):
        notes, t = [], 0.0
        for _ in range(20 + 6 * k):
            pitch = int(rng.integers(55, 80))
            notes += [Note(pitch, int(rng.integers(40, 110)), t, t + 0.3),
                      Note(pitch - 12 - int(rng.integers(0, 5)), 60, t, t + 0.6)]
            t += float(rng.choice([0.2, 0.3, 0.5]))
        ids = encode_notes(notes_to_array(notes), TOK).astype(np.uint16)
        pieces.append(PieceTokens(f"p{k}", f"f{k}.mid", ids, t, num_notes=len(notes), programs=(0,)))
    return pieces


def main(out: Path) -> None:
    pieces = toy_pieces()
    set_precision("fp32")  # compared with one process to 1e-4 (see conftest.fp32_steps)
    with session("cpu") as (world, _):
        assert world.world_size == 2
        train(pieces, TOK, MODEL, CONFIG, out / "full")
        cut = train(pieces, TOK, MODEL, CONFIG, out / "half",
                    stop_after_steps=4 if world.rank == 1 else None)
        assert cut.interrupted and cut.step == 4, (world.rank, cut.step)
        dist.barrier()  # rank 0 has written half/last.pt
        if world.is_main:
            shutil.copy(out / "half" / "last.pt", out / "half4.pt")
        ckpt = load_checkpoint(out / "half" / "last.pt")
        dist.barrier()
        rest = train(pieces, TOK, MODEL, CONFIG, out / "half", resume_from=ckpt)
        assert rest.step == 8 and not rest.interrupted
        clock = train(pieces, TOK, MODEL, replace(CONFIG, steps=None, minutes=0.05),
                      out / "clock")
        ends = [None, None]
        dist.all_gather_object(ends, (clock.step, clock.total_steps, clock.interrupted))
        assert ends[0] == ends[1] and not ends[0][2], ends
        with fake_memory(rows=2 if world.rank == 1 else None):
            train(pieces, TOK, MODEL, CONFIG, out / "split")


@contextlib.contextmanager
def fake_memory(rows: int | None):
    """The CPU probed as a GPU (midigen.memory), out of memory above `rows` (None: never)."""
    forward = MusicRNN.forward

    def limited(self, ids, state=None, **kw):
        if rows is not None and ids.shape[0] > rows:
            raise torch.OutOfMemoryError("CUDA out of memory.")
        return forward(self, ids, state, **kw)

    memory.PROBED_DEVICE_TYPES, MusicRNN.forward = ("cpu",), limited
    try:
        yield
    finally:
        memory.PROBED_DEVICE_TYPES, MusicRNN.forward = ("cuda", "mps"), forward


if __name__ == "__main__":
    main(Path(sys.argv[1]))
