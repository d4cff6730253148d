"""Bundle vs source models on real images: does the shipped ONNX bundle predict what was trained?

For the baseline: scikit-learn's ``predict`` on the run's LogisticRegression vs ``labelmend.runtime`` on every image.
For model1/model2: the TensorFlow probability function (the one exported) vs the runtime; label agreement and the
max |diff| of probabilities. Also prints each model's accuracy on the run's validation images through the runtime.

    python bench/bench_parity.py --data ../shared/data/seed --run RUN --bundle BUNDLE [--n 50000]
"""

from __future__ import annotations

import argparse
import json
import pickle
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[1] / "../shared/data/seed")
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--bundle", type=Path, required=True)
    ap.add_argument("--n", type=int, default=None, help="first N images (default: all)")
    args = ap.parse_args()

    from labelmend.runtime import load
    from labelmend.train.baseline import histogram_features
    from labelmend.train.data import load_training_data

    data = load_training_data(args.data, progress=False)
    images = data.images[: args.n]
    run = json.loads((args.run / "run.json").read_text())
    val = np.asarray(run["split"]["val_indices_1based"]) - 1
    print(f"{len(images)} images from {args.data}; validation split: {len(val)} images")
    print("| model | images | label agreement (bundle vs source) | mismatches | max abs diff of probabilities | "
          "validation accuracy via bundle | run.json validation accuracy |")
    print("|---|---|---|---|---|---|---|")
    for name, rec in run["models"].items():
        predictor = load(args.bundle, name)
        t0 = time.perf_counter()
        got = predictor.predict_proba(images)
        if name == "baseline":
            with open(args.run / rec["file"], "rb") as f:
                clf = pickle.load(f)
            feats = histogram_features(images)
            expected_labels = clf.predict(feats)
            expected = clf.predict_proba(feats)
        else:
            import keras
            from labelmend.train.cnn import predict_proba

            model = keras.models.load_model(args.run / rec["file"], compile=False)
            expected = predict_proba(model, images, flip_tta=rec["training"].get("flip_tta", True))
            expected_labels = expected.argmax(1)
        mismatches = int(np.sum(got.argmax(1) != expected_labels))
        val_acc = float(np.mean(predictor.predict_batch(data.images[val]) == data.clean_labels[val]))
        print(f"| {name} | {len(images)} | {1 - mismatches / len(images):.5f} | {mismatches} | "
              f"{np.abs(got - expected).max():.2e} | {val_acc:.4f} | {rec['validation']['accuracy']:.4f} |"
              f"  <!-- {time.perf_counter() - t0:.0f} s -->")


if __name__ == "__main__":
    main()
