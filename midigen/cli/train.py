"""`midigen train`: learn a folder of music (the work is in midigen.runs and midigen.train).

torch and the corpus reader are imported inside the commands so `midigen --help` stays fast.
Budgets: give at most one of --steps, --epochs, --minutes (two is an error, since either
would silently cut the other's cosine schedule short); with none, 2000 steps.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import EXIT_USAGE, app, fail, out, print_note
from midigen.errors import MidigenError
from midigen.stopping import exit_code

_MODEL, _TRAIN, _TOKENS, _RUN = "Model", "Training", "Tokenizer", "Run folder"
_CONTROLS = "Controls"


def _control_names(value: str | None):
    """--controls checked before anything is read: a bad name is one line and exit 2 (usage)."""
    if value is None:
        return None
    from midigen.controls import parse_control_names

    try:
        return ",".join(parse_control_names(value))
    except MidigenError as e:
        fail(f"--controls: {e}", EXIT_USAGE)


class Cell(str, enum.Enum):
    lstm = "lstm"
    gru = "gru"


class SplitBy(str, enum.Enum):
    auto = "auto"
    file = "file"
    folder = "folder"
    name = "name"


class Device(str, enum.Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"
    mps = "mps"


class Precision(str, enum.Enum):
    auto = "auto"
    bf16 = "bf16"
    fp32 = "fp32"


def _opt(help_text: str, panel: str, **kw):
    return typer.Option(help=help_text, rich_help_panel=panel, **kw)


@app.command()
def train(
    corpus: Annotated[Path | None, typer.Argument(
        help="Folder of scores (MIDI, MusicXML, kern, ABC). Default: the built-in Bach chorales.",
        file_okay=False)] = None,
    layers: Annotated[int | None, _opt("Stacked recurrent layers (default 3).", _MODEL, min=1)] = None,
    hidden: Annotated[int | None, _opt("Units per layer (default 512).", _MODEL, min=1)] = None,
    embed: Annotated[int | None, _opt("Event embedding size (default 256).", _MODEL, min=1)] = None,
    dropout: Annotated[float | None, _opt("Dropout (default 0.1).", _MODEL, min=0.0, max=0.9)] = None,
    cell: Annotated[Cell | None, _opt("Recurrent cell (default lstm).", _MODEL)] = None,
    seq_len: Annotated[int | None, _opt("Events per training window (default 256).", _TRAIN, min=2)] = None,
    batch_size: Annotated[int | None, _opt("Windows per step (default 32).", _TRAIN, min=1)] = None,
    lr: Annotated[float | None, _opt("Peak learning rate (default 6e-3).", _TRAIN, min=0.0)] = None,
    steps: Annotated[int | None, _opt("Budget in optimizer steps (default 2000).", _TRAIN, min=1)] = None,
    epochs: Annotated[float | None, _opt("Budget in passes over the training events.", _TRAIN, min=0.0)] = None,
    minutes: Annotated[float | None, _opt("Budget in minutes of wall-clock time.", _TRAIN, min=0.0)] = None,
    eval_every: Annotated[int | None, _opt("Validate every N steps (default 250).", _TRAIN, min=1)] = None,
    valid_fraction: Annotated[float | None, _opt("Share of files held out (default 0.1).", _TRAIN)] = None,
    valid_events: Annotated[int | None, _opt("Validation events scored at each --eval-every, a fixed "
                                              "sample (default: a few % of training time); the end "
                                              "of training scores all.", _TRAIN, min=2)] = None,
    split_by: Annotated[SplitBy | None, _opt("Which files are versions of one piece and stay on one side: "
                                             "folder, name, file, or auto (small leaf folders, else name; default).", _TRAIN)] = None,
    seed: Annotated[int | None, _opt("Seed for split, data order, init (default 0).", _TRAIN, min=0)] = None,
    transpose: Annotated[int | None, _opt("Random transposition, +- semitones (default 3).", _TRAIN, min=0, max=12)] = None,
    time_stretch: Annotated[float | None, _opt("Add copies F faster and slower, e.g. 0.05.", _TRAIN, min=0.0)] = None,
    device: Annotated[Device, _opt("Where to train (auto: cuda > mps > cpu).", _TRAIN)] = Device.auto,
    precision: Annotated[Precision, _opt(
        "Training steps in bf16 autocast or fp32. auto: bf16 on GPUs from Ampere (A100, RTX 30) "
        "on and on CPUs with AMX (2-2.7x faster there), fp32 elsewhere. May change on --resume.",
        _TRAIN)] = Precision.auto,
    steps_per_second: Annotated[int | None, _opt("Time grid (default 100).", _TOKENS, min=1)] = None,
    velocity_bins: Annotated[int | None, _opt("Loudness levels (default 32).", _TOKENS, min=1, max=127)] = None,
    no_programs: Annotated[bool, typer.Option("--no-programs", help="One piano-like part; drops drums.", rich_help_panel=_TOKENS)] = False,
    run_dir: Annotated[Path | None, _opt("Where best.pt / last.pt go (default checkpoints/<time>-<corpus>).", _RUN)] = None,
    resume: Annotated[Path | None, _opt("Continue this run folder exactly where it stopped.", _RUN, exists=True, file_okay=False)] = None,
    init_from: Annotated[Path | None, _opt("Start from this checkpoint's weights (fine-tune).", _RUN, exists=True)] = None,
    controls: Annotated[str | None, typer.Option(
        "--controls", rich_help_panel=_CONTROLS, callback=_control_names,
        help="Learn controls to steer sampling by, comma-separated (or all): style (the "
        "first folder under the corpus, or --styles), key (written in the score, else heard "
        "in the notes), density (notes per second, 8 bins from the corpus), instruments (the "
        "GM programs / drums a piece uses). Each is hidden at random while training, so any "
        "subset can be given to `midigen sample`. Default: none (a model without controls, "
        "as before).")] = None,
    styles: Annotated[Path | None, typer.Option(
        "--styles", rich_help_panel=_CONTROLS, exists=True, dir_okay=False,
        help="Style labels instead of folders: a CSV of `file,style` lines or a JSON object "
        "{file: style}; a file is named by its path under the corpus, file name or stem.")] = None,
    gpus: Annotated[int | None, typer.Option(
        "--gpus", "--nproc", min=1, rich_help_panel=_TRAIN,
        help="Train one model with N processes on this machine (one per GPU, DDP); starts "
        "torchrun for you. Without CUDA: N CPU processes. --batch-size stays the global batch.")] = None,
) -> None:
    """Learn a folder of music; writes best.pt, last.pt and metrics.jsonl in a run folder.

    Under torchrun (`torchrun --nproc-per-node N -m midigen train ...`, or --gpus N) the N
    processes train one model together; --batch-size is the global batch, split evenly.
    """
    if gpus is not None and gpus > 1:
        from midigen.launch import launch

        raise typer.Exit(launch(gpus, device.value))
    model_opts = {"layers": layers, "hidden": hidden, "embed_dim": embed, "dropout": dropout,
                  "cell": cell.value if cell else None}
    train_opts = {"seq_len": seq_len, "batch_size": batch_size, "lr": lr, "steps": steps,
                  "epochs": epochs, "minutes": minutes, "eval_every": eval_every,
                  "valid_fraction": valid_fraction, "split_by": split_by.value if split_by else None,
                  "valid_events": valid_events, "seed": seed, "transpose": transpose,
                  "time_stretch": time_stretch}
    token_opts = {"steps_per_second": steps_per_second, "num_velocity_bins": velocity_bins,
                  "use_programs": False if no_programs else None}
    given = lambda d: {k: v for k, v in d.items() if v is not None}
    extra = [*given(model_opts), *given(train_opts), *given(token_opts),
             *(["controls"] if controls else []), *(["styles"] if styles else [])]
    if resume is not None and (corpus or run_dir or init_from or extra):
        raise MidigenError("--resume continues a run with its own corpus and settings; "
                           f"drop {', '.join(extra) or 'the other options'} "
                           "(only --device and --precision may change)")
    from midigen.device import set_precision
    from midigen.distributed import session
    from midigen.runs import resume_run, start_run
    from midigen.threads import use_all_cores

    use_all_cores()
    set_precision(precision.value)
    with session(device.value) as (world, _):  # under torchrun: join the other ranks
        console = out if world.is_main else None  # one voice: rank 0's
        note = print_note if world.is_main else None
        if resume is not None:
            result = resume_run(resume, device.value, console=console, on_note=note)
        else:
            result = start_run(corpus, given(model_opts), given(train_opts), given(token_opts),
                               device.value, run_dir, init_from, console=console, on_note=note,
                               controls=tuple(controls.split(",")) if controls else None,
                               styles_file=styles)
    if world.is_main:
        report_training(result)
    elif result.interrupted and result.stop_signal is not None:
        raise typer.Exit(exit_code(result.stop_signal))  # as rank 0 does


def report_training(result) -> None:
    """The end-of-training table; after a stop signal, where it stopped, and exit 128+signal."""
    from rich.table import Table

    from midigen.runs import run_baselines

    if result.interrupted:
        out.print(f"stopped at step {result.step}: saved {result.run_dir / 'last.pt'} "
                  f"(continue with: midigen train --resume {result.run_dir})")
        if result.stop_signal is not None:  # 128 + signal, so `train && sample` does not go on
            raise typer.Exit(exit_code(result.stop_signal))
        return
    ev = result.last_eval
    num = lambda v, fmt: format(float("nan") if v is None else v, fmt)
    table = Table(title=f"trained {result.step} steps in {result.elapsed_s / 60:.1f} min")
    table.add_column("")
    table.add_column("value", justify="right")
    rows = [("parameters", f"{result.num_parameters:,}"),
            ("pieces train / valid", f"{result.split_sizes['train_pieces']} / {result.split_sizes['valid_pieces']}"),
            ("events train / valid", f"{result.split_sizes['train_events']:,} / {result.split_sizes['valid_events']:,}"),
            ("train loss (nats/event)", num(ev.train_loss, ".3f")),
            ("valid NLL (nats/event)", num(ev.valid_nll, ".3f")),
            ("best valid NLL", f"{result.best_valid_loss:.3f}"),
            ("valid perplexity", num(ev.valid_ppl, ".2f")),
            ("valid NLL per second", num(ev.valid_nll_per_s, ".2f"))]
    rows += [(k + " (nats/event)", f"{v:.3f}") for k, v in run_baselines(result).items()]
    rows += [("tokens/s", f"{result.tokens_per_s:,.0f}"),
             ("evaluation share of wall time",
              f"{result.eval_s / max(result.elapsed_s, 1e-9):.1%}"),
             ("run folder", str(result.run_dir))]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)
