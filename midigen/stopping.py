"""Stop signals: Ctrl-C (SIGINT), SIGTERM and SIGHUP end any command cleanly, exit 128 + signal.

Schedulers (Slurm, Kubernetes, systemd) stop jobs with SIGTERM and a closed terminal sends
SIGHUP; Python's defaults for both end the process on the spot, skipping every `finally`
(worker pools stay alive, temp files stay behind). `raising_on_stop_signals` makes them raise
`Stopped` like Ctrl-C raises KeyboardInterrupt; `StopOnSignals` lets the training loop turn
the first one into "stop after this step and save". Signals a parent set to be ignored
(`nohup` ignores SIGHUP) stay ignored.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A stop signal arrived; `exit_code` is the shell's convention for it (128 + signal)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


def exit_code(signum: int | None) -> int:
    """The exit code after a stop by `signum` (130 for Ctrl-C, 143 SIGTERM, 129 SIGHUP)."""
    return 128 + (signum or signal.SIGINT)


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def _ours_to_take(signum: int) -> bool:
    """True unless someone chose to ignore this signal (nohup, a shell's background job)."""
    return signal.getsignal(signum) not in (signal.SIG_IGN, None)


@contextmanager
def raising_on_stop_signals() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise `Stopped` in the main thread, so cleanup runs."""
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for signum in STOP_SIGNALS:
            if signum != signal.SIGINT and _ours_to_take(signum):
                previous[signum] = signal.signal(signum, _raise_stopped)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StopOnSignals:
    """While active, the first stop signal asks the loop to stop after this step (it then
    saves `last`); a second one raises `Stopped` at once. `signum` says which signal came.

    Under torchrun's agent a Ctrl-C reaches each training process twice within milliseconds
    (from the terminal, then forwarded by the agent), so there a repeat within `REPEAT_S` of
    the first is the same stop, not a second one."""

    REPEAT_S = 1.0

    def __init__(self):
        self.signum: int | None = None
        self._previous: dict[int, object] = {}
        self._first_at = 0.0
        self._repeat_s = self.REPEAT_S if "TORCHELASTIC_RUN_ID" in os.environ else 0.0

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum, frame):
        if self.requested:
            if time.monotonic() - self._first_at >= self._repeat_s:
                raise Stopped(signum)
            return
        self.signum, self._first_at = signum, time.monotonic()

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                if _ours_to_take(signum):
                    self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous.clear()
