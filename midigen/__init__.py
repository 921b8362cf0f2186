"""midigen: learn a folder of music with an event-token LSTM and write new MIDI."""

import os


def _openmp_wait(running_tasks: int) -> dict[str, str]:
    """How torch's idle OpenMP threads should wait, given how many tasks are running now.

    Sampling runs a few small matmuls per event. Sleeping threads must be woken for each,
    which on a 2-core VM made batch-1 sampling 2.4x slower (1,260 vs 525 us a step); spinning
    threads on a machine whose cores are already busy stall everything instead (90 ms a step
    with two samplers on 2 cores). So: spin for a bounded while when nothing else runs (1,000
    spins was too short to help), sleep at once when something does.
    """
    if running_tasks > 1:
        return {"OMP_WAIT_POLICY": "PASSIVE"}
    return {"GOMP_SPINCOUNT": "30000"}


def _running_tasks() -> int:
    """Runnable tasks on the machine right now, this one included (1 where unknown): the
    instantaneous count in /proc/loadavg, not the load average, which lags by minutes."""
    try:
        with open("/proc/loadavg") as f:
            return int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 1


# Before torch loads (OpenMP reads these once); a setting of the user's own always wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ.update(_openmp_wait(_running_tasks()))

from midigen.errors import MidigenError

__version__ = "0.1.0"

__all__ = ["MidigenError", "__version__"]
