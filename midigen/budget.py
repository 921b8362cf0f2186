"""The training budget: how many optimizer steps a run takes, from --steps, --epochs or --minutes.

A --minutes budget has no step count at first. After CALIBRATION_STEPS timed steps it is
planned, and re-planned at every log row, so that the cosine schedule ends when the clock
does even when the machine's speed changes under the run. A checkpoint records the step count
(None while unplanned) and the seconds used, which is all a resumed run needs to carry on.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

DEFAULT_STEPS = 2000
CALIBRATION_STEPS = 12  # a --minutes budget gets a step count after this many steps
EVAL_COST_PER_TOKEN = 1 / 3  # an evaluation forward pass costs about a third of a training token


@dataclass
class Budget:
    """Where a run ends: a fixed step count, or a clock (`deadline`) turned into one."""

    total_steps: int | None  # None: a --minutes budget not planned yet
    deadline: float | None = None  # time.monotonic() when a --minutes budget runs out
    start_step: int = 0  # the step this session started from
    seconds_used_before: float = 0.0  # wall-clock seconds of earlier sessions of the run
    train_s: float = 0.0  # seconds of this session spent in training steps (not evaluating)
    started: float = field(default_factory=time.monotonic)

    @classmethod
    def plan(cls, config, train_events: int, tokens_per_step: int) -> Budget:
        """The budget of a new run from its TrainConfig (at most one of steps/epochs/minutes)."""
        if config.steps is not None:
            return cls(config.steps)
        if config.epochs is not None:
            return cls(max(1, math.ceil(config.epochs * train_events / tokens_per_step)))
        if config.minutes is not None:
            return cls(None, deadline=time.monotonic() + 60 * config.minutes)
        return cls(DEFAULT_STEPS)

    @classmethod
    def resume(cls, saved: dict, step: int) -> Budget:
        """The budget of a resumed run, from the train_config its checkpoint recorded.

        A planned run keeps its step count (so its schedule is the one it started). A --minutes
        run stopped before its plan gets the minutes it had left, and plans again.
        """
        used = float(saved.get("seconds_used") or 0.0)
        if saved.get("total_steps") is not None:
            return cls(int(saved["total_steps"]), start_step=step, seconds_used_before=used)
        if saved.get("minutes") is None:
            return cls(DEFAULT_STEPS, start_step=step, seconds_used_before=used)
        left_s = max(0.0, 60 * float(saved["minutes"]) - used)
        return cls(None, deadline=time.monotonic() + left_s, start_step=step,
                   seconds_used_before=used)

    def seconds_used(self) -> float:
        """Wall-clock seconds of the whole run so far, earlier sessions included."""
        return self.seconds_used_before + time.monotonic() - self.started

    def done(self, step: int) -> bool:
        return self.total_steps is not None and step >= self.total_steps

    def out_of_time(self, step: int) -> bool:
        """True when the clock ran out before the planned steps; the run then ends at `step`."""
        if self.deadline is None or time.monotonic() <= self.deadline:
            return False
        self.total_steps = step
        return True

    def replan(self, step: int, log_every: int, eval_every: int, valid_events: int,
               tokens_per_step: int) -> bool:
        """Plan (or re-plan) a --minutes budget as a step count; True when it did.

        Evaluations cost time too: a share of one every `eval_every` steps is counted in.
        """
        steps_done = step - self.start_step
        if self.deadline is None or steps_done < CALIBRATION_STEPS or (
                self.total_steps is not None and step % log_every != 0):
            return False
        per_step = self.train_s / steps_done
        eval_cost = per_step * valid_events / tokens_per_step * EVAL_COST_PER_TOKEN
        remaining = self.deadline - time.monotonic()
        self.total_steps = step + max(1, int(0.95 * remaining
                                             / (per_step + eval_cost / eval_every)))
        return True
