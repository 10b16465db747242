"""The forecast study (``studies/forecast``): sunspot tails, seasonal-naive baseline, windows, smoke study."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autotune.trial import TrialState
from tests.studies.helpers import load_study_module, run_smoke_study

forecast = load_study_module("forecast", "train")


def test_the_tails_are_the_last_30_and_the_30_before() -> None:
    series = forecast.load_series()
    assert len(series.values) == 309 and series.years[0] == 1700 and series.years[-1] == 2008
    assert series.years[series.val_start] == 1949 and series.years[series.test_start] == 1979
    with pytest.raises(ValueError, match="n_val and n_test"):
        forecast.load_series(n_val=150, n_test=150)


def test_the_seasonal_naive_baseline_scores_the_validation_and_test_years() -> None:
    from statsmodels.datasets import sunspots

    by_year = sunspots.load_pandas().data.set_index("YEAR")["SUNACTIVITY"]

    def mae(first: int, last: int, lag: int) -> float:  # years first..last, forecast = the value `lag` years before
        years = np.arange(first, last + 1)
        return float(np.mean(np.abs(by_year.loc[years].to_numpy() - by_year.loc[years - lag].to_numpy())))

    scores = forecast.baselines(forecast.load_series())
    assert scores["seasonal_naive_val_mae"] == pytest.approx(mae(1949, 1978, 11))
    assert scores["seasonal_naive_test_mae"] == pytest.approx(mae(1979, 2008, 11))
    assert scores["naive_test_mae"] == pytest.approx(mae(1979, 2008, 1))
    with pytest.raises(ValueError, match="t >= season"):
        forecast.seasonal_naive(np.arange(20.0), np.array([5]), 11)


@pytest.mark.parametrize("window", [6, 24, 48])
def test_windows_never_leak_across_train_validation_and_test(window: int) -> None:
    series = forecast.load_series()
    parts, mean, std = forecast.make_parts(series, window)
    train, val, test = parts["train"], parts["val"], parts["test"]
    assert train.targets.max() < series.val_start <= val.targets.min()
    assert val.targets.max() < series.test_start <= test.targets.min()
    assert len(val.targets) == len(test.targets) == 30 and len(train.targets) == series.val_start - window
    root = np.sqrt(series.values)
    for part in parts.values():  # each window holds exactly the `window` years before its target
        values = part.x.squeeze(-1).double().numpy() * std + mean
        previous = np.stack([root[t - window : t] for t in part.targets])
        np.testing.assert_allclose(values, previous, atol=1e-4)
        np.testing.assert_allclose(part.y.squeeze(-1).double().numpy() * std + mean, root[part.targets], atol=1e-4)
    # The scaling sees the training years only: changing the later years leaves the training windows as they were.
    changed = dataclasses.replace(series, values=np.concatenate(
        [series.values[: series.val_start], series.values[series.val_start :] * 3.0 + 50.0]))
    parts_changed, mean_changed, std_changed = forecast.make_parts(changed, window)
    assert (mean_changed, std_changed) == (mean, std)
    np.testing.assert_array_equal(parts_changed["train"].x.numpy(), train.x.numpy())
    np.testing.assert_array_equal(parts_changed["train"].y.numpy(), train.y.numpy())


def test_a_window_longer_than_the_training_years_is_refused() -> None:
    series = forecast.load_series()
    with pytest.raises(ValueError, match=r"params.window must be < 249"):
        forecast.make_parts(series, 249)


@pytest.mark.slow
def test_the_smoke_study_runs_end_to_end(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> None:
    summary, tracker, trials = run_smoke_study("forecast", tmp_path, mlflow_store_factory)

    assert summary.n_trials == 3 and summary.counts["completed"] == 3
    assert len(trials) == 3
    baseline = forecast.baselines(forecast.load_series())
    for trial in trials:
        assert trial.state is TrialState.COMPLETED
        metrics = trial.metrics
        assert 0 < metrics["val_mae"] < 200 and 0 < metrics["test_mae"] < 200 and metrics["epochs"] <= 3
        assert metrics["seasonal_naive_val_mae"] == pytest.approx(baseline["seasonal_naive_val_mae"])
        assert metrics["n_train_windows"] == 249 - trial.params["window"]
        assert [m.step for m in tracker.client.get_metric_history(trial.run_id, "val_loss")][:1] == [1]
    assert summary.best is not None and summary.best.value == min(t.metrics["val_mae"] for t in trials)
