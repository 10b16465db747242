"""Early stopping through the real driver: local executor, the record, resume's rebuild."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autotune.exceptions import ConfigError, StudyConfigError
from autotune.study import Study, StudyRecord, load_study_config, read_reports
from autotune.study._stopping import TAG_PRUNED_REASON, TAG_PRUNED_STEP, TAG_PRUNED_VALUE, EarlyStopper
from autotune.trial import TrialState
from tests.study.helpers import FNS, study_dict, write_study

STEPS = 9


def _asha_study(folder: Path, store_factory: Callable[[Path], str], **overrides: object) -> Path:
    return write_study(folder, store_factory, name="es", budget={"max_trials": 12}, parallelism={"workers": 3},
                       strategy={"name": "random"},
                       early_stopping={"rule": "asha", "min_step": 1, "max_step": STEPS, "eta": 3, "grace_s": 5},
                       trial={"entry_point": f"{FNS}:curve", "fixed_args": {"steps": STEPS, "sleep_s": 0.15}},
                       **overrides)


@pytest.mark.slow
def test_asha_prunes_bad_trials_records_where_and_saves_steps(
        tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> None:
    config = load_study_config(_asha_study(tmp_path, mlflow_store_factory))
    summary = Study(config).optimize(progress=False)
    assert summary.counts["pruned"] >= 2, summary.counts
    assert summary.counts["completed"] >= 1 and summary.counts["failed"] == 0, summary.counts
    assert summary.counts["completed"] + summary.counts["pruned"] == 12
    record = StudyRecord(config)
    assert record.exists()
    trials = record.trials()
    reports = read_reports(record, trials)
    pruned = [t for t in trials if t.state is TrialState.PRUNED]
    for trial in pruned:
        step = int(trial.tags[TAG_PRUNED_STEP])
        assert 1 <= step < STEPS and "asha rung" in trial.tags[TAG_PRUNED_REASON]
        assert float(trial.tags[TAG_PRUNED_VALUE]) == pytest.approx(
            next(r["loss"] for r in reports[trial.trial_id] if r["step"] == step))
        # stopped gracefully at its next report: at most one step past the decision (plus the poll's lag)
        assert max(r["step"] for r in reports[trial.trial_id]) < STEPS
    trained = sum(max(r["step"] for r in reports[t.trial_id]) for t in trials)
    assert trained < 12 * STEPS  # the point of it
    # the best is a completed trial; pruned trials are low-fidelity observations of the optimiser
    assert summary.best is not None and summary.best.trial_id not in {t.trial_id for t in pruned}
    optimizer = record.new_optimizer()
    record.rebuild(optimizer)
    by_id = {o.trial_id: o for o in optimizer.observations}
    assert all(by_id[t.trial_id].state is TrialState.PRUNED and by_id[t.trial_id].value is not None for t in pruned)
    # resume rebuilds the rungs from the record and decides nothing again
    stopper = EarlyStopper(config)
    assert stopper.replay(trials, reports) == sum(len(r) for r in reports.values())
    for trial in trials:
        for r in reports.get(trial.trial_id, []):
            assert stopper.rule.observe(trial.trial_id, int(r["step"]), r["loss"]) is None


def test_early_stopping_section_is_checked_with_file_key_value_and_fix(
        tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> None:
    import yaml

    bad = {"rule": "asha", "min_step": 1}
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(study_dict(early_stopping=bad)), encoding="utf-8")
    with pytest.raises((ConfigError, StudyConfigError)) as info:
        load_study_config(path)
    text = str(info.value)
    assert "early_stopping.max_step" in text and "study.yaml" in text and "max_step: 27" in text
    for section, key in (({"rule": "sha"}, "early_stopping.rule"), ({"rule": "asha", "max_step": 9, "eta": 1},
                                                                    "early_stopping.eta")):
        path.write_text(yaml.safe_dump(study_dict(early_stopping=section)), encoding="utf-8")
        with pytest.raises((ConfigError, StudyConfigError)) as info:
            load_study_config(path)
        assert key in str(info.value)


def test_a_trial_a_dead_driver_stopped_is_recorded_pruned_by_the_next(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from autotune.report import STOP_FILE
    from autotune.trial import TrialResult, TrialSpec

    config = load_study_config(_asha_study(tmp_path, lambda folder: ""))
    stopper = EarlyStopper(config)  # a fresh driver: it never decided anything about trial 4
    workdir = tmp_path / "trial-4"
    workdir.mkdir()
    job = SimpleNamespace(trial_id=4, spec=TrialSpec(4, {"x": 0.0}, "m:f", workdir=str(workdir)))
    history = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}]
    killed = TrialResult(4, TrialState.KILLED, history=history, error="TrialStopped")
    assert stopper.finish(job, killed) == (killed, None)  # no stop file: a user's kill stays killed
    (workdir / STOP_FILE).write_text("asha rung 1\n", encoding="utf-8")
    result, tags = stopper.finish(job, killed)
    assert result.state is TrialState.PRUNED and result.metrics["loss"] == 2.5 and result.error is None
    assert tags is not None and tags[TAG_PRUNED_STEP] == 2 and tags[TAG_PRUNED_VALUE] == 2.5
    completed = TrialResult(4, TrialState.COMPLETED, metrics={"loss": 1.0}, history=history)
    assert stopper.finish(job, completed) == (completed, None)  # it ended before it read the request
