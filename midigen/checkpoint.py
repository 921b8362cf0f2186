"""Checkpoints that carry everything needed to use a model, and load without running code.

A checkpoint is one `torch.save`d dict of plain types and tensors (configs as dicts, never
pickled objects), so `torch.load(weights_only=True)` reads it. Files are written to a temp file
and renamed, so a crash mid-write leaves the previous checkpoint intact.

A run directory holds `best.pt` (lowest validation loss so far), `last.pt` (where training
stopped) and `metrics.jsonl`.
"""

from __future__ import annotations

import json
import math
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from midigen import __version__
from midigen.errors import MidigenError
from midigen.fileio import atomic_write
from midigen.model import ModelConfig, MusicRNN
from midigen.paths import checkpoints_dir
from midigen.tokenizer import TokenizerConfig

FORMAT_NAME = "midigen-checkpoint"
FORMAT_VERSION = 1  # bump when the payload layout changes; older readers refuse newer files


@dataclass
class Checkpoint:
    """What a checkpoint file holds, with configs back as their dataclasses."""

    tokenizer_config: TokenizerConfig
    model_config: ModelConfig
    train_config: dict
    model_state: dict
    optimizer_state: dict | None = None
    step: int = 0
    best_valid_loss: float | None = None
    split: dict = field(default_factory=dict)  # {"train": [names], "valid": [names], ...}
    corpus_summary: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)  # latest evaluation row
    rng_state: dict = field(default_factory=dict)  # {"data": ByteTensor, "torch": ByteTensor}
    version: str = __version__
    path: Path | None = None


def _plain(obj):
    """JSON-able plain data (dicts, lists, str, numbers) from summaries that may hold numpy or
    Path values, so the file stays loadable with weights_only=True."""
    return json.loads(json.dumps(obj, default=_json_default))


def _json_default(value):
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> Path:
    """Write a checkpoint atomically (temp file in the same folder, then os.replace)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    best = ckpt.best_valid_loss
    payload = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "midigen_version": ckpt.version,
        "tokenizer_config": ckpt.tokenizer_config.to_dict(),
        "model_config": ckpt.model_config.to_dict(),
        "train_config": _plain(ckpt.train_config),
        "model_state": {k: v.detach().cpu() for k, v in ckpt.model_state.items()},
        "optimizer_state": ckpt.optimizer_state,
        "step": int(ckpt.step),
        "best_valid_loss": None if best is None or not math.isfinite(best) else float(best),
        "split": _plain(ckpt.split),
        "corpus_summary": _plain(ckpt.corpus_summary),
        "metrics": _plain(ckpt.metrics),
        "rng_state": ckpt.rng_state,
    }
    with atomic_write(path) as f:
        torch.save(payload, f)
    return path


def newest_run_dir(root: Path | None = None) -> Path | None:
    """The run directory under `root` (default: the checkpoints folder) written last."""
    root = checkpoints_dir() if root is None else root
    if not root.is_dir():
        return None
    runs = [d for d in root.iterdir() if d.is_dir() and _run_file(d) is not None]
    if not runs:
        return None
    return max(runs, key=lambda d: _run_file(d).stat().st_mtime)


def _run_file(run_dir: Path) -> Path | None:
    for name in ("best.pt", "last.pt"):
        if (run_dir / name).is_file():
            return run_dir / name
    return None


def resolve_checkpoint(path: str | os.PathLike | None) -> Path:
    """A checkpoint file from a file, a run directory (its best, else last), or None (newest run)."""
    if path is None:
        run = newest_run_dir()
        if run is None:
            raise MidigenError(f"no trained model found under {checkpoints_dir()}/: run "
                               "`midigen train` or `midigen demo` first, or pass a checkpoint")
        return _run_file(run)
    path = Path(path)
    if path.is_dir():
        found = _run_file(path)
        if found is None:
            raise MidigenError(f"{path} holds no best.pt or last.pt: not a training run folder")
        return found
    if not path.exists():
        raise MidigenError(f"checkpoint {path} does not exist")
    return path


def load_checkpoint(path: str | os.PathLike | None) -> Checkpoint:
    """Read a checkpoint (file, run dir or None for the newest run) without executing code."""
    path = resolve_checkpoint(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same one line
        # torch's own messages run to paragraphs; the kind of failure is what helps here.
        reason = ("a PyTorch file holding Python objects, which midigen never unpickles"
                  if zipfile.is_zipfile(path) and "weights_only" in str(e).lower()
                  else "not a PyTorch file, or damaged")
        raise MidigenError(f"{path} is not a midigen checkpoint ({reason})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_NAME:
        raise MidigenError(f"{path} is not a midigen checkpoint")
    found = payload.get("format_version")
    if found != FORMAT_VERSION:
        raise MidigenError(
            f"{path} is a checkpoint of format {found} (midigen "
            f"{payload.get('midigen_version', '?')}); this midigen {__version__} reads format "
            f"{FORMAT_VERSION}: retrain or use a matching midigen")
    try:
        return Checkpoint(
            tokenizer_config=TokenizerConfig.from_dict(payload["tokenizer_config"]),
            model_config=ModelConfig.from_dict(payload["model_config"]),
            train_config=payload.get("train_config", {}),
            model_state=payload["model_state"],
            optimizer_state=payload.get("optimizer_state"),
            step=int(payload.get("step", 0)),
            best_valid_loss=payload.get("best_valid_loss"),
            split=payload.get("split", {}),
            corpus_summary=payload.get("corpus_summary", {}),
            metrics=payload.get("metrics", {}),
            rng_state=payload.get("rng_state", {}),
            version=payload.get("midigen_version", "?"),
            path=path,
        )
    except (KeyError, TypeError) as e:
        raise MidigenError(f"{path} is a damaged midigen checkpoint (missing {e})") from None


def load_model(path: str | os.PathLike | None, device: str = "cpu"
               ) -> tuple[MusicRNN, TokenizerConfig, Checkpoint]:
    """The trained model in eval mode on `device`, its tokenizer config, and the checkpoint."""
    ckpt = load_checkpoint(path)
    model = MusicRNN(ckpt.model_config)
    try:
        model.load_state_dict(ckpt.model_state)
    except RuntimeError:
        raise MidigenError(f"{ckpt.path}: weights do not fit the model config it names") from None
    broken = [k for k, v in ckpt.model_state.items()
              if v.is_floating_point() and not bool(torch.isfinite(v).all())]
    if broken:  # it would sample silence and say nothing
        raise MidigenError(f"{ckpt.path}: weights hold NaN or infinite values ({broken[0]}"
                           f"{' and more' if len(broken) > 1 else ''}); the run diverged")
    model.to(device).eval()
    return model, ckpt.tokenizer_config, ckpt
