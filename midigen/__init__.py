"""midigen: learn a folder of music with an event-token LSTM and write new MIDI.

Importing midigen has no process-wide effects; the `midigen` command sets its thread policy
itself (midigen.threads).
"""

from midigen.errors import MidigenError

__version__ = "0.1.0"

__all__ = ["MidigenError", "__version__"]
