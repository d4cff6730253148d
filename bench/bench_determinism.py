"""Is a same-seed training run reproducible? Trains Model I's recipe on the client grid and prints a hash of the
final weights; run it twice under the same settings and compare the hashes::

    python bench/bench_determinism.py --data ../shared/data/seed --steps 150          # twice: default threads
    TF_NUM_INTRAOP_THREADS=1 TF_NUM_INTEROP_THREADS=1 python bench/bench_determinism.py \
        --data ../shared/data/seed --steps 150                                          # twice: one thread
"""

from __future__ import annotations

import argparse
import hashlib
import os
from pathlib import Path

import numpy as np
from bench_noise_grid import N_VAL, client_noise, grid_setup
from labelmend.train.methods import noisy_ce
from labelmend.train.task import Split, Task


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    k, images, y, trainer = grid_setup(args.data, args.seed)
    noisy = client_noise(args.data, args.seed)
    task = Task(images, noisy, y[:N_VAL], Split(train_clean=np.array([], np.int64), val=np.arange(N_VAL)),
                n_classes=k)
    model, report = noisy_ce.train(task, trainer, steps=args.steps)
    digest = hashlib.sha256(b"".join(w.tobytes() for w in model.get_weights())).hexdigest()[:16]
    settings = {v: os.environ.get(v, "default")
                for v in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "TF_ENABLE_ONEDNN_OPTS")}
    print(f"steps {args.steps} seed {args.seed} {settings}: weights {digest}, validation accuracy "
          f"{report['validation']['accuracy']:.4f}", flush=True)


if __name__ == "__main__":
    main()
