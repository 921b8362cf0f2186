"""The HTML of a report page: plain HTML and CSS, one small script to sort the overview table.

Every value is escaped here; files are referenced relatively (media/, midi/) so the folder
opens from disk and travels as a zip. Accessibility: headings in order, labelled audio,
alt text that says what a picture shows, table captions and header scopes, text contrast of
at least 7:1 on white.
"""

from __future__ import annotations

import datetime
import json
from html import escape
from urllib.parse import quote

from midigen import __version__
from midigen.audio import INSTALL_HINT
from midigen.pianoroll import pitch_name
from midigen.report import PieceEntry, Report, make_again_command
from midigen.report_groups import label, option_of, show_value
from midigen.report_style import CSS, SORT_SCRIPT

STAT_ROWS = (("note_density", "notes per second", 2), ("mean_polyphony", "notes sounding at once", 2),
             ("pitch_low", "lowest pitch", 0), ("pitch_high", "highest pitch", 0),
             ("pitch_span", "range (semitones)", 0), ("velocity_mean", "mean velocity", 0),
             ("duration_median_s", "median note length (s)", 2),
             ("ioi_median_s", "median onset gap (s)", 2))


def _e(value) -> str:
    return escape(str(value), quote=True)


def _url(relative_path: str) -> str:
    """A relative file path as an attribute value: percent-encoded, then escaped."""
    return _e(quote(relative_path))


