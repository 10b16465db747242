"""A partial ``study.enqueue_trial({...})`` holds those values in AutotuneSampler's proposal."""

from __future__ import annotations

import json
import warnings

import optuna

from autotune.integrations.optuna import INFO_KEY, AutotuneSampler

optuna.logging.set_verbosity(optuna.logging.ERROR)


def objective(trial: optuna.Trial) -> float:
    x = trial.suggest_float("x", 0.0, 1.0)
    t = trial.suggest_float("temperature", 250.0, 350.0)
    k = trial.suggest_int("k", 0, 4)
    return (x - 0.3) ** 2 + (t - 280.0) ** 2 / 1e4 + 0.1 * k


def test_enqueued_values_are_held_and_the_rest_is_chosen_by_the_strategy() -> None:
    sampler = AutotuneSampler("ucb", seed=0, n_initial=4, strategy_options={"num_restarts": 2, "raw_samples": 64})
    study = optuna.create_study(sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, n_trials=6)
        study.enqueue_trial({"temperature": 300.0})
        study.enqueue_trial({"temperature": 300.0, "x": 0.5, "k": 1})  # everything given: nothing to choose
        study.optimize(objective, n_trials=2)
    partial, full = study.trials[-2:]
    assert partial.params["temperature"] == 300.0
    info = json.loads(partial.system_attrs[INFO_KEY])
    assert info["strategy"] == "ucb" and "fallback" not in info and "acq_value" in info
    assert full.params == {"x": 0.5, "temperature": 300.0, "k": 1}  # Optuna did not need the sampler


def test_a_fully_enqueued_relative_space_is_returned_without_asking() -> None:
    def with_extra(trial: optuna.Trial) -> float:
        value = objective(trial)
        if trial.number >= 5:  # a define-by-run parameter outside the relative space triggers sample_relative
            trial.suggest_float("extra", 0.0, 1.0)
        return value

    sampler = AutotuneSampler("ei", seed=1, n_initial=3, strategy_options={"num_restarts": 2, "raw_samples": 64},
                              warn_independent_sampling=False)
    study = optuna.create_study(sampler=sampler)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(with_extra, n_trials=5)
        study.enqueue_trial({"temperature": 260.0, "x": 0.25, "k": 2})
        study.optimize(with_extra, n_trials=1)
    last = study.trials[-1]
    assert {k: last.params[k] for k in ("x", "temperature", "k")} == {"x": 0.25, "temperature": 260.0, "k": 2}
    assert json.loads(last.system_attrs[INFO_KEY])["strategy"] == "enqueued"
