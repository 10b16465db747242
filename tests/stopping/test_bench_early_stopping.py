"""The early-stopping benchmark's simulation at a tiny size (the figures come from the script)."""

from __future__ import annotations

import math

import pytest

from benchmarks.bench_early_stopping import simulate


def test_rules_try_more_configurations_in_the_same_steps_and_stay_in_budget() -> None:
    budget = 9 * 8
    none = simulate("none", "random", 1000, max_step=9, budget=budget, workers=2)
    asha = simulate("asha", "random", 1000, max_step=9, budget=budget, workers=2)
    assert none["trials"] == 8  # every trial runs all 9 steps
    assert asha["trials"] > none["trials"]
    for res in (none, asha):
        assert budget <= res["steps"] < budget + 2 * 9  # running trials finish after the budget is spent
        assert res["best@1"] >= 0.1  # Hartmann-6 shifted: the optimum is 0.1


def test_the_optuna_peer_prunes_through_its_own_pruner_in_the_same_harness() -> None:
    budget = 9 * 8
    none = simulate("none", "optuna-tpe", 1000, max_step=9, budget=budget, workers=2)
    asha = simulate("asha", "optuna-tpe", 1000, max_step=9, budget=budget, workers=2)
    assert none["trials"] == 8 and asha["trials"] > none["trials"]
    assert budget <= asha["steps"] < budget + 2 * 9 and asha["best@1"] >= 0.1


def test_mobster_learns_from_the_curves_in_the_harness() -> None:
    res = simulate("asha", "mobster", 1000, max_step=9, budget=9 * 10, workers=2)
    assert res["trials"] > 10 and res["best@1"] >= 0.1 and math.isfinite(res["best@1"])


def test_the_digits_table_gives_real_curves_and_its_optimum() -> None:
    from benchmarks.bench_early_stopping import problem

    prob = problem("digits_mlp")
    assert prob.max_step == 27 and len(_rows()) == 648
    best = min(_rows(), key=lambda r: r["val_loss"][-1])
    curve = prob.curve(best["config"])
    assert curve(27) == prob.optimum and curve(1) > curve(27)  # trained: the loss fell
    res = simulate("asha", "random", 1000, max_step=27, budget=27 * 4, workers=2, problem_name="digits_mlp")
    assert res["best@1"] >= prob.optimum and res["trials"] > 4


def _rows(name: str = "digits_mlp") -> list[dict]:
    from benchmarks.bench_early_stopping import _table

    return _table(name)["rows"]


def test_the_solubility_table_is_the_studys_space_trained_for_real() -> None:
    from autotune.space import load_space
    from benchmarks.bench_early_stopping import problem

    prob = problem("solubility_mlp")
    rows = _rows("solubility_mlp")
    assert len(rows) == 540 and prob.max_step == 27
    assert set(prob.choices) <= set(load_space("solubility_mlp").parameters)  # a grid over the study's own space
    assert all(len(r["val_rmse"]) == 27 and min(r["seconds"]) > 0 for r in rows)
    best = min(rows, key=lambda r: r["val_rmse"][-1])
    assert prob.curve(best["config"])(27) == prob.optimum < 1.0  # log S units: better than ESOL's ~1
    # wider nets and smaller batches cost more seconds per epoch: the time axis is not uniform
    slow = [sum(r["seconds"]) for r in rows if r["config"]["width_1"] == 512 and r["config"]["batch_size"] == 16]
    fast = [sum(r["seconds"]) for r in rows if r["config"]["width_1"] == 32 and r["config"]["batch_size"] == 64]
    assert min(slow) > max(fast)


