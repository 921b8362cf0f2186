"""Training on several processes (GPUs, machines) with torchrun and DistributedDataParallel.

torchrun starts one process per GPU and tells each who it is through environment variables
(RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT). A process started
without them is a world of one, and every helper here is then a no-op, so `train()` has one
code path.

What the ranks agree on, and how:
- the data: every rank holds the same seeded generator and draws the same *global* batch of
  windows, then keeps its own slice of rows (`batch_rows`). A single process with the same
  global batch draws exactly the same windows, and the generator saved by rank 0 resumes a run
  under any number of processes;
- the gradient: DDP averages it across ranks, which for equal slices is the gradient of the
  global batch's mean loss;
- validation: pieces are dealt out by length (`shard`), each rank scores its share and the
  summed NLL and event counts are added up (`all_reduce_sums`);
- stopping: a signal or a clock reaches one rank first; `StopVote` lets all ranks decide at
  the same step, so rank 0 writes one `last.pt` while the others wait for it (`teardown`).

The backend is NCCL when training on CUDA, else gloo (CPU processes, used by the tests).
"""

from __future__ import annotations

import contextlib
import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from midigen.errors import MidigenError

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
# Rank 0 may build a large corpus's token cache while the others wait at a barrier.
TIMEOUT = datetime.timedelta(minutes=60)


@dataclass(frozen=True)
class World:
    """Who this process is among the training processes (a world of one without torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that prints, writes metrics, curves and checkpoints."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


SINGLE = World()


def world_from_env(env: dict | None = None) -> World:
    """The World torchrun describes in the environment, or a world of one."""
    env = os.environ if env is None else env
    if "WORLD_SIZE" not in env and "RANK" not in env:
        return SINGLE
    try:
        world = World(rank=int(env.get("RANK", 0)), world_size=int(env.get("WORLD_SIZE", 1)),
                      local_rank=int(env.get("LOCAL_RANK", 0)),
                      local_world_size=int(env.get("LOCAL_WORLD_SIZE", 1)))
    except ValueError:
        raise MidigenError("RANK, WORLD_SIZE and LOCAL_RANK must be whole numbers "
                           "(they are set by torchrun)") from None
    if world.world_size < 1 or not 0 <= world.rank < world.world_size:
        raise MidigenError(f"RANK {world.rank} does not fit WORLD_SIZE {world.world_size}")
    if world.is_distributed and not ("MASTER_ADDR" in env and "MASTER_PORT" in env):
        raise MidigenError("WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set: start "
                           "distributed training with torchrun (or `midigen train --gpus N`)")
    return world


def current_world() -> World:
    """The World of the running process group (a world of one when none is running)."""
    if not (dist.is_available() and dist.is_initialized()):
        return SINGLE
    return World(rank=dist.get_rank(), world_size=dist.get_world_size(),
                 local_rank=int(os.environ.get("LOCAL_RANK", "0")),
                 local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def device_for(world: World, device_name: str) -> str:
    """The device this rank trains on: its own GPU (cuda:LOCAL_RANK) when on CUDA."""
    from midigen.device import pick_device

    device = pick_device(device_name)
    if not world.is_distributed:
        return device_name
    if device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise MidigenError(f"{world.local_world_size} processes on this machine but only "
                               f"{torch.cuda.device_count()} GPU(s): start one process per GPU")
        torch.cuda.set_device(world.local_rank)
        return f"cuda:{world.local_rank}"
    if device.type == "mps":
        raise MidigenError("distributed training needs CUDA GPUs or CPU processes; "
                           "use --device cpu to run several CPU processes")
    return "cpu"  # midigen.threads.use_all_cores gives each local process its share of the cores


def setup(device_name: str = "auto") -> tuple[World, str]:
    """Join the process group torchrun started (if any): this rank's World and device name."""
    world = world_from_env()
    if not world.is_distributed:
        return world, device_name
    device = device_for(world, device_name)
    if not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        kwargs = {"device_id": torch.device(device)} if backend == "nccl" else {}
        dist.init_process_group(backend, timeout=TIMEOUT, **kwargs)
    return world, device


