"""`midigen report`: one page to listen to and look at samples and training runs.

Thin: declare the options, call `midigen.report.write_report`, print where the page is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import ProgressBar, app, err, out, print_json


@app.command(rich_help_panel="Listen and look")
def report(
    paths: Annotated[list[Path], typer.Argument(
        help="Folders of samples (MIDI files and the NAME.json `sample` writes beside them), "
        "MIDI files, and/or training run folders.", exists=True)],
    out_dir: Annotated[Path | None, typer.Option(
        "--out", "-o", file_okay=False,
        help="Folder for index.html and its media (default: PATH/report).")] = None,
    against: Annotated[Path | None, typer.Option(
        "--against", exists=True, file_okay=False,
        help="Corpus to compare the pieces with (default: the one their model learned).")
    ] = None,
    no_stats: Annotated[bool, typer.Option(
        "--no-stats", help="Leave out statistics and the copying check.")] = False,
    soundfont: Annotated[Path | None, typer.Option(
        "--soundfont", exists=True, dir_okay=False,
        help="General MIDI soundfont (.sf2) for the audio.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace an earlier report in the --out folder.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")
    ] = False,
) -> None:
    """Write a page (index.html in its own folder) to hear and see pieces and training runs.

    Per piece: audio, piano roll, MIDI file, how it stopped, the command that makes it again,
    and its statistics against the training corpus with copying flagged; pieces sampled with
    different options are grouped by them. Per run: curves, best checkpoint, baselines,
    configs and corpus. Opens from disk in any browser; zip the folder to share it.
    """
    from midigen.report import write_report

    with ProgressBar("rendering", enabled=err.is_terminal and not as_json) as bar:
        result = write_report(paths, out_dir, force=force, soundfont=soundfont,
                              against=against, compare=not no_stats, on_progress=bar)
    if as_json:
        print_json({"index": str(result.index), "url": result.index.resolve().as_uri(),
                    "pieces": [p.name for p in result.pieces],
                    "runs": [r["path"] for r in result.runs],
                    "audio": result.audio_problem is None, "notes": result.notes})
        return
    print_report_location(result)


def print_report_location(result) -> None:
    """The lines `report`, `sample --report` and `demo` end with: what and where."""
    if result.audio_problem and result.pieces:
        out.print(f"(no audio in the report: {result.audio_problem})")
    for note in result.notes:
        out.print(f"({note})")
    out.print(f"report: {result.index}")
    out.print(f"open it: {result.index.resolve().as_uri()}")
