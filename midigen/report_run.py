"""What a report shows of a training run: curves, best checkpoint, baselines, configs, corpus.

Read from the run folder only (best.pt / last.pt and metrics.jsonl); the baselines need the
corpus again, from the token cache, and are left out with a note when it is gone.
"""

from __future__ import annotations

from pathlib import Path

from midigen.errors import MidigenError


def describe_run(run_dir: Path, out: Path, slug: str) -> dict:
    """A dict for the page: name, path, curves (relative PNG or None), best, baselines,
    configs, corpus, notes; the curves picture is drawn into OUT/media."""
    from midigen.checkpoint import load_checkpoint
    from midigen.metrics import METRICS_FILE, read_rows
    from midigen.report_media import plot_run_curves

    info = {"name": run_dir.resolve().name, "path": str(run_dir.resolve()), "slug": slug,
            "curves": None, "best": {}, "baselines": {}, "configs": {}, "corpus": {},
            "notes": []}
    try:
        rows = [r.to_dict() for r in read_rows(run_dir / METRICS_FILE)]
    except MidigenError as e:
        rows = []
        info["notes"].append(str(e))
    if not rows and not info["notes"]:
        info["notes"].append(f"no {METRICS_FILE} rows: no curves")
    try:
        ckpt = load_checkpoint(run_dir)
    except MidigenError as e:
        info["notes"].append(str(e))
        ckpt = None
    train_events_per_s = None
    if ckpt is not None:
        _describe_checkpoint(ckpt, info)
        try:
            info["baselines"], train_events_per_s = run_baselines(ckpt)
        except MidigenError as e:
            info["notes"].append(f"no baselines: {e}")
    if rows:
        info["curves"] = f"media/{slug}-curves.png"
        plot_run_curves(rows, out / info["curves"], train_events_per_s)
    return info


def _describe_checkpoint(ckpt, info: dict) -> None:
    m = ckpt.metrics or {}
    info["best"] = {
        "checkpoint": ckpt.path.name,
        "step": ckpt.step,
        "planned steps": ckpt.train_config.get("total_steps"),
        "validation NLL (nats/event)": ckpt.best_valid_loss,
        "validation perplexity": m.get("valid_ppl"),
        "validation NLL per second": m.get("valid_nll_per_s"),
        "training loss (nats/event)": m.get("train_loss"),
        "training speed (tokens/s)": m.get("tokens_per_s"),
        "parameters": int(sum(t.numel() for t in ckpt.model_state.values())),
        "midigen version": ckpt.version,
    }
    info["configs"] = {"tokenizer": ckpt.tokenizer_config.to_dict(),
                       "model": ckpt.model_config.to_dict(),
                       "training": {k: v for k, v in ckpt.train_config.items()}}
    s = ckpt.corpus_summary
    info["corpus"] = {k: s.get(k) for k in ("folder", "files_found", "files_read",
                                            "files_skipped", "pieces", "notes", "events",
                                            "hours") if s.get(k) is not None}
    if s.get("instruments"):
        info["corpus"]["instruments"] = ", ".join(f"{k} ({v})" for k, v in
                                                  list(s["instruments"].items())[:8])


def run_baselines(ckpt) -> tuple[dict, float]:
    """Unigram and bigram NLL per event on the run's own split (the names its checkpoint
    kept), read from the corpus's token cache: what the model must clearly beat. Also the
    training pieces' scored events per second of music, which turns the training loss per
    event into one per second."""
    from midigen.baselines import split_baselines
    from midigen.corpus import load_corpus
    from midigen.tokenizer import vocabulary

    folder = ckpt.train_config.get("corpus") or ckpt.corpus_summary.get("folder")
    valid_names = set(ckpt.split.get("valid", []))
    if not folder or not Path(folder).is_dir() or not valid_names:
        raise MidigenError("the corpus or its split is not known or not here")
    pieces = [p for p in load_corpus(folder, ckpt.tokenizer_config).pieces if len(p.ids) >= 2]
    train_pieces = [p for p in pieces if p.name not in valid_names]
    train = [p.ids.astype("int64") for p in train_pieces]
    valid = [p.ids.astype("int64") for p in pieces if p.name in valid_names]
    if not train or not valid:
        raise MidigenError("the corpus no longer holds the run's split")
    size = vocabulary(ckpt.tokenizer_config).size
    seconds = sum(p.duration_s for p in train_pieces)
    events_per_s = sum(len(ids) - 1 for ids in train) / seconds if seconds > 0 else None
    return {f"{name} (nats/event)": nll
            for name, nll in split_baselines(train, valid, size).items()}, events_per_s
