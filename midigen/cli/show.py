"""`midigen show`: see a MIDI file's piano roll.

A thin command: options here, work in midigen.render (imported inside the command).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import app, out
from midigen.cli.play import Force, MidiFile


@app.command(rich_help_panel="Listen and look")
def show(
    file: MidiFile,
    output: Annotated[Path | None, typer.Option(
        "-o", "--output", help="Where to write the PNG (default: beside the MIDI file).",
        dir_okay=False)] = None,
    force: Force = False,
) -> None:
    """Draw a piano roll of a MIDI file: time across, pitch up, a colour per instrument."""
    from midigen.render import show_midi

    png = show_midi(file, output, force)
    out.print(f"wrote {png} (piano roll, 1600x800)")
