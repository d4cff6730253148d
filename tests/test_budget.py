"""The training budget and distribution settings: pure functions, no TensorFlow, milliseconds."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from labelmend.train import budget, distribute


def test_one_cycle_warms_up_then_anneals_to_zero():
    assert budget.one_cycle(0.0, peak=0.2, warmup_frac=0.1) == 0.0
    assert budget.one_cycle(0.1, peak=0.2, warmup_frac=0.1) == pytest.approx(0.2)
    assert budget.one_cycle(0.55, peak=0.2, warmup_frac=0.1) == pytest.approx(0.1)
    assert budget.one_cycle(1.0, peak=0.2, warmup_frac=0.1) == 0.0
    assert budget.one_cycle(1.5, peak=0.2, warmup_frac=0.1) == 0.0


def test_budget_clock_follows_whichever_budget_runs_out_first():
    now = [0.0]
    clock = budget.BudgetClock(100, deadline=50.0, clock=lambda: now[0])
    assert clock.progress(10) == pytest.approx(0.1)      # steps ahead of time
    now[0] = 25.0
    assert clock.progress(10) == pytest.approx(0.5)      # time ahead of steps: a slow machine
    now[0] = 60.0
    assert clock.progress(10) == 1.0
    resumed = budget.BudgetClock(100, start=0.5, done_steps=40)  # half the schedule done at step 40 of 100
    assert resumed.progress(40) == pytest.approx(0.5) and resumed.progress(100) == 1.0


def test_step_plan_splits_the_time_left_equally_and_keeps_a_reserve():
    plan = budget.plan_cnn_steps(time_budget_s=1800, elapsed_s=60, seconds_per_step=0.3, n_models=2)
    reserve = 0.04 * 1800
    assert plan.seconds_per_model == pytest.approx((1800 - 60 - reserve) / 2)
    assert plan.steps == int(plan.seconds_per_model / 0.3 / budget.OVERHEAD)
    one = budget.plan_cnn_steps(time_budget_s=1800, elapsed_s=60, seconds_per_step=0.3, n_models=1)
    assert one.steps == pytest.approx(2 * plan.steps, abs=1)
    with pytest.raises(budget.BudgetError, match="raise the budget"):
        budget.plan_cnn_steps(time_budget_s=30, elapsed_s=10, seconds_per_step=0.3, n_models=2)


@given(st.floats(1, 10_000), st.floats(0, 1_000), st.floats(0.01, 5), st.integers(1, 4))
def test_step_plan_never_overspends_the_budget(total, elapsed, sps, n_models):
    try:
        plan = budget.plan_cnn_steps(time_budget_s=total, elapsed_s=elapsed, seconds_per_step=sps, n_models=n_models)
    except budget.BudgetError:
        return
    assert plan.steps >= budget.MIN_STEPS
    assert elapsed + n_models * plan.steps * sps * budget.OVERHEAD <= total - min(total, budget.RESERVE_MIN_S) + 1e-6


@given(st.floats(0, 5_000), st.integers(0, 500), st.floats(0.01, 2), st.integers(1, 4), st.floats(0, 100))
def test_replan_fills_the_time_left_without_overspending_it(left, done, sps, n_models, later):
    """The first CNN's rest, then every later CNN's steps and extra work fit the time left; one step more would not
    (unless the plan is the floor: one step past what is done)."""
    steps = budget.replan_cnn_steps(seconds_left=left, steps_done=done, seconds_per_step=sps, n_models=n_models,
                                    seconds_per_later_model=later)
    assert steps >= done + 1

    def cost(s):
        return ((s - done) + (n_models - 1) * s) * sps * budget.OVERHEAD + (n_models - 1) * later

    if steps > done + 1:
        assert cost(steps) <= left + 1e-6
    assert cost(steps + 1) > left - 1e-6


def test_replan_gives_a_faster_machine_more_steps_and_a_slower_one_fewer():
    plan = dict(seconds_left=1600, steps_done=103, n_models=2, seconds_per_later_model=20)
    calibrated = budget.replan_cnn_steps(seconds_per_step=0.163, **plan)
    assert budget.replan_cnn_steps(seconds_per_step=0.150, **plan) > calibrated > budget.replan_cnn_steps(
        seconds_per_step=0.180, **plan)
    assert budget.replan_cnn_steps(seconds_per_step=0.163, **{**plan, "seconds_per_later_model": 0}) > calibrated


def test_steps_for_epochs_count_passes_over_the_training_images():
    assert budget.steps_for_epochs(1000, 2, 256) == 8
    assert budget.steps_for_epochs(1000, 2, 512) == 4  # twice the replicas, half the steps
    assert budget.steps_for_epochs(10, 0.01, 256) == 1


def test_stage_slot_is_a_share_of_the_time_left():
    assert budget.slot(None, 0.6) is None
    assert budget.slot(110.0, 0.6, clock=lambda: 10.0) == pytest.approx(70.0)
    assert budget.slot(5.0, 0.6, clock=lambda: 10.0) == pytest.approx(10.0)  # past its deadline: no time


def test_replicas_scale_batch_and_learning_rate_linearly():
    hyp = {"opt": {"batch_size": 256, "lr": 0.2}}
    assert distribute.global_batch_size(hyp, 4) == 1024
    assert distribute.peak_learning_rate(hyp, 4) == pytest.approx(0.8)


def test_workers_come_from_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    assert distribute.n_workers() == 1
    cluster = {"worker": ["host1:2222", "host2:2222"]}
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": 0}}))
    assert distribute.n_workers() == 2
    monkeypatch.setenv("TF_CONFIG", "not json")
    with pytest.raises(ValueError, match="TF_CONFIG"):
        distribute.n_workers()


def test_logical_cpus_setting_is_checked(monkeypatch):
    monkeypatch.setenv(distribute.LOGICAL_CPUS_ENV, "2")
    assert distribute.logical_cpus() == 2
    monkeypatch.setenv(distribute.LOGICAL_CPUS_ENV, "two")
    with pytest.raises(ValueError, match="whole number"):
        distribute.logical_cpus()


def test_only_the_chief_writes_a_multi_worker_run(monkeypatch):
    cluster = {"worker": ["host1:2222", "host2:2222"]}
    for index, chief in ((0, True), (1, False)):
        monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        assert distribute.is_chief() is chief
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {**cluster, "chief": ["host0:2222"]},
                                                "task": {"type": "worker", "index": 0}}))
    assert distribute.is_chief() is False
    monkeypatch.delenv("TF_CONFIG")
    assert distribute.is_chief() is True
