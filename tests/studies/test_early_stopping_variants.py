"""The studies' ``early_stopping.yaml`` variants: valid files, and ASHA pruning a real study."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from autotune.trial import TrialState
from tests.studies.helpers import STUDIES, load_study_module


@pytest.mark.parametrize("study", ["solubility", "forecast", "saxs"])
def test_each_per_epoch_study_has_an_asha_variant_of_its_own_study(study: str, tmp_path: Path) -> None:
    from autotune.study import Study

    base = Study.from_file(STUDIES / study / "study.yaml", overrides={"output_dir": str(tmp_path / "a")}).config
    variant = Study.from_file(STUDIES / study / "early_stopping.yaml", overrides={"output_dir": str(tmp_path / "b")}).config
    assert variant.early_stopping.rule == "asha" and base.early_stopping.rule == "none"
    # the same search, only the stopping rule differs
    assert variant.objective == base.objective and variant.strategy == base.strategy
    assert variant.trial.fixed_args == base.trial.fixed_args and variant.budget == base.budget
    metric = variant.early_stopping.metric or variant.objective.metric
    train = (STUDIES / study / "train.py").read_text(encoding="utf-8")
    assert metric in train  # the judged metric is one the training code reports per epoch


@pytest.mark.slow
def test_asha_prunes_real_solubility_trials_and_records_why(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    from autotune.study import Study
    from autotune.study._stopping import TAG_PRUNED_STEP
    from autotune.tracking import MlflowTracker

    data = load_study_module("solubility", "data")
    data.load_sets(tmp_path / "cache")  # the trials' default cache: <output_dir>/cache
    # the variant as shipped (full size, rungs at epochs 3, 9, 27, ...), 8 trials: a trial runs
    # tens of epochs, so the driver, reading reports every 0.5 s, judges it while it trains
    study = Study.from_file(STUDIES / "solubility" / "early_stopping.yaml", overrides={
        "output_dir": str(tmp_path), "budget": {"max_trials": 8, "max_time_s": 300}, "n_initial": 8,
    })
    mlflow_store_factory(tmp_path)
    summary = study.optimize(progress=False)
    tracker = MlflowTracker(study.config.resolved_tracking_uri, study.config.name)
    tracker.find_study()
    trials = tracker.load_trials()
    states = [t.state for t in trials]
    assert len(trials) == 8 and set(states) <= {TrialState.COMPLETED, TrialState.PRUNED}
    assert TrialState.PRUNED in states and TrialState.COMPLETED in states
    assert summary.counts["pruned"] == states.count(TrialState.PRUNED)
    pruned = {t.trial_id for t in trials if t.state is TrialState.PRUNED}
    for trial in trials:
        if trial.trial_id in pruned:
            assert int(trial.tags[TAG_PRUNED_STEP]) in (3, 9, 27, 81, 243)  # the rungs; 3 epochs at least
    assert summary.best is not None and summary.best.trial_id not in pruned
    shutil.rmtree(tmp_path / "cache")
