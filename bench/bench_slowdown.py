"""A budgeted run on a machine that slows down after calibration still ends annealed, on time, and as accurate.

Runs ``labelmend train`` twice with the same settings and seed: once undisturbed, once with a CPU-bound competing
process started right after the step time was measured (the log line "CNNs on ..."), so the real steps are slower
than the calibration said. Prints, per run: wall time vs budget, steps done / planned, final learning rate and
validation accuracy of each CNN:

    python bench/bench_slowdown.py --data ../shared/data/seed --budget 8 --models model2 --out runs/slowdown
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path


def burn(stop_at: float, duty: float = 1.0, period: float = 0.05) -> None:
    """Keep one core busy for ``duty`` of every ``period`` seconds until ``stop_at`` (time.time())."""
    x = 0
    while (now := time.time()) < stop_at:
        busy_until = now + duty * period
        while time.time() < busy_until:
            x = (x * 1103515245 + 12345) % 2**31
        if duty < 1:
            time.sleep((1 - duty) * period)


def run(args, out: Path, *, disturb: bool) -> dict:
    cmd = [sys.executable, "-m", "labelmend", "--quiet", "train", "--data", str(args.data), "--out", str(out),
           "--time-budget", str(args.budget), "--models", args.models, "--seed", str(args.seed)]
    t0 = time.time()
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    burners = []
    for line in proc.stderr:
        if disturb and "CNNs on" in line and not burners:
            stop = t0 + args.budget * 60
            burners = [multiprocessing.Process(target=burn, args=(stop, args.duty), daemon=True)
                       for _ in range(args.burners)]
            for b in burners:
                b.start()
            print(f"  competing process{'es' if args.burners > 1 else ''} started after calibration", flush=True)
    proc.wait()
    for b in burners:
        b.terminate()
    if proc.returncode:
        raise SystemExit(f"train failed with exit code {proc.returncode}")
    record = json.loads((out / "run.json").read_text())
    return {"wall_s": time.time() - t0, "record": record}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--budget", type=float, default=8, help="--time-budget in minutes")
    ap.add_argument("--models", default="model2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--burners", type=int, default=1, help="competing CPU-bound processes")
    ap.add_argument("--duty", type=float, default=1.0,
                    help="share of each 50 ms that a competing process computes (1: a whole core; less: a milder "
                         "competitor)")
    ap.add_argument("--runs", default="undisturbed,disturbed", help="which of the two runs, comma-separated")
    ap.add_argument("--out", type=Path, default=Path("runs/slowdown"))
    args = ap.parse_args()
    if not 0 < args.duty <= 1:
        ap.error("--duty must be in (0, 1]")
    print("| run | wall time / budget (s) | model | steps done / planned | cut by deadline | final LR "
          "| val. accuracy |")
    print("|---|---:|---|---:|---|---:|---:|", flush=True)
    runs = {"undisturbed": ("undisturbed", False),
            "disturbed": (f"competing process after calibration (duty {args.duty:g})", True)}
    for key in args.runs.split(","):
        name, disturb = runs[key]
        result = run(args, args.out / (key if args.duty == 1 or not disturb else f"{key}-{args.duty:g}"),
                     disturb=disturb)
        print(f"  {name}: calibration {result['record'].get('seconds_per_step', float('nan'))} s/step",
              flush=True)
        for model, rec in result["record"]["models"].items():
            if model == "baseline":
                continue
            t = rec["training"]
            print(f"| {name} | {result['wall_s']:.0f} / {args.budget * 60:.0f} | {model} | "
                  f"{t['steps']} / {t['planned_steps']} | {t['stopped_early']} | {t['final_lr']:.2e} | "
                  f"{rec['validation']['accuracy']:.4f} |", flush=True)


if __name__ == "__main__":
    main()
