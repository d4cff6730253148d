#!/usr/bin/env bash
# The eval-only install (issue 11): `pip install ".[cpu,eval]"` in its own venv must run `labelmend evaluate` and
# `labelmend predict` with no TensorFlow, tf2onnx or OpenCV importable, and `train` must name the extra it needs.
# `.[eval]` alone brings no onnxruntime (the `cpu` / `gpu` extras pick one): `predict` must then say so in one line.
# Usage: .ci/eval_install.sh   (from the repository root, after .venv has the test extras for the bundle factory)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# a real, small bundle (skl2onnx baseline + ONNX linear model2), built with the main venv's test tools
(cd tests && ../.venv/bin/python -c "import _bundle_factory as f, sys; f.make_bundle(sys.argv[1])" "$work/bundle")

python3 -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet ".[eval]"
set +e
(cd "$work" && venv/bin/labelmend predict --bundle bundle "$repo/data/sample/test/test_images/test00001.png" 2> no_ort.err)
rc=$?
set -e
test "$rc" = 1 && test "$(wc -l < "$work/no_ort.err")" = 1 \
  && grep -q "onnxruntime is not installed: pip install 'labelmend\[cpu\]' (or \[gpu\] on a CUDA machine)" "$work/no_ort.err"
echo "eval install without an engine: predict says: $(cat "$work/no_ort.err")"
"$work/venv/bin/python" -m pip install --quiet ".[cpu,eval]"
"$work/venv/bin/python" - <<'PY'
import importlib.util
from importlib.metadata import distributions

present = [m for m in ("tensorflow", "tf2onnx", "cv2", "keras") if importlib.util.find_spec(m) is not None]
assert not present, f"the eval install pulled in {present}"
ort = sorted({d.metadata["Name"].lower() for d in distributions()} & {"onnxruntime", "onnxruntime-gpu"})
assert ort == ["onnxruntime"], f"expected onnxruntime alone, found {ort}"
print("eval install: tensorflow, tf2onnx, cv2, keras not importable; onnxruntime (CPU) the only onnxruntime")
PY
cd "$work"  # run outside the checkout, so the installed package (not the source tree) is what runs
"$work/venv/bin/labelmend" --quiet evaluate --bundle bundle --test-data "$OLDPWD/data/sample/test" --out evaluation \
  > evaluate.log
grep -q "=== baseline: accuracy" evaluate.log && grep -q "=== model2: accuracy" evaluate.log
test -s evaluation/label_prediction.csv && test -s evaluation/confusion_model2.png
"$work/venv/bin/labelmend" predict --bundle bundle "$OLDPWD/data/sample/test/test_images/test00001.png"
# any size and format through the runtime's one preprocessing (Pillow comes with the eval extra)
"$work/venv/bin/python" -c "from PIL import Image; Image.open('$OLDPWD/data/sample/test/test_images/test00002.png')\
.resize((75, 50)).save('photo.jpg')"
"$work/venv/bin/labelmend" predict --bundle bundle photo.jpg | grep -q "^photo.jpg	[0-9]"
set +e
"$work/venv/bin/labelmend" train --data "$OLDPWD/data/sample/train" --out run 2> train.err
rc=$?
set -e
test "$rc" = 1 && test "$(wc -l < train.err)" = 1 && grep -q "labelmend\[train\]" train.err
test ! -e run
echo "eval install: evaluate, predict work; train says: $(cat train.err)"
