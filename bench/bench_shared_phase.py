"""A shared first phase for Model I and Model II: the same compute, more steps for each model.

The default run trains Model I and Model II from scratch, ``steps`` each. Model I's recipe (the noisy labels as if
clean) uses no trusted label, so its first part can be trained once and shared: ``--shared S`` steps of it, then
each model continues from those weights for its own ``steps − S/2`` steps (Model I on the noisy labels; Model II its
stages A and B), on the rest of one learning-rate cycle. Both models then see ``steps + S/2`` steps, and together cost
the ``2 × steps`` of the default. On the grid of ``bench_noise_grid.py`` (client noise, 1,500 trusted of 8,000):

    python bench/bench_shared_phase.py --data ../shared/data/seed --steps 500 --shared 333 --seed S

Compare with ``bench_noise_grid.py --steps 500 --noise client --trusted 1500 --ceiling`` of the same seed (the
default: no shared phase, 500 steps each).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_noise_grid import ANNOTATOR_STEPS, CLIENT, N_VAL, grid_noise, grid_setup
from labelmend.train.cnn import one_hot
from labelmend.train.inputs import TrainingTargets
from labelmend.train.loop import Trainer
from labelmend.train.methods import forward_confident, noisy_ce
from labelmend.train.task import Split, Task


@dataclass
class ContinuingTrainer(Trainer):
    """A Trainer whose first network starts from ``start``'s weights and whose learning-rate cycles are the rest of
    one cycle already run up to ``cycle_start``."""

    start: object = None
    cycle_start: float = 0.0

    def model(self, n_classes: int, images: np.ndarray):
        net = super().model(n_classes, images)
        if self.start is not None:  # the method's first network only (Model II's later folds start afresh)
            net.set_weights(self.start.get_weights())
            self.start = None
        return net

    def fit(self, model, data, *, cycle=(0.0, 1.0), **kw):
        c = self.cycle_start
        return super().fit(model, data, cycle=(c + (1 - c) * cycle[0], c + (1 - c) * cycle[1]), **kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=500, help="each model's steps without a shared phase")
    ap.add_argument("--shared", type=int, default=333, help="steps of the shared first phase")
    ap.add_argument("--trusted", type=int, default=1500)
    ap.add_argument("--cache", type=Path, default=Path("runs/noise_cache"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-json", type=Path)
    args = ap.parse_args()
    k, images, y, trainer = grid_setup(args.data, args.seed)
    noisy, _, _ = grid_noise(CLIENT, images, y, k, trainer, seed=args.seed, annotator_steps=ANNOTATOR_STEPS,
                             cache=args.cache, data_dir=args.data)
    m = args.trusted
    task = Task(images, noisy, y[:N_VAL + m], Split(train_clean=np.arange(N_VAL, N_VAL + m), val=np.arange(N_VAL)),
                n_classes=k)
    own = args.steps - args.shared // 2
    cycle_start = args.shared / (args.shared + own)
    t0 = time.monotonic()
    net = trainer.model(k, images[task.train])
    targets = one_hot(noisy[task.train], k, smoothing=trainer.hyp["opt"]["label_smoothing"])
    trainer.fit(net, TrainingTargets(images[task.train], targets, np.zeros(len(task.train), bool)),
                steps=args.shared, name="shared", desc="shared phase", cycle=(0.0, cycle_start))

    def continuing():
        return ContinuingTrainer(hyp=trainer.hyp, seed=args.seed + 100, progress=False, start=net,
                                 cycle_start=cycle_start)

    _, r1 = noisy_ce.train(task, continuing(), steps=own)
    _, r2 = forward_confident.train(task, continuing(), steps=own)
    row = {"noise": CLIENT, "trusted": m, "seed": args.seed, "steps_without_sharing": args.steps,
           "shared": args.shared, "own": own, "steps_per_model": args.shared + own,
           "model_i": r1["validation"]["accuracy"], "model_ii": r2["validation"]["accuracy"],
           "seconds": time.monotonic() - t0}
    print(f"| {args.seed} | {args.shared} + {own} | {row['model_i']:.4f} | {row['model_ii']:.4f} | "
          f"{row['seconds']:.0f} |", flush=True)
    if args.out_json:
        args.out_json.write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
