"""What a training run is given (TrainConfig, checked on creation) and what it gives back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from midigen.errors import MidigenError
from midigen.metrics import MetricsRow
from midigen.records import DictRecord
from midigen.split import SPLIT_MODES
from midigen.tokenizer import TokenizerConfig


@dataclass(frozen=True)
class TrainConfig(DictRecord):
    """How to train; saved in the checkpoint. At most one of steps / epochs / minutes."""

    seq_len: int = 256
    batch_size: int = 32
    lr: float = 6e-3  # the LSTM learns far sooner at 6e-3..1e-2 than at 3e-3 (bench_lstm_sweep)
    weight_decay: float = 0.01
    warmup_steps: int = 100
    min_lr_fraction: float = 0.1
    grad_clip: float = 1.0
    steps: int | None = None
    epochs: float | None = None
    minutes: float | None = None
    eval_every: int = 250
    valid_events: int | None = None  # scored at each eval_every (None: a few % of the time)
    log_every: int = 10
    valid_fraction: float = 0.1
    split_by: str = "auto"  # midigen.split: which files are versions of one piece
    seed: int = 0
    transpose: int = 3  # +- semitones, per window (Performance RNN uses +-3)
    time_stretch: float = 0.0  # 0.05 adds copies 5% faster and slower
    device: str = "auto"
    betas: tuple[float, float] = (0.9, 0.99)  # AdamW's moment decays
    diverge_factor: float = 3.0  # stop when the loss passes this x log(vocab size) + 5 nats

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(self.betas))  # a list once stored as JSON
        budgets = [n for n in ("steps", "epochs", "minutes") if getattr(self, n) is not None]
        if len(budgets) > 1:
            raise MidigenError("give one training budget: --steps, --epochs or --minutes, "
                               f"not {' and '.join('--' + b for b in budgets)}")
        for name in ("steps", "epochs", "minutes"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise MidigenError(f"--{name} must be positive")
        if self.seq_len < 2 or self.batch_size < 1 or self.eval_every < 1 or self.log_every < 1:
            raise MidigenError("--seq-len must be at least 2, --batch-size and --eval-every at least 1")
        if self.valid_events is not None and self.valid_events < 2:
            raise MidigenError("--valid-events must be at least 2")
        if not 0 < self.valid_fraction < 1:
            raise MidigenError("--valid-fraction must be between 0 and 1")
        if self.split_by not in SPLIT_MODES:
            raise MidigenError(f"--split-by must be one of {', '.join(SPLIT_MODES)}")
        if self.lr <= 0 or self.transpose < 0 or self.time_stretch < 0:
            raise MidigenError("--lr must be positive, --transpose and --time-stretch not negative")


@dataclass
class TrainResult:
    """What a run did: where it wrote, how far it got, its numbers."""

    run_dir: Path
    step: int
    total_steps: int
    best_valid_loss: float | None
    last_eval: MetricsRow | None
    tokens_per_s: float
    elapsed_s: float
    interrupted: bool = False
    stop_signal: int | None = None  # SIGINT, SIGTERM or SIGHUP when one stopped the run
    train_losses: list[tuple[int, float]] = field(default_factory=list)
    num_parameters: int = 0
    split_sizes: dict = field(default_factory=dict)
    split_by: str = "auto"
    eval_s: float = 0.0  # wall seconds spent scoring validation

    # Set by midigen.runs, which knows the corpus and configs the run was given:
    pieces: list = field(default_factory=list)
    config: TrainConfig | None = None
    tokenizer_config: TokenizerConfig | None = None
