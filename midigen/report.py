"""A listening page: samples and training runs as one self-contained folder with index.html.

Each piece gets a copy of its MIDI file, a piano roll, compressed audio (when FluidSynth is
here), the options and seed that made it (from the NAME.json that `sample` writes beside
NAME.mid) as a command line that makes it again, and its statistics against the training
corpus's spread, with copying flagged. Pieces that differ in temperature, top-p, ... are
grouped by those options, so "which temperature sounds best" is one page. A run adds its
curves, configs, corpus summary, baselines and best checkpoint's numbers.

Everything is referenced relatively inside the folder, so it opens from disk and can be
zipped and shared. The HTML itself is written by `report_html`.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from midigen.errors import MidigenError
from midigen.fileio import write_error
from midigen.report_folder import MARKER, staging_dir, swap_in
from midigen.report_groups import group_pieces, varying_keys

MIDI_SUFFIXES = (".mid", ".midi")
RUN_FILES = ("best.pt", "last.pt", "metrics.jsonl")
# A piece is flagged as copying when it shares this many events in a row with one corpus piece
# (about eight bars of four-part chorale), or when most of its 16-event windows occur there.
COPY_RUN_EVENTS = 256
COPY_SHARE = 0.5


@dataclass
class PieceEntry:
    """One piece on the page: its files (relative to the report) and what is known about it."""

    name: str
    source: Path
    midi: str
    roll: str
    info: dict = field(default_factory=dict)  # the sidecar: options, seed, checkpoint, stop
    audio: str | None = None
    audio_s: float | None = None
    duration_s: float = 0.0
    stats: dict | None = None
    copying: dict | None = None

    @property
    def copies(self) -> bool:
        c = self.copying or {}
        return (c.get("longest_run") or 0) >= COPY_RUN_EVENTS or \
            (c.get("share_found") or 0) >= COPY_SHARE


@dataclass
class Report:
    """What `write_report` made: the page, its pieces in page order, runs, and caveats."""

    index: Path
    groups: list[tuple[str, list[PieceEntry]]]
    runs: list[dict]
    varying: list[str]
    audio_problem: str | None = None
    corpus: dict | None = None  # {"folder", "num_pieces", "spread", "n"} or None
    notes: list[str] = field(default_factory=list)

    @property
    def pieces(self) -> list[PieceEntry]:
        return [p for _, group in self.groups for p in group]


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def default_out_dir(paths: list[Path]) -> Path:
    """PATH/report for one folder (or the folder of one file); else an error asking for --out."""
    folders = {p if p.is_dir() else p.parent for p in map(Path, paths)}
    if len(folders) != 1:
        raise MidigenError("several folders given: say where the report goes with --out FOLDER")
    return folders.pop() / "report"


def make_again_command(info: dict, out_dir: str = "again") -> str:
    """The `midigen sample` line that writes this piece again (as file `index` of `num`)."""
    o = info.get("options", {})
    args = ["midigen", "sample", "-c", info["checkpoint"], "-n", str(o.get("num", 1)),
            "--seed", str(info["seed"]), "-t", f"{o.get('temperature', 1.0):g}"]
    for key, flag in (("top_k", "--top-k"), ("top_p", "--top-p"), ("max_events", "--max-events"),
                      ("seconds", "--seconds"), ("min_seconds", "--min-seconds"),
                      ("primer", "--primer"), ("primer_seconds", "--primer-seconds")):
        if o.get(key) is not None:
            args += [flag, f"{o[key]:g}" if isinstance(o[key], float) else str(o[key])]
    if o.get("constrain") is False:
        args.append("--no-constrain")
    return shlex.join(args + ["-o", out_dir])


def write_report(paths: list, out_dir: Path | str | None = None, force: bool = False,
                 soundfont: Path | str | None = None, against: Path | str | None = None,
                 compare: bool = True, on_progress=None) -> Report:
    """Write OUT/index.html for sample folders, MIDI files and run folders; return the Report.

    OUT (default PATH/report) must not exist, or be an earlier report and `force` given.
    `against` is the corpus to compare with (default: the one the pieces' model learned);
    `compare=False` skips statistics and copying.
    """
    from midigen.render import audio_available

    paths = [Path(p) for p in paths]
    for p in paths:
        if not p.exists():
            raise MidigenError(f"not found: {p}")
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(paths)
    runs = [p for p in paths if is_run_dir(p)]
    midi_files = _midi_files([p for p in paths if p not in runs])
    if not midi_files and not runs:
        raise MidigenError("no MIDI files or training runs found in " +
                           ", ".join(str(p) for p in paths))
    entries = [_entry(f, name) for f, name in zip(midi_files, _unique_names(midi_files))]
    for e in entries:  # the run that made the pieces belongs on the page too
        ckpt = e.info.get("checkpoint")
        if ckpt and is_run_dir(Path(ckpt).parent) and Path(ckpt).parent.resolve() not in \
                {r.resolve() for r in runs}:
            runs.append(Path(ckpt).parent)

    audio_problem = audio_available(soundfont) if entries else None
    staging = staging_dir(out_dir, force)
    try:
        (staging / "media").mkdir()
        (staging / "midi").mkdir()
        (staging / MARKER).write_text("written by midigen report; safe to delete\n")
        total, notes = len(entries) + len(runs), []
        for i, e in enumerate(list(entries)):
            try:
                note = _render_piece(e, staging, soundfont, audio_problem is None)
                notes += [note] if note else []
            except MidigenError as problem:  # one bad file costs its piece, not the page
                entries.remove(e)
                notes.append(f"left out {e.source}: {problem}")
            if on_progress:
                on_progress(i + 1, total)
        if not entries and not runs:
            raise MidigenError("no readable MIDI file: " + "; ".join(notes))
        corpus = None
        if compare and entries:
            corpus, compare_notes = _compare(entries, against, runs)
            notes += compare_notes
        from midigen.report_run import describe_run

        run_info = []
        for k, run in enumerate(runs):
            run_info.append(describe_run(run, staging, f"run{k + 1}"))
            if on_progress:
                on_progress(len(entries) + k + 1, total)
        varying = varying_keys(entries)
        report = Report(staging / "index.html", group_pieces(entries, varying), run_info,
                        varying, audio_problem, corpus, notes)
        from midigen.report_html import page_html

        (staging / "index.html").write_text(page_html(report), encoding="utf-8")
        swap_in(staging, out_dir)
    except BaseException as e:
        shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, OSError):  # a full disk, a folder that went away, ...
            raise write_error(out_dir, e) from None
        raise
    report.index = out_dir / "index.html"
    return report


def _midi_files(paths: list[Path]) -> list[Path]:
    files = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.suffix.lower() in MIDI_SUFFIXES)
            if not found:
                raise MidigenError(f"{p} holds no MIDI files (.mid) and is not a training run")
            files += found
        elif p.suffix.lower() in MIDI_SUFFIXES:
            files.append(p)
        else:
            raise MidigenError(f"{p} is not a MIDI file, a folder of them, or a training run")
    return files


def _unique_names(files: list[Path]) -> list[str]:
    """Names safe in file names and URLs: file stems, prefixed with their folder's name where
    two folders share a stem, numbered where that is not enough."""
    stems = [f.stem for f in files]
    names = [f"{f.parent.name}-{f.stem}" if stems.count(f.stem) > 1 else f.stem for f in files]
    seen: dict[str, int] = {}
    unique = []
    for name in (re.sub(r"[^\w.-]+", "_", n).lstrip(".") or "piece" for n in names):
        seen[name] = seen.get(name, 0) + 1
        unique.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return unique


def _entry(midi: Path, name: str) -> PieceEntry:
    info = {}
    sidecar = midi.with_suffix(".json")
    if sidecar.is_file():
        try:
            info = json.loads(sidecar.read_text())
        except (OSError, ValueError):
            info = {}  # a damaged sidecar only costs the "make it again" line
        if not isinstance(info, dict) or "seed" not in info or "checkpoint" not in info:
            info = {}
    return PieceEntry(name, midi, f"midi/{name}.mid", f"media/{name}.png", info)


def _render_piece(e: PieceEntry, out: Path, soundfont, with_audio: bool) -> str | None:
    """Copy the MIDI file, draw its roll, render its audio; a note when audio failed."""
    from midigen.pianoroll import plot_piano_roll
    from midigen.render import read_notes_for_picture, scan_midi
    from midigen.report_media import AUDIO_SUFFIX, render_compressed

    shutil.copyfile(e.source, out / e.midi)
    scan = scan_midi(e.source)
    e.duration_s = scan.duration_s
    notes = read_notes_for_picture(e.source)
    plot_piano_roll(notes, out / e.roll, title=e.name)
    if with_audio and scan.num_notes:
        try:
            e.audio_s = render_compressed(e.source, out / f"media/{e.name}{AUDIO_SUFFIX}",
                                          soundfont)
            e.audio = f"media/{e.name}{AUDIO_SUFFIX}"
        except MidigenError as problem:
            return f"no audio for {e.source}: {problem}"
    return None


def _compare(entries: list[PieceEntry], against, runs: list[Path]) -> tuple[dict | None, list]:
    """Statistics of each piece, and the corpus's spread and copying when a corpus is found."""
    from midigen.stats_files import stats_report

    corpus_dir = Path(against) if against is not None else _training_corpus(entries, runs)
    notes = []
    if corpus_dir is None or not corpus_dir.is_dir():
        notes.append("no training corpus found to compare with"
                     + (f" ({corpus_dir} is gone)" if corpus_dir else "")
                     + "; pass --against FOLDER")
        corpus_dir = None
    try:
        report = stats_report([e.source for e in entries], against=corpus_dir)
    except MidigenError as e:  # say, no piece has a note
        return None, notes + [f"no statistics: {e}"]
    against_info = report.get("against") or {}
    # Pieces come back in file order under their stems (files without notes left out).
    by_name: dict[str, list] = {}
    copying = against_info.get("copying", {}).get("pieces", [None] * len(report["pieces"]))
    for stats, copies in zip(report["pieces"], copying):
        by_name.setdefault(stats["name"], []).append((stats, copies))
    for e in entries:
        found = by_name.get(e.source.stem)
        if found:
            e.stats, e.copying = found.pop(0)
    if not against_info:
        return None, notes
    return {"folder": against_info["corpus"], "num_pieces": against_info["num_pieces"],
            "spread": against_info["corpus_spread"], "n": against_info["copying"]["n"]}, notes


def _training_corpus(entries: list[PieceEntry], runs: list[Path]) -> Path | None:
    """The folder the pieces' model learned, from its checkpoint's corpus summary."""
    from midigen.checkpoint import load_checkpoint

    ckpts = {e.info["checkpoint"] for e in entries if e.info.get("checkpoint")}
    candidates = sorted(ckpts) + [str(r) for r in runs]
    for c in candidates:
        try:
            ckpt = load_checkpoint(c)
        except MidigenError:
            continue
        folder = ckpt.train_config.get("corpus") or ckpt.corpus_summary.get("folder")
        if folder:
            return Path(folder)
    return None
