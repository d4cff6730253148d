"""Client-side check in a runtime-only install: predict a test folder one image at a time, no TensorFlow anywhere.

    python3 -m venv /tmp/rt && /tmp/rt/bin/pip install ".[cpu]"   # numpy + onnxruntime only
    /tmp/rt/bin/python bench/check_runtime_only.py --bundle BUNDLE --test-data VALTEST

Prints each model's accuracy (compare with `labelmend evaluate` on the same folder) and fails if TensorFlow,
scikit-learn, OpenCV, matplotlib, labelmend.train or labelmend.export got imported.
"""

import argparse
import sys
import time
from pathlib import Path

HEAVY = ("tensorflow", "keras", "sklearn", "cv2", "matplotlib", "labelmend.train", "labelmend.export")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--test-data", type=Path, required=True, help="test_images/testNNNNN.png + test_labels.csv")
    args = ap.parse_args()
    t = time.perf_counter()
    import labelmend.runtime as rt
    from labelmend.ext import HAVE_EXTENSION
    from labelmend.runtime.png import read_png

    print(f"import labelmend.runtime: {(time.perf_counter() - t) * 1e3:.0f} ms; compiled histogram: {HAVE_EXTENSION}")
    labels = [int(line) for line in (args.test_data / "test_labels.csv").read_text().split()]
    images = [read_png(args.test_data / "test_images" / f"test{i:05d}.png") for i in range(1, len(labels) + 1)]
    for name in rt.load(args.bundle).bundle_manifest["models"]:
        model = rt.load(args.bundle, name)
        correct = sum(model(img) == y for img, y in zip(images, labels))  # the client's loop: model(image)
        print(f"{name}: accuracy {correct / len(labels):.4f} on {len(labels)} images, one predict(image) per image")
    heavy = [m for m in HEAVY if m in sys.modules]
    print("heavy modules imported:", heavy or "none")
    return 1 if heavy else 0


if __name__ == "__main__":
    sys.exit(main())
