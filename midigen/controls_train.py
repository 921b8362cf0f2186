"""Controls at training time: the spec of a new run, each piece's labels, each window's row.

A run with --controls builds its ControlSpec from the corpus before the model exists (style
names, density bin edges, instruments seen). During training every window gets a row: its
piece's style, key (moved by the window's transposition) and instruments, the density of the
events it predicts, each hidden at random (spec.dropout) so every control stays optional.
Validation scores whole pieces with their piece-level rows (density over the whole piece).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from midigen.controls import (
    DENSITY,
    KEY,
    NUM_INSTRUMENTS,
    STYLE,
    ControlSpec,
    density_bin,
    density_edges,
    density_of_ids,
    load_style_map,
    style_of,
    unknown_row,
)
from midigen.errors import MidigenError
from midigen.keys import NUM_KEYS, estimate_key, transpose_key
from midigen.tokenizer import TokenizerConfig, decode_ids, vocabulary

DENSITY_SAMPLE_WINDOWS = 20_000  # windows measured to place the density bin edges


def window_densities(pieces_ids, config: TokenizerConfig, window: int, limit: int,
                     seed: int = 0) -> np.ndarray:
    """Notes per second of consecutive `window`-event chunks of the pieces (at most `limit`)."""
    vocab = vocabulary(config)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pieces_ids))
    out, total = [], 0
    for i in order.tolist():
        ids = np.asarray(pieces_ids[i])
        n = len(ids) // window
        if n == 0:
            if len(ids) > 2:
                out.append(density_of_ids(ids[None], vocab.note_on_ids, vocab.shift_steps,
                                          config.steps_per_second))
                total += 1
            continue
        chunks = ids[:n * window].reshape(n, window)
        out.append(density_of_ids(chunks, vocab.note_on_ids, vocab.shift_steps,
                                  config.steps_per_second))
        total += n
        if total >= limit:
            break
    return np.concatenate(out) if out else np.zeros(0)


def build_spec(names, pieces, config: TokenizerConfig, seq_len: int,
               styles_file: str | None = None, seed: int = 0) -> ControlSpec:
    """The ControlSpec of a new run on `pieces` (objects with .name .file .ids .programs)."""
    mapping = load_style_map(styles_file) if styles_file else None
    styles: tuple[str, ...] = ()
    if "style" in names:
        styles = tuple(sorted({s for p in pieces if (s := style_of(p, mapping)) is not None}))
        if not styles:
            where = ("the styles file names none of the corpus's files" if mapping else
                     "every piece lies at the corpus root; put pieces in one folder per "
                     "style, or give --styles FILE")
            raise MidigenError(f"the style control needs styles: {where}")
    edges: tuple[float, ...] = ()
    if "density" in names:
        edges = density_edges(window_densities([p.ids for p in pieces], config, seq_len,
                                               DENSITY_SAMPLE_WINDOWS, seed))
    instruments = tuple(sorted({int(k) for p in pieces for k in p.programs}))
    return ControlSpec(names=tuple(names), styles=styles, density_edges=edges,
                       instruments=instruments, styles_file=styles_file)


@dataclass
class PieceControls:
    """Per piece: style index, key index (unknown = their sizes), instruments multi-hot."""

    style: np.ndarray  # (P,) int64
    key: np.ndarray  # (P,) int64
    instruments: np.ndarray  # (P, 129) uint8
    density: np.ndarray  # (P,) int64: density bin of the whole piece

    def repeat_each(self, times: int) -> PieceControls:
        """Each piece's labels `times` over, as stretch_pieces lays out its copies."""
        return PieceControls(*(np.repeat(a, times, axis=0) for a in
                               (self.style, self.key, self.instruments, self.density)))

    def join(self, other: PieceControls) -> PieceControls:
        return PieceControls(*(np.concatenate([a, b]) for a, b in zip(
            (self.style, self.key, self.instruments, self.density),
            (other.style, other.key, other.instruments, other.density))))

    def rows(self, spec: ControlSpec, pieces: np.ndarray | None = None) -> np.ndarray:
        """(P, COND_WIDTH) rows with every control the spec knows given, of all pieces or of
        those indexed (a batch's: a table of every piece would be 1 KB each, per step)."""
        pieces = np.arange(len(self.style)) if pieces is None else np.asarray(pieces)
        out = np.tile(unknown_row(spec), (len(pieces), 1))
        if "style" in spec.names:
            out[:, STYLE] = self.style[pieces]
        if "key" in spec.names:
            out[:, KEY] = self.key[pieces]
        if "density" in spec.names:
            out[:, DENSITY] = self.density[pieces]
        if "instruments" in spec.names:
            out[:, 3:] = self.instruments[pieces]
        return out