def test_the_forecast_table_is_the_studys_recurrent_space_trained_for_real() -> None:
    from autotune.space import load_space
    from benchmarks.bench_early_stopping import problem

    prob = problem("forecast_rnn")
    rows = _rows("forecast_rnn")
    assert len(rows) == 384 and prob.max_step == 27
    assert set(prob.choices) - {"lr"} <= set(load_space("rnn").parameters)  # the study's own space (and its lr)
    assert all(len(r["val_rmse"]) == 27 and min(r["seconds"]) > 0 for r in rows)
    best = min(rows, key=lambda r: r["val_rmse"][-1])
    assert prob.curve(best["config"])(27) == prob.optimum < 0.5  # standardised scale: well below the series' spread
    # the time axis spans a wide range: deep bidirectional LSTMs on long windows against tiny GRUs
    def total(cell: str, hidden: int, layers: int, window: int, bi: bool) -> list[float]:
        return [sum(r["seconds"]) for r in rows if (r["config"]["cell"], r["config"]["hidden_size"],
                r["config"]["n_layers"], r["config"]["window"], r["config"]["bidirectional"]) == (cell, hidden, layers,
                                                                                                 window, bi)]
    assert min(total("lstm", 128, 2, 48, True)) > 10 * max(total("gru", 8, 1, 6, False))


def test_the_digits_cnn_table_trains_every_cell_for_real() -> None:
    from benchmarks.bench_early_stopping import problem

    prob = problem("digits_cnn")
    rows = _rows("digits_cnn")
    assert len(rows) == 384 and prob.max_step == 27
    assert all(len(r["val_loss"]) == 27 and min(r["seconds"]) > 0 for r in rows)
    best = min(rows, key=lambda r: r["val_loss"][-1])
    assert prob.curve(best["config"])(27) == prob.optimum and best["val_error"][-1] < 0.05  # a CNN reads digits well
    wide = [sum(r["seconds"]) for r in rows if r["config"]["channels"] == 32 and r["config"]["n_conv"] == 2
            and r["config"]["batch_size"] == 32]
    narrow = [sum(r["seconds"]) for r in rows if r["config"]["channels"] == 4 and r["config"]["n_conv"] == 1
              and r["config"]["batch_size"] == 128]
    assert min(wide) > max(narrow)


@pytest.mark.parametrize("name", ["digits_mlp", "solubility_mlp", "forecast_rnn", "digits_cnn"])
def test_the_seconds_axis_charges_recorded_epoch_times_and_keeps_workers_busy_once_each(name: str) -> None:
    from benchmarks.bench_early_stopping import full_trial_seconds, problem

    prob = problem(name)
    full = full_trial_seconds(prob, 27)
    slowest = max(sum(r["seconds"]) for r in _rows(name))
    budget = 6 * full
    for rule in ("none", "asha"):
        res = simulate(rule, "random", 1000, max_step=27, budget=budget, workers=3, problem_name=name, axis="seconds")
        assert budget <= res["steps"] < budget + 3 * slowest  # running trials finish after the budget is spent
        assert res["steps"] <= 3 * res["clock"] + 1e-9  # three workers train at most three epochs at a time
        assert res["best@1"] >= prob.optimum
        assert [b for _, b in res["trace"]] == sorted((b for _, b in res["trace"]), reverse=True)


def test_ray_tunes_asha_scheduler_is_the_peer_and_prunes() -> None:
    none = simulate("none", "random", 1000, max_step=9, budget=9 * 8, workers=2)
    ray = simulate("asha", "ray-random", 1000, max_step=9, budget=9 * 8, workers=2)
    assert ray["trials"] > none["trials"] == 8 and ray["best@1"] >= 0.1
    with pytest.raises(ValueError, match="ASHAScheduler"):
        simulate("median", "ray-random", 1000, max_step=9, budget=9, workers=1)


def test_time_to_target_is_the_first_budget_at_or_below_the_target() -> None:
    from benchmarks.bench_early_stopping import time_to_target

    trace = [[10.0, 0.5], [25.0, 0.3], [40.0, 0.1]]
    assert time_to_target(trace, 0.3) == 25.0 and time_to_target(trace, 0.6) == 10.0
    assert time_to_target(trace, 0.05) == math.inf


