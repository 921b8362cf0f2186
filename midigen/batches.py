"""Training batches: random windows cut from the training pieces, read where they lie.

The training pieces form one stream (END of a piece is followed by the START of the next, so
the model also learns how pieces begin), but the stream is never concatenated: it is a list
of segments, the pieces' own arrays (read-only views of the token store's memory-mapped
shards; neighbours that lie back to back in a shard are merged into one segment), and a
window is copied out of the one or two segments it spans. Memory stays near the size of one
batch, whatever the size of the corpus. A batch is B random offsets into the stream.

Augmentation happens on the fly, per window:
- transposition adds the same number of semitones to every pitched NOTE_ON / NOTE_OFF of the
  window (drums name sounds, not pitches, so they stay); a shift that would push a note of the
  window out of the vocabulary's pitch range is skipped (the window stays untransposed).
  Whether a note is a drum depends on the last PROGRAM/DRUMS before it in its piece, which a
  window may not contain, so drum notes are found once per piece with the tokenizer's
  pitched_note_mask and kept beside the stream as one bit per event;
- time stretch (Performance RNN's +-5%) changes how many TIME_SHIFT events a passage needs, so
  it is done once per piece when the stream is built: stretched copies are added beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from midigen.errors import MidigenError
from midigen.events import EventType
from midigen.tokenizer import (
    TokenizerConfig,
    decode_ids,
    encode_notes,
    pitched_note_mask,
    vocabulary,
)


@dataclass
class TokenStream:
    """The training split as a stream of segments, with one bit per event for drum notes."""

    segments: list[np.ndarray]  # uint16 arrays, in stream order
    starts: np.ndarray  # (S + 1,) int64: where each segment starts in the stream, then its end
    drum_bits: torch.Tensor  # (ceil(N / 8),) uint8: bit set where a NOTE_ON/OFF is a drum's
    note_offset: int  # first NOTE_ON id; NOTE_OFF block follows, same size
    num_pitches: int
    num_pieces: int
    piece_starts: np.ndarray | None = None  # (P + 1,) int64: where each piece starts, then the end

    def __len__(self) -> int:
        return int(self.starts[-1])

    def windows(self, offsets: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Ids (B, L) int64 and pitched-note mask (B, L) bool of the windows at offsets."""
        out = np.empty((len(offsets), length), dtype=np.int64)
        first = np.searchsorted(self.starts, offsets.numpy(), side="right") - 1
        for row, (offset, s) in enumerate(zip(offsets.tolist(), first.tolist())):
            filled = 0
            while filled < length:  # usually one segment, two at a boundary
                lo = offset + filled - int(self.starts[s])
                part = self.segments[s][lo:lo + length - filled]
                out[row, filled:filled + len(part)] = part
                filled += len(part)
                s += 1
        ids = torch.from_numpy(out)
        index = offsets[:, None] + torch.arange(length)  # (B, L)
        drum = (self.drum_bits[index >> 3] >> (7 - (index & 7)).to(torch.uint8)) & 1
        is_note = (ids >= self.note_offset) & (ids < self.note_offset + 2 * self.num_pitches)
        return ids, is_note & (drum == 0)


