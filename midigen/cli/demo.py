"""`midigen demo`: the whole path in minutes: learn the Bach chorales, write and render pieces."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import app, out, print_note
from midigen.cli.train import Device, report_training


@app.command()
def demo(
    minutes: Annotated[float, typer.Option(help="Training time (the whole demo adds ~1-2 min).", min=0.1)] = 5.0,
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Folder for the pieces (each demo writes a new subfolder named by its start time).", file_okay=False)] = Path("demo-output"),
    num: Annotated[int, typer.Option("--num", "-n", help="How many pieces.", min=1)] = 4,
    seed: Annotated[int, typer.Option(help="Seed for training and sampling.", min=0)] = 0,
    device: Annotated[Device, typer.Option(help="Where to train.")] = Device.auto,
) -> None:
    """Train a small model on the Bach chorales for a few minutes and write new chorales."""
    began = time.monotonic()
    out_dir = out_dir / time.strftime("%Y%m%d-%H%M%S")  # never overwrite an earlier demo's pieces
    out.print(f"[bold]midigen demo[/]: learning the Bach chorales for {minutes:g} minutes, "
              f"then writing {num} pieces to {out_dir}/")
    from midigen.runs import load_pieces, start_run
    from midigen.threads import use_all_cores
    from midigen.tokenizer import TokenizerConfig

    use_all_cores()
    load_pieces(None, TokenizerConfig(**DEMO_TOKENS), out, print_note)  # a first run builds the corpus (1-3 min)
    # Keep the whole demo under 10 minutes on a fresh machine: sampling and rendering take
    # well under a minute, so training gets what is left of 9 minutes, at most `minutes`.
    left = 9.0 - (time.monotonic() - began) / 60 - 1.0
    train_minutes = max(0.5, min(minutes, left))
    if train_minutes < minutes:
        out.print(f"(building the corpus took a while: training for {train_minutes:.1f} minutes)")
    defaults = {"model": DEMO_MODEL, "train": DEMO_TRAIN}
    result = start_run(None, {}, {"minutes": train_minutes, "seed": seed}, DEMO_TOKENS,
                       device.value, defaults=defaults, console=out, on_note=print_note)
    report_training(result)  # exits 128+signal when a signal (Ctrl-C) stopped training
    if result.interrupted:
        return
    from midigen.sample import sample_to_files

    # No length given: each piece ends when the model says END, at lengths the chorales have
    # (midigen.lengths: not before their 5th-percentile length, cut at their longest).
    rows = sample_to_files(result.run_dir, out_dir, num=num, temperature=DEMO_TEMPERATURE, seed=seed)
    from midigen.cli.sample import print_samples_table
    from midigen.render import audio_available, render_samples

    missing = audio_available()
    render_samples([Path(r["path"]) for r in rows], audio=missing is None)
    print_samples_table(rows, [])
    if missing:
        out.print(f"(no audio rendered: {missing}; piano-roll pictures are beside the MIDI)")
    from midigen.report import write_report

    page = write_report([out_dir], out_dir / "report", force=True)
    out.print(f"done in {(time.monotonic() - began) / 60:.1f} min. Your new chorales are in "
              f"[bold]{out_dir}/[/] (model: {result.run_dir}); listen and compare on "
              f"[bold]{page.index}[/] ({page.index.resolve().as_uri()})")


# Sized so that 5 minutes on 2 CPU cores reach a clearly-better-than-bigram model (see README).
DEMO_MODEL = {"layers": 1, "hidden": 256, "embed_dim": 64, "dropout": 0.0}
DEMO_TRAIN = {"seq_len": 128, "batch_size": 32, "lr": 4e-3, "warmup_steps": 50, "eval_every": 100}
# The chorales are one piano part: without program tokens the model cannot wander between
# instruments (which strands NOTE_OFFs and leaves notes hanging in short runs).
DEMO_TOKENS = {"use_programs": False}
DEMO_TEMPERATURE = 0.8
