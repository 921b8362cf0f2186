"""`midigen decode`: lines of event characters back into MIDI files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import app, check_writable, fail, out


@app.command()
def decode(
    tokens: Annotated[Path, typer.Argument(help="A text file of token lines from `encode`.",
                                           exists=True, dir_okay=False)],
    output: Annotated[Path, typer.Option("--output", "-o", help="The MIDI file to write.")],
    line: Annotated[int, typer.Option(help="Which token line to decode (1 = first).",
                                      min=1)] = 1,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUTPUT if it exists.")] = False,
):
    """Write a MIDI file from a line of tokens; says how many repairs decoding needed."""
    from midigen.midi_io import write_midi
    from midigen.tokenizer import TokenizerConfig, decode_ids, text_to_ids

    check_writable(output, force)
    config = TokenizerConfig()
    lines = [s for s in tokens.read_text(encoding="utf-8").splitlines()
             if s.strip() and not s.startswith("#")]
    if not lines:
        fail(f"{tokens} holds no token line")
    if line > len(lines):
        fail(f"{tokens} has {len(lines)} token lines, not {line}")
    decoded = decode_ids(text_to_ids(lines[line - 1], config), config)
    write_midi(decoded.notes, output)
    details = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(decoded.repairs.items()))
    out.print(f"wrote {output}: {len(decoded.notes)} notes, {decoded.num_repairs} repairs"
              + (f" ({details})" if details else ""))
