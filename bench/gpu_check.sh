#!/usr/bin/env bash
# Everything issue 11 needs a GPU for, as one prepared, time-boxed run (under 9 minutes in all,
# each part with its own timeout, so one hang loses only that part):
#   setup    install .whl/*.whl offline (bench/fetch_gpu_wheels.sh made them), name the device
#   tests    the CUDA tests: training, resume exactness on the GPU, GPU <-> CPU checkpoints
#            (sampled on the CPU with the same seed, resumed on the GPU), evaluation, the CUDA
#            graph step, a batch too big for (limited) GPU memory run in micro-batches
#   bench    bench/bench_gpu.py: train vs a bare cuDNN bf16 step (batch 256 and 64 x 256),
#            batch-1 CUDA graph vs eager, batched sampling 64 / 1,024, then torch.compile
#            (bench_gpu.json is rewritten after each row, so a timeout keeps what was measured)
#   anchor   asap-piano split by piece folder, ANCHOR_MINUTES of training (validation NLL per
#            event and the bigram baseline in the log, metrics.jsonl kept)
#   cross    the anchor checkpoint sampled with one seed on the GPU twice and on the CPU
#   scale    with 2+ GPUs only: DDP tokens/s on 1 vs N GPUs
# Usage: bench/gpu_check.sh [OUT_DIR]   (default: $OUT, else ./gpu-check)
# Environment: GPU_CHECK_SECONDS (all parts, default 500), ANCHOR_MINUTES (default 3),
#   ANCHOR_ARGS (model and batch flags), BENCH_ARGS (e.g. --quick --no-compile).
# Without CUDA (e.g. CUDA_VISIBLE_DEVICES= bench/gpu_check.sh /tmp/out) it is a dry run that
# catches mistakes: CUDA tests say they were skipped, bench_gpu.py runs each measurement once
# on the CPU (--dry-run), the anchor trains a few CPU steps on a corner of the corpus.
# Writes gpu-check.log, summary.txt, bench_gpu.json, anchor-metrics.jsonl into OUT_DIR (few
# files: the device tool brings back at most 8); the rest goes to a temp dir.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check}}"
mkdir -p "$out" && out=$(cd "$out" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX")
log="$out/gpu-check.log" summary="$out/summary.txt"
: > "$log"; : > "$summary"
export PYTHONUNBUFFERED=1 MIDIGEN_CACHE="$work/cache" MPLBACKEND=Agg
export PYTHONPATH="$PWD:$work/site${PYTHONPATH:+:$PYTHONPATH}"
began=$(date +%s) budget=${GPU_CHECK_SECONDS:-500}
seconds_left() { echo $((budget - ($(date +%s) - began))); }

# part NAME LIMIT_S COMMAND...: run under its own timeout (at most what is left), log it,
# and write one summary line: rc, seconds, ok / FAILED / TIMED OUT / skipped.
part() {
    local name=$1 limit=$2 room t0 rc verdict
    shift 2
    room=$(seconds_left)
    [ "$limit" -gt "$room" ] && limit=$room
    if [ "$limit" -lt 15 ]; then
        printf '%-7s not run: out of time\n' "$name" | tee -a "$summary"
        return
    fi
    printf '\n=== %s (limit %ss) ===\n' "$name" "$limit" >> "$log"
    t0=$(date +%s)
    timeout -k 10 "$limit" bash -c "$*" >> "$log" 2>&1
    rc=$?
    case $rc in
        0) verdict=ok ;;
        124 | 137) verdict="TIMED OUT" ;;
        77) verdict="skipped (see log)" ;;
        *) verdict=FAILED ;;
    esac
    printf '%-7s rc=%-3s %4ss  %s\n' "$name" "$rc" "$(($(date +%s) - t0))" "$verdict" | tee -a "$summary"
}

