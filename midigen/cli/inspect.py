"""`midigen inspect`: what a checkpoint holds (configs, step, losses, size, corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import app, out, print_json


@app.command()
def inspect(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Checkpoint file or run folder (its best). Default: newest run under checkpoints/.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """Show what a checkpoint holds: configs, step, losses, size, corpus, controls."""
    from midigen.checkpoint import load_checkpoint
    from midigen.metrics import MetricsRow

    ckpt = load_checkpoint(checkpoint)
    latest = MetricsRow.from_dict(ckpt.metrics).to_dict() if "step" in ckpt.metrics else {}
    info = {
        "path": str(ckpt.path), "midigen_version": ckpt.version, "step": ckpt.step,
        "total_steps": ckpt.train_config.get("total_steps"),
        "best_valid_nll": ckpt.best_valid_loss, "latest_metrics": latest,
        "parameters": int(sum(t.numel() for t in ckpt.model_state.values())),
        "tokenizer": ckpt.tokenizer_config.to_dict(), "model": ckpt.model_config.to_dict(),
        "training": ckpt.train_config,
        "split": {"train_pieces": len(ckpt.split.get("train", [])),
                  "valid_pieces": len(ckpt.split.get("valid", [])),
                  "valid_fraction": ckpt.split.get("valid_fraction"), "seed": ckpt.split.get("seed"),
                  "by": ckpt.split.get("by", "file"),
                  # the training music's note and piece lengths: the sampler's defaults
                  "lengths": ckpt.split.get("lengths")},
        "corpus": {k: ckpt.corpus_summary.get(k) for k in
                   ("folder", "files_read", "files_skipped", "pieces", "notes", "events", "hours")},
    }
    if ckpt.model_config.controls is not None:
        from midigen.controls import ControlSpec

        info["controls"] = ControlSpec.from_dict(ckpt.model_config.controls).describe()
        info["model"] = {k: v for k, v in info["model"].items() if k != "controls"}
    if as_json:
        print_json(info)
        return
    from rich.table import Table

    table = Table(title=str(ckpt.path), show_header=False)
    table.add_column("section", style="bold")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for key in ("midigen_version", "step", "total_steps", "best_valid_nll", "parameters"):
        table.add_row("", key, f"{info[key]:,}" if isinstance(info[key], int) else str(info[key]))
    shown = {**info, "training": training_rows(info["training"])}
    for section in ("latest_metrics", "tokenizer", "model", "controls", "training", "split",
                    "corpus"):
        for i, (k, v) in enumerate(shown.get(section, {}).items()):
            if isinstance(v, list) and section == "controls":
                v = ", ".join(map(str, v))
            table.add_row(section if i == 0 else "", k, f"{v:.4g}" if isinstance(v, float) else str(v))
    out.print(table)


def training_rows(training: dict) -> dict:
    """The training settings as the table shows them: micro_batch only when the batch was split
    (it did not fit in GPU memory, see midigen.memory), said in words; None is left out."""
    rows = {k: v for k, v in training.items() if k != "micro_batch"}
    micro = training.get("micro_batch")
    if micro:
        world_size = max(1, training.get("world_size") or 1)
        share = f"{training.get('batch_size', 0) // world_size}" + (
            " per process" if world_size > 1 else "")
        rows["micro_batch"] = (f"{micro} windows at a time of the {share} in a step (the batch "
                               "did not fit in GPU memory; gradients accumulated)")
    return rows
