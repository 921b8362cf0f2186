"""`midigen evaluate`: how well a model predicts held-out music.

Heavy imports (torch, numpy, the library) stay inside the commands, so `midigen --help`
and other commands start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import ProgressBar, app, err, fmt_number, out, print_json


@app.command()
def evaluate(
    corpus: Annotated[Path, typer.Argument(help="A folder of scores to score the model on.",
                                           exists=True, file_okay=False)],
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", "-c", help="Checkpoint file or run folder (default: best of the newest run).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, mps or auto.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
):
    """How well a model predicts a corpus: NLL per event, perplexity, bits, NLL per second and per note.

    Every readable piece is scored whole (long windows, state carried), tokenized with the
    model's own settings; notes its vocabulary cannot spell are counted as dropped.
    """
    from midigen.device import pick_device
    from midigen.evaluate import evaluate_corpus
    from midigen.threads import use_all_cores

    use_all_cores()
    with ProgressBar("scoring", enabled=err.is_terminal and not as_json) as bar:
        result = evaluate_corpus(checkpoint, corpus, device=str(pick_device(device)),
                                 on_progress=bar)
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"{result['corpus']} scored by {result['checkpoint']}", show_header=False)
    rows = [
        ("pieces", result["num_pieces"]), ("events scored", result["num_events"]),
        ("NLL / event (nats)", result["nll_per_event"]), ("perplexity", result["perplexity"]),
        ("bits / event", result["bits_per_event"]), ("NLL / second", result["nll_per_second"]),
        ("NLL / note", result["nll_per_note"]), ("notes read", result["notes_read"]),
        ("notes kept", result["notes_kept"]), ("notes dropped (outside vocabulary)",
                                               result["notes_dropped"]),
        ("files skipped", result["files_skipped"]),
        ("training's best valid NLL", result["training_best_valid_nll"]),
    ]
    for name, value in rows:
        table.add_row(name, fmt_number(value))
    out.print(table)