setup() {
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || true
    local py
    py=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if ls .whl/*.whl > /dev/null 2>&1; then
        if [ "$py" = 3.12 ]; then
            python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target "$work/site" .whl/*.whl || return 1
        else  # not the GPU image: only check that the wheels would install there
            echo "python $py here: checking that .whl/ installs on the GPU image's 3.12"
            python3 -m pip install -q --dry-run --no-index --no-deps --target "$work/site" \
                --only-binary=:all: --python-version 3.12 --implementation cp \
                --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
                --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
                --platform manylinux1_x86_64 .whl/*.whl || return 1
        fi
    else
        echo "no .whl/: using the packages installed here"
    fi
    python3 -c "
import torch, symusic, midigen
print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count(),
      '|', ', '.join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())))
print('midigen', midigen.__file__)"
}

tests() {
    # every test marked cuda: the training/sampling paths, controls and guided sampling
    python3 -m pytest -n 0 -q -rs -p no:cacheprovider -m cuda \
        tests/test_cuda.py tests/test_controls.py tests/test_guidance.py
}

bench() {
    if [ "$cuda" != 1 ]; then  # check that every measurement still runs, on the CPU
        echo "no CUDA: bench_gpu.py --dry-run (each measurement once, tiny model, CPU)"
        python3 bench/bench_gpu.py --dry-run || return 1
        return 77
    fi
    # shellcheck disable=SC2086  # BENCH_ARGS is a list of flags
    python3 bench/bench_gpu.py --json "$out/bench_gpu.json" ${BENCH_ARGS:-}
}

anchor() {
    local corpus=$corpus budget_flag
    [ -n "$corpus" ] || { echo "no asap-piano: run bench/fetch_gpu_wheels.sh here, carry .gpu"; return 77; }
    if [ "$cuda" = 1 ]; then
        budget_flag="--minutes $anchor_minutes"
    else  # dry run: four pieces' folders, three steps, a small model
        mkdir -p "$work/asap-dry" && cp -r "$corpus"/Bach/Fugue/bwv_84[68] "$corpus"/Bach/Fugue/bwv_85[46] "$work/asap-dry/"
        corpus="$work/asap-dry" budget_flag="--steps 3 --eval-every 3 --layers 1 --hidden 32 --embed 16 --batch-size 4"
    fi
    # shellcheck disable=SC2086  # flags lists
    python3 -m midigen train "$corpus" --split-by folder --no-programs --device "$device" \
        --run-dir "$work/anchor" ${ANCHOR_ARGS:---layers 3 --hidden 512 --embed 256 --batch-size 256 --seq-len 256 --eval-every 500} \
        $budget_flag
    local rc=$?
    cp "$work/anchor/metrics.jsonl" "$out/anchor-metrics.jsonl" 2>/dev/null
    return $rc
}

cross() {
    [ -f "$work/anchor/best.pt" ] || { echo "no anchor checkpoint to sample"; return 1; }
    local d
    for d in "$device:a" "$device:b" "cpu:c"; do
        python3 -m midigen sample -c "$work/anchor" --device "${d%%:*}" -n 4 --seed 11 \
            --seconds 20 -o "$work/cross-${d##*:}" > /dev/null || return 1
    done
    python3 - "$work" <<'PY'
import hashlib, sys
from pathlib import Path
digest = lambda d: [hashlib.sha256(p.read_bytes()).hexdigest()[:12]
                    for p in sorted((Path(sys.argv[1]) / d).glob("*.mid"))]
a, b, c = (digest(f"cross-{k}") for k in "abc")
print("same seed, this device twice, same files:", a == b, a)
print("same seed, GPU vs CPU, same files:", a == c, c)
sys.exit(0 if a == b else 1)
PY
}

scale() {
    local n
    for n in 1 "$gpus"; do  # the same windows per GPU, 1 vs N processes
        python3 -m midigen train "$corpus" --split-by folder --no-programs --gpus "$n" \
            --steps 200 --batch-size $((64 * n)) --eval-every 1000 --run-dir "$work/scale-$n" \
            | tail -4
    done
}

export -f setup tests bench anchor cross scale
export work out
part setup 90 setup
cuda=$(python3 -c "import torch; print(int(torch.cuda.is_available()))" 2>/dev/null || echo 0)
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())" 2>/dev/null || echo 0)
device=$([ "$cuda" = 1 ] && echo cuda || echo cpu)
corpus=""
if [ -f .gpu/asap-piano.tar.gz ]; then
    tar xzf .gpu/asap-piano.tar.gz -C "$work" && corpus="$work/asap-piano"
elif [ -d ../shared/corpora/asap-piano ]; then
    corpus=$(cd ../shared/corpora/asap-piano && pwd)
fi
export cuda gpus device corpus
[ "$cuda" = 1 ] || echo "no CUDA here: a dry run (CUDA tests skip, benchmarks once on the CPU, a 3-step CPU anchor)" | tee -a "$summary"
part tests 150 tests
part bench 170 bench
# The anchor gets what is left after 90 s for reading the corpus, its last full evaluation
# and the cross check, capped at ANCHOR_MINUTES.
anchor_minutes=$(awk -v want="${ANCHOR_MINUTES:-3}" -v left="$(seconds_left)" \
    'BEGIN { m = (left - 130) / 60; if (m > want) m = want; if (m < 0.5) m = 0.5; printf "%.1f", m }')
export anchor_minutes
part anchor $(awk -v m="$anchor_minutes" 'BEGIN { printf "%d", m * 60 + 100 }') anchor
part cross 40 cross
if [ "$gpus" -ge 2 ]; then
    part scale 120 scale
else
    echo "scale   one GPU or none: DDP scaling not measured" | tee -a "$summary"
fi
echo "total $(($(date +%s) - began))s; log: $log" | tee -a "$summary"
rm -rf "$work"
