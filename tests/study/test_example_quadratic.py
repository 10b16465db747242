"""The shipped example, ``studies/quadratic``, in its smoke size: real PyTorch trials in child processes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autotune.study import Study
from autotune.tracking import MlflowTracker
from autotune.trial import TrialState
from tests.study.helpers import REPO_ROOT

pytestmark = pytest.mark.slow


def test_the_smoke_study_trains_real_mlps(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> None:
    study = Study.from_file(REPO_ROOT / "studies" / "quadratic" / "smoke.yaml", overrides={"output_dir": str(tmp_path)})
    mlflow_store_factory(tmp_path)  # the study's store, migrated already
    summary = study.optimize(progress=False)

    assert summary.counts["completed"] == 4 and summary.n_trials == 4
    tracker = MlflowTracker(study.config.resolved_tracking_uri, study.config.name)
    tracker.find_study()
    trials = tracker.load_trials()
    for trial in trials:
        assert trial.state is TrialState.COMPLETED
        assert 0 < trial.metrics["val_loss"] < 10 and 0 < trial.metrics["n_params"] <= 2e6
        assert trial.metrics["epochs"] == 2  # the smoke size
        history = tracker.client.get_metric_history(trial.run_id, "val_loss")
        assert [m.step for m in history][:2] == [1, 2]  # one report per epoch, streamed
    strategies = [t.tags["autotune.strategy"] for t in trials]
    assert strategies == ["sobol"] * 3 + ["ei"]  # n_initial: 3, then the GP takes over
    assert {"autotune.acq_value", "autotune.pred_mean", "autotune.pred_std"} <= set(trials[3].tags)
    assert summary.best is not None and summary.best.value == min(t.metrics["val_loss"] for t in trials)
