"""Model I vs Model II across noise kinds and trusted-set sizes, on the client's clean-labelled images (issue 10).

The 10,000 images with clean labels are the ground truth. Their noisy labels are *simulated* from the clean ones
with a known transition matrix T (``labelmend.benchmarking.simulate_noise``), so every noise kind can be measured on
real images; "annotator-like 40 %" is noise that depends on the image instead (``benchmarking.confusion_noise``): a
network trained on the clean labels of the other half of the images (2 folds, ``--annotator-steps`` each, cached
under ``--cache``) scores every image, and the 40 % it finds most confusable get the class it confuses them with;
"annotator-sampled 40 %" draws the errors instead: each image is wrong with a probability proportional to the
network's mass on its wrong classes (40 % on average; also at 10 % and 20 %), to a wrong class drawn from those
probabilities; "none" keeps every label right (Model I is then what the network reaches without noise).
Images 1–2,000 (a fixed seeded choice) are the validation set: never trained on, scored with their
clean labels. Of the other 8,000, the first ``m`` keep their clean label as the trusted set (m = 0 … 8,000); all
8,000 carry their simulated noisy label. Model I (noisy labels as if clean) and Model II (weak supervision) train
with the same network and the same number of steps:

    python bench/bench_noise_grid.py --data ../shared/data/seed --steps 500 --trusted 0,200,1000,8000
    python bench/bench_noise_grid.py --data ../shared/data/seed --steps 500 --noise "annotator-like 40 %"
    python bench/bench_noise_grid.py --data ../shared/data/seed --steps 500 --noise "annotator-sampled 40 %"
    python bench/bench_noise_grid.py --data ../shared/data/seed --steps 500 --noise client --trusted 1500 --ceiling

Prints one Markdown row per (noise, m): Model I, Model II, Model II's distance to the ceiling (``--ceiling``: the same
network, images and steps trained on the true labels), how often the validation images' simulated noisy labels
are right before and after Model II's correction, the share of noisy labels Model II's stage B kept and how often
those are right (validation images), and the L1 row error of the T Model II used.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np
from bench_ablation import parse_overrides  # a sibling script (bench/ is on sys.path)
from labelmend.train import cnn, noise
from labelmend.train.data import load_training_data
from labelmend.train.distribute import configure_tensorflow
from labelmend.train.loop import Trainer
from labelmend.train.methods import forward_confident, noisy_ce
from labelmend.train.task import Split, Task

from labelmend import benchmarking

# CIFAR-10 label order: plane car bird cat deer dog frog horse ship truck
HUMAN_PAIRS = {9: 1, 1: 9, 3: 5, 5: 3, 4: 7, 7: 4, 2: 0, 0: 2, 8: 0, 6: 3}  # truck↔car, cat↔dog, deer↔horse, ...


def class_dependent(k: int, seed: int = 0, margin: float = 0.1) -> np.ndarray:
    """Each class keeps its label with its own rate in [0.4, 0.8]; the errors go to 3 random other classes, none of
    them within ``margin`` of the kept rate. The true class stays the most frequent label of its images (T's
    diagonal dominates its row), as with human annotators; without that, no method that lacks trusted labels can
    tell a class from the one its images are mostly labelled as."""
    rng = np.random.default_rng(seed)
    t = np.zeros((k, k))
    for i in range(k):
        keep = rng.uniform(0.4, 0.8)
        others = rng.choice([j for j in range(k) if j != i], size=3, replace=False)
        split = rng.dirichlet(np.ones(3)) * (1 - keep)
        while split.max() > keep - margin:
            split = rng.dirichlet(np.ones(3)) * (1 - keep)
        t[i, i] = keep
        t[i, others] = split
    return t


NOISE = {
    "symmetric 60 %": lambda k: benchmarking.symmetric(k, 0.6),
    "pair-flip 40 %": lambda k: benchmarking.pair_flip(k, 0.4, HUMAN_PAIRS),
    "class-dependent": lambda k: class_dependent(k),
}
N_VAL = 2000  # validation images: the first of the shuffled clean-labelled images
ANNOTATOR_STEPS = 400  # steps of each of the two networks whose scores make the annotator-* labels
GRID = ",".join(NOISE)  # the three kinds, the default --noise
NOISE["none"] = lambda k: np.eye(k)  # every label right: what the network reaches without noise (Model I = oracle)
# instance-dependent noise from an out-of-fold network's scores: the 40 % most confusable images always wrong
# (benchmarking.confusion_noise), or each image wrong with a probability that grows with its confusability
# (benchmarking.sampled_confusion_noise)
CLIENT = "client"  # the client's own noisy labels of these images (~60 % wrong, close to symmetric)
ANNOTATOR = "annotator-like 40 %"
ANNOTATOR_SAMPLED = "annotator-sampled 40 %"
INSTANCE_NOISE = {ANNOTATOR: lambda y, probs, seed: benchmarking.confusion_noise(y, probs, 0.4)}
SAMPLED_RATES = {ANNOTATOR_SAMPLED: 0.4}
for _rate in (10, 20):  # milder annotators (CIFAR-10N's aggregate and single-annotator labels: 9 % and 17 % wrong)
    SAMPLED_RATES[f"annotator-sampled {_rate} %"] = _rate / 100
for _kind, _rate in SAMPLED_RATES.items():
    INSTANCE_NOISE[_kind] = lambda y, probs, seed, r=_rate: benchmarking.sampled_confusion_noise(y, probs, r, seed=seed)


def out_of_fold_probs(images: np.ndarray, y: np.ndarray, k: int, trainer: Trainer, *, steps: int,
                      cache: Path) -> np.ndarray:
    """P(y | x) (N, K) of every image from a network trained on the clean labels of the other half (Model I's
    recipe, ``steps`` steps per half); cached in ``cache`` by images, labels and steps."""
    key = hashlib.sha256(images.tobytes() + y.tobytes() + f"{steps}{trainer.seed}".encode()).hexdigest()[:16]
    path = cache / f"oof_probs_{key}.npy"
    if path.exists():
        return np.load(path)
    probs = np.zeros((len(y), k), np.float32)
    folds = np.arange(len(y)) % 2
    for f in (0, 1):
        held = np.flatnonzero(folds == f)
        task = Task(images, y, y, Split(train_clean=np.array([], np.int64), val=held), n_classes=k)
        model, report = noisy_ce.train(task, trainer, steps=steps)
        probs[held] = trainer.predict_proba(model, images[held])
        print(f"  annotator network {f}: {report['validation']['accuracy']:.4f} on the half it did not see",
              flush=True)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, probs)
    return probs


def grid_images(data, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The clean-labelled images and their clean labels in a fixed seeded order (the first 2,000 are validation)."""
    y = data.clean_labels
    order = np.random.default_rng(seed).permutation(len(y))
    return data.images[:len(y)][order], y[order]


