"""`midigen stats`: what pieces sound like, and whether they copy a corpus.

Heavy imports (numpy, the library) stay inside the command, so other commands start fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from midigen.cli.app import ProgressBar, app, err, fmt_number, out, print_json


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
    against.copying.{n, share_found_mean, longest_run_max, pieces}, against.long_notes.{corpus_p99_9_s,
    cap_s, pieces.{at_or_above_p99_9, at_cap}, corpus.{at_or_above_p99_9, at_cap}}.
    """
    from midigen.stats_files import stats_report

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
        ("mean span (semitones)", fmt_number(s["pitch_span_mean"], 1)),
        ("pitch classes (top 5)", top_pc),
        ("notes / second", fmt_number(s["note_density_mean"], 2)),
        ("polyphony (mean, max)", f"{fmt_number(s['mean_polyphony_mean'], 2)}, {s['max_polyphony']}"),
        ("velocity (mean)", fmt_number(s["velocity_mean_mean"], 1)),
        ("note length median (s)", fmt_number(s["duration_median_s_mean"], 3)),
        ("inter-onset median (s)", fmt_number(s["ioi_median_s_mean"], 3)),
        ("instruments (notes)", ", ".join(f"{k} {v}" for k, v in list(s["instruments"].items())[:6])),
        ("files skipped", len(report["files_skipped"])),
    ]:
        table.add_row(name, str(value))
    out.print(table)
    if per_piece:
        rows = Table("piece", "notes", "seconds", "range", "notes/s", "polyphony", "velocity")
        for p in report["pieces"]:
            rows.add_row(p["name"], str(p["num_notes"]), fmt_number(p["duration_s"], 1),
                         f"{p['pitch_low']}..{p['pitch_high']}", fmt_number(p["note_density"], 2),
                         fmt_number(p["mean_polyphony"], 2), fmt_number(p["velocity_mean"], 1))
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
        dist.add_row(name, fmt_number(f["overlap"]), fmt_number(f["kl"]),
                     f"{loo_o['mean']:.2f} ({loo_o['p5']:.2f}..{loo_o['p95']:.2f})" if loo_o else "-",
                     f"{loo_k['mean']:.2f} ({loo_k['p5']:.2f}..{loo_k['p95']:.2f})" if loo_k else "-",
                     "-" if f["pieces_inside"] is None else f"{100 * f['pieces_inside']:.0f}%")
    out.print(dist)
    long = against["long_notes"]
    pct = lambda x: "-" if x is None else f"{100 * x:.3f}%"
    notes = Table("notes lasting", "these pieces", "the corpus",
                  title="long notes (stuck notes run to the cap, where decoding closes them)")
    notes.add_row(f">= corpus p99.9 ({long['corpus_p99_9_s']:g} s)",
                  pct(long["pieces"]["at_or_above_p99_9"]), pct(long["corpus"]["at_or_above_p99_9"]))
    notes.add_row(f"the cap ({long['cap_s']:g} s)", pct(long["pieces"]["at_cap"]), pct(long["corpus"]["at_cap"]))
    out.print(notes)
    c = against["copying"]
    copy = Table("piece", "events", f"{c['n']}-grams found", "longest shared run", "with",
                 title="copying: runs of events shared with any corpus piece")
    for p in c["pieces"]:
        share = "-" if p["share_found"] is None else f"{100 * p['share_found']:.1f}%"
        copy.add_row(p["name"], str(p["num_events"]), share, str(p["longest_run"]),
                     str(p["longest_run_piece"] or "-"))
    out.print(copy)
