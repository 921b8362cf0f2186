"""Training batches: random windows cut from one in-memory token stream, with augmentation.

All training pieces are concatenated into one uint16 tensor (END of a piece is followed by the
START of the next, so the model also learns how pieces begin). A batch is B random offsets
into it: one gather, no Python loop over tokens, so the data never starves the model.

Augmentation happens on the fly, per window:
- transposition adds the same number of semitones to every pitched NOTE_ON / NOTE_OFF of the
  window (drums name sounds, not pitches, so they stay); a shift that would push a note of the
  window out of the vocabulary's pitch range is skipped (the window stays untransposed);
- time stretch (Performance RNN's +-5%) changes how many TIME_SHIFT events a passage needs, so
  it is done once per piece when the stream is built: stretched copies are added beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from midigen.errors import MidigenError
from midigen.tokenizer import (
    TokenizerConfig,
    decode_ids,
    encode_notes,
    pitched_note_mask,
    vocabulary,
)


@dataclass
class TokenStream:
    """The training split as one stream: ids (N,) uint16 and where pitched notes are (N,) bool."""

    ids: torch.Tensor  # (N,) uint16
    pitched: torch.Tensor  # (N,) bool
    note_offset: int  # first NOTE_ON id; NOTE_OFF block follows, same size
    num_pitches: int
    num_pieces: int

    def __len__(self) -> int:
        return len(self.ids)


def build_stream(pieces_ids: list[np.ndarray], config: TokenizerConfig) -> TokenStream:
    """One stream from the pieces' id arrays (the mask is computed per piece, where the
    instrument of every note is known)."""
    if not pieces_ids:
        raise MidigenError("no training pieces")
    vocab = vocabulary(config)
    ids = np.concatenate([np.asarray(p, dtype=np.uint16) for p in pieces_ids])
    mask = np.concatenate([pitched_note_mask(np.asarray(p, dtype=np.int64), config)
                           for p in pieces_ids])
    return TokenStream(
        ids=torch.from_numpy(ids),
        pitched=torch.from_numpy(mask),
        note_offset=vocab.note_on_ids.start,
        num_pitches=vocab.num_pitches,
        num_pieces=len(pieces_ids),
    )


def random_windows(stream: TokenStream, batch_size: int, seq_len: int,
                   generator: torch.Generator, max_transpose: int = 0,
                   rows: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-id targets, both (B, T) int64, from B random windows of the stream.

    All randomness comes from `generator`, so saving its state saves the data order. `rows`
    keeps only those windows of the B drawn (one rank's share of a global batch under DDP):
    the generator advances as for all B, so every rank, and a single process, stay in step.
    """
    n = len(stream)
    if n < seq_len + 1:
        raise MidigenError(f"the training pieces hold {n} events, fewer than one window of "
                           f"{seq_len + 1}: use a smaller --seq-len or more music")
    rows = slice(None) if rows is None else rows
    offsets = torch.randint(0, n - seq_len, (batch_size,), generator=generator)[rows]  # (b,)
    index = offsets[:, None] + torch.arange(seq_len + 1)  # (b, T+1)
    window = stream.ids[index].long()  # (b, T+1)
    if max_transpose > 0:
        shift = torch.randint(-max_transpose, max_transpose + 1, (batch_size,),
                              generator=generator)[rows]
        window = transpose_windows(window, stream.pitched[index], shift, stream)
    return window[:, :-1], window[:, 1:]


def transpose_windows(window: torch.Tensor, pitched: torch.Tensor, shift: torch.Tensor,
                      stream: TokenStream) -> torch.Tensor:
    """Each window's pitched notes moved by its shift in semitones; out-of-range shifts skipped."""
    relative = (window - stream.note_offset) % stream.num_pitches  # pitch - min_pitch where pitched
    lowest = torch.where(pitched, relative, stream.num_pitches).amin(dim=1)  # (B,)
    highest = torch.where(pitched, relative, -1).amax(dim=1)  # (B,)
    fits = (lowest + shift >= 0) & (highest + shift < stream.num_pitches)
    shift = torch.where(fits, shift, 0)
    return window + pitched * shift[:, None]  # (B, T+1)


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

