"""Commands that measure music and models: `evaluate` (held-out likelihood) and `stats`.

Heavy imports (torch, numpy, the library) stay inside the commands, so `midigen --help`
and other commands start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import ProgressBar, app, err, out, print_json


def _fmt(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


@app.command()
def evaluate(
    corpus: Annotated[Path, typer.Argument(help="A folder of scores to score the model on.",
                                           exists=True, file_okay=False)],
    checkpoint: Annotated[Path | None, typer.Option(
        "--checkpoint", "-c", help="Checkpoint file or run folder (default: best of the newest run).")] = None,
    device: Annotated[str, typer.Option(help="cpu, cuda, mps or auto.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
):
    """How well a model predicts a corpus: NLL per event, perplexity, bits, NLL per second and per note.

    Every readable piece is scored whole (long windows, state carried), tokenized with the
    model's own settings; notes its vocabulary cannot spell are counted as dropped.
    """
    from midigen.device import pick_device
    from midigen.evaluate import evaluate_corpus
    from midigen.threads import use_all_cores

    use_all_cores()
    with ProgressBar("scoring", enabled=err.is_terminal and not as_json) as bar:
        result = evaluate_corpus(checkpoint, corpus, device=str(pick_device(device)),
                                 on_progress=bar)
    if as_json:
        print_json(result)
        return
    from rich.table import Table

    table = Table(title=f"{result['corpus']} scored by {result['checkpoint']}", show_header=False)
    rows = [
        ("pieces", result["num_pieces"]), ("events scored", result["num_events"]),
        ("NLL / event (nats)", result["nll_per_event"]), ("perplexity", result["perplexity"]),
        ("bits / event", result["bits_per_event"]), ("NLL / second", result["nll_per_second"]),
        ("NLL / note", result["nll_per_note"]), ("notes read", result["notes_read"]),
        ("notes kept", result["notes_kept"]), ("notes dropped (outside vocabulary)",
                                               result["notes_dropped"]),
        ("files skipped", result["files_skipped"]),
        ("training's best valid NLL", result["training_best_valid_nll"]),
    ]
    for name, value in rows:
        table.add_row(name, _fmt(value))
    out.print(table)


@app.command()
def stats(
    files: Annotated[list[Path], typer.Argument(help="Score files and/or folders of them.",
                                                exists=True)],
    against: Annotated[Path | None, typer.Option(
        "--against", help="A reference corpus folder: distances to it, its own spread, copying.",
        exists=True, file_okay=False)] = None,
    ngram: Annotated[int, typer.Option(help="Window length (events) for the copying check.",
                                       min=2)] = 16,
    per_piece: Annotated[bool, typer.Option("--per-piece", help="A table row per piece.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print everything as JSON.")] = False,
):
    """Musical statistics of pieces; with --against, how far they are from a corpus and whether they copy it.

    JSON keys: pieces (per piece), summary, files_skipped, and with --against: against.corpus,
    against.num_pieces, against.corpus_summary, against.features.<feature>.{overlap, kl,
    piece_overlap_mean, piece_kl_mean, corpus_loo_overlap, corpus_loo_kl, pieces_inside},
    against.corpus_spread.<statistic>.{p5, median, p95},
    against.copying.{n, share_found_mean, longest_run_max, pieces}.
    """
    from midigen.stats import stats_report

    with ProgressBar("analysing corpus", enabled=err.is_terminal and not as_json) as bar:
        report = stats_report(files, against=against, ngram=ngram, on_progress=bar)
    if as_json:
        print_json(report)
        return
    _print_stats(report, per_piece)


def _print_stats(report: dict, per_piece: bool) -> None:
    from rich.table import Table

    s = report["summary"]
    table = Table(title=f"{s['num_pieces']} pieces, {s['num_notes']:,} notes, "
                        f"{s['duration_s'] / 60:.1f} min", show_header=False)
    pc = s["pitch_class_histogram"]
    top_pc = ", ".join(f"{k} {v:.2f}" for k, v in sorted(pc.items(), key=lambda kv: -kv[1])[:5])
    for name, value in [
        ("pitch range", f"{s['pitch_low']} .. {s['pitch_high']}"),
        ("mean span (semitones)", _fmt(s["pitch_span_mean"], 1)),
        ("pitch classes (top 5)", top_pc),
        ("notes / second", _fmt(s["note_density_mean"], 2)),
        ("polyphony (mean, max)", f"{_fmt(s['mean_polyphony_mean'], 2)}, {s['max_polyphony']}"),
        ("velocity (mean)", _fmt(s["velocity_mean_mean"], 1)),
        ("note length median (s)", _fmt(s["duration_median_s_mean"], 3)),
        ("inter-onset median (s)", _fmt(s["ioi_median_s_mean"], 3)),
        ("instruments (notes)", ", ".join(f"{k} {v}" for k, v in list(s["instruments"].items())[:6])),
        ("files skipped", len(report["files_skipped"])),
    ]:
        table.add_row(name, str(value))
    out.print(table)
    if per_piece:
        rows = Table("piece", "notes", "seconds", "range", "notes/s", "polyphony", "velocity")
        for p in report["pieces"]:
            rows.add_row(p["name"], str(p["num_notes"]), _fmt(p["duration_s"], 1),
                         f"{p['pitch_low']}..{p['pitch_high']}", _fmt(p["note_density"], 2),
                         _fmt(p["mean_polyphony"], 2), _fmt(p["velocity_mean"], 1))
        out.print(rows)
    against = report.get("against")
    if not against:
        return
    dist = Table("feature", "overlap", "KL", "corpus piece vs rest: overlap", "KL", "inside",
                 title=f"against {against['corpus']} ({against['num_pieces']} pieces): overlap 1 "
                       "and KL 0 = same distribution; corpus spread as mean (p5..p95)")
    dist.columns[0].no_wrap = True
    for name, f in against["features"].items():
        loo_o, loo_k = f["corpus_loo_overlap"], f["corpus_loo_kl"]
        dist.add_row(name, _fmt(f["overlap"]), _fmt(f["kl"]),
                     f"{loo_o['mean']:.2f} ({loo_o['p5']:.2f}..{loo_o['p95']:.2f})" if loo_o else "-",
                     f"{loo_k['mean']:.2f} ({loo_k['p5']:.2f}..{loo_k['p95']:.2f})" if loo_k else "-",
                     "-" if f["pieces_inside"] is None else f"{100 * f['pieces_inside']:.0f}%")
    out.print(dist)
    c = against["copying"]
    copy = Table("piece", "events", f"{c['n']}-grams found", "longest shared run", "with",
                 title="copying: runs of events shared with any corpus piece")
    for p in c["pieces"]:
        share = "-" if p["share_found"] is None else f"{100 * p['share_found']:.1f}%"
        copy.add_row(p["name"], str(p["num_events"]), share, str(p["longest_run"]),
                     str(p["longest_run_piece"] or "-"))
    out.print(copy)
