"""The early-stopping benchmark's simulation at a tiny size (the figures come from the script)."""

from __future__ import annotations

import math

from benchmarks.bench_early_stopping import simulate


def test_rules_try_more_configurations_in_the_same_steps_and_stay_in_budget() -> None:
    budget = 9 * 8
    none = simulate("none", "random", 1000, max_step=9, budget_steps=budget, workers=2)
    asha = simulate("asha", "random", 1000, max_step=9, budget_steps=budget, workers=2)
    assert none["trials"] == 8  # every trial runs all 9 steps
    assert asha["trials"] > none["trials"]
    for res in (none, asha):
        assert budget <= res["steps"] < budget + 2 * 9  # running trials finish after the budget is spent
        assert res["best@1"] >= 0.1  # Hartmann-6 shifted: the optimum is 0.1


def test_the_optuna_peer_prunes_through_its_own_pruner_in_the_same_harness() -> None:
    budget = 9 * 8
    none = simulate("none", "optuna-tpe", 1000, max_step=9, budget_steps=budget, workers=2)
    asha = simulate("asha", "optuna-tpe", 1000, max_step=9, budget_steps=budget, workers=2)
    assert none["trials"] == 8 and asha["trials"] > none["trials"]
    assert budget <= asha["steps"] < budget + 2 * 9 and asha["best@1"] >= 0.1


def test_mobster_learns_from_the_curves_in_the_harness() -> None:
    res = simulate("asha", "mobster", 1000, max_step=9, budget_steps=9 * 10, workers=2)
    assert res["trials"] > 10 and res["best@1"] >= 0.1 and math.isfinite(res["best@1"])


def test_the_digits_table_gives_real_curves_and_its_optimum() -> None:
    from benchmarks.bench_early_stopping import problem

    prob = problem("digits_mlp")
    assert prob.max_step == 27 and len(_rows()) == 648
    best = min(_rows(), key=lambda r: r["val_loss"][-1])
    curve = prob.curve(best["config"])
    assert curve(27) == prob.optimum and curve(1) > curve(27)  # trained: the loss fell
    res = simulate("asha", "random", 1000, max_step=27, budget_steps=27 * 4, workers=2, problem_name="digits_mlp")
    assert res["best@1"] >= prob.optimum and res["trials"] > 4


def _rows() -> list[dict]:
    from benchmarks.bench_early_stopping import _digits_table

    return _digits_table()["rows"]
