"""The sampler's files: a primer score read in, MIDI pieces and NAME.json sidecars out."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from midigen.controls import asked_instruments, asked_row, model_controls
from midigen.errors import MidigenError
from midigen.guidance import guidance_for
from midigen.sample_limits import MAX_SECONDS, check_options, length_limits, stop_reason
from midigen.tokenizer import TokenizerConfig, decode_ids, encode_notes
from midigen.vocabulary import vocabulary


def primer_to_ids(path: str | os.PathLike, config: TokenizerConfig,
                  primer_seconds: float | None = None) -> np.ndarray:
    """The ids of a score's opening (its first piece): START, the events of the first
    `primer_seconds` (all of it when None), no END, so a sampled piece continues it.

    The cut is made in the event line, not on the notes: notes sounding at the cut stay
    open, and the model decides how long they last.
    """
    from midigen.midi_io import read_score

    try:
        pieces = read_score(path)
    except MidigenError as e:  # the reader's reasons are short; say which file
        raise MidigenError(f"primer {path}: {e}") from None
    if not pieces or not len(pieces[0].notes):
        raise MidigenError(f"primer {path} holds no notes")
    ids = encode_notes(pieces[0].notes, config)[:-1]  # drop END
    if len(ids) <= 1:
        raise MidigenError(f"primer {path} holds no notes this model's vocabulary can spell")
    if primer_seconds is not None:
        if not primer_seconds > 0:
            raise MidigenError(f"primer seconds must be above 0 (got {primer_seconds})")
        clock = np.cumsum(vocabulary(config).shift_steps[ids])  # steps after each id
        ids = ids[clock <= round(min(primer_seconds, MAX_SECONDS) * config.steps_per_second)]
    return ids


def next_free_paths(out_dir: Path, count: int, force: bool = False,
                    stem: str = "sample") -> list[Path]:
    """`count` file names sample-001.mid, ... in `out_dir`: the first unused numbers, or
    from 001 overwriting what is there when `force`."""
    paths, number = [], 1
    while len(paths) < count:
        path = out_dir / f"{stem}-{number:03d}.mid"
        if force or not path.exists():
            paths.append(path)
        number += 1
    return paths


def sample_to_files(checkpoint: str | os.PathLike | None, out_dir: str | os.PathLike,
                    num: int = 1, max_events: int | None = None, seconds: float | None = None,
                    temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None, seed: int | None = None,
                    primer: str | os.PathLike | None = None,
                    primer_seconds: float | None = None, force: bool = False,
                    device: str = "cpu", constrain: bool = True,
                    min_seconds: float | None = None, controls: dict | None = None,
                    guidance: float | None = None) -> list[dict]:
    """Sample `num` pieces from a checkpoint (file, run dir, or None for the newest run) and
    write them as MIDI in `out_dir`; one summary dict per file written.

    Each dict: path, duration_s, notes, events, instruments, repairs, ended (True when the
    model chose to end the piece, False when a limit cut it), stop (see stop_reason), seed.
    Lengths not given come from the checkpoint's training lengths (see length_limits). The same dict, with the
    checkpoint and every option, goes beside each piece as NAME.json (see `write_sidecar`),
    so a report can say how to make the piece again. `controls`: what to steer a model
    with controls by ({"style", "key", "density", "instruments"}: any subset, as the CLI
    takes them; midigen.controls.asked_row checks them against the model), followed as hard
    as `guidance` says (midigen.guidance; None: DEFAULT_GUIDANCE when a control is asked).
    """
    from midigen.checkpoint import load_model
    from midigen.device import out_of_memory_as_error
    from midigen.midi_io import instrument_name, write_midi
    from midigen.sample import _prefix, random_seed, sample_ids  # the loop imports this module

    check_options(temperature, top_k, top_p, num, max_events, seconds)
    model, config, ckpt = load_model(checkpoint, device=device)
    controls = {k: v for k, v in (controls or {}).items() if v is not None}
    cond = asked_row(model_controls(model), **controls)
    guidance = guidance_for(guidance, controls)
    primer_ids = None if primer is None else primer_to_ids(primer, config, primer_seconds)
    seed = random_seed() if seed is None else int(seed)
    limits = length_limits(ckpt.split.get("lengths") or {}, seconds, max_events, min_seconds)
    # Not split into smaller batches on running out of memory: the seed's draws are made for
    # the whole batch at once, so a split batch would give other pieces for the same seed.
    with out_of_memory_as_error(f"sampling {num} pieces at once",
                                "sample fewer at a time (-n) with different --seed values"):
        pieces = sample_ids(model, config, num=num, max_events=limits["max_events"],
                            seconds=limits["seconds"], temperature=temperature, top_k=top_k,
                            top_p=top_p, seed=seed, primer_ids=primer_ids, constrain=constrain,
                            min_seconds=limits["min_seconds"], max_note_s=limits["max_note_s"],
                            piece_quantiles_s=limits["piece_quantiles_s"],
                            note_quantiles_s=limits["note_quantiles_s"],
                            cuda_graph=True,  # on CUDA only; the same pieces as the eager step
                            cond=cond, instruments=asked_instruments(cond), guidance=guidance)
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MidigenError(f"cannot create {out_dir} ({e.strerror or e})") from None
    end_id = vocabulary(config).end_id
    num_primer = len(_prefix(primer_ids, vocabulary(config)))
    options = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "num": num,
               "max_events": max_events, "seconds": seconds, "min_seconds": min_seconds,
               "primer": None if primer is None else str(Path(primer).resolve()),
               "primer_seconds": primer_seconds, "constrain": constrain, **controls,
               **({"guidance": guidance} if controls else {}),
               "from_training_lengths": {k: limits[k] for k in ("longest", "max_note_s")
                                         if limits[k] is not None} or None,
               "target_length_s": None if not limits["piece_quantiles_s"] else
               [limits["piece_quantiles_s"][q] for q in ("p5", "p95")]}
    rows = []
    for index, (ids, path) in enumerate(zip(pieces, next_free_paths(out_dir, num, force))):
        decoded = decode_ids(ids, config)
        notes = decoded.notes
        write_midi(notes, path)
        keys = sorted({(bool(d), 0 if d else int(p))
                       for d, p in zip(notes["is_drum"], notes["program"])})
        rows.append({
            "path": str(path),
            "duration_s": round(float(notes["end_s"].max()) if len(notes) else 0.0, 3),
            "notes": len(notes),
            "events": len(ids),
            "instruments": [instrument_name(p, d) for d, p in keys],
            "repairs": {k: int(v) for k, v in sorted(decoded.repairs.items())},
            "ended": bool(len(ids) and ids[-1] == end_id),
            "stop": stop_reason(ids, end_id, num_primer, limits),
            "seed": seed,
        })
        write_sidecar(path, {**rows[-1], "path": path.name, "index": index + 1,
                             "checkpoint": str(Path(ckpt.path).resolve()), "options": options})
    return rows


def write_sidecar(midi_path: Path, info: dict) -> None:
    """NAME.json beside NAME.mid: how the piece was made (checkpoint, options, seed, its place
    `index` in the batch of `options.num`, since a seed makes a whole batch) and how it stopped.
    """
    from midigen import __version__
    from midigen.fileio import atomic_write

    text = json.dumps({"midigen_version": __version__, **info}, indent=2) + "\n"
    with atomic_write(midi_path.with_suffix(".json")) as f:
        f.write(text.encode())