def piece_key_of(piece, config: TokenizerConfig) -> int | None:
    """The key stored at ingest, else heard in the piece's own tokens (an older store)."""
    key = getattr(piece, "key", None)
    if key is not None and key >= 0:
        return int(key)
    return estimate_key(decode_ids(np.asarray(piece.ids, dtype=np.int64), config).notes)


def piece_controls(pieces, spec: ControlSpec, config: TokenizerConfig) -> PieceControls:
    """Every piece's labels under `spec` (styles it does not know become unknown)."""
    mapping = load_style_map(spec.styles_file) if spec.styles_file and "style" in spec.names else None
    index = {s: i for i, s in enumerate(spec.styles)}
    n = len(pieces)
    style = np.full(n, len(spec.styles), dtype=np.int64)
    key = np.full(n, NUM_KEYS, dtype=np.int64)
    hot = np.zeros((n, NUM_INSTRUMENTS), dtype=np.uint8)
    dens = np.full(n, spec.num_density_bins, dtype=np.int64)
    vocab = vocabulary(config)
    for i, p in enumerate(pieces):
        if "style" in spec.names:
            style[i] = index.get(style_of(p, mapping), len(spec.styles))
        if "key" in spec.names:
            k = piece_key_of(p, config)
            key[i] = NUM_KEYS if k is None else k
        hot[i, [int(k) for k in p.programs]] = 1
        if "density" in spec.names and len(p.ids) > 2:
            d = density_of_ids(np.asarray(p.ids)[None], vocab.note_on_ids, vocab.shift_steps,
                               config.steps_per_second)
            dens[i] = int(density_bin(d, spec.density_edges)[0])
    return PieceControls(style, key, hot, dens)


class WindowControls:
    """The conditioning rows of training windows drawn from a TokenStream of pieces."""

    def __init__(self, spec: ControlSpec, labels: PieceControls, config: TokenizerConfig):
        self.spec, self.labels = spec, labels
        vocab = vocabulary(config)
        self.note_on, self.shift_steps = vocab.note_on_ids, vocab.shift_steps
        self.steps_per_second = config.steps_per_second
        self.unknown = torch.from_numpy(unknown_row(spec))

    def rows(self, stream, offsets: torch.Tensor, shift: torch.Tensor, targets: torch.Tensor,
             generator: torch.Generator, batch_size: int, rows: slice) -> torch.Tensor:
        """(b, COND_WIDTH) int64: each window's controls, some hidden (drawn for all
        `batch_size` windows of the global batch, so DDP ranks stay in step)."""
        spec, labels = self.spec, self.labels
        middle = offsets.numpy() + targets.shape[1] // 2
        piece = np.searchsorted(stream.piece_starts, middle, side="right") - 1  # (b,)
        out = torch.from_numpy(labels.rows(spec, piece))  # (b, W)
        if "key" in spec.names:
            keys = labels.key[piece]
            moved = [k if k >= NUM_KEYS else transpose_key(int(k), int(s))
                     for k, s in zip(keys.tolist(), shift.tolist())]
            out[:, KEY] = torch.tensor(moved, dtype=torch.long)
        if "density" in spec.names:
            d = density_of_ids(targets.numpy(), self.note_on, self.shift_steps,
                               self.steps_per_second)
            out[:, DENSITY] = torch.from_numpy(density_bin(d, spec.density_edges))
        hide = torch.rand(batch_size, 4, generator=generator)[rows] < spec.dropout  # (b, 4)
        for column in (STYLE, KEY, DENSITY):
            out[:, column] = torch.where(hide[:, column], self.unknown[column], out[:, column])
        out[:, 3:] *= ~hide[:, 3:4]
        return out


def training_controls(spec_dict: dict, train_pieces, valid_pieces, config: TokenizerConfig,
                      stretched: bool) -> tuple[WindowControls, np.ndarray]:
    """The training windows' control maker and the validation pieces' rows (P, COND_WIDTH).
    `stretched`: the stream holds two time-stretched copies of each piece after them all."""
    spec = ControlSpec.from_dict(spec_dict)
    labels = piece_controls(train_pieces, spec, config)
    if stretched:
        labels = labels.join(labels.repeat_each(2))
    return WindowControls(spec, labels, config), piece_controls(valid_pieces, spec, config).rows(spec)
