"""The training budget: how many SGD steps a time budget buys, and how the learning rate follows what is left.

Pure Python (no TensorFlow), so the plan is testable in milliseconds. The pipeline times a few steps of the real
network (``seconds_per_step``), then :func:`plan_cnn_steps` gives every CNN the same number of steps; once the first
CNN has run :data:`REPLAN_STEPS` steps on the real data, :func:`replan_cnn_steps` plans them again from that pace,
which a few calibration steps on a shared machine misjudge by several per cent either way. While training,
:class:`BudgetClock` turns "steps done" and "time used" into one progress figure, and :func:`one_cycle` turns progress
into a learning rate, so a run that meets its deadline before its planned steps still ends annealed to zero.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

RESERVE_FRAC = 0.04       # of the budget, kept for inference, plots and saving ...
RESERVE_MIN_S = 15.0      # ... but at least this many seconds (graph tracing, saving, plots are fixed costs)
OVERHEAD = 1.06           # validation after each epoch and the final inference passes ≈ 6 % of the step time
MIN_STEPS = 10
REPLAN_STEPS = 100        # timed steps of the first CNN (after its warm-up) from which the step count is planned again
REPLAN_MAX_GROWTH = 2.0   # a re-plan at most doubles the calibrated step count (the batch order is drawn that far)


class BudgetError(ValueError):
    """The time budget cannot buy a meaningful training run."""


@dataclass(frozen=True)
class StepPlan:
    """The steps each CNN gets and the wall seconds of its slot (None: fixed epochs, no deadline)."""

    steps: int
    seconds_per_model: float | None = None


def plan_cnn_steps(*, time_budget_s: float, elapsed_s: float, seconds_per_step: float, n_models: int,
                   after_s: float = 0.0) -> StepPlan:
    """Split the time left (budget − elapsed − reserve − ``after_s``, measured work that follows training, such as
    judging every label) equally between ``n_models`` CNNs, measured in steps."""
    reserve = max(RESERVE_FRAC * time_budget_s, RESERVE_MIN_S)
    left = time_budget_s - reserve - elapsed_s - after_s
    per_model = left / n_models
    steps = int(per_model / seconds_per_step / OVERHEAD)
    if steps < MIN_STEPS:
        raise BudgetError(f"--time-budget {time_budget_s:.0f} s leaves {max(left, 0):.0f} s for {n_models} CNN(s): "
                          f"too little for even {MIN_STEPS} steps at {seconds_per_step:.2f} s/step; raise the budget")
    return StepPlan(steps, per_model)


def replan_cnn_steps(*, seconds_left: float, steps_done: int, seconds_per_step: float, n_models: int,
                     seconds_per_later_model: float = 0.0) -> int:
    """Steps per CNN that fill ``seconds_left`` (until the CNNs' last deadline) when the first of ``n_models`` CNNs
    has done ``steps_done`` steps at a measured ``seconds_per_step``: the first finishes its steps, each later one
    takes them all plus ``seconds_per_later_model`` of work besides its steps (e.g. judging every image between two
    stages). Never fewer than ``steps_done`` + 1."""
    step_cost = seconds_per_step * OVERHEAD
    budget_s = max(0.0, seconds_left - (n_models - 1) * seconds_per_later_model) + steps_done * step_cost
    return max(steps_done + 1, int(budget_s / (n_models * step_cost)))


def steps_for_epochs(n_images: int, epochs: float, batch_size: int) -> int:
    """SGD steps that make ``epochs`` passes over ``n_images`` (an epoch is always a pass over the CNN training
    images, whatever a method repeats or drops within it)."""
    return max(1, math.ceil(epochs * n_images / batch_size))


def one_cycle(progress: float, *, peak: float, warmup_frac: float) -> float:
    """Learning rate at ``progress`` in [0, 1]: linear warm-up to ``peak``, then linear decay to 0 at progress 1."""
    p = min(max(progress, 0.0), 1.0)
    if p < warmup_frac:
        return peak * p / warmup_frac
    return peak * (1.0 - p) / max(1e-12, 1.0 - warmup_frac)


class BudgetClock:
    """Progress through a training budget of ``steps`` steps and, optionally, wall time up to ``deadline``.

    progress = max(steps done / planned, time used / time allotted), so the schedule follows whichever budget runs
    out first: a machine slower than its calibration still anneals to zero exactly at its deadline. ``start`` is
    the progress already made when this clock starts (a resumed stage); the rest is spread over what is left.
    """

    def __init__(self, steps: int, *, deadline: float | None = None, start: float = 0.0, done_steps: int = 0,
                 clock=time.monotonic):
        self.steps, self.deadline, self.clock = steps, deadline, clock
        self.start, self.done_steps = start, done_steps
        self.t0 = clock()

    def progress(self, step: int) -> float:
        left = max(1, self.steps - self.done_steps)
        p = self.start + (1.0 - self.start) * (step - self.done_steps) / left
        if self.deadline is not None:
            allotted = self.deadline - self.t0
            p_time = 1.0 if allotted <= 0 else (self.clock() - self.t0) / allotted
            p = max(p, self.start + (1.0 - self.start) * p_time)
        return min(p, 1.0)


def slot(deadline: float | None, frac: float, *, clock=time.monotonic) -> float | None:
    """The deadline of a stage given ``frac`` of the time left before ``deadline`` (None: no deadline)."""
    if deadline is None:
        return None
    now = clock()
    return now + frac * max(0.0, deadline - now)
