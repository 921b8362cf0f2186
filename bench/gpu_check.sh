#!/usr/bin/env bash
# Everything issue 11 needs a GPU for, in one run (~3-5 minutes on an H200):
#   the CUDA-marked tests, the GPU benchmarks, and (with 2+ GPUs) DDP scaling on 1 vs N GPUs.
# Usage: bench/gpu_check.sh [OUT_DIR]   (default: $OUT, else ./gpu-check). Logs land there.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-${OUT:-gpu-check}}"
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export MIDIGEN_CACHE="$out/cache"
python3 - <<'PY' 2>&1 | tee "$out/device.txt"
import torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpus", torch.cuda.device_count())
for i in range(torch.cuda.device_count()):
    print(i, torch.cuda.get_device_name(i))
PY
python3 -m pytest -m cuda -n 0 -q -rs tests/test_cuda.py 2>&1 | tee "$out/pytest-cuda.txt"
python3 bench/bench_gpu.py --json "$out/bench_gpu.json" 2>&1 | tee "$out/bench_gpu.txt"
gpus=$(python3 -c "import torch; print(torch.cuda.device_count())")
if [ "$gpus" -ge 2 ]; then
    # Scaling: the same global batch per GPU, 1 vs N processes, tokens/s from the metrics.
    for n in 1 "$gpus"; do
        python3 -m midigen train --gpus "$n" --steps 200 --batch-size $((64 * n)) \
            --eval-every 1000 --run-dir "$out/scale-$n" 2>&1 | tail -3 | tee "$out/scale-$n.txt"
    done
else
    echo "one GPU: DDP scaling not measured" | tee "$out/scale.txt"
fi