def _num(value, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, secs = divmod(float(seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def page_html(report: Report) -> str:
    """The whole index.html of a report."""
    pieces, title = report.pieces, "midigen report"
    parts = [f"<h1>{title}</h1>", f'<p class="muted">{_summary_line(report)}</p>']
    if pieces and report.audio_problem:
        parts.append(f'<p class="banner" role="note">No audio on this page: '
                     f'{_e(report.audio_problem)}. The MIDI files and piano rolls are here; '
                     f'to hear the pieces, install FluidSynth ({_e(INSTALL_HINT)}) and run '
                     f'<code>midigen report</code> again.</p>')
    parts += [f'<p class="banner" role="note">{_e(n)}</p>' for n in report.notes]
    parts.append(_contents(report))
    body = [_pieces_section(report)] if pieces else []
    body += [_run_section(run) for run in report.runs]
    generated = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="midigen {_e(__version__)}">
<title>{title}: {len(pieces)} piece{'s' if len(pieces) != 1 else ''}</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body>
<header>
{chr(10).join(parts)}
</header>
<main>
{chr(10).join(body)}
</main>
<footer><p class="muted">Written by midigen {_e(__version__)} on {generated}. Everything
this page shows is in this folder: zip it to share it.</p></footer>
<script>{SORT_SCRIPT}</script>
</body>
</html>
"""


def _summary_line(report: Report) -> str:
    pieces = report.pieces
    total_s = sum(p.duration_s for p in pieces)
    bits = []
    if pieces:
        bits.append(f"{len(pieces)} piece{'s' if len(pieces) != 1 else ''}, "
                    f"{total_s / 60:.1f} minutes of music")
    if report.varying:
        bits.append("differing in " + ", ".join(label(k) for k in report.varying))
    if report.runs:
        bits.append(f"{len(report.runs)} training run{'s' if len(report.runs) != 1 else ''}")
    return _e("; ".join(bits))


def _contents(report: Report) -> str:
    items = []
    if report.pieces:
        items.append('<li><a href="#pieces">Pieces</a><ul>' + "".join(
            f'<li><a href="#group-{i}">{_e(title)}</a></li>'
            for i, (title, _) in enumerate(report.groups) if title) + "</ul></li>")
    items += [f'<li><a href="#{run["slug"]}">Training run {_e(run["name"])}</a></li>'
              for run in report.runs]
    return f'<nav aria-label="Contents"><ul>{"".join(items)}</ul></nav>'


def _pieces_section(report: Report) -> str:
    out = ['<section id="pieces" aria-labelledby="pieces-h">', '<h2 id="pieces-h">Pieces</h2>']
    if report.corpus:
        c = report.corpus
        out.append(f'<p>Statistics are shown next to the range of the training corpus '
                   f'<code>{_e(c["folder"])}</code> ({c["num_pieces"]:,} pieces): the 5th to '
                   f'95th percentile of its pieces. A piece is flagged as copying when it shares '
                   f'a run of 256 events or more with one corpus piece, or when half or more of '
                   f'its {c["n"]}-event stretches occur in the corpus.</p>')
    out.append(_overview(report))
    for i, (title, members) in enumerate(report.groups):
        out.append(f'<section id="group-{i}" aria-label="{_e(title or "pieces")}">')
        if title:
            out.append(f"<h3>{_e(title)}</h3>")
        out += [_piece(p, report) for p in members]
        out.append("</section>")
    out.append("</section>")
    return "\n".join(out)


def _option_value(p: PieceEntry, key: str):
    return show_value(option_of(p, key)) if p.info else "–"


def _overview(report: Report) -> str:
    heads = ["piece", *[label(k) for k in report.varying], "duration", "notes", "stopped"]
    if report.corpus:
        heads.append("longest shared run")
    numeric = {"duration", "notes", "longest shared run", "seed", "temperature", "top-p",
               "top-k", "seconds"}
    row_html = []
    for p in report.pieces:
        cells = [f'<th scope="row" data-sort="{_e(p.name)}">'
                 + f'<a href="#p-{_e(p.name)}">{_e(p.name)}</a></th>']
        for k in report.varying:
            cells.append(f"<td>{_e(_option_value(p, k))}</td>")
        notes = (p.stats or {}).get("num_notes", p.info.get("notes"))
        cells.append(f'<td class="num" data-sort="{p.duration_s:.3f}">{_time(p.duration_s)}</td>')
        cells.append(f'<td class="num">{_num(notes)}</td>')
        cells.append(f"<td>{_e(_stop_text(p))}</td>")
        if report.corpus:
            run = (p.copying or {}).get("longest_run")
            flag = ' <span class="flag">copies</span>' if p.copies else ""
            cells.append(f'<td class="num" data-sort="{run or 0}">{_num(run)} events{flag}</td>')
        row_html.append("<tr>" + "".join(cells) + "</tr>")
    head = "".join(f'<th scope="col"{" class=num" if h in numeric else ""}>'
                   f'<button type="button">{_e(h)}</button></th>' for h in heads)
    return (f'<table class="sortable"><caption>All pieces (select a column heading to sort)'
            f"</caption><thead><tr>{head}</tr></thead><tbody>{''.join(row_html)}</tbody></table>")


STOP_TEXT = {"END": "the model ended it", "events": "cut at the event limit",
             "longest": "cut at the training music's longest piece",
             "seconds": "cut at the length asked for"}


def _stop_text(p: PieceEntry) -> str:
    if p.info.get("stop") in STOP_TEXT:
        return STOP_TEXT[p.info["stop"]]
    if "ended" not in p.info:
        return "unknown"
    return "the model ended it" if p.info["ended"] else "cut at a length limit"


def _piece(p: PieceEntry, report: Report) -> str:
    s = p.stats or {}
    instruments = list(s.get("instruments", {})) or p.info.get("instruments", [])
    notes = s.get("num_notes", p.info.get("notes"))
    alt = (f"Piano roll of {p.name}: {_num(notes)} notes over {p.duration_s:.1f} seconds"
           + (f", pitches {s['pitch_low']} to {s['pitch_high']}" if s.get("pitch_low") else "")
           + (f", played by {', '.join(instruments)}" if instruments else "") + ".")
    flag = ' <span class="flag">copies the corpus</span>' if p.copies else ""
    level = 4 if any(title for title, _ in report.groups) else 3  # headings never skip a level
    if p.audio:
        sound = (f'<audio controls preload="metadata" src="{_url(p.audio)}" '
                 f'data-midi-seconds="{p.duration_s:.3f}" aria-label="Listen to {_e(p.name)}">'
                 f'<a href="{_url(p.audio)}">{_e(p.audio)}</a></audio>')
    elif report.audio_problem:
        sound = '<p class="muted">No audio: FluidSynth is not installed (see the top).</p>'
    else:
        sound = '<p class="muted">No audio: the piece has no notes.</p>'
    facts = [("duration", _time(p.duration_s)), ("notes", _num(notes)),
             ("instruments", ", ".join(instruments) or "–"), ("how it stopped", _stop_text(p))]
    if p.info:
        o = p.info.get("options", {})
        facts += [("seed", p.info["seed"]),
                  ("options", ", ".join(f"{label(k)} {show_value(v)}" for k, v in o.items()
                                        if v is not None and k != "num")),
                  ("model", p.info["checkpoint"])]
    dl = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in facts)
    again = ""
    if p.info:
        num = p.info.get("options", {}).get("num", 1)
        again = (f"<details><summary>Make it again</summary><pre><code>"
                 f"{_e(make_again_command(p.info))}</code></pre><p class='muted'>"
                 f"It is piece {p.info.get('index', 1)} of the {num} this writes (one seed "
                 f"makes the whole batch) on the same machine.</p></details>")
    return f"""<article class="piece" id="p-{_e(p.name)}" aria-labelledby="p-{_e(p.name)}-h">
<h{level} id="p-{_e(p.name)}-h">{_e(p.name)}{flag}</h{level}>
<div class="piece-body">
<div>
<figure><img src="{_url(p.roll)}" width="1600" height="800" alt="{_e(alt)}"></figure>
{_stats_table(p, report)}
</div>
<div>
{sound}
<p><a href="{_url(p.midi)}" download="{_e(p.source.name)}">Download {_e(p.source.name)}</a></p>
<dl>{dl}</dl>
{again}
{_copying_text(p, report)}
</div>
</div>
</article>"""


def _stats_table(p: PieceEntry, report: Report) -> str:
    if not p.stats:
        return ""
    spread = (report.corpus or {}).get("spread") or {}
    rows = []
    for key, name, digits in STAT_ROWS:
        value, band = p.stats.get(key), spread.get(key)
        cell = "–"
        if band is not None:
            inside = value is not None and band["p5"] <= value <= band["p95"]
            mark = ('<span class="inside">inside</span>' if inside
                    else '<span class="outside">outside</span>')
            low, high = _num(float(band["p5"]), digits), _num(float(band["p95"]), digits)
            if key in ("pitch_low", "pitch_high"):
                low, high = pitch_name(round(band["p5"])), pitch_name(round(band["p95"]))
            cell = f"{low} – {high} {mark}"
        shown = _num(float(value), digits) if isinstance(value, (int, float)) else "–"
        if key in ("pitch_low", "pitch_high") and value is not None:
            shown = f"{pitch_name(value)} ({value})"
        rows.append(f'<tr><th scope="row">{_e(name)}</th><td class="num">{shown}</td>'
                    f"<td>{cell}</td></tr>")
    corpus_head = "corpus 5–95%" if spread else "corpus (not compared)"
    return (f'<table><caption>Statistics</caption><thead><tr><th scope="col">statistic</th>'
            f'<th scope="col" class="num">this piece</th><th scope="col">{corpus_head}</th>'
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _copying_text(p: PieceEntry, report: Report) -> str:
    c = p.copying
    if not c or not report.corpus:
        return ""
    share = "–" if c["share_found"] is None else f"{100 * c['share_found']:.0f}%"
    where = f" (with {_e(c['longest_run_piece'])})" if c.get("longest_run_piece") else ""
    verdict = ('<span class="outside">copies: listen against the corpus piece</span>'
               if p.copies else '<span class="inside">no copying found</span>')
    return (f"<p>Copying: longest run shared with the corpus {c['longest_run']} events{where}; "
            f"{share} of its {report.corpus['n']}-event stretches occur in the corpus. "
            f"{verdict}.</p>")


def _cell(value) -> str:
    """A config or metric value: floats to 4 significant digits, large ones whole."""
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return _num(value)


def _table(caption: str, rows: dict) -> str:
    body = "".join(f'<tr><th scope="row">{_e(k)}</th><td class="num">{_e(_cell(v))}</td></tr>'
                   for k, v in rows.items())
    return f"<table><caption>{_e(caption)}</caption><tbody>{body}</tbody></table>"


def _run_section(run: dict) -> str:
    slug = run["slug"]
    out = [f'<section id="{slug}" aria-labelledby="{slug}-h">',
           f'<h2 id="{slug}-h">Training run {_e(run["name"])}</h2>',
           f'<p class="muted"><code>{_e(run["path"])}</code></p>']
    out += [f'<p class="banner" role="note">{_e(n)}</p>' for n in run["notes"]]
    if run["curves"]:
        best = run["best"].get("validation NLL (nats/event)")
        out.append(f'<figure><img src="{_url(run["curves"])}" width="1000" height="400" '
                   f'alt="Training curves of {_e(run["name"])}: loss per event and per '
                   f'second of music, training and validation, against the step'
                   + (f"; best validation {best:.3f} nats per event" if best else "")
                   + '."></figure>')
    tables = []
    if run["best"]:
        tables.append(_table("Best checkpoint", run["best"]))
    if run["baselines"]:
        tables.append(_table("Baselines on the same split", run["baselines"]))
    if run["corpus"]:
        tables.append(_table("Corpus", run["corpus"]))
    out.append(f'<div class="cols">{"".join(tables)}</div>')
    if run["configs"]:
        out.append("<h3>Configs</h3>")
        out.append('<div class="cols">' + "".join(_table(name, values) for name, values in
                                                  run["configs"].items()) + "</div>")
    out.append("</section>")
    return "\n".join(out)
