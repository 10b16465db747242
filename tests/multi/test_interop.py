"""Multi-objective histories through Optuna and into studies keep every objective."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autotune import Float, Optimizer, SearchSpace
from autotune.exceptions import ConfigError
from autotune.integrations import import_trials, study_history
from autotune.integrations.optuna import load_study, save_study
from autotune.objectives import Objective
from autotune.study import Study, StudyConfig

SPACE = SearchSpace([Float("x", 0, 1), Float("y", 0, 1)])
OBJS = [Objective("f1", "minimize"), Objective("acc", "maximize")]


def _filled() -> Optimizer:
    opt = Optimizer(SPACE, "random", objectives=OBJS, seed=0)
    for i, s in enumerate(opt.ask(6)):
        if i == 2:
            opt.tell(s, None, state="failed")
        else:
            opt.tell(s, {"f1": s.params["x"], "acc": s.params["y"]}, metrics={"n_params": float(i)})
    return opt


def test_optuna_round_trip_keeps_every_objective(tmp_path: Path) -> None:
    opt = _filled()
    history = study_history(opt)
    assert history.objectives == [("f1", "minimize"), ("acc", "maximize")]
    storage = f"sqlite:///{tmp_path / 'o.db'}"
    study = save_study(history, storage, "mo")
    assert [d.name for d in study.directions] == ["MINIMIZE", "MAXIMIZE"]
    done = [t for t in study.trials if t.values]
    assert len(done) == 5 and all(t.values == [t.params["x"], t.params["y"]] for t in done)
    back = load_study(storage, "mo")
    assert back.objectives == history.objectives and back.metric == "f1"
    again = Optimizer(SPACE, "random", objectives=OBJS, seed=1)
    import_trials(again, back)
    assert [(o.state, o.metrics.get("f1"), o.metrics.get("acc")) for o in again.observations] == [
        (o.state, o.metrics.get("f1"), o.metrics.get("acc")) for o in opt.observations]
    assert again.hypervolume() == pytest.approx(opt.hypervolume())
    assert {o.trial_id for o in again.pareto_front()} == {o.trial_id for o in opt.pareto_front()}


def test_objectives_must_match_on_import() -> None:
    history = study_history(_filled())
    with pytest.raises(ConfigError, match="objectives"):
        import_trials(Optimizer(SPACE, "random", objectives=[Objective("f1"), Objective("acc")]), history)
    with pytest.raises(ConfigError, match="objectives"):
        import_trials(Optimizer(SPACE, "random"), history)


@pytest.mark.slow
def test_import_into_a_multi_objective_study_record(tmp_path: Path,
                                                    mlflow_store_factory: Callable[[Path], str]) -> None:
    uri = mlflow_store_factory(tmp_path / "store")
    cfg = StudyConfig.from_dict({
        "name": "mo", "space": {"parameters": {"x": {"type": "float", "low": 0, "high": 1},
                                               "y": {"type": "float", "low": 0, "high": 1}}},
        "objectives": [{"metric": "f1", "direction": "minimize"}, {"metric": "acc", "direction": "maximize"}],
        "strategy": "random", "budget": {"max_trials": 20}, "trial": {"entry_point": "tests.multi.trial_fns:only_f1"},
        "output_dir": str(tmp_path / "out"), "tracking_uri": uri,
    })
    opt = _filled()
    ids = import_trials(Study(cfg), study_history(opt))
    assert ids == list(range(6))
    back = study_history(Study(cfg))
    assert back.objectives == [("f1", "minimize"), ("acc", "maximize")]
    assert [o.metrics.get("acc") for o in back.observations] == [o.metrics.get("acc") for o in opt.observations]
    rebuilt = Study(cfg).record.new_optimizer()
    Study(cfg).record.rebuild(rebuilt)
    assert rebuilt.hypervolume() == pytest.approx(opt.hypervolume())


@pytest.mark.slow
def test_ax_round_trip_keeps_every_objective(tmp_path: Path) -> None:
    pytest.importorskip("ax")
    from autotune.integrations.ax import load_experiment, save_experiment

    opt = _filled()
    history = study_history(opt)
    experiment = save_experiment(history, tmp_path / "exp.json")
    assert experiment.optimization_config is not None and experiment.optimization_config.objective.is_multi_objective
    back = load_experiment(tmp_path / "exp.json")
    assert back.objectives == [("f1", "minimize"), ("acc", "maximize")]
    again = Optimizer(SPACE, "random", objectives=OBJS, seed=1)
    import_trials(again, back)
    assert [o.state for o in again.observations] == [o.state for o in opt.observations]
    for a, b in zip(again.observations, opt.observations):  # Ax's JSON keeps 10 significant digits
        assert a.metrics.get("acc") == (None if "acc" not in b.metrics else pytest.approx(b.metrics["acc"], rel=1e-9))
    assert again.hypervolume() == pytest.approx(opt.hypervolume(), rel=1e-8)
