"""`midigen train --gpus N`: start torchrun for the user, N training processes on this machine.

The processes then find each other through torchrun's environment (midigen.distributed); this
module only builds torchrun's arguments and runs its agent in this process, turning its
failures and forwarded signals into exit codes.
"""

from __future__ import annotations

import os
import sys

import torch

from midigen.errors import MidigenError

LAUNCH_OPTIONS = ("--gpus", "--nproc")


def torchrun_args(nproc: int, argv: list[str]) -> list[str]:
    """torchrun's arguments to run `midigen train ARGS` as `nproc` processes on this machine:
    `argv` is this process's sys.argv, without its --gpus/--nproc option."""
    if len(argv) < 2 or argv[1] != "train":
        raise MidigenError("--gpus starts `midigen train` under torchrun; give it to train")
    rest, skip = [], False
    for arg in argv[2:]:
        if skip:
            skip = False
        elif arg in LAUNCH_OPTIONS:
            skip = True
        elif not arg.startswith(tuple(o + "=" for o in LAUNCH_OPTIONS)):
            rest.append(arg)
    return ["--standalone", f"--nproc-per-node={nproc}", "-m", "midigen", "train", *rest]


def launch(nproc: int, device_name: str, argv: list[str] | None = None) -> int:
    """Run `nproc` training processes under torchrun's agent, in this process; their exit code.

    One process per GPU on CUDA; without CUDA (or with --device cpu), `nproc` CPU processes
    that share the cores, over gloo: slower than one process, but the same training. The
    agent forwards Ctrl-C / SIGTERM to the ranks, which stop together (rank 0 saves last.pt);
    here that becomes exit code 128 + the signal, and a failed rank's code passes through,
    without torchrun's tracebacks (each rank has printed its own one-line error)."""
    import logging

    from torch.distributed import run as torchrun
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    if "WORLD_SIZE" in os.environ:
        raise MidigenError("already running under torchrun: leave out --gpus (torchrun's "
                           "--nproc-per-node says how many processes)")
    cuda = device_name in ("auto", "cuda") and torch.cuda.is_available()
    if cuda and nproc > torch.cuda.device_count():
        raise MidigenError(f"--gpus {nproc} asked for, but this machine has "
                           f"{torch.cuda.device_count()} GPU(s)")
    if device_name == "cuda" and not cuda:
        raise MidigenError("--device cuda asked for, but no CUDA GPU is available")
    args = torchrun.parse_args(torchrun_args(nproc, sys.argv if argv is None else argv))
    # The ranks set their own thread counts (midigen.device); torchrun's notices are noise here.
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)
    try:
        torchrun.run(args)
    except SignalException as e:
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        return e.get_first_failure()[1].exitcode or 1
    return 0
