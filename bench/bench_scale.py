"""Corpora at scale: how `midigen corpus` and train start-up grow with the number of files.

Synthetic corpora of N files are made once from the shared MIDI corpora (copies transposed by
-6..+6 semitones, under new names, 1,000 to a folder) under $MIDIGEN_CACHE/bench-scale (never
in the repository). For each N, every number comes from a fresh subprocess, as a user runs it:

- cold: `midigen corpus DIR --json` with an empty store (files/s, peak RSS);
- cached: the same again; then 1 new, 1 changed and 1 deleted file, each one run (with
  `--repeat N`, the median of N rounds of these four);
- start-up, the fixed cost those runs cannot go below, measured in the same run (median of
  --repeat): `python -c "import midigen.cli"` (interpreter and imports) and `midigen
  corpus` of an empty folder (that, the command's own imports and opening a store);
- train start-up: load the corpus, split it, build the training stream, a 2 x 256 LSTM and
  one training step (peak RSS against 2 x token bytes + model + 300 MB);
- one evaluation: scoring the default validation sample (timed on 20,000 of its events),
  against the 250 training steps between evaluations, and what scoring the whole validation
  split would cost (what every evaluation cost before the sample).

`--baseline REV` runs the cached/new/changed/deleted and train rows with midigen at a git
revision too (extracted with `git archive`), so each timing has a same-run ratio.

`--quick-store` builds a missing store without the cold run: each distinct tune and
transposition is read once and every copy recorded with its result (the same summary as a
cold build: checked at 10,000 files), so 300,000 files take about 30 s instead of 20 minutes.

    python bench/bench_scale.py --sizes 10000 100000 [--baseline cdca25d] [--repeat 3]
    python bench/bench_scale.py --sizes 100000 300000 --quick-store --corpus-only --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT.parent / "shared" / "corpora" / "nottingham" / "MIDI"
PER_FOLDER = 1000
LAST_CPU_S = [0.0]  # CPU seconds of the last command timed_rss ran

TRAIN_START = r"""
import json, resource, sys, time
import torch
from midigen.batches import build_stream, random_windows
from midigen.corpus import load_corpus
try:
    from midigen.split import split_pieces
except ImportError:  # a baseline from before midigen.split
    from midigen.corpus import split_pieces
from midigen.model import ModelConfig, MusicRNN
from midigen.tokenizer import vocabulary
corpus = load_corpus(sys.argv[1])
train, valid = split_pieces(corpus.pieces, 0.1, 0)
stream = build_stream([p.ids for p in train], corpus.config)
model = MusicRNN(ModelConfig(vocabulary(corpus.config).size, hidden=256, layers=2))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
g = torch.Generator().manual_seed(0)
def step():
    x, y = random_windows(stream, 32, 256, g, 3)
    logits, _ = model(x)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    optimizer.zero_grad(); loss.backward(); optimizer.step()
step()
rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
began = time.perf_counter()
for _ in range(3):
    step()
step_s = (time.perf_counter() - began) / 3
out = {"rss_mb": rss_mb, "token_mb": 2 * sum(len(p.ids) for p in corpus.pieces) / 2**20,
       "model_mb": 4 * model.num_parameters() / 2**20, "step_s": step_s,
       "valid_events": sum(len(p.ids) for p in valid)}
try:
    from midigen.evaluate import default_valid_events, nll_over_pieces, validation_sample
except ImportError:  # a baseline without the sample
    print(json.dumps(out)); sys.exit()
# One evaluation scores the default sample; timed on its first EVAL_TIMED events, scaled.
events = default_valid_events(250, 32, 256)
sample, _ = validation_sample([p.ids for p in valid], [p.duration_s for p in valid],
                              min(events, 20_000), 0)