def build_stream(pieces_ids: list[np.ndarray], config: TokenizerConfig) -> TokenStream:
    """The stream over the pieces' arrays, as they are (memory-mapped ones stay mapped)."""
    if not pieces_ids:
        raise MidigenError("no training pieces")
    vocab = vocabulary(config)
    arrays = [np.asarray(p) for p in pieces_ids]
    lengths = np.array([len(a) for a in arrays], dtype=np.int64)
    piece_starts = np.concatenate([[0], np.cumsum(lengths)])
    segments = _merge_adjacent(arrays)
    starts = np.concatenate([[0], np.cumsum([len(s) for s in segments], dtype=np.int64)])
    drum_bits = np.zeros(int(piece_starts[-1] + 7) // 8 + 1, dtype=np.uint8)
    if config.use_programs:
        drums_id = vocab.offset[EventType.DRUMS]
        for start, ids in zip(piece_starts.tolist(), arrays):
            if not (ids == drums_id).any():
                continue
            ids = np.asarray(ids, dtype=np.int64)
            lo, hi = vocab.note_on_ids.start, vocab.note_off_ids.stop
            drum = ((ids >= lo) & (ids < hi)) & ~pitched_note_mask(ids, config)
            at = start + np.flatnonzero(drum)
            np.bitwise_or.at(drum_bits, at >> 3, (128 >> (at & 7)).astype(np.uint8))
    return TokenStream(
        segments=segments, starts=starts, drum_bits=torch.from_numpy(drum_bits),
        note_offset=vocab.note_on_ids.start,
        num_pitches=vocab.num_pitches,
        num_pieces=len(arrays),
        piece_starts=piece_starts.astype(np.int64),
    )


def _merge_adjacent(arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Arrays that are back-to-back views of one buffer (pieces stored one after another in a
    shard) joined into one view of it: fewer segments, nothing copied."""
    merged: list[np.ndarray] = []
    for a in arrays:
        if not len(a):
            continue
        if merged:
            prev = merged[-1]
            base = _root(prev)
            if (base is not prev and _root(a) is base and base.ndim == 1
                    and base.dtype == a.dtype and prev.strides == a.strides == (a.itemsize,)
                    and _address(prev) + prev.nbytes == _address(a)):
                first = (_address(prev) - _address(base)) // a.itemsize
                merged[-1] = base[first:first + len(prev) + len(a)]
                continue
        merged.append(a)
    return merged


def _root(a: np.ndarray) -> np.ndarray:
    """The array that owns (or maps) a view's memory: the shard's memmap for a piece."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _address(a: np.ndarray) -> int:
    return a.__array_interface__["data"][0]


def random_windows(stream: TokenStream, batch_size: int, seq_len: int,
                   generator: torch.Generator, max_transpose: int = 0,
                   rows: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-id targets, both (B, T) int64, from B random windows of the stream.

    All randomness comes from `generator`, so saving its state saves the data order. `rows`
    keeps only those windows of the B drawn (one rank's share of a global batch under DDP):
    the generator advances as for all B, so every rank, and a single process, stay in step.
    """
    x, y, _, _ = random_windows_placed(stream, batch_size, seq_len, generator, max_transpose, rows)
    return x, y


def random_windows_placed(stream: TokenStream, batch_size: int, seq_len: int,
                          generator: torch.Generator, max_transpose: int = 0,
                          rows: slice | None = None):
    """random_windows, plus where each window starts in the stream (b,) and the semitones
    it was transposed by (b,): what per-window controls need (midigen.controls_train)."""
    n = len(stream)
    if n < seq_len + 1:
        raise MidigenError(f"the training pieces hold {n} events, fewer than one window of "
                           f"{seq_len + 1}: use a smaller --seq-len or more music")
    rows = slice(None) if rows is None else rows
    offsets = torch.randint(0, n - seq_len, (batch_size,), generator=generator)[rows]  # (b,)
    window, pitched = stream.windows(offsets, seq_len + 1)  # (b, T+1) each
    shift = torch.zeros(len(offsets), dtype=torch.int64)
    if max_transpose > 0:
        shift = torch.randint(-max_transpose, max_transpose + 1, (batch_size,),
                              generator=generator)[rows]
        shift = fitting_shifts(pitched, shift, stream, window)
        window = window + pitched * shift[:, None]
    return window[:, :-1], window[:, 1:], offsets, shift


def transpose_windows(window: torch.Tensor, pitched: torch.Tensor, shift: torch.Tensor,
                      stream: TokenStream) -> torch.Tensor:
    """Each window's pitched notes moved by its shift in semitones; out-of-range shifts skipped."""
    return window + pitched * fitting_shifts(pitched, shift, stream, window)[:, None]  # (B, T+1)


def fitting_shifts(pitched: torch.Tensor, shift: torch.Tensor, stream: TokenStream,
                   window: torch.Tensor) -> torch.Tensor:
    """The shifts (B,) that keep every pitched note of their window in range; others 0."""
    relative = (window - stream.note_offset) % stream.num_pitches  # pitch - min_pitch where pitched
    lowest = torch.where(pitched, relative, stream.num_pitches).amin(dim=1)  # (B,)
    highest = torch.where(pitched, relative, -1).amax(dim=1)  # (B,)
    fits = (lowest + shift >= 0) & (highest + shift < stream.num_pitches)
    return torch.where(fits, shift, 0)


def stretch_pieces(pieces_ids: list[np.ndarray], factor: float, config: TokenizerConfig
                   ) -> list[np.ndarray]:
    """Copies of the pieces played (1 - factor) and (1 + factor) times as long."""
    if not 0 < factor < 0.5:
        raise MidigenError("--time-stretch must be between 0 and 0.5 (0.05 means +-5%)")
    out = []
    for ids in pieces_ids:
        notes = decode_ids(np.asarray(ids, dtype=np.int64), config).notes
        for scale in (1 - factor, 1 + factor):
            stretched = notes.copy()
            stretched["start_s"] *= scale
            stretched["end_s"] *= scale
            out.append(encode_notes(stretched, config).astype(np.uint16))
    return out
