"""`midigen encode`: a score as lines of event characters (or readable events).

Imports of numpy, symusic, music21 and the library stay inside the commands: `midigen corpus`
is benchmarked end to end, start-up included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import app, check_writable, err
from midigen.errors import MidigenError


@app.command()
def encode(
    file: Annotated[Path, typer.Argument(help="A score: MIDI, MusicXML, kern or ABC.",
                                         exists=True, dir_okay=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o",
                                                   help="Write here instead of the screen.")] = None,
    events: Annotated[bool, typer.Option("--events",
                                         help="Readable events, one per line.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
):
    """Spell a score as tokens: one line of characters per piece (per tune in ABC files)."""
    from midigen.midi_io import read_score
    from midigen.tokenizer import (
        TokenizerConfig,
        encode_notes,
        event_to_str,
        ids_to_events,
        ids_to_text,
    )

    if output is not None:
        check_writable(output, force)
    config = TokenizerConfig()
    try:
        pieces = read_score(file)
    except MidigenError as e:  # the reader's reasons are short; say which file
        raise MidigenError(f"{file}: {e}") from None
    lines = []
    for piece in pieces:
        ids = encode_notes(piece.notes, config)
        if events:
            lines.append(f"# {piece.name}")
            lines += [event_to_str(e, config) for e in ids_to_events(ids, config)]
        else:
            lines.append(ids_to_text(ids, config))
    text = "\n".join(lines) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        from midigen.fileio import atomic_write

        with atomic_write(output) as f:
            f.write(text.encode("utf-8"))
        err.print(f"wrote {output} ({len(lines)} lines)")
