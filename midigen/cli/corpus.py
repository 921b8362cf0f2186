"""`midigen corpus`: read a folder of scores into the token cache and summarise it.

Imports of numpy, symusic, music21 and the library stay inside the command: `midigen corpus`
is benchmarked end to end, start-up included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import ProgressBar, app, err, out, print_json, print_note


@app.command()
def corpus(
    folder: Annotated[Path | None, typer.Argument(
        help="Folder of scores, read recursively. Default: the built-in Bach chorales.",
        file_okay=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as one JSON "
                                          "object.")] = False,
    jobs: Annotated[int | None, typer.Option(help="Processes to read with (default: all "
                                                "cores).", min=1)] = None,
):
    """Read a folder of scores into the token cache and summarise it (files, skips, notes)."""
    from midigen.corpus import load_corpus

    with ProgressBar("reading", enabled=err.is_terminal) as bar:
        result = load_corpus(folder, None, jobs=jobs, progress=bar)
    for note in result.summary.get("store_notes", []):
        print_note(note)
    if as_json:
        print_json(result.summary)
    else:
        _print_summary(result.summary)


def _print_summary(s: dict) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"corpus {s['folder']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("files found", f"{s['files_found']:,}")
    table.add_row("files read", f"{s['files_read']:,}")
    for reason, group in s.get("read_in_part_by_reason", {}).items():  # the file read is short
        examples = escape(", ".join(group["examples"]))
        table.add_row(f"  read in part ({escape(reason)})",
                      f"{group['count']:,}  [dim]e.g. {examples}[/]")
    table.add_row("files skipped", f"{s['files_skipped']:,}")
    for reason, group in s["skipped_by_reason"].items():
        examples = escape(", ".join(group["examples"]))
        table.add_row(f"  {escape(reason)}", f"{group['count']:,}  [dim]e.g. {examples}[/]")
    table.add_row("pieces", f"{s['pieces']:,}")
    table.add_row("notes", f"{s['notes']:,}")
    table.add_row("events", f"{s['events']:,}")
    table.add_row("hours of music", f"{s['hours']:.2f}")
    instruments = list(s["instruments"].items())
    shown = ", ".join(f"{name} ({n})" for name, n in instruments[:8])
    if len(instruments) > 8:
        shown += f", and {len(instruments) - 8} more"
    table.add_row("instruments", shown or "-")
    readers = ", ".join(f"{name} ({n:,})" for name, n in s.get("readers", {}).items())
    table.add_row("read by", readers or "-")
    table.add_row("read now / from cache", f"{s['files_parsed']:,} / {s['files_from_cache']:,}"
                  f"  in {s['seconds']:.2f} s")
    table.add_row("token cache", s["cache"])
    out.print(table)
