"""`midigen train`, `midigen inspect`, `midigen demo`: learn a corpus, look inside a checkpoint.

torch and the corpus reader are imported inside the commands so `midigen --help` stays fast.
Budgets: give at most one of --steps, --epochs, --minutes (two is an error, since either
would silently cut the other's cosine schedule short); with none, 2000 steps.
"""

from __future__ import annotations

import enum
import time
from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import app, err, out, print_json
from midigen.errors import MidigenError
from midigen.stopping import exit_code

_MODEL, _TRAIN, _TOKENS, _RUN = "Model", "Training", "Tokenizer", "Run folder"


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
    lr: Annotated[float | None, _opt("Peak learning rate (default 3e-3).", _TRAIN, min=0.0)] = None,
    steps: Annotated[int | None, _opt("Budget in optimizer steps (default 2000).", _TRAIN, min=1)] = None,
    epochs: Annotated[float | None, _opt("Budget in passes over the training events.", _TRAIN, min=0.0)] = None,
    minutes: Annotated[float | None, _opt("Budget in minutes of wall-clock time.", _TRAIN, min=0.0)] = None,
    eval_every: Annotated[int | None, _opt("Validate every N steps (default 250).", _TRAIN, min=1)] = None,
    valid_fraction: Annotated[float | None, _opt("Share of files held out (default 0.1).", _TRAIN)] = None,
    split_by: Annotated[SplitBy | None, _opt("Which files are versions of one piece and stay on one side: "
                                             "folder, name, file, or auto (small leaf folders, else name; default).", _TRAIN)] = None,
    seed: Annotated[int | None, _opt("Seed for split, data order, init (default 0).", _TRAIN, min=0)] = None,
    transpose: Annotated[int | None, _opt("Random transposition, +- semitones (default 3).", _TRAIN, min=0, max=12)] = None,
    time_stretch: Annotated[float | None, _opt("Add copies F faster and slower, e.g. 0.05.", _TRAIN, min=0.0)] = None,
    device: Annotated[Device, _opt("Where to train (auto: cuda > mps > cpu).", _TRAIN)] = Device.auto,
    steps_per_second: Annotated[int | None, _opt("Time grid (default 100).", _TOKENS, min=1)] = None,
    velocity_bins: Annotated[int | None, _opt("Loudness levels (default 32).", _TOKENS, min=1, max=127)] = None,
    no_programs: Annotated[bool, typer.Option("--no-programs", help="One piano-like part; drops drums.", rich_help_panel=_TOKENS)] = False,
    run_dir: Annotated[Path | None, _opt("Where best.pt / last.pt go (default checkpoints/<time>-<corpus>).", _RUN)] = None,
    resume: Annotated[Path | None, _opt("Continue this run folder exactly where it stopped.", _RUN, exists=True, file_okay=False)] = None,
    init_from: Annotated[Path | None, _opt("Start from this checkpoint's weights (fine-tune).", _RUN, exists=True)] = None,
) -> None:
    """Learn a folder of music; writes best.pt, last.pt and metrics.jsonl in a run folder."""
    model_opts = {"layers": layers, "hidden": hidden, "embed_dim": embed, "dropout": dropout,
                  "cell": cell.value if cell else None}
    train_opts = {"seq_len": seq_len, "batch_size": batch_size, "lr": lr, "steps": steps,
                  "epochs": epochs, "minutes": minutes, "eval_every": eval_every,
                  "valid_fraction": valid_fraction, "split_by": split_by.value if split_by else None,
                  "seed": seed, "transpose": transpose,
                  "time_stretch": time_stretch}
    token_opts = {"steps_per_second": steps_per_second, "num_velocity_bins": velocity_bins,
                  "use_programs": False if no_programs else None}
    given = lambda d: {k: v for k, v in d.items() if v is not None}
    if resume is not None:
        extra = [*given(model_opts), *given(train_opts), *given(token_opts)]
        if corpus or run_dir or init_from or extra:
            raise MidigenError("--resume continues a run with its own corpus and settings; "
                               f"drop {', '.join(extra) or 'the other options'} (only --device may change)")
        result = _resume(resume, device.value)
    else:
        result = _start(corpus, given(model_opts), given(train_opts), given(token_opts),
                        device.value, run_dir, init_from)
    _report(result)


