"""Test-time views of a saved network on its validation images: plain, + mirror (shipped), + shifted views.

Takes the folder that ``bench_ablation.py --save DIR`` wrote (the final network and the split), so trying a view
costs inference only, no training. Prints the validation accuracy of each set of views (logits averaged) and, for
Model II, how clean the noisy labels are that a Bayes posterior rule would keep at several thresholds (the
confident-learning rule's share and accuracy are in the bench_ablation row; BENCHMARKS.md)::

    python bench/bench_ablation.py --data ../shared/data/seed --steps 2813 --label L --save /tmp/saved
    python bench/bench_tta_views.py --data ../shared/data/seed --saved /tmp/saved
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from labelmend.train.data import load_training_data


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Images moved by (-dy, -dx) pixels, reflect padding (dy, dx in -1..1)."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
    return padded[:, 1 + dy:33 + dy, 1 + dx:33 + dx]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--saved", type=Path, required=True, help="a bench_ablation.py --save folder")
    args = ap.parse_args()

    import keras

    saved = np.load(args.saved / "relabel_inputs.npz")
    data = load_training_data(args.data, progress=False)
    val = saved["val"]
    x, y = data.images[val].astype(np.float32), data.clean_labels[val]
    model = keras.models.load_model(args.saved / "model.keras", compile=False)

    def logits(views):
        return np.mean([model.predict(v, batch_size=1000, verbose=0) for v in views], axis=0)

    mirror = x[:, :, ::-1]
    candidates = {
        "plain (1 view)": [x],
        "image + mirror (2 views, shipped)": [x, mirror],
        "+ image shifted (1, 1) (3 views)": [x, mirror, shifted(x, 1, 1)],
        "+ mirror shifted (1, 1) (3 views)": [x, mirror, shifted(mirror, 1, 1)],
        "+ 4 shifted: (±1, ±1) of image and mirror (6 views)": [x, mirror] + [
            shifted(v, d, d) for v in (x, mirror) for d in (1, -1)],
    }
    print(f"| views | validation accuracy ({len(y)} images) |\n|---|---:|")
    for name, views in candidates.items():
        print(f"| {name} | {np.mean(logits(views).argmax(1) == y):.4f} |")

    probs, transition, noisy = saved["probs"][val], saved["transition"], saved["noisy"][val]
    if transition.size:  # P(ỹ is right | x, ỹ) = P(y = ỹ | x) T[ỹ, ỹ] / Σ_i P(y = i | x) T[i, ỹ]
        right = probs[np.arange(len(y)), noisy] * transition[noisy, noisy] / (probs * transition[:, noisy].T).sum(1)
        print("\n| keep a noisy label when P(right) ≥ | share kept | kept labels right |\n|---:|---:|---:|")
        for tau in (0.3, 0.5, 0.7, 0.9):
            keep = right >= tau
            print(f"| {tau} | {keep.mean():.3f} | {np.mean(noisy[keep] == y[keep]):.3f} |")


if __name__ == "__main__":
    main()
