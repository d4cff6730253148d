"""Can the trusted labels mend the classifier of a network trained on instance-dependent noise? (issue 10)

Trains Model I and Model II on a grid set (``bench_noise_grid.py``'s images, noise and split), then, without
training the network again, re-fits its last layer (logits = features · W + b, features = the pooled activations
averaged over the image and its mirror, as the exported graph does) on the trusted training images' clean labels:

- ``map``: W, b by maximum a posteriori with a Gaussian prior centred on the trained layer, strength λ chosen by
  5-fold cross-validation on the trusted images (λ → ∞ keeps the trained layer);
- ``bias``: the same for b alone (a shift of the class priors);
- ``logreg C``: a fresh logistic regression on the trusted features (no prior).

Also prints how much of the noise each network memorised: how often it predicts the noisy label on wrong-labelled
images it trained on, against wrong-labelled images it never saw.

    python bench/bench_head_refit.py --data ../shared/data/seed --steps 500 --noise "annotator-sampled 40 %" \
        --trusted 1000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from bench_noise_grid import ANNOTATOR_STEPS, INSTANCE_NOISE, N_VAL, NOISE, grid_images, grid_noise  # sibling
from labelmend.train.data import load_training_data
from labelmend.train.distribute import configure_tensorflow
from labelmend.train.loop import Trainer
from labelmend.train.methods import forward_confident, noisy_ce
from labelmend.train.task import Split, Task
from scipy.optimize import minimize
from scipy.special import softmax
from sklearn.linear_model import LogisticRegression

LAMBDAS = (1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)


def features(model, images: np.ndarray) -> np.ndarray:
    """(N, 2, D) pooled features of each image and its mirror (the input of the last layer)."""
    import keras

    pooled = keras.Model(model.input, model.get_layer("logit_scale").output)
    views = [images, images[:, :, ::-1]]
    return np.stack([pooled.predict(v.astype(np.float32), batch_size=1024, verbose=0) for v in views], axis=1)


def refit(x: np.ndarray, y: np.ndarray, w0: np.ndarray, b0: np.ndarray, lam: float, *, bias_only: bool = False):
    """Minimise mean cross-entropy of softmax(x·W + b) on y + λ/2 ‖(W, b) − (w0, b0)‖² (W fixed at w0 if
    ``bias_only``); returns (W, b)."""
    d, k = w0.shape
    onehot = np.eye(k)[y]

    def objective(theta):
        w, b = (w0, theta) if bias_only else (theta[:d * k].reshape(d, k), theta[d * k:])
        p = softmax(x @ w + b, axis=1)
        g = (p - onehot) / len(y)
        loss = -np.mean(np.log(p[np.arange(len(y)), y] + 1e-12))
        grad_b = g.sum(0) + lam * (b - b0)
        if bias_only:
            return loss + 0.5 * lam * np.sum((b - b0) ** 2), grad_b
        reg = np.sum((w - w0) ** 2) + np.sum((b - b0) ** 2)
        return loss + 0.5 * lam * reg, np.concatenate([(x.T @ g + lam * (w - w0)).ravel(), grad_b])

    theta = minimize(objective, b0.copy() if bias_only else np.concatenate([w0.ravel(), b0]), jac=True,
                     method="L-BFGS-B", options={"maxiter": 500}).x
    return (w0, theta) if bias_only else (theta[:d * k].reshape(d, k), theta[d * k:])


def cross_validated_lambda(feats: np.ndarray, y: np.ndarray, w0, b0, *, bias_only: bool, folds: int = 5) -> float:
    """The λ of LAMBDAS with the lowest held-out log loss over ``folds`` folds of the trusted images."""
    fold = np.arange(len(y)) % folds
    losses = []
    for lam in LAMBDAS:
        total = 0.0
        for f in range(folds):
            tr, te = fold != f, fold == f
            w, b = refit(feats[tr].reshape(-1, feats.shape[2]), np.repeat(y[tr], 2), w0, b0, lam,
                         bias_only=bias_only)
            p = softmax(feats[te].mean(1) @ w + b, axis=1)
            total -= np.sum(np.log(p[np.arange(te.sum()), y[te]] + 1e-12))
        losses.append(total)
    return LAMBDAS[int(np.argmin(losses))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--noise", default="annotator-sampled 40 %", choices=[*NOISE, *INSTANCE_NOISE])
    ap.add_argument("--trusted", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", type=Path, default=Path("runs/noise_cache"))
    args = ap.parse_args()
    if not 10 <= args.trusted <= 8000:
        ap.error("--trusted must be in [10, 8000]: the head is re-fitted on the trusted labels")
    configure_tensorflow(args.seed)
    data = load_training_data(args.data, progress=False)
    k = data.n_classes
    images, y = grid_images(data, args.seed)
    trainer = Trainer(seed=args.seed, progress=False)
    noisy, _, flipped = grid_noise(args.noise, images, y, k, trainer, seed=args.seed, annotator_steps=ANNOTATOR_STEPS,
                                   cache=args.cache)
    trusted = np.arange(N_VAL, N_VAL + args.trusted)
    task = Task(images, noisy, y[:N_VAL + args.trusted], Split(train_clean=trusted, val=np.arange(N_VAL)),
                n_classes=k)
    print(f"{args.noise}, {args.trusted} trusted, seed {args.seed}, {args.steps} steps; noisy labels "
          f"{np.mean(noisy == y):.3f} right" + ("" if flipped is None else
                                                f"; likeliest noisy label wrong on {flipped:.1%} of the images"))
    print("| model | last layer | λ / C | val. acc. |\n|---|---|---:|---:|")
    for name, method in (("Model I", noisy_ce), ("Model II", forward_confident)):
        model, _ = method.train(task, trainer, steps=args.steps)
        w0, b0 = model.get_layer("logits").get_weights()
        feats = features(model, images[:N_VAL + args.trusted])
        val_feats, yv = feats[:N_VAL].mean(1), y[:N_VAL]
        tr_feats, yt = feats[trusted], y[trusted]

        def acc(w, b):
            return np.mean((val_feats @ w + b).argmax(1) == yv)

        print(f"| {name} | as trained | | {acc(w0, b0):.4f} |")
        for label, bias_only in (("map", False), ("bias", True)):
            lam = cross_validated_lambda(tr_feats, yt, w0, b0, bias_only=bias_only)
            w, b = refit(tr_feats.reshape(-1, feats.shape[2]), np.repeat(yt, 2), w0, b0, lam, bias_only=bias_only)
            print(f"| {name} | {label} | {lam:g} | {acc(w, b):.4f} |")
        for c in (0.1, 1.0):
            lr = LogisticRegression(C=c, max_iter=2000).fit(tr_feats.reshape(-1, feats.shape[2]), np.repeat(yt, 2))
            print(f"| {name} | logreg | {c:g} | {np.mean(lr.predict(val_feats) == yv):.4f} |")
        pred = (feats.mean(1) @ w0 + b0).argmax(1)

        def memorised(rows):  # share of wrong-labelled images among rows predicted as their noisy label
            wrong = rows[noisy[rows] != y[rows]]
            return np.mean(pred[wrong] == noisy[wrong])

        seen = f", {memorised(trusted):.2f} of those it trained on" if name == "Model I" else ""
        print(f"  {name} predicts the noisy label of {memorised(np.arange(N_VAL)):.2f} of the wrong-labelled "
              f"validation images{seen}", flush=True)


if __name__ == "__main__":
    main()
