"""How torch's CPU threads behave: a policy for the `midigen` command and the benchmarks,
applied by calling these functions (importing midigen changes nothing in the process).

`set_openmp_wait_policy` must run before torch is first imported (OpenMP reads its settings
once, when it loads); the `midigen` entry point calls it first thing.
"""

from __future__ import annotations

import os
import time


def openmp_wait(other_tasks: int, cpus: int) -> dict[str, str]:
    """How torch's idle OpenMP threads should wait, given the tasks running beside us.

    Training steps and sampled events are runs of matmuls with gaps between. Threads that
    sleep in the gaps must be woken for each: on a 2-core VM that made training 1.4x and
    batch-1 sampling 2.4x slower (17.5k vs 25.4k tokens/s; 1,260 vs 525 us an event).
    Threads that spin on a machine whose cores are busy stall everything instead (90 ms an
    event with two samplers on 2 cores). So: spin a bounded while (1,000 spins was too
    short to help) unless other work holds a quarter of the cores or more.
    """
    if other_tasks >= max(1, cpus // 4):
        return {"OMP_WAIT_POLICY": "PASSIVE"}
    return {"GOMP_SPINCOUNT": "30000"}


def other_running_tasks(reads: int = 5) -> int:
    """Tasks running beside this one right now (0 where unknown): the instantaneous count in
    /proc/loadavg (the load average lags by minutes), least of a few reads 1 ms apart so a
    task that runs for an instant does not count."""
    counts = []
    for _ in range(reads):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)  # less ourselves
        except (OSError, ValueError, IndexError):
            return 0
        time.sleep(0.001)
    return min(counts)


def set_openmp_wait_policy() -> dict[str, str]:
    """Choose how idle OpenMP threads wait, before torch loads; returns what it set.

    A setting of the user's own (OMP_WAIT_POLICY or GOMP_SPINCOUNT) always wins.
    """
    if "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ:
        return {}
    chosen = openmp_wait(other_running_tasks(), os.cpu_count() or 1)
    os.environ.update(chosen)
    return chosen


def use_all_cores() -> int:
    """Let torch use every core this process may run on (it may start with fewer); returns
    the thread count. Processes that torchrun started on one machine share them. A user's
    OMP_NUM_THREADS wins (to leave cores to other work: `OMP_NUM_THREADS=1 midigen train`)."""
    import torch

    asked = os.environ.get("OMP_NUM_THREADS", "").strip()
    if asked.isdigit() and int(asked) > 0:
        torch.set_num_threads(int(asked))
        return torch.get_num_threads()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    sharing = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    torch.set_num_threads(max(1, (cores or 1) // sharing))
    return torch.get_num_threads()
