#!/usr/bin/env bash
# Run HERE (a machine with the package registry), before a GPU session: fetch what the GPU
# machine lacks, so bench/gpu_check.sh needs no network there.
#   .whl/                   cp312 manylinux wheels of midigen's dependencies that the GPU image
#                           (Python 3.12, torch 2.11, typer, rich, numpy, matplotlib ...) lacks
#   .gpu/asap-piano.tar.gz  the anchor corpus (../shared/corpora/asap-piano does not travel)
# Both are git-ignored; the device call carries them: carry [".whl", ".gpu"] (64 MiB in all).
# Usage: bench/fetch_gpu_wheels.sh [--lean] [--no-corpus]
#   --lean       only the wheels the GPU check imports (symusic and its two; 3 MB instead of
#                39 MB): MIDI in and out, training, sampling, evaluation. Without it, also
#                what scores (MusicXML, kern, ABC), the built-in chorales and audio need.
#   --no-corpus  no .gpu/asap-piano.tar.gz (24 MB): the GPU check then skips the anchor run.
set -euo pipefail
cd "$(dirname "$0")/.."
lean=0 corpus=1
for arg in "$@"; do
    case "$arg" in
        --lean) lean=1 ;;
        --no-corpus) corpus=0 ;;
        *) echo "usage: bench/fetch_gpu_wheels.sh [--lean] [--no-corpus]" >&2; exit 2 ;;
    esac
done
# Pinned to the versions the suite passes with here; pure-python ones are py3-none-any.
WHEELS=(symusic==0.6.0 pySmartDL==1.3.4 platformdirs==4.14.9)  # MIDI reading and writing
[ "$lean" = 1 ] || WHEELS+=(
    pretty_midi==0.2.11.post0 mido==1.3.3 importlib_resources==7.1.0  # declared dependency
    music21==10.5.1 chardet==7.7.0 jsonpickle==4.1.4 more-itertools==11.2.1 webcolors==25.10.0
    verovio==6.4.1                                                  # MusicXML / kern (score_io)
    soundfile==0.14.0 cffi==2.0.0 pycparser==3.0                    # WAV writing (report_media)
)
# Already on the GPU image (/work/.library/device/KINDS.md): torch numpy typer rich
# matplotlib pillow six joblib requests packaging typing-extensions certifi (pySmartDL's)
# pytest pytest-xdist hypothesis cloudpickle. Nothing else midigen imports is missing there;
# with music21, verovio, soundfile, pretty_midi and mido hidden, the dry run of gpu_check.sh
# passes (2026-12-02), and tests/test_gpu_scripts.py checks no module-level import of them.
rm -rf .whl
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
    --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --platform manylinux1_x86_64 -d .whl "${WHEELS[@]}"
count=$(ls .whl/*.whl | wc -l)
if [ "$count" -ne "${#WHEELS[@]}" ]; then
    echo "fetch_gpu_wheels: expected ${#WHEELS[@]} wheels, got $count" >&2
    exit 1
fi
rm -f .gpu/asap-piano.tar.gz
if [ "$corpus" = 1 ]; then
    folder=../shared/corpora/asap-piano
    [ -d "$folder" ] || { echo "fetch_gpu_wheels: $folder not found (use --no-corpus)" >&2; exit 1; }
    mkdir -p .gpu
    tar czf .gpu/asap-piano.tar.gz -C "$(dirname "$folder")" asap-piano
fi
for path in .whl .gpu; do
    [ -e "$path" ] || continue
    git check-ignore -q "$path" || { echo "fetch_gpu_wheels: $path is not git-ignored" >&2; exit 1; }
done
total_kb=$(du -ck .whl .gpu 2>/dev/null | tail -1 | cut -f1)
tree_kb=$(git ls-files -z | du -ck --files0-from=- | tail -1 | cut -f1)
echo "fetched $count wheels; to carry: $((total_kb / 1024)) MiB + tracked files $((tree_kb / 1024)) MiB (limit 64 MiB)"
if [ $((total_kb + tree_kb)) -gt $((63 * 1024)) ]; then
    echo "fetch_gpu_wheels: too close to the 64 MiB that may travel: use --lean" >&2
    exit 1
fi
