"""AutotuneSampler in real Optuna studies, and Optuna studies in and out of autotune (no mocks)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState as OptunaState

from autotune import Optimizer
from autotune.exceptions import ConfigError
from autotune.integrations import History, import_trials
from autotune.integrations.optuna import (
    INFO_KEY,
    AutotuneSampler,
    distributions_from_space,
    load_study,
    save_study,
    space_from_distributions,
)
from autotune.space import Categorical, Float, Int, Ordinal, SearchSpace
from autotune.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.ERROR)
FAST = {"num_restarts": 2, "raw_samples": 64}


def mixed_objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", -3.0, 3.0)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    n = trial.suggest_int("n", 2, 12, step=2)
    s = trial.suggest_float("s", 0.0, 1.0, step=0.25)
    act = trial.suggest_categorical("act", ["relu", "tanh"])
    return (x - 1.0) ** 2 + (math.log10(lr) + 3) ** 2 + abs(n - 6) + s + (act == "tanh")


def _in(d: optuna.distributions.BaseDistribution, value: Any) -> bool:
    return bool(d._contains(d.to_internal_repr(value)))


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_sampler_runs_a_study_inside_the_space_and_takes_over_from_the_design(storage: str, tmp_path: Path) -> None:
    url = None if storage == "memory" else f"sqlite:///{tmp_path / 'optuna.db'}"
    sampler = AutotuneSampler("ei", seed=1, n_initial=4, strategy_options=FAST)
    study = optuna.create_study(storage=url, study_name="mixed", sampler=sampler)
    study.optimize(mixed_objective, n_trials=6)

    study = optuna.load_study(study_name="mixed", storage=url) if url else study
    trials = study.trials
    assert len(trials) == 6 and all(t.state == OptunaState.COMPLETE for t in trials)
    for t in trials:
        assert all(_in(t.distributions[n], v) for n, v in t.params.items())
        assert isinstance(t.params["n"], int) and t.params["n"] % 2 == 0 and t.params["s"] in (0.0, 0.25, 0.5, 0.75, 1.0)
    infos = [json.loads(t.system_attrs[INFO_KEY]) for t in trials[1:]]  # trial 0 has no relative space yet
    assert {i["strategy"] for i in infos[:3]} == {"sobol"}
    assert [i["strategy"] for i in infos[3:]] == ["ei"] * 2 and all("pred_mean" in i for i in infos[3:])


def test_same_seed_same_trials_other_seed_other_trials() -> None:
    def run(seed: int) -> list[dict[str, Any]]:
        study = optuna.create_study(sampler=AutotuneSampler("ei", seed=seed, n_initial=3, strategy_options=FAST))
        study.optimize(lambda t: (t.suggest_float("x", -1, 1) - 0.2) ** 2 + t.suggest_int("k", 0, 3), n_trials=5)
        return [t.params for t in study.trials]

    first = run(3)
    assert run(3) == first
    assert run(4) != first


def test_running_trials_are_pending_points_of_a_batch_strategy() -> None:
    sampler = AutotuneSampler("kriging_believer", seed=0, n_initial=4, strategy_options=FAST)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("x", 0, 1) - 0.3) ** 2 + (t.suggest_float("y", 0, 1) - 0.6) ** 2,
                   n_trials=5)
    # Three workers start at once; each has suggested only x so far (y stays in the stored relative sample).
    running = [study.ask() for _ in range(3)]
    xs = [t.suggest_float("x", 0, 1) for t in running]
    points = [(x, json.loads(study._storage.get_trial_system_attrs(t._trial_id)["autotune:relative_params:0"])["y"])
              for x, t in zip(xs, running)]
    infos = [json.loads(study._storage.get_trial_system_attrs(t._trial_id)[INFO_KEY]) for t in running]
    assert [i["strategy"] for i in infos] == ["kriging_believer"] * 3
    gaps = [math.dist(a, b) for i, a in enumerate(points) for b in points[i + 1:]]
    assert min(gaps) > 0.02, points  # each proposal keeps away from the ones already running

    # Without the running trials (a fresh study with the same finished ones), the strategy proposes
    # the first point again: the spread above came from the pending points.
    alone = optuna.create_study(sampler=AutotuneSampler("kriging_believer", seed=0, n_initial=4,
                                                        strategy_options=FAST))
    alone.add_trials([t for t in study.trials if t.state == OptunaState.COMPLETE])
    again = alone.ask()
    # (to the optimisers' tolerances, Optuna's: the fit to gtol 1e-2, the search to pgtol 1e-2 in
    # length-scale units; this GP is fitted cold, the first one was warm-started), far closer than
    # the running trials kept the proposals apart (> 0.02)
    assert again.suggest_float("x", 0, 1) == pytest.approx(points[0][0], abs=5e-3)


def test_failed_and_pruned_trials_reach_the_optimiser_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[int | None, TrialState | str | None, float | None]] = []
    original = Optimizer.add

    def spy(self: Optimizer, params: Any, value: Any, **kwargs: Any) -> Any:
        seen.append((kwargs.get("trial_id"), kwargs.get("state"), value))
        return original(self, params, value, **kwargs)

    monkeypatch.setattr(Optimizer, "add", spy)

    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        trial.report(10 + x, step=0)
        if trial.number == 1:
            raise RuntimeError("diverged")
        if trial.number == 2:
            raise optuna.TrialPruned()
        return x if trial.number != 3 else float("nan")

    for pruned, expected in (("ignore", None), ("failed", TrialState.FAILED), ("last_value", "value")):
        seen.clear()
        study = optuna.create_study(sampler=AutotuneSampler("sobol", seed=0, pruned=pruned))
        study.optimize(objective, n_trials=5, catch=(RuntimeError,))
        last_ask = {tid: (state, value) for tid, state, value in seen[-4:]}  # the ask for trial 4 saw trials 0-3
        assert last_ask[1] == (TrialState.FAILED, None)  # an exception: a failed point
        assert last_ask[3] == (TrialState.FAILED, None)  # NaN: Optuna records FAIL
        assert last_ask[0] == (None, study.trials[0].value)
        if expected is None:
            assert 2 not in last_ask
        elif expected == "value":
            assert last_ask[2] == (None, study.trials[2].intermediate_values[0])
        else:
            assert last_ask[2] == (expected, None)


def test_multi_objective_studies_use_qlognehvi_and_learn_every_value() -> None:
    sampler = AutotuneSampler(seed=0, n_initial=4, strategy_options={"num_restarts": 2, "raw_samples": 64,
                                                                      "mc_samples": 32})
    study = optuna.create_study(directions=["minimize", "maximize"], sampler=sampler)

    def f(t: optuna.Trial) -> tuple[float, float]:
        x, y = t.suggest_float("x", 0, 1), t.suggest_float("y", 0, 1)
        return x**2 + y**2, -((1 - x) ** 2) - y**2  # both want y = 0: the front is y = 0

    study.optimize(f, n_trials=9)
    # trial 0 is sampled independently (no completed trial yet), then the initial design, then the model
    used = [json.loads(t.system_attrs[INFO_KEY])["strategy"] for t in study.trials if INFO_KEY in t.system_attrs]
    assert used[-5:] == ["qlognehvi"] * 5 and set(used[:-5]) <= {"sobol"}
    assert min(t.params["y"] for t in study.trials[4:]) < min(t.params["y"] for t in study.trials[:4])
    assert len(study.best_trials) >= 1


def test_a_single_objective_strategy_on_a_multi_objective_study_is_a_clear_error() -> None:
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=AutotuneSampler("ei", seed=0,
                                                                                            n_initial=1))
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=1)
    with pytest.raises(ConfigError, match="optimises one objective; this study has 2.*Fix: use qlognehvi"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0), n_trials=1)


def test_unknown_strategy_fails_at_construction() -> None:
    with pytest.raises(ConfigError, match="unknown strategy name.*use one of"):
        AutotuneSampler("nope")


def test_constraint_values_become_outcome_constraints() -> None:
    def objective(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", 0, 1)
        trial.set_constraint("c", 0.6 - x)  # feasible when x >= 0.6
        return x

    study = optuna.create_study(sampler=AutotuneSampler("ei", seed=0, n_initial=5, strategy_options=FAST))
    study.optimize(objective, n_trials=9)
    late = study.trials[6:]
    feasible = [t.params["x"] >= 0.6 - 1e-6 for t in late]
    assert sum(feasible) >= 2  # a minimiser of x that ignored the constraint would go to 0
    assert study.best_trial.params["x"] >= 0.6 - 1e-6


# -- spaces ------------------------------------------------------------------------------------


def test_distributions_map_to_autotune_parameters_and_back() -> None:
    dists = {
        "x": optuna.distributions.FloatDistribution(-1.0, 1.0),
        "lr": optuna.distributions.FloatDistribution(1e-5, 1.0, log=True),
        "s": optuna.distributions.FloatDistribution(-1.0, 1.0, step=0.5),
        "n": optuna.distributions.IntDistribution(1, 9, step=2),
        "c": optuna.distributions.CategoricalDistribution([None, 1, "a"]),
    }
    space = space_from_distributions(dists)
    assert space["x"] == Float("x", low=-1.0, high=1.0)
    assert space["lr"] == Float("lr", low=1e-5, high=1.0, log=True)
    assert space["s"] == Ordinal("s", values=(-1.0, -0.5, 0.0, 0.5, 1.0))
    assert space["n"] == Int("n", low=1, high=9, step=2)
    assert space["c"] == Categorical("c", choices=(None, 1, "a"))
    back = distributions_from_space(space)
    assert back == dists
    assert distributions_from_space(SearchSpace([Ordinal("w", values=(16, 32, 64))]))["w"] == (
        optuna.distributions.CategoricalDistribution([16, 32, 64]))


# -- studies in and out ------------------------------------------------------------------------


def _optuna_study(url: str) -> optuna.Study:
    study = optuna.create_study(storage=url, study_name="source", sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        value = mixed_objective(trial)
        trial.set_user_attr("n_params", 100.0 * trial.params["n"])
        if trial.number == 3:
            raise RuntimeError("out of memory")
        return value

    study.optimize(objective, n_trials=7, catch=(RuntimeError,))
    return study


def test_optuna_to_autotune_to_optuna_keeps_params_and_values(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    source = _optuna_study(url)
    history = load_study(url, "source")

    assert history.direction == "minimize" and history.source == url and history.name == "source"
    assert [o.trial_id for o in history.observations] == list(range(7))
    for o, t in zip(history.observations, source.trials):
        assert o.params == t.params
        assert o.value == t.value
        assert o.state == (TrialState.COMPLETED if t.state == OptunaState.COMPLETE else TrialState.FAILED)
        assert o.metrics["n_params"] == t.user_attrs["n_params"]
    assert isinstance(history.space["s"], Ordinal) and history.space["lr"] == Float("lr", low=1e-5, high=0.1, log=True)

    target_url = f"sqlite:///{tmp_path / 'target.db'}"
    save_study(history, target_url, "copy")
    copy = optuna.load_study(study_name="copy", storage=target_url)
    assert [(t.params, t.value, t.state) for t in copy.trials] == [(t.params, t.value, t.state) for t in source.trials]
    again = load_study(target_url)  # the only study of the storage; its stored space comes back exactly
    assert again.space == history.space
    assert [(o.params, o.value, o.state, o.metrics) for o in again.observations] == [
        (o.params, o.value, o.state, o.metrics) for o in history.observations]


def test_define_by_run_studies_import_with_inferred_conditions() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))

    def objective(trial: optuna.Trial) -> float:
        opt = trial.suggest_categorical("optimizer", ["sgd", "adam", "rmsprop"])
        lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
        momentum = trial.suggest_float("momentum", 0.0, 0.9) if opt == "sgd" else 0.0
        return lr + momentum

    study.optimize(objective, n_trials=12)
    storage = study._storage
    history = load_study(storage, study.study_name)
    (cond,) = history.space["momentum"].conditions
    assert cond.parent == "optimizer" and set(cond.value) == {"sgd"}
    opt = Optimizer(history.space, "random", seed=0)
    assert len(import_trials(opt, history)) == 12
    (s,) = opt.ask()
    assert ("momentum" in s.params) == (s.params["optimizer"] == "sgd")


def test_importing_into_an_optimizer_checks_direction_and_space() -> None:
    space = space_from_distributions({"x": optuna.distributions.FloatDistribution(0, 1)})
    from autotune.trial import Observation

    history = History(space, [Observation({"x": 0.2}, 1.0), Observation({"x": 0.7}, None, TrialState.OOM)])
    opt = Optimizer(space, "ei", seed=0)
    assert import_trials(opt, history) == [0, 1]
    assert [o.state for o in opt.observations] == [TrialState.COMPLETED, TrialState.OOM]
    with pytest.raises(ConfigError, match="direction: is 'maximize' but the imported history"):
        import_trials(Optimizer(space, "ei", direction="maximize"), history)
    narrow = space_from_distributions({"x": optuna.distributions.FloatDistribution(0, 0.5)})
    with pytest.raises(ConfigError, match=r"space: does not fit an imported trial \(trial 1.x"):
        import_trials(Optimizer(narrow, "ei"), history)
