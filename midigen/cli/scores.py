"""Commands that turn scores into tokens and back: `encode`, `decode`, `corpus`.

Imports of numpy, symusic, music21 and the library stay inside the commands: `midigen corpus`
is benchmarked end to end, start-up included.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import ProgressBar, app, err, fail, out, print_json
from midigen.errors import MidigenError


def _check_writable(path: Path, force: bool) -> None:
    if path.exists() and not force:
        fail(f"{path} already exists (use --force to overwrite)")
    if path.parent and not path.parent.exists():
        fail(f"folder {path.parent} does not exist")


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
        _check_writable(output, force)
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

    _check_writable(output, force)
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
        err.print(f"note: {note}", markup=False, highlight=False)
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
    table.add_row("read now / from cache", f"{s['files_parsed']:,} / {s['files_from_cache']:,}"
                  f"  in {s['seconds']:.2f} s")
    table.add_row("token cache", s["cache"])
    out.print(table)