began = time.perf_counter()
scored = nll_over_pieces(model, sample)
per_event = (time.perf_counter() - began) / scored["num_events"]
out.update(eval_s=per_event * events, eval_events=events)
print(json.dumps(out))
"""

# The floor of train start-up without a corpus: torch, the same model, one training step.
MODEL_ONLY = r"""
import json, resource, torch
from midigen.model import ModelConfig, MusicRNN
model = MusicRNN(ModelConfig(519, hidden=256, layers=2))
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
x = torch.randint(0, 519, (32, 257))
logits, _ = model(x[:, :-1])
torch.nn.functional.cross_entropy(logits.reshape(-1, 519), x[:, 1:].reshape(-1)).backward()
optimizer.step()
print(json.dumps({"rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


# Builds the store of a bench corpus the quick way (--quick-store), in the impl's own code:
# each distinct (tune, transposition) is read once, and every copy is recorded with its
# result under its own name, in batches as a cold run commits them (same shards and rows).
QUICK_STORE = r"""
import sys
from pathlib import Path
from midigen.corpus import READ_BATCH_FILES, cache_dir_for
from midigen.listing import list_scores
from midigen.reading import read_files
from midigen.token_store import TokenStore
from midigen.tokenizer import TokenizerConfig
folder, config = Path(sys.argv[1]).resolve(), TokenizerConfig()
listing = list_scores(folder)
tune = lambda rel: rel.rsplit("/", 1)[1].rsplit("-", 1)[0]  # name less the copy number
first = {}
for rel in listing.rels:
    first.setdefault(tune(rel), rel)
results = dict(zip(first, read_files([str(folder / r) for r in first.values()], config)))
with TokenStore(cache_dir_for(folder, config)) as store:
    for start in range(0, len(listing.rels), READ_BATCH_FILES):
        batch = []
        for i in range(start, min(start + READ_BATCH_FILES, len(listing.rels))):
            rel = listing.rels[i]
            result = dict(results[tune(rel)])
            name = rel.rsplit("/", 1)[1].rsplit(".", 1)[0]
            result["pieces"] = [dict(p, name=name) for p in result.get("pieces", [])]
            batch.append((rel, int(listing.sizes[i]), int(listing.mtimes[i]), result))
        store.record(batch)
"""


def make_corpus(size: int, home: Path) -> Path:
    """home/files-SIZE: SIZE transposed copies of the Nottingham tunes, written once."""
    import symusic

    folder = home / f"files-{size}"
    if (folder / ".complete").exists():
        return folder
    sources = sorted(SOURCES.glob("*.mid"))
    if not sources:
        sys.exit(f"no source MIDI files in {SOURCES}")
    tmp = Path(tempfile.mkdtemp(dir=home, prefix=".files-"))
    scores, made = {}, {}
    for i in range(size):
        src, shift = sources[i % len(sources)], (i // len(sources)) % 13 - 6
        if (src, shift) not in made:
            score = scores.setdefault(src, symusic.Score(str(src)))
            made[(src, shift)] = score.shift_pitch(shift).dumps_midi()
        sub = tmp / f"{i // PER_FOLDER:04d}"
        if i % PER_FOLDER == 0:
            sub.mkdir()
        (sub / f"{src.stem}-t{shift:+d}-{i:07d}.mid").write_bytes(made[(src, shift)])
    (tmp / ".complete").touch()
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return folder


class Midigen:
    """One midigen source tree (this checkout, or a baseline revision) and its own store."""

    def __init__(self, name: str, source: Path, home: Path):
        self.name, self.home = name, home
        self.env = dict(os.environ, PYTHONPATH=str(source))

    def use_store(self, size: int) -> Path:
        """Each (midigen, corpus size) has its own store, so a cold run clears only its own."""
        store = self.home / "stores" / self.name / str(size)
        self.env["MIDIGEN_CACHE"] = str(store)
        return store

    def corpus(self, folder: Path) -> tuple[float, float, dict]:
        """(wall seconds, peak RSS MB, summary); summary["cpu_s"]: the run's CPU seconds
        (user + system, its reader processes included), which a loaded machine inflates less."""
        seconds, rss, out = timed_rss([sys.executable, "-m", "midigen", "corpus", str(folder),
                                       "--json"], self.env)
        summary = json.loads(out)
        summary["cpu_s"] = LAST_CPU_S[0]
        return seconds, rss, summary

    def train_start(self, folder: Path) -> dict:
        _, _, out = timed_rss([sys.executable, "-c", TRAIN_START, str(folder)], self.env)
        return json.loads(out.strip().splitlines()[-1])


def timed_rss(cmd: list[str], env: dict) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MB of the child, stdout)."""
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        began = time.perf_counter()
        # cwd outside any checkout: `python -m`/`-c` put the cwd first on sys.path, which
        # would shadow PYTHONPATH's midigen (and make a baseline run this one's code).
        process = subprocess.Popen(cmd, env=env, stdout=out_f, stderr=err_f,
                                   cwd=tempfile.gettempdir())
        _, status, usage = os.wait4(process.pid, 0)  # wait4: the child's own peak RSS
        seconds = time.perf_counter() - began
        out_f.seek(0)
        err_f.seek(0)
        out, err = out_f.read(), err_f.read()
    if status != 0:
        sys.exit(f"{' '.join(cmd[:4])} failed:\n{err.decode()[-2000:]}")
    LAST_CPU_S[0] = usage.ru_utime + usage.ru_stime
    return seconds, usage.ru_maxrss / 1024, out.decode()


def median_run(run, repeat: int) -> tuple[float, float]:
    """(median wall s, median CPU s) of `repeat` calls of run() -> (wall s, CPU s)."""
    runs = [run() for _ in range(repeat)]
    return (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))


def start_up(impl: Midigen, home: Path, repeat: int) -> dict:
    """The fixed cost of a run: interpreter and imports, and `corpus` of an empty folder."""
    empty = home / "empty"
    empty.mkdir(exist_ok=True)
    impl.use_store(0)

    def imports():
        seconds, _, _ = timed_rss([sys.executable, "-c", "import midigen.cli"], impl.env)
        return seconds, LAST_CPU_S[0]

    def empty_corpus():
        seconds, _, s = impl.corpus(empty)
        return seconds, s["cpu_s"]

    row = {}
    row["imports_s"], row["imports_cpu_s"] = median_run(imports, repeat)
    row["empty_s"], row["empty_cpu_s"] = median_run(empty_corpus, repeat)
    return row


def one_file_rounds(impl: Midigen, folder: Path, probe: Path, victim: Path | None,
                    repeat: int) -> dict:
    """Median wall and CPU seconds of a cached run and of taking in 1 new, 1 changed and
    1 deleted file, over `repeat` rounds."""
    row: dict = {}
    samples: dict[str, list] = {}

    def timed(what: str, parsed: int) -> dict:
        seconds, rss, s = impl.corpus(folder)
        samples.setdefault(what, []).append((seconds, s["cpu_s"]))
        assert s["files_parsed"] == parsed, (what, s)
        row[what + "_rss_mb"] = rss
        return s

    original = victim.read_bytes() if victim else None
    for _ in range(repeat):
        row["events"] = timed("cached", 0)["events"]
        shutil.copy(max(SOURCES.glob("*.mid")), probe)
        timed("new", 1)
        if victim:
            victim.write_bytes(probe.read_bytes())
            timed("changed", 1)
        probe.unlink()
        timed("deleted", 0)
        if victim:
            victim.write_bytes(original)
            impl.corpus(folder)  # back in step with the folder
    for what, runs in samples.items():
        row[what + "_s"] = statistics.median(r[0] for r in runs)
        row[what + "_cpu_s"] = statistics.median(r[1] for r in runs)
    return row


def bench_size(size: int, home: Path, impls: list[Midigen], cold: bool,
               corpus_only: bool = False, repeat: int = 1, quick: bool = False) -> list[dict]:
    folder = make_corpus(size, home)
    probe = folder / "0000" / "zz-probe.mid"
    victim = next((folder / "0001").iterdir()) if size > PER_FOLDER else None
    rows = []
    for impl in impls:
        row = {"impl": impl.name, "files": size}
        store = impl.use_store(size)
        if quick and not store.exists():
            timed_rss([sys.executable, "-c", QUICK_STORE, str(folder)], impl.env)
        elif cold or not store.exists():
            shutil.rmtree(store, ignore_errors=True)
            row["cold_s"], row["cold_rss_mb"], summary = impl.corpus(folder)
            row["cold_files_per_s"] = summary["files_found"] / row["cold_s"]
            print(json.dumps(row), flush=True)
        # The first cached run may still check shards the cold run wrote (store_check).
        row["first_cached_s"], row["first_cached_rss_mb"], s = impl.corpus(folder)
        row["first_cached_cpu_s"] = s["cpu_s"]
        row.update(start_up(impl, home, repeat))
        impl.use_store(size)
        row.update(one_file_rounds(impl, folder, probe, victim, repeat))
        print(json.dumps(row), flush=True)
        if not corpus_only:
            row.update(impl.train_start(folder))
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--baseline", help="git revision to compare with (e.g. cdca25d)")
    parser.add_argument("--no-cold", action="store_true", help="reuse stores from a run before")
    parser.add_argument("--quick-store", action="store_true",
                        help="build a missing store by reading each distinct tune and "
                             "transposition once (no cold row; 300,000 files in about 30 s)")
    parser.add_argument("--corpus-only", action="store_true", help="skip train start-up rows")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of cached/new/changed/deleted runs (medians)")
    args = parser.parse_args()
    cache = Path(os.environ.get("MIDIGEN_CACHE") or Path.home() / ".cache" / "midigen")
    home = cache / "bench-scale"
    home.mkdir(parents=True, exist_ok=True)
    impls = [Midigen("this", ROOT, home)]
    if args.baseline:
        source = home / f"src-{args.baseline}"
        if not source.exists():
            source.mkdir()
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.baseline, "midigen"],
                                     capture_output=True, check=True).stdout
            subprocess.run(["tar", "-x", "-C", str(source)], input=archive, check=True)
        impls.append(Midigen(f"rev-{args.baseline}", source, home))
    model_rss = nan = float("nan")
    if not args.corpus_only:
        _, _, out = timed_rss([sys.executable, "-c", MODEL_ONLY], impls[0].env)
        model_rss = json.loads(out)["rss_mb"]
        print(json.dumps({"model_only_rss_mb": model_rss}), flush=True)
    rows = []
    for size in args.sizes:
        rows += bench_size(size, home, impls, not (args.no_cold or args.quick_store),
                           args.corpus_only, args.repeat, args.quick_store)
    print(f"\ntorch + the 2 x 256 LSTM + one training step, no corpus: {model_rss:.0f} MB\n")
    print("wall seconds (CPU seconds) of each run, start-up included; start-up measured "
          "beside each size: `import midigen.cli` / `corpus` of an empty folder; last column: "
          "the empty-folder start-up's share of +1 new (CPU)\n")
    print("| impl | files | cold files/s | first cached s | start-up s | cached s | +1 new s | "
          "1 changed s | -1 deleted s | corpus RSS MB | train start RSS MB (budget) | "
          "one eval s (share) | full valid s | start-up share of +1 |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        timed = [f"{r.get(k + '_s', nan):.2f} ({r.get(k + '_cpu_s', nan):.2f})"
                 for k in ("cached", "new", "changed", "deleted")]
        start = (f"{r['imports_s']:.2f} ({r['imports_cpu_s']:.2f}) / "
                 f"{r['empty_s']:.2f} ({r['empty_cpu_s']:.2f})")
        train = evals = full = "-"
        if "rss_mb" in r:
            train = f"{r['rss_mb']:.0f} ({2 * r['token_mb'] + model_rss + 300:.0f})"
        if "eval_s" in r:
            share = r["eval_s"] / (r["eval_s"] + 250 * r["step_s"])
            evals = f"{r['eval_s']:.1f} ({share:.1%})"
            full = f"{r['eval_s'] * r['valid_events'] / r['eval_events']:.0f}"
        share = r["empty_cpu_s"] / r["new_cpu_s"]
        print(f"| {r['impl']} | {r['files']:,} | {r.get('cold_files_per_s', nan):.0f} | "
              f"{r['first_cached_s']:.2f} | {start} | {' | '.join(timed)} | "
              f"{r['cached_rss_mb']:.0f} | {train} | {evals} | {full} | {share:.0%} |")


if __name__ == "__main__":
    main()
