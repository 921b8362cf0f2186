"""Ingestion speed: `midigen corpus DIR --json` (cold, then cached) against MidiTok's MIDILike.

Every number is end to end as a user sees it: a fresh subprocess each time, so interpreter
start-up and imports count. MidiTok (`pip install miditok`, a bench-only dependency)
tokenizes the same files one by one in its own subprocess, its import time included.

    python bench/bench_ingest.py [CORPUS_DIR ...] [--jobs N]

Prints a markdown table: files/s and events/s for midigen cold, midigen cached and MidiTok,
with cold vs MidiTok (goal >= 3x) and cached vs cold (goal >= 20x).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
DEFAULT_DIRS = [SHARED / "pop909", SHARED / "nottingham" / "MIDI"]

MIDITOK_SCRIPT = r"""
import json, sys, time
from pathlib import Path
began = time.perf_counter()
from miditok import MIDILike, TokenizerConfig
tokenizer = MIDILike(TokenizerConfig(use_programs=True, num_velocities=32))
files = sorted(p for p in Path(sys.argv[1]).rglob("*") if p.suffix.lower() in (".mid", ".midi"))
events = read = 0
for path in files:
    try:
        tokens = tokenizer.encode(path)
    except Exception:
        continue
    seqs = tokens if isinstance(tokens, list) else [tokens]
    events += sum(len(s.ids) for s in seqs)
    read += 1
print(json.dumps({"files": len(files), "read": read, "events": events,
                  "seconds_inside": time.perf_counter() - began}))
"""


def timed(cmd: list[str], env: dict) -> tuple[float, dict]:
    began = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return seconds, json.loads(done.stdout)


def bench(folder: Path, jobs: int | None) -> dict:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, MIDIGEN_CACHE=cache)
        cmd = ["midigen", "corpus", str(folder), "--json"] + (["--jobs", str(jobs)] if jobs else [])
        cold_s, summary = timed(cmd, env)
        cached_s, cached = timed(cmd, env)
        assert cached["files_parsed"] == 0, "second run did not use the cache"
        # Start-up alone, to report the cached read time without it.
        startup_s, _ = timed([sys.executable, "-c", "import json; print(json.dumps({}))"], env)
        help_began = time.perf_counter()
        subprocess.run(["midigen", "--help"], capture_output=True, env=env, check=True)
        cli_startup_s = time.perf_counter() - help_began
    tok_s, tok = timed([sys.executable, "-c", MIDITOK_SCRIPT, str(folder)], dict(os.environ))
    return {"folder": folder, "files": summary["files_found"], "events": summary["events"],
            "cold_s": cold_s, "cached_s": cached_s, "cli_startup_s": cli_startup_s,
            "python_startup_s": startup_s, "cold_inside_s": summary["seconds"],
            "cached_inside_s": cached["seconds"], "miditok_s": tok_s, "miditok": tok}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="*", type=Path, default=DEFAULT_DIRS)
    parser.add_argument("--jobs", type=int, default=None, help="midigen --jobs (default: all cores)")
    args = parser.parse_args()
    rows = []
    for folder in args.folders:
        if not folder.is_dir():
            print(f"skipping {folder}: not found", file=sys.stderr)
            continue
        print(f"benchmarking {folder} ...", file=sys.stderr)
        rows.append(bench(folder, args.jobs))

    print(f"\ncores: {os.cpu_count()}, midigen --jobs {args.jobs or 'all'}; MidiTok: one process; "
          "all times end to end (process start-up and imports included)\n")
    print("| corpus | files | tool | seconds | files/s | events/s | speed-up |")
    print("|---|---:|---|---:|---:|---:|---|")
    for r in rows:
        name = f"{r['folder'].parent.name}/{r['folder'].name}"
        tok = r["miditok"]
        for tool, seconds, events, note in [
            ("midigen cold", r["cold_s"], r["events"],
             f"{r['miditok_s'] / r['cold_s']:.1f}x MidiTok (goal >= 3x)"),
            ("midigen cached", r["cached_s"], r["events"],
             (f"{r['cold_s'] / r['cached_s']:.1f}x cold end to end; "
              f"{r['cold_inside_s'] / max(r['cached_inside_s'], 1e-9):.0f}x start-up aside "
              "(goal >= 20x)")),
            ("MidiTok MIDILike", r["miditok_s"], tok["events"],
             f"read {tok['read']}/{tok['files']} files"),
        ]:
            print(f"| {name} | {r['files']} | {tool} | {seconds:.2f} | "
                  f"{r['files'] / seconds:,.0f} | {events / seconds:,.0f} | {note} |")
    for r in rows:
        print(f"\n{r['folder'].name}: `midigen --help` start-up {r['cli_startup_s']:.2f} s; time inside "
              f"load_corpus cold {r['cold_inside_s']:.2f} s, cached {r['cached_inside_s']:.3f} s")


if __name__ == "__main__":
    main()
