"""`midigen stats` on files: read the scores, measure them, and compare them with a corpus."""

from __future__ import annotations

import numpy as np

from midigen.errors import MidigenError
from midigen.stats import compare_sets, piece_stats, stat_spread, summarise


def read_pieces(paths) -> tuple[list, list[dict]]:
    """(Piece list, skipped files with reasons) from files and folders of scores."""
    from pathlib import Path

    from midigen.corpus import find_score_files
    from midigen.midi_io import read_score

    files = []
    for path in map(Path, paths):
        if path.is_dir():
            files += find_score_files(path)
        elif path.exists():
            files.append(path)
        else:
            raise MidigenError(f"not found: {path}")
    if not files:
        raise MidigenError("no score files (MIDI, MusicXML, kern, ABC) found")
    pieces, skipped = [], []
    for f in files:
        try:
            pieces += [p for p in read_score(f) if len(p.notes)]
        except MidigenError as e:
            skipped.append({"file": str(f), "reason": str(e)})
    return pieces, skipped


def stats_report(paths, against=None, ngram: int = 16, on_progress=None) -> dict:
    """What `midigen stats` prints: per piece, the summary, and with `against` the distances
    to that corpus, its own leave-one-out spread, and copying.

    Against a corpus, both sides go through the same default tokenizer grid (the corpus comes
    from its token cache, the pieces are quantized the same way), so that rounding to 10 ms
    or velocity bins never shows up as a difference.
    """
    from midigen.tokenizer import TokenizerConfig, encode_notes, quantize_notes

    pieces, skipped = read_pieces(paths)
    if not pieces:
        raise MidigenError("none of the files holds notes")
    config = TokenizerConfig()
    if against is not None:
        notes = [quantize_notes(p.notes, config) for p in pieces]
    else:
        notes = [p.notes for p in pieces]
    analysed = [piece_stats(n, p.name) for n, p in zip(notes, pieces)]
    report = {"pieces": [a["stats"] for a in analysed], "summary": summarise(analysed),
              "files_skipped": skipped}
    if against is None:
        return report

    from midigen.copying import NgramIndex
    from midigen.corpus import load_corpus
    from midigen.tokenizer import decode_ids

    corpus = load_corpus(against, config)
    if not corpus.pieces:
        raise MidigenError(f"no readable piece with notes in {against}")
    reference, corpus_lengths = [], []
    for i, p in enumerate(corpus.pieces):
        corpus_notes = decode_ids(p.ids, config).notes
        corpus_lengths.append(corpus_notes["end_s"] - corpus_notes["start_s"])
        reference.append(piece_stats(corpus_notes, p.name))
        if on_progress is not None:
            on_progress(i + 1, len(corpus.pieces))
    index = NgramIndex.build([p.ids for p in corpus.pieces], ngram,
                             names=[f"{p.file}:{p.name}" if p.name != _file_stem(p.file) else p.file
                                    for p in corpus.pieces])
    copying = []
    for n, p in zip(notes, pieces):
        copying.append({"name": p.name, **index.report(encode_notes(n, config))})
    shares = [c["share_found"] for c in copying if c["share_found"] is not None]
    report["against"] = {
        "corpus": str(corpus.folder),
        "num_pieces": len(corpus.pieces),
        "corpus_summary": summarise(reference),
        "corpus_spread": stat_spread(reference),
        "features": compare_sets(analysed, reference),
        "long_notes": long_notes(np.concatenate([n["end_s"] - n["start_s"] for n in notes]),
                                 np.concatenate(corpus_lengths), config.max_note_s),
        "copying": {
            "n": ngram,
            "share_found_mean": float(np.mean(shares)) if shares else None,
            "longest_run_max": max(c["longest_run"] for c in copying),
            "pieces": copying,
        },
    }
    return report


def long_notes(lengths_s: np.ndarray, corpus_lengths_s: np.ndarray, cap_s: float) -> dict:
    """Stuck notes: the share of notes at or above the corpus's 99.9th-percentile length and
    at the longest-note cap (where the decoder closes notes never released), for the pieces
    and for the corpus itself (whose share at p99.9 is about 0.1%, more with ties)."""
    p999 = float(np.quantile(corpus_lengths_s, 0.999)) if len(corpus_lengths_s) else 0.0
    share = lambda x, at: float((x >= at - 1e-6).mean()) if len(x) else None  # float rounding
    return {"corpus_p99_9_s": round(p999, 3), "cap_s": cap_s,
            "pieces": {"at_or_above_p99_9": share(lengths_s, p999), "at_cap": share(lengths_s, cap_s)},
            "corpus": {"at_or_above_p99_9": share(corpus_lengths_s, p999),
                       "at_cap": share(corpus_lengths_s, cap_s)}}


def _file_stem(file: str) -> str:
    from pathlib import PurePath

    return PurePath(file).stem
