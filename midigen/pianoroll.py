"""See music and training: a piano-roll PNG of notes, and the loss curves of a run.

Figures are drawn with matplotlib's object API on the Agg canvas (no pyplot, so no global
state and no display needed), imported inside the functions so that importing midigen
stays fast. Every PNG is written to a temporary file first and then moved into place, so a
reader (an image viewer, the training loop's next evaluation) never sees half a picture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from midigen.audio import prepare_output_path
from midigen.events import pitch_name
from midigen.fileio import atomic_write
from midigen.metrics import MetricsRow

PIANO_ROLL_SIZE_IN = (16.0, 8.0)  # at PIANO_ROLL_DPI: 1600 x 800 pixels, any piece length
PIANO_ROLL_DPI = 100
CURVES_SIZE_IN = (9.0, 5.0)
CURVES_DPI = 100

# Short names for the drum keys people actually meet (GM percussion map, keys 35..81).
GM_DRUM_NAMES = {
    35: "kick 2", 36: "kick", 37: "side stick", 38: "snare", 39: "clap", 40: "snare 2",
    41: "low tom 2", 42: "closed hat", 43: "low tom", 44: "pedal hat", 45: "mid tom 2",
    46: "open hat", 47: "mid tom", 48: "high tom 2", 49: "crash", 50: "high tom", 51: "ride",
    52: "china", 53: "ride bell", 54: "tambourine", 55: "splash", 56: "cowbell", 57: "crash 2",
    59: "ride 2", 69: "cabasa", 70: "maracas", 75: "claves", 76: "wood block",
}


def _save_atomically(fig, path: Path, dpi: int) -> None:
    with atomic_write(path) as f:
        fig.savefig(f, dpi=dpi, format="png", facecolor="white")


def _note_boxes(notes: np.ndarray, height: float = 0.8) -> np.ndarray:
    """One rectangle (4 corners) per note: time across, pitch up.  # (N, 4, 2)"""
    x0, x1 = notes["start_s"], np.maximum(notes["end_s"], notes["start_s"] + 0.02)
    y0 = notes["pitch"].astype(float) - height / 2
    y1 = y0 + height
    return np.stack([np.stack([x0, y0], -1), np.stack([x1, y0], -1),
                     np.stack([x1, y1], -1), np.stack([x0, y1], -1)], axis=1)


def _velocity_alpha(notes: np.ndarray) -> np.ndarray:
    return 0.25 + 0.75 * np.clip(notes["velocity"], 1, 127) / 127