def _load_pieces(folder: Path | None, tokenizer_config):
    """The corpus as token pieces, with a clear line when nothing readable is in it."""
    from rich.progress import Progress

    from midigen.corpus import load_corpus

    with Progress(console=out, transient=True) as bar:
        task = bar.add_task("reading scores", total=None)
        corpus = load_corpus(folder, tokenizer_config,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))
    for note in corpus.summary.get("store_notes", []):
        err.print(f"note: {note}", markup=False, highlight=False)
    pieces = [p for p in corpus.pieces if len(p.ids) >= 2]
    if not pieces:
        s = corpus.summary
        reasons = "; ".join(f"{n} {r['count']}x" for n, r in s.get("skipped_by_reason", {}).items())
        raise MidigenError(f"no readable scores in {corpus.folder} ({s.get('files_found', 0)} "
                           f"files found{': ' + reasons if reasons else ''})")
    return corpus, pieces


def _start(corpus, model_opts, train_opts, token_opts, device, run_dir, init_from, console=out,
           defaults: dict | None = None):
    from midigen.checkpoint import load_checkpoint
    from midigen.model import ModelConfig
    from midigen.paths import new_run_dir
    from midigen.threads import use_all_cores
    from midigen.tokenizer import TokenizerConfig, vocabulary
    from midigen.train import TrainConfig, train

    use_all_cores()
    init = load_checkpoint(init_from) if init_from else None
    if init is not None:
        clash = [k for k, v in token_opts.items() if init.tokenizer_config.to_dict()[k] != v]
        clash += [k for k, v in model_opts.items() if init.model_config.to_dict()[k] != v]
        if clash:
            raise MidigenError(f"--init-from keeps the checkpoint's tokenizer and model; "
                               f"{', '.join(clash)} differ from it: drop those options")
        tokenizer_config, model_config = init.tokenizer_config, init.model_config
    else:
        tokenizer_config = TokenizerConfig(**token_opts)
        model_config = ModelConfig(vocab_size=vocabulary(tokenizer_config).size,
                                   **{**(defaults or {}).get("model", {}), **model_opts})
    config = TrainConfig(**{**(defaults or {}).get("train", {}), **train_opts}, device=device)
    loaded, pieces = _load_pieces(corpus, tokenizer_config)
    name = "bach-chorales" if corpus is None else Path(loaded.folder).name
    run_dir = run_dir or new_run_dir(name)
    result = train(pieces, tokenizer_config, model_config, config, run_dir,
                   corpus_source=None if corpus is None else str(loaded.folder),
                   corpus_summary=loaded.summary, init_from=init, console=console)
    result.pieces, result.config, result.tokenizer_config = pieces, config, tokenizer_config
    return result


def _resume(run_dir: Path, device: str):
    from midigen.checkpoint import load_checkpoint
    from midigen.threads import use_all_cores
    from midigen.train import TrainConfig, train

    use_all_cores()
    if not (run_dir / "last.pt").is_file():
        raise MidigenError(f"{run_dir} has no last.pt to resume from")
    ckpt = load_checkpoint(run_dir / "last.pt")
    source = ckpt.train_config.get("corpus")
    config = TrainConfig.from_dict({**ckpt.train_config, "device": device})
    loaded, pieces = _load_pieces(Path(source) if source else None, ckpt.tokenizer_config)
    total_steps = ckpt.train_config.get("total_steps")  # None: a --minutes run not yet planned
    if total_steps is not None and ckpt.step >= total_steps:
        raise MidigenError(f"{run_dir} already finished its {ckpt.step} steps; start a new run "
                           "with --init-from to train further")
    out.print(f"resuming {run_dir} at step {ckpt.step}")
    result = train(pieces, ckpt.tokenizer_config, ckpt.model_config, config, run_dir,
                   corpus_source=source, corpus_summary=loaded.summary, resume_from=ckpt,
                   console=out)
    result.pieces, result.config, result.tokenizer_config = pieces, config, ckpt.tokenizer_config
    return result