def grid_setup(data_dir: Path, seed: int, *, hyp: dict | None = None):
    """(K, the grid's images, their clean labels, a Trainer with ``hyp``) for ``seed``, TensorFlow seeded."""
    configure_tensorflow(seed)
    data = load_training_data(data_dir, progress=False)
    images, y = grid_images(data, seed)
    return data.n_classes, images, y, Trainer(hyp=hyp or cnn.hyperparameters(), seed=seed, progress=False)


def client_noise(data_dir: Path, seed: int) -> np.ndarray:
    """The client's own noisy labels of the grid's images (in :func:`grid_images`' order)."""
    data = load_training_data(data_dir, progress=False)
    order = np.random.default_rng(seed).permutation(len(data.clean_labels))
    return data.noisy_labels[:len(data.clean_labels)][order]


def grid_noise(kind: str, images: np.ndarray, y: np.ndarray, k: int, trainer: Trainer, *, seed: int,
               annotator_steps: int, cache: Path, data_dir: Path | None = None
               ) -> tuple[np.ndarray, np.ndarray, float | None]:
    """(noisy labels, the T they follow, the share of images whose likeliest noisy label is a wrong class) of noise
    ``kind`` drawn from the clean labels ``y`` (:data:`CLIENT`: the client's own, from ``data_dir``); the share is
    None where each image's label distribution is not known (annotator-like: every wrong label is certain)."""
    if kind == CLIENT:
        noisy = client_noise(data_dir, seed)
        return noisy, noise.estimate_transition_matrix(y, noisy, n_classes=k, prior_strength=0), None
    if kind in INSTANCE_NOISE:
        probs = out_of_fold_probs(images, y, k, trainer, steps=annotator_steps, cache=cache)
        noisy = INSTANCE_NOISE[kind](y, probs, seed + 1)
        flipped = None
        if kind in SAMPLED_RATES:
            dist = benchmarking.sampled_confusion_distribution(y, probs, SAMPLED_RATES[kind])
            flipped = float(np.mean(dist.argmax(1) != y))
        return noisy, noise.estimate_transition_matrix(y, noisy, n_classes=k, prior_strength=0), flipped
    t_true = NOISE[kind](k)
    return benchmarking.simulate_noise(y, t_true, seed=seed + 1), t_true, float(np.mean(t_true.argmax(1)[y] != y))