def plot_piano_roll(notes: np.ndarray, path: Path | str, title: str = "",
                    force: bool = True) -> Path:
    """A 1600x800 PNG piano roll: one colour per instrument, drums in their own band below."""
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import to_rgba
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    from midigen.midi_io import instrument_name

    path = prepare_output_path(path, force, "PNG file")
    pitched, drums = notes[~notes["is_drum"]], notes[notes["is_drum"]]
    fig = Figure(figsize=PIANO_ROLL_SIZE_IN, dpi=PIANO_ROLL_DPI)
    if len(drums):
        grid = fig.add_gridspec(2, 1, height_ratios=(4, 1), hspace=0.06)
        ax, drum_ax = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
        drum_ax.sharex(ax)
    else:
        ax, drum_ax = fig.add_subplot(1, 1, 1), None
    end_s = float(notes["end_s"].max()) if len(notes) else 1.0
    programs = sorted(set(pitched["program"].tolist()))
    palette = _palette(len(programs))
    legend = []
    for colour, program in zip(palette, programs):
        chosen = pitched[pitched["program"] == program]
        faces = np.array([to_rgba(colour)] * len(chosen))
        faces[:, 3] = _velocity_alpha(chosen)
        ax.add_collection(PolyCollection(_note_boxes(chosen), facecolors=faces,
                                         edgecolors="none"))
        legend.append(Patch(color=colour, label=f"{instrument_name(program)} ({len(chosen)})"))
    if len(pitched):
        low, high = int(pitched["pitch"].min()) - 2, int(pitched["pitch"].max()) + 2
    else:
        low, high = 48, 72
    ax.set_ylim(low - 0.5, high + 0.5)
    ax.set_xlim(0, end_s * 1.01)
    c_keys = [p for p in range(low, high + 1) if p % 12 == 0]
    ax.set_yticks(c_keys, [pitch_name(p) for p in c_keys])
    ax.grid(axis="y", color="0.85", linewidth=0.6)
    ax.grid(axis="x", color="0.92", linewidth=0.5)
    ax.set_axisbelow(True)
    ax.set_ylabel("pitch")
    if not len(notes):
        ax.text(0.5, 0.5, "no notes", transform=ax.transAxes, ha="center", va="center")
    if drum_ax is not None:
        keys = sorted(set(drums["pitch"].tolist()))
        rows = np.searchsorted(keys, drums["pitch"])  # one row per drum key in use
        drum_colours = np.array([to_rgba("0.15")] * len(drums))
        drum_colours[:, 3] = _velocity_alpha(drums)
        drum_ax.scatter(drums["start_s"], rows, marker="|", s=40, c=drum_colours, linewidths=1.2)
        step = max(1, len(keys) // 8)  # label at most ~8 rows so the band stays readable
        drum_ax.set_yticks(range(0, len(keys), step),
                           [GM_DRUM_NAMES.get(k, f"drum {k}") for k in keys[::step]])
        drum_ax.set_ylim(-0.8, len(keys) - 0.2)
        drum_ax.grid(axis="x", color="0.92", linewidth=0.5)
        drum_ax.set_ylabel("drums")
        drum_ax.set_xlabel("time (s)")
        ax.tick_params(labelbottom=False)
        legend.append(Patch(color="0.15", label=f"Drums ({len(drums)})"))
    else:
        ax.set_xlabel("time (s)")
    if legend:
        ax.legend(handles=legend, loc="upper right", fontsize=8, framealpha=0.85,
                  ncols=1 + len(legend) // 9)
    ax.set_title(title or path.stem, loc="left", fontsize=11)
    fig.subplots_adjust(left=0.075, right=0.98, top=0.94, bottom=0.07)
    _save_atomically(fig, path, PIANO_ROLL_DPI)
    return path


def _palette(count: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


def plot_training_curves(rows: list[MetricsRow], path: Path | str) -> Path:
    """curves.png: training and validation loss against step, with tokens seen on top.

    `rows` are the run's metrics rows (midigen.metrics.MetricsRow); validation is drawn from
    the rows that carry an evaluation. Called at every evaluation, so it overwrites the
    previous picture, atomically.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import EngFormatter

    path = prepare_output_path(path, force=True, what="PNG file")
    steps = np.array([r.step for r in rows], dtype=float)
    train = np.array([np.nan if r.train_loss is None else r.train_loss for r in rows],
                     dtype=float)
    valid_rows = [r for r in rows if r.is_eval]
    fig = Figure(figsize=CURVES_SIZE_IN, dpi=CURVES_DPI)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(steps, train, color="tab:blue", linewidth=1.4, label="training loss")
    if valid_rows:
        ax.plot([r.step for r in valid_rows], [r.valid_nll for r in valid_rows],
                color="tab:orange", marker="o", markersize=3, linewidth=1.4,
                label="validation loss")
        best = min(valid_rows, key=lambda r: r.valid_nll)
        ax.annotate(f"best {best.valid_nll:.3f}", (best.step, best.valid_nll),
                    textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8,
                    color="tab:orange")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (nats per token)")
    ax.grid(color="0.9")
    if rows:
        ax.legend(loc="upper right")
    else:
        ax.text(0.5, 0.5, "no evaluations yet", transform=ax.transAxes, ha="center")
    tokens = np.array([r.tokens or 0 for r in rows], dtype=float)
    if len(rows) >= 2 and np.all(np.diff(steps) > 0) and np.all(np.diff(tokens) > 0):
        top = ax.secondary_xaxis("top", functions=(lambda s: _extrapolate(s, steps, tokens),
                                                   lambda t: _extrapolate(t, tokens, steps)))
        top.xaxis.set_major_formatter(EngFormatter())
        top.set_xlabel("tokens seen")
    elif rows:
        ax.set_title(f"{EngFormatter()(tokens[-1])} tokens seen", fontsize=9, loc="right")
    fig.tight_layout()
    _save_atomically(fig, path, CURVES_DPI)
    return path


def _extrapolate(x, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """np.interp that continues the end slopes, so the secondary axis maps the margins too."""
    x = np.asarray(x, dtype=float)
    y = np.interp(x, xp, fp)
    first, last = (fp[1] - fp[0]) / (xp[1] - xp[0]), (fp[-1] - fp[-2]) / (xp[-1] - xp[-2])
    y = np.where(x < xp[0], fp[0] + (x - xp[0]) * first, y)
    return np.where(x > xp[-1], fp[-1] + (x - xp[-1]) * last, y)
