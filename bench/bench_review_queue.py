"""What checking labels buys: verify the top B of Model II's review queue, or B random images, then retrain.

On the grid of ``bench_noise_grid.py`` (the client's 10,000 clean-labelled images, 2,000 of them validation, noisy
labels simulated from the clean ones; default: annotator-sampled 40 %, image-dependent like human mistakes, with
1,000 trusted labels), Model II trains once and judges every label (``labelmend.train.label_issues``). Then B images
without a trusted label get their true label as a person checking them would give it, as verified_labels.csv does
(trained on, never counting T): once the top B of the review queue, once B drawn at random from the same images; and
Model II trains again from scratch with the same steps and seed. B = 320 is 4 % of the 8,000 training images, as
2,000 of the client's 50,000; ``--trusted 150`` is the share of trusted training labels that 1,000 clean labels
(900 after validation) are of 50,000:

    python bench/bench_review_queue.py --data ../shared/data/seed --steps 500 --seed 0 --trusted 150 --out-json J \
        [--rank clear_mistakes,chance_label_wrong,kept_first,margin,oracle]

Prints one Markdown row per B and queue order: Model II before, with the queue's B, with random B (one random choice
per B, shared by the orders), and how many wrong labels each choice fixed. Same-seed comparisons need one thread per
run (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from bench_noise_grid import ANNOTATOR_SAMPLED, ANNOTATOR_STEPS, N_VAL, grid_noise, grid_setup
from labelmend.train import label_issues, noise
from labelmend.train.methods import forward_confident
from labelmend.train.task import Split, Task

RANKS = ("clear_mistakes", "chance_label_wrong", "kept_first", "margin", "oracle")


def ranked(j, rank: str, pred_probs: np.ndarray, transition: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The images without a trusted label, most useful to check first, by ``rank`` (:data:`RANKS`)."""
    if rank == "clear_mistakes":  # review_queue.csv's order
        return label_issues.review_order(j)
    candidates = np.flatnonzero(j.judged_by_network)
    if rank == "oracle":  # not a queue: an upper reference that reads the true labels. Wrong labels the judgment
        # did not flag first (close to the wrong labels the next run's stage B keeps and trains on), then flagged
        # ones whose suggestion is wrong, then the other flagged ones, right labels last; least label_quality first
        # within each group
        wrong, kept = j.given[candidates] != truth[candidates], ~j.is_label_issue[candidates]
        group = np.select([wrong & kept, wrong & (j.suggested[candidates] != truth[candidates]), wrong], [0, 1, 2], 3)
        return candidates[np.lexsort((j.label_quality[candidates], group))]
    # the order review_queue.csv had before: 1 − P(y = suggested | x, ỹ), the chance that the label labelmend would
    # use is still wrong, from the network and T together
    posterior = noise.posterior_correction(pred_probs[candidates], j.given[candidates], transition)
    chance_wrong = 1.0 - posterior[np.arange(len(candidates)), j.suggested[candidates]]
    order = candidates[np.lexsort((j.label_quality[candidates], -chance_wrong))]
    if rank == "margin":  # active learning: the images whose class the network is least sure of first
        top2 = np.sort(pred_probs[order], axis=1)[:, -2:]
        order = order[np.argsort(top2[:, 1] - top2[:, 0], kind="stable")]
    elif rank == "kept_first":  # a kept wrong label trains Model II's stage B; a flagged one is only left out
        order = np.concatenate([order[~j.is_label_issue[order]], order[j.is_label_issue[order]]])
    return order


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=500, help="SGD steps per model (batch 256)")
    ap.add_argument("--noise", default=ANNOTATOR_SAMPLED)
    ap.add_argument("--trusted", type=int, default=1000)
    ap.add_argument("--verify", default="320", help="comma-separated B: images verified per retraining")
    ap.add_argument("--annotator-steps", type=int, default=ANNOTATOR_STEPS)
    ap.add_argument("--cache", type=Path, default=Path("runs/noise_cache"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rank", default="clear_mistakes",
                    help="comma-separated queue orders, each retrained beside one random choice: review_queue.csv's "
                         "(clear_mistakes: labels surely wrong on unambiguous images first), its earlier one "
                         "(chance_label_wrong: the chance that the label Model II would use is wrong), the labels "
                         "Model II kept that most likely are wrong first, then the flagged ones (kept_first), or the "
                         "images whose class the network is least sure of first (margin: top-two probability gap); "
                         "oracle is an upper reference, not a queue: it reads the true labels and puts the wrong "
                         "labels Model II kept first")
    ap.add_argument("--choices", default="queue,random", help="which retrainings: queue, random or both")
    ap.add_argument("--out-json", type=Path)
    ap.add_argument("--save", type=Path, help="an .npz of the first run's pred_probs, noisy and true labels, T")
    args = ap.parse_args()
    ranks = args.rank.split(",")
    if set(ranks) - set(RANKS):
        ap.error(f"unknown --rank {sorted(set(ranks) - set(RANKS))}: choose from {RANKS}")
    k, images, y, trainer = grid_setup(args.data, args.seed)
    noisy, _, _ = grid_noise(args.noise, images, y, k, trainer, seed=args.seed, annotator_steps=args.annotator_steps,
                             cache=args.cache)
    m = args.trusted
    split = Split(train_clean=np.arange(N_VAL, N_VAL + m), val=np.arange(N_VAL))

    def model2(verified=np.empty(0, np.int64)):
        task = Task(images, noisy, y[:N_VAL + m], split, n_classes=k, verified_index=verified,
                    verified_labels=y[verified])
        return forward_confident.train(task, trainer, steps=args.steps)

    t0 = time.monotonic()
    model, report = model2()
    before = report["validation"]["accuracy"]
    pred_probs = trainer.predict_proba(model, images)
    trusted = np.full(len(y), -1)
    trusted[:N_VAL + m] = y[:N_VAL + m]
    out_of_sample = np.zeros(len(y), bool)
    out_of_sample[:N_VAL] = True
    transition = np.asarray(report["transition_matrix"])
    j = label_issues.judge(pred_probs, noisy, trusted=trusted, trusted_source=np.where(trusted >= 0, "clean", ""),
                           out_of_sample=out_of_sample)
    if args.save:
        np.savez_compressed(args.save, pred_probs=pred_probs, noisy=noisy, y=y, trusted=trusted, n_val=N_VAL,
                            transition=transition)
    candidates = np.flatnonzero(j.judged_by_network)
    queues = {rank: ranked(j, rank, pred_probs, transition, y) for rank in ranks}
    rng = np.random.default_rng(args.seed + 7)
    q = label_issues.flag_quality(noisy[:N_VAL], j.predicted[:N_VAL], y[:N_VAL])
    print(f"Model II before: {before:.4f}; flags on validation: precision {q['precision']:.3f} recall "
          f"{q['recall']:.3f} F1 {q['f1']:.3f}", flush=True)
    print("| noise | trusted | B | rank | Model II before | + queue's top B | + random B | queue − random | "
          "wrong labels fixed: queue / random | seconds |")
    print("|---|---:|---:|---|---:|---:|---:|---:|---:|---:|", flush=True)
    results = []
    for b in map(int, args.verify.split(",")):
        rand = np.sort(rng.choice(candidates, size=b, replace=False))
        random_acc = model2(rand)[1]["validation"]["accuracy"] if "random" in args.choices.split(",") else None
        for rank, queue in queues.items():
            top = queue[:b]
            queue_acc = model2(np.sort(top))[1]["validation"]["accuracy"] if "queue" in args.choices.split(",") \
                else None
            fixed = {name: int(np.sum(noisy[c] != y[c])) for name, c in (("queue", top), ("random", rand))}
            row = {"noise": args.noise, "trusted": m, "verified": b, "model_ii_before": before, "flag_quality": q,
                   "model_ii_queue": queue_acc, "model_ii_random": random_acc, "wrong_fixed": fixed,
                   "steps": args.steps, "seed": args.seed, "rank": rank, "seconds": time.monotonic() - t0}
            results.append(row)
            fmt = {name: "—" if a is None else f"{a:.4f}" for name, a in (("queue", queue_acc),
                                                                       ("random", random_acc))}
            diff = "—" if None in (queue_acc, random_acc) else f"{100 * (queue_acc - random_acc):+.1f} pt"
            print(f"| {args.noise} | {m:,} | {b:,} | {rank} | {before:.4f} | {fmt['queue']} | {fmt['random']} | "
                  f"{diff} | {fixed['queue']} / {fixed['random']} | {row['seconds']:.0f} |", flush=True)
            if args.out_json:
                args.out_json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
