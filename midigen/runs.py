"""Training runs from a folder of music: what `midigen train` and `demo` do, minus printing.

A run is started from option values (only those the user gave; `defaults` fill the rest), or
resumed from its folder's last.pt, which holds everything needed to carry on. Both read the
corpus with the run's tokenizer settings and hand the pieces to `midigen.train.train`.
"""

from __future__ import annotations

from pathlib import Path

from midigen.errors import MidigenError
from midigen.paths import BUILTIN_CORPUS_NAME, new_run_dir
from midigen.split import split_pieces
from midigen.train import TrainConfig, TrainResult, train


def load_pieces(folder: Path | None, tokenizer_config, console=None, on_note=None):
    """The corpus (None: the built-in chorales) and its pieces of at least two events, with a
    transient progress bar on `console`; a clear error when nothing readable is in it.
    `on_note(line)` hears what the token store repaired on the way."""
    from rich.progress import Progress

    from midigen.corpus import load_corpus
    from midigen.distributed import current_world, main_first

    # Under torchrun, rank 0 builds the token cache first; the others then read it.
    with main_first(current_world()), Progress(console=console, transient=True,
                                               disable=console is None) as bar:
        task = bar.add_task("reading scores", total=None)
        corpus = load_corpus(folder, tokenizer_config,
                             progress=lambda done, total: bar.update(task, completed=done, total=total))
    for note in corpus.summary.get("store_notes", []):
        if on_note is not None:
            on_note(note)
    pieces = [p for p in corpus.pieces if len(p.ids) >= 2]
    if not pieces:
        s = corpus.summary
        reasons = "; ".join(f"{n} {r['count']}x" for n, r in s.get("skipped_by_reason", {}).items())
        raise MidigenError(f"no readable scores in {corpus.folder} ({s.get('files_found', 0)} "
                           f"files found{': ' + reasons if reasons else ''})")
    return corpus, pieces


def run_configs(model_opts: dict, train_opts: dict, token_opts: dict, device: str,
                init=None, defaults: dict | None = None):
    """(TokenizerConfig, ModelConfig, TrainConfig) from the options given and `defaults`
    ({"model": {...}, "train": {...}}); with `init` (a checkpoint to fine-tune) its tokenizer
    and model are kept, and options that contradict them are an error."""
    from midigen.model import ModelConfig
    from midigen.tokenizer import TokenizerConfig, vocabulary

    defaults = defaults or {}
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
                                   **{**defaults.get("model", {}), **model_opts})
    config = TrainConfig(**{**defaults.get("train", {}), **train_opts}, device=device)
    return tokenizer_config, model_config, config


def start_run(corpus: Path | None, model_opts: dict, train_opts: dict, token_opts: dict,
              device: str = "auto", run_dir: Path | None = None, init_from: Path | None = None,
              defaults: dict | None = None, console=None, on_note=None,
              controls: tuple[str, ...] | None = None,
              styles_file: Path | None = None) -> TrainResult:
    """Train a new run on a folder (None: the built-in chorales); run_dir defaults to
    checkpoints/<time>-<corpus name>. `controls` (names from midigen.controls) makes a model
    that can be steered; `styles_file` labels its styles instead of the folders."""
    from midigen.checkpoint import load_checkpoint
    from midigen.distributed import broadcast_object, current_world

    init = load_checkpoint(init_from) if init_from else None
    tokenizer_config, model_config, config = run_configs(model_opts, train_opts, token_opts,
                                                         device, init, defaults)
    loaded, pieces = load_pieces(corpus, tokenizer_config, console, on_note)
    model_config = with_controls(model_config, init, controls, styles_file, pieces,
                                 tokenizer_config, config)
    name = BUILTIN_CORPUS_NAME if corpus is None else Path(loaded.folder).name
    # Under torchrun every rank must name the same folder: rank 0's clock names it.
    run_dir = broadcast_object(run_dir or new_run_dir(name), current_world())
    result = train(pieces, tokenizer_config, model_config, config, run_dir,
                   corpus_source=None if corpus is None else str(loaded.folder),
                   corpus_summary=loaded.summary, init_from=init, console=console,
                   on_note=on_note)
    result.pieces, result.config, result.tokenizer_config = pieces, config, tokenizer_config
    return result


def with_controls(model_config, init, controls, styles_file, pieces, tokenizer_config, config):
    """The model config with its ControlSpec built from the pieces, when controls are asked."""
    from dataclasses import replace

    if styles_file is not None and not controls:
        raise MidigenError("--styles labels the style control: add --controls style")
    if not controls:
        return model_config
    if init is not None:
        raise MidigenError("--init-from keeps the checkpoint's model and its controls; "
                           "drop --controls")
    from midigen.controls_train import build_spec

    spec = build_spec(controls, pieces, tokenizer_config, config.seq_len,
                      None if styles_file is None else str(Path(styles_file).resolve()),
                      config.seed)
    return replace(model_config, controls=spec.to_dict())


def resume_run(run_dir: Path, device: str = "auto", console=None, on_note=None) -> TrainResult:
    """Continue a run exactly where its last.pt stopped (only the device may change)."""
    from midigen.checkpoint import load_checkpoint

    if not (run_dir / "last.pt").is_file():
        raise MidigenError(f"{run_dir} has no last.pt to resume from")
    ckpt = load_checkpoint(run_dir / "last.pt")
    source = ckpt.train_config.get("corpus")
    config = TrainConfig.from_dict({**ckpt.train_config, "device": device})
    loaded, pieces = load_pieces(Path(source) if source else None, ckpt.tokenizer_config,
                                 console, on_note)
    total_steps = ckpt.train_config.get("total_steps")  # None: a --minutes run not yet planned
    if total_steps is not None and ckpt.step >= total_steps:
        raise MidigenError(f"{run_dir} already finished its {ckpt.step} steps; start a new run "
                           "with --init-from to train further")
    if console is not None:
        console.print(f"resuming {run_dir} at step {ckpt.step}")
    result = train(pieces, ckpt.tokenizer_config, ckpt.model_config, config, run_dir,
                   corpus_source=source, corpus_summary=loaded.summary, resume_from=ckpt,
                   console=console, on_note=on_note)
    result.pieces, result.config, result.tokenizer_config = pieces, config, ckpt.tokenizer_config
    return result


def run_baselines(result: TrainResult) -> dict:
    """Unigram and bigram NLL/event on the run's own split: what the model must clearly beat."""
    from midigen.baselines import split_baselines
    from midigen.tokenizer import vocabulary

    train_p, valid_p = split_pieces(result.pieces, result.config.valid_fraction,
                                    result.config.seed, result.split_by)
    size = vocabulary(result.tokenizer_config).size
    ids = lambda ps: [p.ids.astype("int64") for p in ps]
    return {f"{name} baseline": nll
            for name, nll in split_baselines(ids(train_p), ids(valid_p), size).items()}
