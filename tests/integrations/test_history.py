"""Histories into and out of an autotune Study's MLflow record, and the optional extras staying optional."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest

from autotune.exceptions import MissingExtraError
from autotune.integrations import TAG_IMPORTED_FROM, import_trials, study_history
from autotune.study import Study, StudyConfig
from autotune.tracking import MlflowTracker
from autotune.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.ERROR)


def _config(tmp_path: Path, store_factory: Callable[[Path], str], max_trials: int) -> StudyConfig:
    config = StudyConfig(
        name="imported",
        space={"parameters": {"x": {"type": "float", "low": -1.0, "high": 1.0},
                              "y": {"type": "float", "low": -1.0, "high": 1.0}}},
        objective={"metric": "loss", "direction": "minimize"},
        strategy={"name": "ei", "options": {"num_restarts": 2, "raw_samples": 64}},
        n_initial=3,
        budget={"max_trials": max_trials},
        parallelism={"workers": 1},
        executor={"name": "inprocess"},
        trial={"entry_point": "tests.integrations._trial_fns:quadratic"},
        output_dir=str(tmp_path / "out"),
    )
    store_factory(config.resolved_output_dir)  # a migrated store where the study looks for it
    return config


def test_an_optuna_study_lands_in_a_study_record_and_the_study_learns_from_it(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    from autotune.integrations.optuna import load_study, save_study

    url = f"sqlite:///{tmp_path / 'optuna.db'}"
    source = optuna.create_study(storage=url, study_name="prior", sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: optuna.Trial) -> float:
        x, y = trial.suggest_float("x", -1, 1), trial.suggest_float("y", -1, 1)
        if trial.number == 2:
            raise RuntimeError("crashed")
        return (x - 0.3) ** 2 + (y + 0.2) ** 2

    source.optimize(objective, n_trials=5, catch=(RuntimeError,))
    study = Study(_config(tmp_path, mlflow_store_factory, max_trials=7))

    ids = import_trials(study, load_study(url, "prior"))

    assert ids == [0, 1, 2, 3, 4]
    status = study.status()
    assert status.counts["completed"] == 4 and status.counts["failed"] == 1
    assert status.best is not None and status.best.value == source.best_value and status.best.params == source.best_params
    tracker = MlflowTracker(study.config.resolved_tracking_uri, "imported")
    tracker.find_study()
    assert {t.tags[TAG_IMPORTED_FROM] for t in tracker.load_trials()} == {url}

    summary = study.optimize(progress=False)  # resumes from the record: the imported trials are its history
    assert summary.n_new_trials == 2 and summary.n_trials == 7  # imported trials count against max_trials
    new = [t for t in tracker.load_trials() if t.trial_id >= 5]
    assert [t.tags["autotune.strategy"] for t in new] == ["ei", "ei"]  # past the 3-point design: the GP's turn

    history = study_history(study)
    assert [o.trial_id for o in history.observations] == list(range(7))
    copy = save_study(history, f"sqlite:///{tmp_path / 'back.db'}", "back")
    assert [t.params for t in copy.trials[:5]] == [t.params for t in source.trials]
    assert [t.value for t in copy.trials[:5]] == [t.value for t in source.trials]
    assert [t.state for t in copy.trials].count(optuna.trial.TrialState.FAIL) == 1
    assert history.observations[2].state is TrialState.FAILED


def test_import_autotune_imports_neither_optuna_nor_ax() -> None:
    code = ("import sys, autotune, autotune.integrations; from autotune import Optimizer, Study; "
            "print(sorted(m for m in ('optuna', 'ax') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_missing_optuna_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)  # what an environment without optuna looks like
    monkeypatch.delitem(sys.modules, "autotune.integrations.optuna", raising=False)
    with pytest.raises(MissingExtraError, match=r"optuna is not installed.*pip install 'autotune\[optuna\]'"):
        import autotune.integrations.optuna  # noqa: F401
