# midigen tasks. `just --list` shows them all.
set shell := ["bash", "-euo", "pipefail", "-c"]

python := env_var_or_default("PYTHON", "python3")

# Install torch (CPU wheel, pinned) and midigen with its test and dev extras.
install:
    {{python}} -m pip install -q torch==2.13.0
    {{python}} -m pip install -q -e ".[dev]"

# Run the whole test suite on all cores.
test: install
    {{python}} -m pytest -n 2 -q

# Train on the built-in Bach chorales for a few minutes and write new pieces you can hear.
demo: install
    midigen demo

# Speed benchmarks: ingestion vs MidiTok, training and sampling vs bare torch loops, bf16 vs fp32 steps.
bench: install
    {{python}} -m pip install -q miditok
    {{python}} bench/bench_ingest.py
    {{python}} bench/bench_train.py
    {{python}} bench/bench_precision.py
    {{python}} bench/bench_sample.py

# Score reading: music21 (old path) against verovio/abc2midi on the same MusicXML, kern and ABC files.
bench-scores files="25": install
    {{python}} bench/bench_scores.py --files {{files}}

# Corpora at scale: synthetic 10k/100k/300k-file corpora (written once under $MIDIGEN_CACHE/bench-scale):
# cold, cached, one new/changed/deleted file, peak RSS, train start-up, one evaluation's cost.
bench-scale sizes="10000" baseline="": install
    {{python}} bench/bench_scale.py --sizes {{sizes}} {{ if baseline != "" { "--baseline " + baseline } else { "" } }}

# Model quality: baselines, LSTM, GRU and a Transformer on Nottingham and JSB Chorales.
bench-quality minutes="2": install
    {{python}} bench/bench_quality.py --minutes {{minutes}}

# Why the LSTM starts slowly: init, learning rate and warm-up variants at equal steps.
bench-lstm steps="200": install
    {{python}} bench/bench_lstm_sweep.py --steps {{steps}}

# Sampled pieces' endings and stuck notes, from a checkpoint trained with lengths saved.
bench-endings checkpoint num="40": install
    {{python}} bench/bench_endings.py {{checkpoint}} --num {{num}}

# Do the controls steer? Train with --controls (Nottingham: style, key, density, instruments;
# pop909: key, density), sample per setting at guidance 1-4, measure key/density/instrument/style hits.
bench-controls corpus="nottingham" minutes="20" styles="forms": install
    {{python}} bench/bench_controls.py --corpus {{corpus}} --minutes {{minutes}} --styles {{styles}} --guidance 1 2 3 4

# How much a by-file split leaks against the grouped split (Nottingham, asap-piano).
bench-split: install
    {{python}} bench/bench_split_leak.py --paired

# Static checks.
lint:
    {{python}} -m pip install -q ruff
    {{python}} -m ruff check midigen tests bench

# GPU speed against bare PyTorch loops (training, batch-1 CUDA-graph sampling, batched sampling).
bench-gpu: install
    {{python}} bench/bench_gpu.py

# On a CUDA machine: the cuda-marked tests, the GPU benchmarks, the asap-piano anchor and DDP
# scaling, time-boxed (under 9 minutes), logged to OUT. Without CUDA: a dry run.
gpu-check out="gpu-check":
    bash bench/gpu_check.sh {{out}}

# Here, before a GPU session on a machine without a registry: wheels into .whl/, the anchor
# corpus into .gpu/ (both git-ignored; carry them). --lean: only what the GPU check imports.
fetch-gpu-wheels *args:
    bash bench/fetch_gpu_wheels.sh {{args}}
