"""The comparison harness (``benchmarks/compare``): a reduced run end to end, the adapters, regret.

Smoke only: no timing is asserted here (figures live in ``benchmarks/results/compare.md``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks.compare.__main__ import main
from benchmarks.compare.adapters import make_adapter
from benchmarks.compare.problems import make_problem
from benchmarks.compare.report import FLOOR, best_so_far, log_regret
from benchmarks.compare.runner import SIZES, Task, asktime_child, run_task


def test_smoke_run_writes_report_tables_and_plots_and_resumes(tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "compare_smoke.md"
    assert main(["--size", "smoke", "--raw", str(raw), "--out", str(out)]) == 0

    plan = SIZES["smoke"]
    files = sorted(raw.glob("*.json"))
    assert {f.stem for f in files} == {t.key for t in plan.tasks()}
    text = out.read_text()
    for heading in ("## Goals", "## Sample efficiency", "## Batch q = 2 on hartmann6", "## Cost-varying problem",
                    "## Outcome constraint", "Command: `OMP_NUM_THREADS=1 python -m benchmarks.compare --size smoke"):
        assert heading in text
    assert "| problem | method | seeds | log10 regret @ 6 |" in text
    for problem in plan.problems:
        for method in plan.methods:
            assert f"| {problem} | {method} | 1 |" in text
    assert "autotune code: commit(s) " in text
    pngs = sorted(tmp_path.glob("compare_smoke_*.png"))
    assert {p.stem.removeprefix("compare_smoke_") for p in pngs} == {"regret", "batch", "cost", "constrained"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)

    rec = json.loads((raw / "seq__autotune__branin__s0__e6.json").read_text())
    assert len(rec["values"]) == plan.n_evals and rec["adapter"] == "autotune-ei"

    # Resume: a second run finds every run cached and leaves the records untouched.
    before = {f.name: f.stat().st_mtime_ns for f in files}
    assert main(["--size", "smoke", "--raw", str(raw), "--out", str(out)]) == 0
    assert {f.name: f.stat().st_mtime_ns for f in raw.glob("*.json")} == before


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
@pytest.mark.parametrize("problem_name", ["svc_breast_cancer", "constrained_hartmann6"])
def test_optuna_adapters_propose_points_inside_the_space(sampler: str, problem_name: str) -> None:
    problem = make_problem(problem_name)
    adapter = make_adapter(f"optuna-{sampler}", problem, seed=3, n_startup_trials=2)
    for i in range(6):  # 2 start-up points, then the sampler's model
        (p,) = adapter.ask(1)
        assert set(p) == set(problem.space.parameters)
        problem.space.validate(p)  # raises on a value out of bounds or of the wrong type
        for name, spec in problem.space.parameters.items():
            if spec.kind in ("float", "int"):
                assert spec.low <= p[name] <= spec.high
        # a cheap stand-in for the objective, so the test does not train SVCs
        value = float(sum(problem.space.encode(p))) + i
        adapter.tell(p, value, {"c": float(i % 2) * 2.0})
    trials = adapter.study.trials
    assert len(trials) == 6 and all(t.state.name == "COMPLETE" for t in trials)


def test_regret_is_nonnegative_and_best_so_far_never_increases() -> None:
    problem = make_problem("branin")
    rng = np.random.default_rng(0)
    for seed in range(5):
        pts = problem.space.sample(40, "random", seed=seed)
        values = [problem.evaluate(p)["value"] for p in pts]
        feasible = list(rng.random(40) < 0.7)
        best = best_so_far(values, feasible, worst=problem.worst_value)
        assert np.all(np.diff(best) <= 0)
        curve = log_regret(values, problem.optimal_value, feasible, problem.worst_value)
        assert np.all(np.diff(curve) <= 0)
        assert np.all(10**curve >= FLOOR * (1 - 1e-9))
        # each entry is the regret of the best feasible value seen so far
        k = int(np.argmax(feasible)) + 5
        expect = min(v for v, ok in zip(values[:k], feasible[:k]) if ok) - problem.optimal_value
        assert math.isclose(10 ** curve[k - 1], max(expect, FLOOR), rel_tol=1e-9)


def test_regret_uses_worst_value_until_the_first_feasible_point() -> None:
    curve = log_regret([-5.0, 0.5, 0.2], optimum=0.0, feasible=[False, True, True], worst=10.0)
    np.testing.assert_allclose(10**curve, [10.0, 0.5, 0.2])
    assert log_regret([0.0], optimum=0.0)[0] == math.log10(FLOOR)


def test_async_loop_keeps_q_workers_busy_and_stops_at_the_round_limit() -> None:
    task = Task("batch", "random", "hartmann6", seed=1, mode="async", n_evals=100, rounds=3, q=4)
    rec = run_task(task, {})
    times = rec["time"]
    assert times == sorted(times)
    assert len(rec["values"]) < 100  # the clock, not the cap, ended the run
    # every point issued before time 3 finishes; only the last 4 finish after it
    assert sum(t > 3 for t in times) <= 4 and times[-5] <= 3
    assert len(rec["ask_s"]) == len(rec["values"]) - 3  # one ask(4), then one ask(1) per freed worker


def test_autotune_cost_adapter_uses_the_known_cost() -> None:
    problem = make_problem("cost_hartmann6")
    adapter = make_adapter("autotune-ei_per_cost", problem, seed=0)
    assert adapter.name == "autotune-ei_per_cost"
    assert adapter.opt.known_cost is problem.known_cost
    for _ in range(adapter.opt.n_initial + 1):  # the last ask is model-based
        (p,) = adapter.ask(1)
        out = problem.evaluate(p)
        assert math.isclose(out["cost"], math.exp(3 * p["x0"]))
        adapter.tell(p, out["value"], out)
    assert adapter.opt.observations[-1].value == out["value"]


def test_cost_budget_ends_a_run_once_it_is_spent() -> None:
    task = Task("cost", "random", "cost_hartmann6", seed=0, n_evals=500, cost_budget=40.0)
    rec = run_task(task, {})
    spent = np.cumsum(rec["cost"])
    assert len(rec["values"]) < 500  # the budget, not the cap, ended the run
    assert spent[-2] < 40.0 <= spent[-1]  # the last evaluation started before the budget was spent
    assert task.key.endswith("__c40") and task.key != Task("cost", "random", "cost_hartmann6", 0, n_evals=500).key


def test_cost_cooling_adapter_decays_the_cost_exponent_as_the_budget_is_spent() -> None:
    from benchmarks.compare.problems import COST_BUDGET

    problem = make_problem("cost_hartmann6")
    adapter = make_adapter("autotune-ei_per_cost_cool", problem, seed=0)
    opt = adapter.opt
    assert opt.strategy.cooling and opt.budget == COST_BUDGET and opt.cost_metric == "cost"
    exponents = []
    for _ in range(opt.n_initial + 3):
        (p,) = adapter.ask(1)
        out = problem.evaluate(p)
        adapter.tell(p, out["value"], out)
        exponents.append(opt.strategy.cost_exponent(opt.context()))
    n0 = opt.n_initial
    assert exponents[:n0] == [1.0] * n0  # the initial design's spend is not counted against it
    assert all(b < a for a, b in zip(exponents[n0 - 1:], exponents[n0:]))  # then it decays with every spend
    assert 0.0 < exponents[-1] < 1.0


@pytest.mark.parametrize("method", ["autotune", "optuna-gp"])
def test_asktime_probe_times_asks_after_n_observations(method: str) -> None:
    out = asktime_child(method, n=12, repeats=1)
    assert len(out["ask_s"]) == 1 and out["median_ask_s"] == out["ask_s"][0] > 0
    assert out["rss_peak_mb"] >= out["rss_before_mb"] > 0
    assert out["autotune_commit"]


def test_ax_adapter_proposes_points_inside_the_space_and_completes_trials() -> None:
    problem = make_problem("constrained_hartmann6")
    adapter = make_adapter("ax", problem, seed=0)
    for _ in range(3):  # Ax's initial Sobol points: the plumbing, not BoTorch's fit
        (p,) = adapter.ask(1)
        problem.space.validate(p)
        out = problem.evaluate(p)
        adapter.tell(p, out["value"], out)
    data = adapter.client._experiment.lookup_data().df
    assert sorted(data["metric_name"].unique()) == ["c", "value"] and len(data) == 6