def _baselines(result) -> dict:
    """Unigram and bigram NLL/event on the run's own split: what the model must clearly beat."""
    from midigen.baselines import ngram_nll
    from midigen.split import split_pieces
    from midigen.tokenizer import vocabulary

    train_p, valid_p = split_pieces(result.pieces, result.config.valid_fraction, result.config.seed,
                                    result.split_by)
    size = vocabulary(result.tokenizer_config).size
    ids = lambda ps: [p.ids.astype("int64") for p in ps]
    return {f"{name} baseline": ngram_nll(ids(train_p), ids(valid_p), order, vocab_size=size)
            for order, name in ((1, "unigram"), (2, "bigram"))}


def _report(result) -> None:
    from rich.table import Table

    if result.interrupted:
        out.print(f"stopped at step {result.step}: saved {result.run_dir / 'last.pt'} "
                  f"(continue with: midigen train --resume {result.run_dir})")
        if result.stop_signal is not None:  # so `train && sample` does not go on
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
    rows += [(k + " (nats/event)", f"{v:.3f}") for k, v in _baselines(result).items()]
    rows += [("tokens/s", f"{result.tokens_per_s:,.0f}"), ("run folder", str(result.run_dir))]
    for name, value in rows:
        table.add_row(name, value)
    out.print(table)


@app.command()
def inspect(
    checkpoint: Annotated[Path | None, typer.Argument(
        help="Checkpoint file or run folder (its best). Default: newest run under checkpoints/.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print it as JSON.")] = False,
) -> None:
    """Show what a checkpoint holds: configs, step, losses, size, corpus."""
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
                  "by": ckpt.split.get("by", "file")},
        "corpus": {k: ckpt.corpus_summary.get(k) for k in
                   ("folder", "files_read", "files_skipped", "pieces", "notes", "events", "hours")},
    }
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
    for section in ("latest_metrics", "tokenizer", "model", "training", "split", "corpus"):
        for i, (k, v) in enumerate(info[section].items()):
            table.add_row(section if i == 0 else "", k, f"{v:.4g}" if isinstance(v, float) else str(v))
    out.print(table)


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
    from midigen.tokenizer import TokenizerConfig

    _load_pieces(None, TokenizerConfig(**DEMO_TOKENS))  # a first run builds the corpus (1-3 min)
    # Keep the whole demo under 10 minutes on a fresh machine: sampling and rendering take
    # well under a minute, so training gets what is left of 9 minutes, at most `minutes`.
    left = 9.0 - (time.monotonic() - began) / 60 - 1.0
    train_minutes = max(0.5, min(minutes, left))
    if train_minutes < minutes:
        out.print(f"(building the corpus took a while: training for {train_minutes:.1f} minutes)")
    defaults = {"model": DEMO_MODEL, "train": DEMO_TRAIN}
    result = _start(None, {}, {"minutes": train_minutes, "seed": seed}, DEMO_TOKENS, device.value, None,
                    None, defaults=defaults)
    _report(result)  # exits 130 when Ctrl-C stopped training
    from midigen.sample import sample_to_files

    rows = sample_to_files(result.run_dir, out_dir, num=num, seconds=DEMO_SECONDS,
                           min_seconds=DEMO_MIN_SECONDS, temperature=DEMO_TEMPERATURE, seed=seed)
    from midigen.cli.generate import print_samples_table
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
DEMO_SECONDS = 40.0
DEMO_MIN_SECONDS = 20.0  # a short run's model may say END after a chord or two
DEMO_TEMPERATURE = 0.8
