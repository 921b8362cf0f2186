"""midigen: learn a folder of music with an event-token LSTM and write new MIDI."""

import os


def _openmp_wait(other_tasks: int, cpus: int) -> dict[str, str]:
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


def _other_running_tasks(reads: int = 5) -> int:
    """Tasks running beside this one right now (0 where unknown): the instantaneous count in
    /proc/loadavg (the load average lags by minutes), least of a few reads 1 ms apart so a
    task that runs for an instant does not count."""
    import time

    counts = []
    for _ in range(reads):
        try:
            with open("/proc/loadavg") as f:
                counts.append(int(f.read().split()[3].split("/")[0]) - 1)  # less ourselves
        except (OSError, ValueError, IndexError):
            return 0
        time.sleep(0.001)
    return min(counts)


# Before torch loads (OpenMP reads these once); a setting of the user's own always wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ.update(_openmp_wait(_other_running_tasks(), os.cpu_count() or 1))

from midigen.errors import MidigenError

__version__ = "0.1.0"

__all__ = ["MidigenError", "__version__"]
