"""One to_dict / from_dict for the dataclasses that travel as plain data (configs in
checkpoints, metrics rows in metrics.jsonl).

from_dict ignores keys it does not know (written by a newer midigen) and leaves missing ones
at their defaults (written by an older one), so old and new files keep loading.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import TypeVar

from typing_extensions import Self

R = TypeVar("R", bound="DictRecord")


class DictRecord:
    """Mixin for dataclasses: `to_dict()` and `from_dict(d)`."""

    def to_dict(self) -> dict:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict) -> Self:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in d.items() if k in known})
