"""`midigen decode`: lines of event characters back into MIDI files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import app, check_writable, fail, out
from midigen.errors import MidigenError

MAX_TOKEN_FILE_MB = 64
MAX_DECODE_EVENTS = 1_000_000  # ~15 s and ~300 MB; a 26 MB line took 280 s and 5 GB


def _read_text(path: Path) -> str:
    """A token file's text: UTF-8 (BOM or not) or UTF-16 with a BOM; anything else, and
    binary files, are one clear error instead of a UnicodeDecodeError."""
    if path.stat().st_size > MAX_TOKEN_FILE_MB * 2**20:
        fail(f"{path} is too large for a token file (> {MAX_TOKEN_FILE_MB} MB)")
    data = path.read_bytes()
    encoding = "utf-16" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        fail(f"{path} is not a text file of tokens (not UTF-8 or UTF-16)")
    if "\x00" in text:
        fail(f"{path} is not a text file of tokens (it holds binary data)")
    return text


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
    lines = [s for s in _read_text(tokens).splitlines() if s.strip() and not s.startswith("#")]
    if not lines:
        fail(f"{tokens} holds no token line")
    if line > len(lines):
        fail(f"{tokens} has {len(lines)} token lines, not {line}")
    if len(lines[line - 1]) > MAX_DECODE_EVENTS:
        fail(f"{tokens} line {line} has {len(lines[line - 1]):,} characters; at most "
             f"{MAX_DECODE_EVENTS:,} events are decoded (that is ~250,000 notes)")
    try:
        ids = text_to_ids(lines[line - 1], config)
    except MidigenError as e:
        raise MidigenError(f"{tokens} line {line}: {e}") from None
    decoded = decode_ids(ids, config)
    write_midi(decoded.notes, output)
    details = ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in sorted(decoded.repairs.items()))
    out.print(f"wrote {output}: {len(decoded.notes)} notes, {decoded.num_repairs} repairs"
              + (f" ({details})" if details else ""))
