"""One metrics row: what training writes to metrics.jsonl, and what the curves, `inspect` and
`--resume` read back. One typed record, so writer and readers cannot drift apart again (they
once did: the plotter looked for keys the loop never wrote, and curves.png lost validation).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from midigen.errors import MidigenError
from midigen.records import DictRecord

METRICS_FILE = "metrics.jsonl"


@dataclass(frozen=True)
class MetricsRow(DictRecord):
    """Training numbers at one step; the valid_* fields are set on evaluation rows only."""

    step: int
    tokens: int = 0  # training tokens seen up to this step
    lr: float = 0.0
    train_loss: float | None = None  # mean over the steps since the previous row (nats/event)
    tokens_per_s: float = 0.0
    elapsed_s: float = 0.0
    valid_nll: float | None = None  # nats per event over the validation pieces
    valid_ppl: float | None = None
    valid_nll_per_s: float | None = None  # nats per second of validation music
    valid_events: int | None = None  # events scored
    valid_scope: str | None = None  # "sample" (every eval_every) or "full" (the end of training)

    @property
    def is_eval(self) -> bool:
        return self.valid_nll is not None

    def to_dict(self) -> dict:
        """The JSON form; evaluation fields are left out of rows without an evaluation."""
        d = asdict(self)
        return {k: v for k, v in d.items() if v is not None or not k.startswith("valid_")}


def append_row(path: Path, row: MetricsRow) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row.to_dict()) + "\n")


def write_rows(path: Path, rows: list[MetricsRow]) -> None:
    path.write_text("".join(json.dumps(r.to_dict()) + "\n" for r in rows))


def read_rows(path: Path, up_to_step: int | None = None) -> list[MetricsRow]:
    """The rows of a metrics file (none if it is missing), optionally only up to a step.

    A torn last line (the process was killed mid-write) is dropped: the checkpoint it would
    describe was never written either. A bad line anywhere else is an error naming the line.
    """
    if not path.exists():
        return []
    lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    rows = []
    for number, line in enumerate(lines, 1):
        try:
            row = json.loads(line)
            if not isinstance(row, dict) or "step" not in row:
                raise ValueError("no step")
            rows.append(MetricsRow.from_dict(row))
        except (ValueError, TypeError):
            if number == len(lines):
                break
            raise MidigenError(f"{path} line {number} is not a metrics row; "
                               "move the file away to start its curves afresh") from None
    return [r for r in rows if up_to_step is None or r.step <= up_to_step]