def teardown(world: World, wait_for_all: bool = True) -> None:
    """Leave the process group, once every rank got here when `wait_for_all` (so rank 0's last
    write is done before any rank exits and torchrun tears the others down). A rank leaving
    on an error does not wait: its peers may be waiting in another collective, and torchrun
    stops them when it sees this one fail."""
    if world.is_distributed and dist.is_initialized():
        if wait_for_all:
            dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device_name: str = "auto"):
    """`with session(device) as (world, device):` joins the group and always leaves it."""
    world, device = setup(device_name)
    try:
        yield world, device
    except BaseException:
        teardown(world, wait_for_all=False)
        raise
    teardown(world)


@contextlib.contextmanager
def main_first(world: World):
    """Rank 0 runs the block first (say, building the token cache), then the others do."""
    if world.is_distributed and not world.is_main:
        dist.barrier()
    yield
    if world.is_distributed and world.is_main:
        dist.barrier()


def broadcast_object(value, world: World):
    """Rank 0's value on every rank (a run folder name, a decision)."""
    if not world.is_distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def per_rank_batch(global_batch: int, world: World) -> int:
    """Windows each rank trains on per step; the global batch must split evenly."""
    if global_batch % world.world_size:
        raise MidigenError(f"--batch-size {global_batch} is the global batch and must split "
                           f"evenly over {world.world_size} processes: use a multiple of "
                           f"{world.world_size}")
    return global_batch // world.world_size


def batch_rows(global_batch: int, world: World) -> slice:
    """This rank's rows of a global batch."""
    size = per_rank_batch(global_batch, world)
    return slice(world.rank * size, (world.rank + 1) * size)


def shard(items: list, world: World) -> list:
    """This rank's share of `items`, dealt longest first so every rank gets similar work."""
    return [items[i] for i in shard_indices(items, world)]


def shard_indices(items: list, world: World) -> list[int]:
    """Which of `items` are this rank's share (see `shard`)."""
    if not world.is_distributed:
        return list(range(len(items)))
    order = sorted(range(len(items)), key=lambda i: -len(items[i]))
    return order[world.rank::world.world_size]


def all_reduce_sums(values: list[float], world: World, device="cpu") -> list[float]:
    """Each value summed over all ranks (in float64, so the sum does not depend on rank order
    beyond float64 rounding)."""
    if not world.is_distributed:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def mean_over_ranks(value: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of a (scalar) tensor over ranks, e.g. the train loss every rank reports."""
    if not world.is_distributed:
        return value
    value = value.detach().clone()
    dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value / world.world_size


class StopVote:
    """All ranks decide together, at the same step, whether to stop, and on rank 0's plan.

    `vote(stop, total_steps)` is called by every rank at every step: `stop` is this rank's
    wish (a signal, a clock, a test's step limit), `total_steps` its plan (None if unknown).
    It returns (anyone wants to stop, rank 0's plan). One all-reduce of two integers over a
    gloo group on the CPU, so it never waits on the GPU: tens of microseconds on one machine.
    """

    def __init__(self, world: World):
        self.world = world
        self._group = None
        if world.is_distributed:
            self._group = (dist.new_group(backend="gloo")
                           if dist.get_backend() != "gloo" else dist.group.WORLD)

    def vote(self, stop: bool, total_steps: int | None) -> tuple[bool, int | None]:
        if not self.world.is_distributed:
            return stop, total_steps
        plan = -1 if total_steps is None or not self.world.is_main else int(total_steps)
        t = torch.tensor([int(stop), plan], dtype=torch.int64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX, group=self._group)
        return bool(t[0]), (None if t[1] < 0 else int(t[1]))


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The model inside a DistributedDataParallel wrapper (checkpoints hold its plain keys)."""
    return model.module if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model


def wrap(model: torch.nn.Module, world: World, device: torch.device) -> torch.nn.Module:
    """The model wrapped in DDP when there are several ranks, as it is otherwise."""
    if not world.is_distributed:
        return model
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
