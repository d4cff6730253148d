"""Test-time views of a saved network on its validation images: plain, + mirror (shipped), + shifted views.

Takes the folder that ``bench_ablation.py --save DIR`` wrote (the final network and its validation images), so
trying a view costs inference only, no training. Prints the validation accuracy of each set of views (logits
averaged)::

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

    saved = np.load(args.saved / "split.npz")
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



if __name__ == "__main__":
    main()
