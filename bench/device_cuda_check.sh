#!/usr/bin/env bash
# Run bench/cuda_check.py on a lent GPU machine that has Python but not onnxruntime-gpu or labelmend installed.
# Usage (from the repo root there): bash bench/device_cuda_check.sh PARTS_DIR BUNDLE IMAGES.npy
#   PARTS_DIR holds the onnxruntime-gpu wheel's contents as split xz'd tar parts (part_aa, part_ab, ...), made here by
#   `unzip onnxruntime_gpu-*.whl -d w && tar cf - -C w . | xz | split -b 45M - part_`.
set -euo pipefail
parts=$1 bundle=$2 images=$3
site=/tmp/labelmend-site
rm -rf "$site" && mkdir -p "$site/labelmend"
cat "$parts"/part_* | xz -d | tar xf - -C "$site"
# labelmend's design-card folders, assembled into the one namespace (no build: the histogram falls back to numpy)
cp labelmend/*.py "$site/labelmend/"
for sub in runtime ext; do ln -s "$PWD/$sub" "$site/labelmend/$sub"; done
export PYTHONPATH="$site"
python3 -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.__file__, o.get_available_providers())"
python3 bench/cuda_check.py --bundle "$bundle" --images "$images"