def _share(row: dict) -> str:
    """'share / right' of the noisy labels stage B kept ('all' when it keeps every one)."""
    if row["kept_fraction"] is None:
        return "all"
    return f"{row['kept_fraction']:.2f} / {row['kept_label_accuracy']:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=250, help="SGD steps per model (batch 256)")
    ap.add_argument("--trusted", default="0,200,1000,8000")
    ap.add_argument("--noise", default=GRID,
                    help="comma-separated subset of: " + ", ".join([*NOISE, *INSTANCE_NOISE, CLIENT]))
    ap.add_argument("--annotator-steps", type=int, default=ANNOTATOR_STEPS,
                    help="steps of each of the two networks that make the annotator-* labels")
    ap.add_argument("--cache", type=Path, default=Path("runs/noise_cache"),
                    help="where those networks' scores are kept")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--set", action="append", default=[], metavar="GROUP.KEY=VALUE",
                    help="override the network's HYP (JSON value), e.g. net.precision=\"bfloat16\"")
    ap.add_argument("--method-set", action="append", default=[], metavar="KEY=VALUE",
                    help="override Model II's HYP (JSON value), e.g. clean_repeat=2")
    ap.add_argument("--no-model-i", action="store_true", help="train Model II only (its rows show no Model I)")
    ap.add_argument("--ceiling", action="store_true",
                    help="also train Model I's recipe on the true labels of the same images and steps, once, and show "
                         "each Model II's distance to it")
    ap.add_argument("--out-json", type=Path, help="the rows as JSON, rewritten after each row")
    ap.add_argument("--model-i-from", type=Path, metavar="JSON",
                    help="take Model I's accuracy from an earlier --out-json of the same seed and steps (Model I "
                         "never sees a trusted label, so Model II's rows alone can be rerun)")
    args = ap.parse_args()
    k, images, y, trainer = grid_setup(args.data, args.seed,
                                       hyp=cnn.hyperparameters(**parse_overrides(args.set, dotted=True)))
    earlier = {}
    if args.model_i_from:
        earlier = {r["noise"]: r["model_i"] for r in json.loads(args.model_i_from.read_text(encoding="utf-8"))
                   if r["steps"] == args.steps and r.get("seed", 0) == args.seed}
    hyp_noise = {**forward_confident.HYP, **parse_overrides(args.method_set, dotted=False, known=forward_confident.HYP)}
    rows, results = [], []
    ceiling = None
    if args.ceiling:  # the same network, images and steps on the true labels of all the training images
        truth = Task(images, y, y, Split(train_clean=np.array([], np.int64), val=np.arange(N_VAL)), n_classes=k)
        ceiling = noisy_ce.train(truth, trainer, steps=args.steps)[1]["validation"]["accuracy"]
        print(f"ceiling (every training label right): {ceiling:.4f}", flush=True)
    print("| noise | trusted labels | Model I | Model II | Model II − I | Model II − ceiling | labels right: noisy → "
          "corrected | kept noisy labels: share / right | T error (L1/row) | seconds |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    kinds = args.noise.split(",")
    unknown = [kind for kind in kinds if kind not in NOISE and kind not in INSTANCE_NOISE and kind != CLIENT]
    if unknown:
        ap.error(f"unknown noise {unknown}: choose from {[*NOISE, *INSTANCE_NOISE, CLIENT]}")
    for kind in kinds:
        noisy, t_true, flipped = grid_noise(kind, images, y, k, trainer, seed=args.seed,
                                            annotator_steps=args.annotator_steps, cache=args.cache,
                                            data_dir=args.data)
        model1_acc = earlier.get(kind)
        for m in map(int, args.trusted.split(",")):
            task = Task(images, noisy, y[:N_VAL + m], Split(train_clean=np.arange(N_VAL, N_VAL + m),
                                                          val=np.arange(N_VAL)), n_classes=k)
            t0 = time.monotonic()
            if model1_acc is None and not args.no_model_i:  # Model I never sees a clean label: once per noise kind
                _, r1 = noisy_ce.train(task, trainer, steps=args.steps)
                model1_acc = r1["validation"]["accuracy"]
            _, r2 = forward_confident.train(task, trainer, steps=args.steps, hyp_noise=hyp_noise)
            lc = r2["label_correction"]
            corrected = lc.get("corrected_label_accuracy_after_B", lc["corrected_label_accuracy"])
            err = float(np.mean(np.abs(np.asarray(r2["transition_matrix"]) - t_true).sum(axis=1)))
            row = {"noise": kind, "trusted": m, "model_i": model1_acc,
                   "model_ii": r2["validation"]["accuracy"],
                   "stage_a": next(iter(r2["stages"].values()))["val_accuracy"],
                   "noisy_label_accuracy": lc["noisy_label_accuracy"], "corrected_label_accuracy": corrected,
                   "kept_fraction": lc.get("kept_fraction"), "kept_label_accuracy": lc.get("kept_label_accuracy"),
                   "transition_error_l1": err, "likeliest_noisy_label_wrong": flipped,
                   "transition_source": r2["transition_source"],
                   "seconds": time.monotonic() - t0, "steps": args.steps, "seed": args.seed,
                   "method_set": args.method_set, "set": args.set, "ceiling": ceiling}
            results.append(row)
            model1 = "—" if model1_acc is None else f"{model1_acc:.4f}"
            gain = "—" if model1_acc is None else f"{100 * (row['model_ii'] - model1_acc):+.1f} pt"
            below = "—" if ceiling is None else f"{100 * (row['model_ii'] - ceiling):+.1f} pt"
            rows.append(f"| {kind} | {m:,} | {model1} | {row['model_ii']:.4f} | {gain} | {below} | "
                        f"{lc['noisy_label_accuracy']:.3f} → {corrected:.3f} | {_share(row)} | {err:.3f} | "
                        f"{row['seconds']:.0f} |")
            print(rows[-1], flush=True)
            if args.out_json:
                args.out_json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