@pytest.mark.parametrize("peer", ["syne-asha", "syne-bohb", "syne-mobster"])
def test_syne_tunes_schedulers_are_peers_that_prune(peer: str) -> None:
    pytest.importorskip("syne_tune", reason="pip install --no-deps syne-tune==0.13.0 sortedcontainers autograd (.ci/run does)")
    none = simulate("none", "random", 1000, max_step=9, budget=9 * 8, workers=2)
    res = simulate("asha", peer, 1000, max_step=9, budget=9 * 8, workers=2)
    assert res["trials"] > none["trials"] and res["best@1"] >= 0.1
    again = simulate("asha", peer, 1000, max_step=9, budget=9 * 8, workers=2)
    assert again["trace"] == res["trace"]  # seeded: a cached run can be trusted to be the run


@pytest.mark.parametrize("peer", ["syne-asha", "optuna-tpe", "ray-random"])
def test_every_peer_takes_the_forecast_tables_boolean_parameter(peer: str) -> None:
    if peer.startswith("syne"):
        pytest.importorskip("syne_tune", reason="pip install --no-deps syne-tune==0.13.0 sortedcontainers autograd")
    from benchmarks.bench_early_stopping import full_trial_seconds, problem

    budget = 3 * full_trial_seconds(problem("forecast_rnn"), 27)
    res = simulate("asha", peer, 1000, max_step=27, budget=budget, workers=2, problem_name="forecast_rnn", axis="seconds")
    assert res["trials"] > 3 and res["best@1"] >= problem("forecast_rnn").optimum  # bools went in as categories


def test_a_tuner_out_of_configurations_stops_asking_and_keeps_its_best(monkeypatch: pytest.MonkeyPatch) -> None:
    import benchmarks.bench_early_stopping as bench

    class Three:
        """Offers three configurations of the digits table, then none (as Syne Tune's searchers do)."""

        def __init__(self, *args: object) -> None:
            self.rows = [r["config"] for r in _rows()[:3]]

        def ask(self) -> tuple[int, dict]:
            if not self.rows:
                raise bench.Exhausted("no configuration left")
            return 3 - len(self.rows), self.rows.pop(0)

        def step(self, tid: int, step: int, value: float, last: bool) -> bool:
            return False

        def end(self, tid: int, value: float, pruned: bool) -> None:
            pass

    monkeypatch.setitem(bench._TUNERS, "three", Three)
    res = simulate("none", "three", 1000, max_step=27, budget=100 * 27, workers=2, problem_name="digits_mlp")
    best = min(r["val_loss"][-1] for r in _rows()[:3])
    assert res["trials"] == 3 and res["steps"] == 3 * 27  # all three trained in full, then nothing more asked
    assert res["best@0.25"] == res["best@0.5"] == res["best@1"] == best  # its best stands for the unspent budget


def test_the_peer_goal_counts_a_tie_within_the_band_and_only_against_other_libraries() -> None:
    from benchmarks.bench_early_stopping import TIE_BAND, peer_goal

    def res(*bests: float) -> list[dict[str, float]]:  # one seed: its best value at 25 %, 50 %, 100 %
        return [{"best@0.25": bests[0], "best@0.5": bests[1], "best@1": bests[2]}]

    optimum = 0.0  # regret = log10(best)
    rows = [
        ("optuna-tpe", "median", 1, res(1e-1, 1e-2, 1e-3)),
        ("syne-asha", "asha", 1, res(1e-2, 1e-1, 1e-1)),  # the best peer at 25 %
        ("ei", "none", 1, res(1e-2 * 10 ** (TIE_BAND / 2), 1e-2, 1e-4)),  # tied, tied, ahead
        ("mobster", "asha", 1, res(1e-2 * 10 ** (2 * TIE_BAND), 1e-2, 1e-3)),  # outside the band at 25 %
        ("random", "asha", 1, res(1.0, 1.0, 1.0)),  # autotune's rule with random proposals: judged too
    ]
    assert peer_goal(rows, optimum) == [
        ("ei", "none", [True, True, True]),
        ("mobster", "asha", [False, True, True]),
        ("random", "asha", [False, False, False]),
    ]
    assert peer_goal([r for r in rows if not r[0].startswith(("optuna", "syne"))], optimum) == []  # no peer ran
