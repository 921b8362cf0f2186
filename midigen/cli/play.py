"""`midigen play`: hear a MIDI file (or get a WAV of it).

Thin commands: options here, work in midigen.render (imported inside each command so that
`midigen --help` and other commands never pay for numpy/matplotlib start-up).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import app, out

MidiFile = Annotated[Path, typer.Argument(help="A MIDI file (.mid), midigen's or anyone's.",
                                          dir_okay=False)]
Force = Annotated[bool, typer.Option("--force", help="Overwrite an existing output file.")]


@app.command(rich_help_panel="Listen and look")
def play(
    file: MidiFile,
    wav: Annotated[Path | None, typer.Option(
        "--wav", help="Write a 44.1 kHz WAV here instead of playing.", dir_okay=False)] = None,
    soundfont: Annotated[Path | None, typer.Option(
        "--soundfont", help="General MIDI soundfont (.sf2) to use instead of the one found "
        "(FluidR3_GM, $MIDIGEN_SOUNDFONT, ...).")] = None,
    force: Force = False,
) -> None:
    """Play a MIDI file through the speakers with FluidSynth and a General MIDI soundfont.

    With --wav, or when this machine has no audio device, a WAV file is written instead
    (beside the MIDI file unless --wav says where).
    """
    from midigen.render import play_midi

    result = play_midi(file, wav, soundfont, force)
    if result.player:
        out.print(f"played {file.name} ({result.midi_duration_s:.1f} s) through {result.player}")
        return
    audio = result.audio
    out.print(f"wrote {audio.wav_path} ({audio.wav_duration_s:.1f} s at 44.1 kHz, "
              f"{audio.midi_duration_s:.1f} s of music; soundfont {audio.soundfont.name})"
              + ("" if result.reason == "as asked" else f": {result.reason}"))
