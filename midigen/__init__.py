"""midigen: learn a folder of music with an event-token LSTM and write new MIDI."""

import os

# Idle OpenMP threads should sleep, not spin: sampling one event at a time leaves them idle
# most of the time, and spinning threads stall everything else on a small machine.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from midigen.errors import MidigenError

__version__ = "0.1.0"

__all__ = ["MidigenError", "__version__"]
