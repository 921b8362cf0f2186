"""`midigen sample`: new MIDI pieces from a trained model.

Thin on purpose: declare the options, call `midigen.sample.sample_to_files`, print a table.
torch is imported inside the command so `midigen --help` and other commands start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import app, out, print_json
from midigen.errors import MidigenError

_SAMPLING = "Sampling"
_LENGTH = "Length"
_OUTPUT = "Output"
_CONTROLS = "Controls (a model trained with --controls; any subset)"


# Checks raise MidigenError, which app.py turns into one line and exit 1.
def _positive(name: str):
    def check(value):
        if value is not None and not value > 0:
            raise MidigenError(f"{name} must be above 0 (got {value})")
        return value
    return check


def _top_p(value):
    if value is not None and not 0.0 < value <= 1.0:
        raise MidigenError(f"--top-p must be in (0, 1] (got {value})")
    return value


@app.command()
def sample(
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", "-c", help="Checkpoint file, or a run folder (its best). "
        "Default: best of the newest run under checkpoints/.")] = None,
    temperature: Annotated[float, typer.Option(
        "--temperature", "-t", callback=_positive("--temperature"), rich_help_panel=_SAMPLING,
        help="Above 0. Lower is more conservative and repetitive, higher more adventurous; "
        "1.0 samples the model as trained.")] = 1.0,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", min=1, rich_help_panel=_SAMPLING,
        help="Draw only from the K most likely next events.")] = None,
    top_p: Annotated[float | None, typer.Option(
        "--top-p", callback=_top_p, rich_help_panel=_SAMPLING,
        help="Draw only from the most likely events that together hold this probability "
        "(nucleus sampling), in (0, 1].")] = None,
    num: Annotated[int, typer.Option(
        "--num", "-n", min=1, rich_help_panel=_SAMPLING,
        help="How many pieces (sampled together as one batch).")] = 1,
    seed: Annotated[int | None, typer.Option(
        "--seed", min=0, rich_help_panel=_SAMPLING,
        help="Same seed and options give byte-identical files. Default: a fresh one, "
        "printed at the end.")] = None,
    max_events: Annotated[int | None, typer.Option(
        "--max-events", min=1, rich_help_panel=_LENGTH,
        help="Stop a piece after this many new events. With neither this nor --seconds, a "
        "piece ends when the model says END, at lengths the training music has (see README).")] = None,
    seconds: Annotated[float | None, typer.Option(
        "--seconds", callback=_positive("--seconds"), rich_help_panel=_LENGTH,
        help="Stop a piece after this many seconds of new music.")] = None,
    min_seconds: Annotated[float | None, typer.Option(
        "--min-seconds", min=0.0, rich_help_panel=_LENGTH,
        help="Do not let a piece end (END) before this many seconds of new music (default "
        "with no length given: the training pieces' 5th-percentile length).")] = None,
    primer: Annotated[Path | None, typer.Option(
        "--primer", exists=True, dir_okay=False, rich_help_panel=_LENGTH,
        help="Continue the opening of this score (MIDI, MusicXML, ABC, ...).")] = None,
    primer_seconds: Annotated[float | None, typer.Option(
        "--primer-seconds", callback=_positive("--primer-seconds"), rich_help_panel=_LENGTH,
        help="How much of the primer's opening to keep (default: all of it).")] = None,
    out_dir: Annotated[Path, typer.Option(
        "--out", "-o", file_okay=False, rich_help_panel=_OUTPUT,
        help="Folder for the MIDI files (sample-001.mid, ...).")] = Path("samples"),
    no_constrain: Annotated[bool, typer.Option(
        "--no-constrain", rich_help_panel=_SAMPLING,
        help="Sample the model's raw choices. By default only events that make sense are "
        "drawn: no note-off of a silent pitch, no note-on of a pitch already sounding.")
    ] = False,
    force: Annotated[bool, typer.Option(
        "--force", rich_help_panel=_OUTPUT,
        help="Number files from 001, overwriting; without it the next free numbers are used.")
    ] = False,
    as_json: Annotated[bool, typer.Option(
        "--json", rich_help_panel=_OUTPUT, help="Print the files written as JSON.")] = False,
    device: Annotated[str, typer.Option(
        rich_help_panel=_SAMPLING, help="cpu, cuda, mps or auto. A model trained on any "
        "device samples on any other.")] = "cpu",
    render: Annotated[bool, typer.Option(
        "--render", rich_help_panel=_OUTPUT,
        help="Also render each piece to a WAV (FluidSynth) and a piano-roll PNG.")] = False,
    style: Annotated[str | None, typer.Option(
        "--style", rich_help_panel=_CONTROLS,
        help="Play like this style of the training corpus (a folder name, or a label from "
        "its --styles file; `midigen inspect` lists them).")] = None,
    key: Annotated[str | None, typer.Option(
        "--key", rich_help_panel=_CONTROLS,
        help="Play in this key: a tonic and a mode, e.g. \"D minor\", \"F# major\", \"Bbm\".")] = None,
    density: Annotated[float | None, typer.Option(
        "--density", rich_help_panel=_CONTROLS,
        help="About this many notes per second (the model's nearest density bin).")] = None,
    instruments: Annotated[str | None, typer.Option(
        "--instruments", rich_help_panel=_CONTROLS,
        help="Play on these instruments, comma-separated GM names or numbers, e.g. "
        "\"piano,violin\" or \"0,40\" or \"drums\" (those the model was trained on).")] = None,
    guidance: Annotated[float | None, typer.Option(
        "--guidance", rich_help_panel=_CONTROLS, min=0.0, max=10.0,
        help="How hard to follow the asked style and key: 1 plays the model as trained, "
        "more follows them harder and strays further from the corpus (classifier-free "
        "guidance; twice the sampling work). Default when a style or key is asked: 2.")] = None,
    report: Annotated[bool, typer.Option(
        "--report", rich_help_panel=_OUTPUT,
        help="Also write a page to listen to and compare the pieces in the output folder: "
        "OUT/report/index.html (see `midigen report`).")] = False,
) -> None:
    """Write new pieces of music as MIDI files, sampled from a trained model."""
    if primer_seconds is not None and primer is None:
        raise MidigenError("--primer-seconds needs --primer FILE")
    from midigen.device import pick_device
    from midigen.sample import sample_to_files

    rows = sample_to_files(checkpoint, out_dir, num=num, max_events=max_events, seconds=seconds,
                           temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                           primer=primer, primer_seconds=primer_seconds, force=force,
                           constrain=not no_constrain, min_seconds=min_seconds,
                           device=str(pick_device(device)),
                           controls={"style": style, "key": key, "density": density,
                                     "instruments": instruments}, guidance=guidance)
    rendered = []
    if render:
        from midigen.render import render_samples

        # [(wav or None, png)], one pair per MIDI file; no wav for a piece without notes
        rendered = [p for pair in render_samples([Path(r["path"]) for r in rows])
                    for p in pair if p is not None]
    page = None
    if report:
        from midigen.report import write_report

        page = write_report([out_dir], out_dir / "report", force=True)
    if as_json:
        print_json({"seed": rows[0]["seed"] if rows else seed,
                    "files": rows, "rendered": [str(p) for p in rendered],
                    **({"report": str(page.index)} if page else {})})
        return
    print_samples_table(rows, rendered)
    if page:
        from midigen.cli.report import print_report_location

        print_report_location(page)


def print_samples_table(rows: list[dict], rendered) -> None:
    from rich.table import Table

    folder = Path(rows[0]["path"]).parent if rows else ""
    table = Table(title=f"{len(rows)} piece{'s' if len(rows) != 1 else ''} written to {folder}")
    # Every column but instruments keeps its width; instruments is cut with "…" to fit.
    cells = [[Path(r["path"]).name, _duration(r["duration_s"]), str(r["notes"]), str(r["events"]),
              _instruments_cell(r["instruments"]), str(sum(r["repairs"].values())),
              r.get("stop", "END" if r["ended"] else "limit")] for r in rows]
    headers = ("file", "duration", "notes", "events", "instruments", "repairs", "stop")
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(headers)]
    # Rich squeezes every column of a table too wide for the terminal, down to empty ones;
    # instruments alone gives way, to what the others and the borders (3 per column) leave.
    room = out.width - sum(widths) + widths[4] - 3 * len(headers) - 1
    for i, header in enumerate(headers):
        if header == "instruments":
            table.add_column(header, no_wrap=True, overflow="ellipsis", max_width=max(8, room))
        else:
            table.add_column(header, justify="left" if i == 0 or header == "stop" else "right",
                             no_wrap=True, min_width=widths[i])
    for row in cells:
        table.add_row(*row)
    out.print(table)
    if rows:
        out.print(f"seed {rows[0]['seed']} (pass --seed {rows[0]['seed']} to make these again)")
    for path in rendered:
        out.print(f"rendered: {path}")


def _duration(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}:{secs:04.1f}"


def _instruments_cell(names: list[str], shown: int = 3) -> str:
    """The first few instrument names; an untrained model can name dozens."""
    if not names:
        return "-"
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" +{more} more" if more > 0 else "")
