"""The comparison harness (``benchmarks/compare``): a reduced run end to end, the adapters, regret.

Smoke only: no timing is asserted here (figures live in ``benchmarks/results/compare.md``).
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from benchmarks.compare.__main__ import main
from benchmarks.compare.adapters import make_adapter
from benchmarks.compare.problems import make_problem
from benchmarks.compare.report import FLOOR, best_so_far, log_regret
from benchmarks.compare.runner import (
    SIZES,
    Task,
    asktime_child,
    code_state,
    run_task,
    run_tasks,
)


def test_smoke_run_writes_report_tables_and_plots_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.compare import runner

    # pin the code state: others may edit autotune/ in this tree between the two runs below
    monkeypatch.setattr(runner, "code_state", lambda: "0123456789")
    raw, out = tmp_path / "raw", tmp_path / "compare_smoke.md"
    # both halves: 2 problems x 2 seeds (one per half) x 6 evaluations
    assert main(["--size", "smoke", "--split", "all", "--raw", str(raw), "--out", str(out)]) == 0

    plan = SIZES["smoke"]
    files = sorted(raw.glob("*.json"))
    (first,) = raw.glob("seq__autotune__branin__s0__e6__a*.json")  # one code state for the whole run
    code = json.loads(first.read_text())["code"]
    assert code == "0123456789" and first.stem.endswith(f"__a{code}")
    expected = {(replace(t, code=code) if t.method.startswith("autotune") else t).key for t in plan.tasks("all")}
    assert {f.stem for f in files} == expected
    text = out.read_text()
    for heading in ("## Goals", "## Sample efficiency", "### Development half (`dev`)",
                    "### Confirmation half (`confirm`)", "## Batch q = 2 on hartmann6", "## Cost-varying problem",
                    "## Outcome constraint",
                    "Command: `OMP_NUM_THREADS=1 python -m benchmarks.compare --size smoke"):
        assert heading in text
    assert "| problem | method | seeds | log10 regret @ 6 |" in text
    for problem in plan.problems:
        for method in plan.methods:
            assert text.count(f"| {problem} | {method} | 1 |") == 4  # regret and health table, each half
    assert "- [confirm] Default strategy best or tied-best" in text  # goals quote the confirmation half
    assert "autotune code: commit(s) " in text
    pngs = sorted(tmp_path.glob("compare_smoke_*.png"))
    assert {p.stem.removeprefix("compare_smoke_") for p in pngs} == {"regret_dev", "regret_confirm", "batch", "cost",
                                                                      "constrained"}
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in pngs)

    rec = json.loads((raw / f"seq__autotune__branin__s0__e6__a{code}.json").read_text())
    assert len(rec["values"]) == plan.n_evals and rec["adapter"] == "autotune-ei"
    assert rec["split"] == "dev" and rec["autotune_code"]
    assert len(rec["n_on_bound"]) == len(rec["model_based"]) == plan.n_evals
    assert rec["model_based"] == [i >= 5 for i in range(6)]  # Branin: n_initial = clip(d + 1, 5, 10) = 5
    assert set(rec["health"]) >= {"boundary_share", "stuck", "final_regret"}
    assert json.loads((raw / "seq__random__hartmann6__s1000__e6.json").read_text())["split"] == "confirm"

    # Resume: a second run finds every run cached and leaves the records untouched.
    before = {f.name: f.stat().st_mtime_ns for f in files}
    assert main(["--size", "smoke", "--split", "all", "--raw", str(raw), "--out", str(out)]) == 0
    assert {f.name: f.stat().st_mtime_ns for f in raw.glob("*.json")} == before
    # A different autotune code state is a different run: the peers' runs stay cached.
    recs = run_tasks([replace(t, code="other") if t.method.startswith("autotune") else t
                      for t in plan.tasks("dev") if t.section == "seq"], raw, log=lambda s: None)
    peers = {k: s for k, s in recs.items() if "__autotune__" not in k}
    ours = {k: s for k, s in recs.items() if "__autotune__" in k}
    assert len(peers) == len(ours) == 2 and set(peers.values()) == {"cached"}
    assert all(k.endswith("__aother") and s.startswith("done") for k, s in ours.items())


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
        exponents.append(opt.strategy.exponent_at(opt.context()))
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


# -- issue 12: the development/confirmation split, the broadened suite, the health figures ---------
def test_split_is_deterministic_disjoint_and_keeps_held_out_problems_off_dev_seeds() -> None:
    from benchmarks.compare.problems import CONFIRM_SEED0, PROBLEM_SPLIT, split_of

    plan = SIZES["full"]
    dev, conf, both = plan.tasks("dev"), plan.tasks("confirm"), plan.tasks("all")
    assert [t.key for t in dev] == [t.key for t in SIZES["full"].tasks("dev")]  # deterministic
    def runs(ts: Any) -> set[str]:
        return {t.key for t in ts if t.section != "asktime"}

    assert runs(dev) and runs(conf) and not runs(dev) & runs(conf)
    assert runs(both) == runs(dev) | runs(conf)
    assert all(t.seed < CONFIRM_SEED0 and PROBLEM_SPLIT[t.problem] == "dev" for t in dev if t.section != "asktime")
    assert all(t.seed >= CONFIRM_SEED0 for t in conf if t.section != "asktime")
    held_out = {p for p, s in PROBLEM_SPLIT.items() if s == "confirm"}
    assert held_out & {t.problem for t in conf} == held_out  # every held-out problem is confirmed
    assert not held_out & {t.problem for t in dev}
    assert split_of("levy6", 3) is None and split_of("levy6", 1003) == "confirm" and split_of("hartmann6", 3) == "dev"
    # both halves have problems of every family
    for tag in ("bbob_", "svc_", "mlp_"):
        assert {PROBLEM_SPLIT[p] for p in PROBLEM_SPLIT if p.startswith(tag)} == {"dev", "confirm"}


def test_full_size_seeds_per_peer_and_half() -> None:
    from collections import defaultdict

    for half in ("dev", "confirm"):
        seeds: dict[tuple[str, str], set[int]] = defaultdict(set)
        for t in SIZES["full"].tasks(half):
            if t.section == "seq":
                seeds[(t.method, t.problem)].add(t.seed)
        need = {"autotune": 20, "optuna-gp": 20, "optuna-tpe": 10, "random": 10, "ax": 5}
        for (m, _), s in seeds.items():
            assert len(s) == need[m]


def test_bbob_problems_have_their_known_optimum_inside_the_box() -> None:
    pytest.importorskip("cocoex")
    from benchmarks.compare.problems import PROBLEM_SPLIT

    names = [p for p in PROBLEM_SPLIT if p.startswith("bbob_")]
    assert len(names) == 18 and {p.rsplit("_d", 1)[1] for p in names} == {"2", "5", "10"}
    rng = np.random.default_rng(0)
    for name in names:
        prob = make_problem(name)
        x = prob.optimizer_x
        assert prob.evaluate(x)["value"] == prob.optimal_value
        assert abs(prob.optimal_value * 100 - round(prob.optimal_value * 100)) < 1e-6  # BBOB f_opt: 0.01 grid
        prob.space.validate(x)
        for p in prob.space.sample(20, "random", seed=int(rng.integers(1000))):
            assert prob.evaluate(p)["value"] >= prob.optimal_value


@pytest.mark.parametrize("name", ["levy6", "rosenbrock4_shifted", "ackley10_shifted"])
def test_levy6_and_shifted_boxes_contain_the_optimum_off_centre(name: str) -> None:
    prob = make_problem(name)
    x = prob.optimizer_x
    prob.space.validate(x)
    assert prob.evaluate(x)["value"] == pytest.approx(prob.optimal_value, abs=1e-12)
    if name != "levy6":
        centre = {k: (p.low + p.high) / 2 for k, p in prob.space.parameters.items()}
        assert all(abs(x[k] - centre[k]) > 0.2 * (p.high - p.low) for k, p in prob.space.parameters.items())
        assert prob.evaluate(centre)["value"] > prob.optimal_value + 1.0


def _fake_table(path: Path, drop: int = 0) -> dict[tuple, float]:
    from benchmarks.tables.make_mlp_digits import SEEDS, _write, cell_key, cells

    rows, means = [], {}
    for i, c in enumerate(cells()):
        losses = [0.1 + 0.001 * i + 0.01 * s for s in SEEDS]
        means[cell_key(c)] = float(np.mean(losses))
        rows += [{**c, "seed": s, "val_loss": f"{v:.6f}", "val_error": "0.1", "train_s": "0"}
                 for s, v in zip(SEEDS, losses)]
    _write(path, rows[: len(rows) - drop])
    return means


def test_tabular_problem_looks_up_the_seed_mean_and_refuses_a_partial_table(tmp_path: Path) -> None:
    from benchmarks.compare.problems import mlp_digits_table

    path = tmp_path / "t.csv.gz"
    means = _fake_table(path)
    table = mlp_digits_table(str(path))
    assert len(table) == 432 and all(table[k] == pytest.approx(v, abs=1e-6) for k, v in means.items())
    _fake_table(tmp_path / "p.csv.gz", drop=1)
    with pytest.raises(ValueError, match="1 of 432 cells lack a seed"):
        mlp_digits_table(str(tmp_path / "p.csv.gz"))
    assert len(mlp_digits_table(str(tmp_path / "p.csv.gz"), allow_partial=True)) == 431


def test_shipped_table_problem_optimum_is_the_best_cell() -> None:
    from benchmarks.compare.problems import mlp_digits_table

    try:
        table = mlp_digits_table()
    except (ValueError, FileNotFoundError) as e:  # pragma: no cover - only while the table is being built
        pytest.skip(f"shipped table incomplete: {e}")
    prob = make_problem("mlp_digits")
    assert prob.optimal_value == min(table.values())
    assert prob.evaluate(prob.optimizer_x)["value"] == prob.optimal_value
    values = [prob.evaluate(p)["value"] for p in prob.space.sample(50, "random", seed=0)]
    assert min(values) >= prob.optimal_value and len(set(values)) > 10


def test_boundary_count_and_share_count_model_based_proposals_only() -> None:
    from benchmarks.compare.runner import health, on_bound

    prob = make_problem("svc_breast_cancer")  # C and gamma: log floats; kernel, degree: not counted
    sp = prob.space
    assert on_bound(sp, {"C": 1e-3, "gamma": 1e1, "kernel": "rbf", "degree": 2}) == 2
    assert on_bound(sp, {"C": 1e-3 * (1 + 1e-9), "gamma": 1.0, "kernel": "rbf", "degree": 5}) == 1
    assert on_bound(sp, {"C": 1.0, "gamma": 1e-2, "kernel": "rbf", "degree": 2}) == 0
    h = health(prob, [0.1, 0.2, 0.05, 0.3], [2, 2, 0, 2], [False, True, True, True])
    assert h["boundary_share"] == pytest.approx(2 / 3) and h["n_model_based"] == 3
    assert h["stuck"] is None  # optimum unknown: the report decides against the best value seen
    hart = make_problem("hartmann6")
    assert health(hart, [-3.2032], [0], [True])["stuck"] is True  # the second basin (regret 0.119)
    assert health(hart, [-3.3], [0], [True])["stuck"] is False
    assert health(make_problem("branin"), [1.0], [0], [True])["boundary_share"] == 0.0


def _record(problem: str, method: str, seed: int, values: list[float], split: str) -> dict:
    n = len(values)
    return {"section": "seq", "method": method, "problem": problem, "seed": seed, "mode": "seq", "q": 4,
            "values": values, "c": [None] * n, "cost": [None] * n, "time": list(range(1, n + 1)),
            "round": list(range(1, n + 1)), "ask_s": [0.01] * n, "ask_cpu_s": [0.01] * n, "split": split,
            "n_on_bound": [2] * n, "model_based": [False] + [True] * (n - 1), "autotune_code": "x"}


def test_report_shows_both_halves_and_quotes_goals_from_confirm(tmp_path: Path) -> None:
    from benchmarks.compare.report import write_report

    raw = tmp_path / "raw"
    raw.mkdir()
    opt = make_problem("hartmann6").optimal_value
    # dev: autotune reaches the optimum; confirm: it stays in the second basin, Optuna GP converges
    for s in range(3):
        for m, dev_v, conf_v in (("autotune", opt, -3.2032), ("optuna-gp", -3.0, opt + 1e-4)):
            for seed, v, half in ((s, dev_v, "dev"), (1000 + s, conf_v, "confirm")):
                (raw / f"{m}_{seed}.json").write_text(json.dumps(_record("hartmann6", m, seed, [0.0, v], half)))
    out = write_report(raw, tmp_path / "r.md", "cmd", autotune_code="any")
    text = out.read_text()
    dev = text[text.index("### Development half"):text.index("### Confirmation half")]
    conf = text[text.index("### Confirmation half"):]
    assert "| hartmann6 | autotune | 3 | -6.00 [-6.00, -6.00] | 100% | 0% | 1.00 (of 3) |" in dev
    assert "| hartmann6 | optuna-gp | 3 | -4.00 [-4.00, -4.00] | 100% | 0% |" in conf
    assert "| hartmann6 | autotune | 3 | -0.92 [-0.92, -0.92] | 0% | 100% |" in conf
    assert "[confirm] Default strategy best or tied-best at 2 evaluations on ≥ 2/3 of the problems against every " \
           "peer: **not met**" in text
    assert "[confirm] Share of runs stuck at a non-global basin no higher than `optuna-gp`'s: **not met**" in text
    assert "[dev]" not in text.split("Problems:")[0]
    # only the current code state's autotune runs are reported by default
    assert "| hartmann6 | autotune |" not in write_report(raw, tmp_path / "c.md", "cmd").read_text()


@pytest.mark.parametrize("name", ["svc_digits", "hgb_breast_cancer", "mlp_wine", "gbr_diabetes"])
def test_sklearn_problems_evaluate_a_cross_validated_error(name: str) -> None:
    prob = make_problem(name)
    assert prob.optimal_value is None and "optimum unknown" in prob.description
    (p,) = prob.space.sample(1, "random", seed=1)
    v = prob.evaluate(p)["value"]
    assert 0.0 <= v < prob.worst_value + 1.0
    assert prob.evaluate(p)["value"] == v  # fixed folds and seeds


def test_code_state_names_the_autotune_tree_and_enters_autotune_keys_only() -> None:
    import re

    assert re.fullmatch(r"[0-9a-f]{10}(\+[0-9a-f]{10})?", code_state())
    t = Task("seq", "autotune", "branin", 0, n_evals=6, code="abc")
    assert t.key == "seq__autotune__branin__s0__e6__aabc" and t.split == "dev"
    assert Task("seq", "random", "levy6", 1000).split == "confirm"


def test_table_script_trains_cells_and_resumes(tmp_path: Path) -> None:
    from benchmarks.tables.make_mlp_digits import SEEDS, read_rows
    from benchmarks.tables.make_mlp_digits import main as make_table

    out = tmp_path / "t.csv.gz"
    assert make_table(["--out", str(out), "--limit", "1"]) == 0
    first = read_rows(out)
    assert len(first) == len(SEEDS) and {int(r["seed"]) for r in first} == set(SEEDS)
    assert all(0.0 < float(r["val_loss"]) < 5.0 and 0.0 <= float(r["val_error"]) <= 1.0 for r in first)
    assert make_table(["--out", str(out), "--limit", "1"]) == 0  # resumes: the next cell, the first kept
    rows = read_rows(out)
    assert rows[: len(SEEDS)] == first and len(rows) == 2 * len(SEEDS)


def test_dry_run_lists_one_half_and_runs_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = tmp_path / "raw"
    assert main(["--size", "smoke", "--split", "confirm", "--problems", "branin", "--dry-run", "--raw", str(raw)]) == 0
    out = capsys.readouterr().out
    n = len([t for t in SIZES["smoke"].tasks("confirm") if t.section != "seq" or t.problem == "branin"])
    assert "split confirm, size smoke" in out and f"{n} of {n} runs not cached" in out
    assert "seq          autotune" in out and not raw.exists()


def test_versus_compares_two_code_states_of_the_default_on_shared_seeds(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.compare.versus import main

    raw = tmp_path / "raw"
    raw.mkdir()
    opt = make_problem("hartmann6").optimal_value
    runs = [("old", 1000, -3.2032), ("old", 1001, -3.2032), ("old", 1002, opt),  # seed 1002: old only
            ("new", 1000, opt + 1e-4), ("new", 1001, opt + 1e-4)]
    for state, seed, v in runs:
        rec = _record("hartmann6", "autotune", seed, [0.0, v], "confirm") | {"code": state}
        (raw / f"a_{state}_{seed}.json").write_text(json.dumps(rec))
    for seed in (1000, 1001):
        rec = _record("hartmann6", "optuna-gp", seed, [0.0, opt + 1e-2], "confirm")
        (raw / f"g_{seed}.json").write_text(json.dumps(rec))
    other = _record("hartmann6", "autotune", 1000, [0.0, opt], "confirm") | {"code": "third"}
    (raw / "third.json").write_text(json.dumps(other))  # a third state: ignored
    assert main(["--raw", str(raw), "--old", "old", "--new", "new", "--at", "2"]) == 0
    out = capsys.readouterr().out
    # two shared seeds; old stuck in the second basin (-0.92), new at 1e-4 (-4), GP at 1e-2 (-2)
    assert "| hartmann6 | 2 | -0.92 [-0.92, -0.92] | -4.00 [-4.00, -4.00] | -2.00 [-2.00, -2.00] | better (-3.08) |" \
        in out
    assert "better on 1, worse on 0" in out and "Median worse than Optuna GP's 75th percentile: 1 before, 0 after" in out
    # both shared seeds moved from -0.924 to -4: per-run evidence, both tests at n = 2 (p = 0.5)
    assert "Paired over 2 (problem, seed) runs: 0 identical, after worse in 0, better in 2; median difference -3.076" \
        in out and "sign test p = 0.500" in out
    with pytest.raises(SystemExit):
        main(["--raw", str(raw), "--old", "old", "--new", "missing"])


def test_paired_summary_counts_identical_runs_and_tests_the_rest() -> None:
    from benchmarks.compare.versus import paired_summary

    assert paired_summary([0.0, 0.0]) == "Paired over 2 runs: all identical."
    line = paired_summary([0.0] + [0.1] * 10 + [-0.1])
    assert "1 identical, after worse in 10, better in 1" in line
    assert "sign test p = 0.012" in line  # 10 of 11 one way: two-sided binomial p = 24/2048


def test_peers_counts_wins_ties_and_the_upper_quartile_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.compare.peers import main

    raw = tmp_path / "raw"
    raw.mkdir()
    h = make_problem("hartmann6").optimal_value
    b = make_problem("branin").optimal_value
    runs = [  # hartmann6 (tuned on): autotune at 1e-4, GP at 1e-2; levy6 (held out): autotune stuck
        ("hartmann6", "autotune", h + 1e-4), ("hartmann6", "optuna-gp", h + 1e-2), ("hartmann6", "random", h + 1.0),
        ("branin", "autotune", b + 1e-2), ("branin", "optuna-gp", b + 1e-2 * 1.05),  # tied within 0.05
        ("branin", "random", b + 1e-3),
    ]
    for problem, method, v in runs:
        for seed in (1000, 1001):
            start = make_problem(problem).optimal_value + 10.0
            rec = _record(problem, method, seed, [start, v], "confirm") | {"code": "s"}
            (raw / f"{problem}_{method}_{seed}.json").write_text(json.dumps(rec))
    assert main(["--raw", str(raw), "--code", "s", "--at", "2"]) == 0
    out = capsys.readouterr().out
    assert "| hartmann6 | dev problem | 2 | -4.00 [-4.00, -4.00] | 100% | -2.00 [-2.00, -2.00] (2) | 0% | 0.00 |" in out
    assert "| branin | dev problem | 2 | -2.00 [-2.00, -2.00] | 0% | -1.98 [-1.98, -1.98] (2) | 0% | -3.00 |" in out
    assert "against optuna-gp: strictly better median on 2 of 2; with a tie band of 0.05, better 1, worse 0, tied 1" in out
    # random beats autotune on branin (1e-3 against 1e-2): best or tied-best on hartmann6 only
    assert "against random: strictly better median on 1 of 2" in out
    assert "best or tied-best against every peer that ran on 1 of 2" in out
    assert "worse than Optuna GP's 75th percentile on 0;" in out
    with pytest.raises(SystemExit):
        main(["--raw", str(raw), "--code", "missing"])
