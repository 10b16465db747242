"""Multi-objective studies: the study file, the driver's record, RemoteStudy ask/tell, resume."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotune.exceptions import ConfigError, StudyConfigError
from autotune.study import RemoteStudy, Study, StudyConfig
from autotune.tracking import TAG_PARETO, TAG_REFERENCE_POINT
from autotune.trial import TrialState

SPACE = {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0},
                        "y": {"type": "float", "low": 0.0, "high": 1.0}}}
OBJS = [{"metric": "f1", "direction": "minimize"}, {"metric": "f2", "direction": "minimize"}]


def _data(tmp_path: Path, **overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": "mo", "space": SPACE, "objectives": OBJS, "budget": {"max_trials": 8},
        "n_initial": 4, "strategy": {"name": "mo_thompson", "options": {"n_candidates": 64}},
        "executor": {"name": "inprocess"}, "parallelism": {"workers": 1},
        "trial": {"entry_point": "tests.multi.trial_fns:two_objectives"}, "output_dir": str(tmp_path / "out"),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def test_study_file_objectives_fill_objective_and_default_strategy(tmp_path: Path) -> None:
    cfg = StudyConfig.from_dict(_data(tmp_path, strategy=None, reference_point={"f1": 2, "f2": 2}))
    assert cfg.objective.metric == "f1" and [o.metric for o in cfg.objectives or []] == ["f1", "f2"]
    assert cfg.strategy.name == "qlognehvi" and cfg.reference_point == {"f1": 2.0, "f2": 2.0}
    again = StudyConfig.from_dict(cfg.to_dict())  # the record's copy reloads
    assert again.objectives == cfg.objectives and again.objective == cfg.objective


@pytest.mark.parametrize(
    ("overrides", "key", "needle"),
    [
        ({"objectives": [OBJS[0]]}, "objectives", "two or more"),
        ({"objectives": [OBJS[0], OBJS[0]]}, "objectives[1].metric", "twice"),
        ({"objectives": [OBJS[0], {"metric": "f2", "direction": "down"}]}, "objectives[1].direction", "minimize or maximize"),
        ({"objective": {"metric": "f2"}}, "objective", "conflicts with objectives"),
        ({"reference_point": {"f1": 1.0}}, "reference_point.f2", "missing"),
        ({"reference_point": {"f1": 1.0, "f2": 1.0, "f3": 0}}, "reference_point.f3", "not an objective"),
        ({"strategy": "ei"}, "strategy.name", "optimises one objective"),
    ],
)
def test_study_file_errors_name_the_key_and_the_fix(tmp_path: Path, overrides: dict[str, Any], key: str,
                                                    needle: str) -> None:
    with pytest.raises(StudyConfigError) as e:
        StudyConfig.from_dict(_data(tmp_path, **overrides), "studies/mo.yaml")
    text = str(e.value)
    assert text.startswith("studies/mo.yaml: ") and key in text and needle in text and "Fix:" in text


def test_single_objective_file_rejects_multi_objective_keys(tmp_path: Path) -> None:
    data = _data(tmp_path, objectives=None, objective={"metric": "f1"}, strategy=None)
    assert StudyConfig.from_dict(data).strategy.name == "ei"
    with pytest.raises(StudyConfigError, match="reference_point: needs objectives"):
        StudyConfig.from_dict({**data, "reference_point": {"f1": 1.0}})
    with pytest.raises(StudyConfigError, match="needs two or more objectives"):
        StudyConfig.from_dict({**data, "strategy": "qnparego"})


@pytest.mark.slow
def test_driver_records_objectives_pareto_tags_hypervolume_and_front(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    uri = mlflow_store_factory(tmp_path / "store")
    cfg = StudyConfig.from_dict(_data(tmp_path, tracking_uri=uri, reference_point={"f1": 2.0, "f2": 2.0}))
    Study(cfg).optimize(progress=False)
    record = Study(cfg).record
    trials = record.trials()
    assert len(trials) == 8 and all({"f1", "f2"} <= set(t.metrics) for t in trials)
    # the tags agree with dominance among the recorded values
    pts = {t.trial_id: (t.metrics["f1"], t.metrics["f2"]) for t in trials}
    for t in trials:
        a = pts[t.trial_id]
        dominated = any(b[0] <= a[0] and b[1] <= a[1] and b != a for b in pts.values())
        assert t.tags[TAG_PARETO] == ("false" if dominated else "true"), t.trial_id
    client = record.tracker.client
    parent = client.get_run(record.tracker.parent_run_id)
    assert json.loads(parent.data.tags[TAG_REFERENCE_POINT]) == {"f1": 2.0, "f2": 2.0}
    hv = [m.value for m in client.get_metric_history(parent.info.run_id, "hypervolume")]
    assert len(hv) == 8 and all(b >= a for a, b in zip(hv, hv[1:])) and hv[-1] > 0
    local = client.download_artifacts(parent.info.run_id, "pareto/front.json", str(tmp_path / "dl"))
    front = json.loads(Path(local).read_text())
    assert sorted(r["trial_id"] for r in front["front"]) == sorted(t for t, v in pts.items()
                                                                     if not any(b[0] <= v[0] and b[1] <= v[1] and b != v
                                                                                for b in pts.values()))
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert "plots/pareto_front.png" in arts and (cfg.resolved_output_dir / "plots" / "pareto_front.png").stat().st_size
    # resume: the rebuilt optimiser learns both objectives of every trial
    opt = record.new_optimizer()
    record.rebuild(opt)
    assert opt.multi_objective and len(opt.observations) == 8
    assert opt.hypervolume() == pytest.approx(hv[-1])


@pytest.mark.slow
def test_a_trial_without_every_objective_fails_clearly(tmp_path: Path,
                                                       mlflow_store_factory: Callable[[Path], str]) -> None:
    uri = mlflow_store_factory(tmp_path / "store")
    cfg = StudyConfig.from_dict(_data(tmp_path, tracking_uri=uri, budget={"max_trials": 2}, strategy="random",
                                      trial={"entry_point": "tests.multi.trial_fns:only_f1"}))
    Study(cfg).optimize(progress=False)
    trials = Study(cfg).record.trials()
    assert [t.state for t in trials] == [TrialState.FAILED] * 2
    assert all("objective 'f2'" in (t.tags.get("autotune.failure_reason") or "") for t in trials)


@pytest.mark.slow
def test_remote_ask_tell_with_several_values_and_restart(tmp_path: Path,
                                                         mlflow_store_factory: Callable[[Path], str]) -> None:
    uri = mlflow_store_factory(tmp_path / "store")
    cfg = StudyConfig.from_dict(_data(tmp_path, tracking_uri=uri, strategy="random"))
    study = RemoteStudy(cfg)
    tid, p = study.ask()
    with pytest.raises(ConfigError, match="missing"):
        study.tell(tid, {"f1": 1.0})
    obs = study.tell(tid, {"f1": 0.5, "f2": 0.25}, metrics={"n_params": 3.0})
    assert obs.metrics == {"f1": 0.5, "f2": 0.25, "n_params": 3.0}
    tid2, _ = study.ask()
    assert study.tell(tid2, {"f1": float("nan"), "f2": 0.1}).state is TrialState.NONFINITE
    again = RemoteStudy(cfg)
    assert [(o.state, o.value) for o in again.observations()] == [(TrialState.COMPLETED, 0.5),
                                                                   (TrialState.NONFINITE, None)]
    assert again.observations()[0].metrics["f2"] == 0.25


@pytest.mark.slow
def test_cli_best_prints_the_front_and_status_the_hypervolume(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], capsys: pytest.CaptureFixture[str]
) -> None:
    import yaml

    from autotune.cli import main

    uri = mlflow_store_factory(tmp_path / "store")
    data = _data(tmp_path, tracking_uri=uri, budget={"max_trials": 6}, strategy="random")
    path = tmp_path / "mo.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    assert main(["best", str(path)]) == 1  # nothing recorded yet: a clear error
    assert "no feasible completed trial" in capsys.readouterr().err
    Study(StudyConfig.from_dict(data, path)).optimize(progress=False)
    capsys.readouterr()
    assert main(["best", str(path), "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["objectives"] == OBJS and out["reference_inferred"] is True and out["hypervolume"] > 0
    pts = [(r["f1"], r["f2"]) for r in out["front"]]
    assert pts and all(not any(b[0] <= a[0] and b[1] <= a[1] and b != a for b in pts) for a in pts)
    assert all(r["run_id"] and set(r["params"]) == {"x", "y"} for r in out["front"])
    assert main(["best", str(path)]) == 0
    table = capsys.readouterr().out
    assert "Pareto front of mo" in table and "f1 (min)" in table and "hypervolume:" in table
    assert main(["status", str(path)]) == 0
    assert f"Pareto front of {len(pts)}" in capsys.readouterr().out
    assert main(["status", str(path), "--format", "json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["hypervolume"] == pytest.approx(out["hypervolume"]) and status["pareto_size"] == len(pts)


def test_early_stopping_with_two_objectives_stops_only_dominated_trials(tmp_path: Path) -> None:
    from autotune.stopping import pareto_ranks
    from autotune.study import StudyRecord, read_reports
    from autotune.study._stopping import TAG_PRUNED_REASON, TAG_PRUNED_STEP, TAG_PRUNED_VALUE

    data = _data(tmp_path, strategy={"name": "random"}, budget={"max_trials": 16},
                 executor={"name": "inprocess", "options": {"threaded": True}},
                 trial={"entry_point": "tests.multi.trial_fns:two_objective_curves",
                        "fixed_args": {"steps": 4, "sleep_s": 0.3}},  # the driver polls every 0.5 s
                 early_stopping={"rule": "asha", "min_step": 1, "max_step": 4, "eta": 3})
    cfg = StudyConfig.from_dict(data)
    summary = Study(cfg).optimize(progress=False)
    assert summary.counts["pruned"] >= 3 and summary.counts["completed"] >= 1, summary.counts
    record = StudyRecord(cfg)
    trials = sorted(record.trials(), key=lambda t: t.trial_id)
    reports = read_reports(record, trials)
    for trial in trials:
        if trial.state is not TrialState.PRUNED:
            continue
        step = int(trial.tags[TAG_PRUNED_STEP])
        value = json.loads(trial.tags[TAG_PRUNED_VALUE])
        mine = next(r for r in reports[trial.trial_id] if r["step"] == step)
        assert value == pytest.approx([mine["f1"], mine["f2"]])
        assert "dominated" in trial.tags[TAG_PRUNED_REASON]
        # at that rung, among the trials that had reached it by then (the earlier ids, sequential
        # workers), someone dominated it: a non-dominated trial is never stopped
        rung = {t.trial_id: tuple(next(r[m] for r in reports[t.trial_id] if r["step"] == step) for m in ("f1", "f2"))
                for t in trials if t.trial_id <= trial.trial_id
                and any(r["step"] == step for r in reports.get(t.trial_id, []))}
        assert pareto_ranks(rung)[trial.trial_id] >= 1
    # pruned trials are observations at their last values: the front holds completed trials only
    assert summary.best is None or all(t.state is TrialState.COMPLETED
                                       for t in trials if t.tags.get("autotune.pareto") == "true")


def test_median_rule_with_two_objectives_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(StudyConfigError) as e:
        StudyConfig.from_dict(_data(tmp_path, early_stopping={"rule": "median"}), "studies/mo.yaml")
    text = str(e.value)
    assert "early_stopping.rule" in text and "asha or hyperband" in text
    cfg = StudyConfig.from_dict(_data(tmp_path, early_stopping={"rule": "median", "metric": "f1"}))
    assert cfg.early_stopping.metric == "f1"  # one named metric: fine
