"""Ask/tell from outside the driver, with the state in a real SQLite MLflow store."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotune.exceptions import ConfigError, TrialError
from autotune.study import RemoteStudy, StudyConfig
from autotune.trial import TrialState

SPACE = {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0},
                        "y": {"type": "float", "low": 0.0, "high": 1.0}}}


def f(params: dict[str, Any]) -> float:
    return -((params["x"] - 0.3) ** 2) - (params["y"] - 0.7) ** 2


@pytest.fixture
def config(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> Callable[..., StudyConfig]:
    uri = mlflow_store_factory(tmp_path / "store")

    def make(**overrides: Any) -> StudyConfig:
        data: dict[str, Any] = {
            "name": "remote", "space": SPACE, "objective": {"metric": "radius", "direction": "maximize"},
            "strategy": {"name": "max_variance"}, "n_initial": 3, "budget": {"max_trials": 20},
            "trial": {"entry_point": "instrument:measure_trial"}, "output_dir": str(tmp_path / "out"),
            "tracking_uri": uri,
        }
        data.update(overrides)
        return StudyConfig.from_dict(data)

    return make


def test_ask_tell_round_trip_is_recorded(config: Callable[..., StudyConfig]) -> None:
    study = RemoteStudy(config())
    assert study.pending() == {} and study.observations() == []
    asked = [study.ask() for _ in range(4)]  # 3 Sobol points, then max variance with 3 pending
    ids = [tid for tid, _ in asked]
    assert ids == [0, 1, 2, 3]
    assert len({(p["x"], p["y"]) for _, p in asked}) == 4  # distinct from the pending ones
    assert study.pending() == {tid: p for tid, p in asked}
    obs = study.tell(1, f(asked[1][1]), metrics={"instrument_s": 3.5})
    assert obs.state is TrialState.COMPLETED and obs.value == pytest.approx(f(asked[1][1]))
    assert obs.metrics == {"instrument_s": 3.5, "radius": pytest.approx(f(asked[1][1]))}
    assert sorted(study.pending()) == [0, 2, 3]
    status = study.status()
    assert status.counts["completed"] == 1 and status.counts["running"] == 3
    assert status.best is not None and status.best.trial_id == 1
    failed = study.tell(2, None)
    assert failed.state is TrialState.FAILED and failed.value is None
    assert study.tell(3, math.nan).state is TrialState.NONFINITE
    tid, _ = study.ask()
    assert study.tell(tid, 1.0, state="killed").state is TrialState.KILLED  # recorded, not learned from
    learned = {o.trial_id: o.state for o in study.observations()}  # every told trial, and only those
    assert learned == {1: TrialState.COMPLETED, 2: TrialState.FAILED, 3: TrialState.NONFINITE}


def test_a_restart_reloads_history_and_pending(config: Callable[..., StudyConfig]) -> None:
    first = RemoteStudy(config())
    for _ in range(3):
        tid, params = first.ask()
        first.tell(tid, f(params))
    pending_id, pending_params = first.ask()
    del first  # the instrument computer restarts

    again = RemoteStudy(config())
    assert again.pending() == {pending_id: pending_params}
    assert [o.trial_id for o in again.observations()] == [0, 1, 2]
    tid, params = again.ask()  # a model-based point that avoids the pending one
    assert tid == pending_id + 1 and params != pending_params
    again.tell(pending_id, f(pending_params))
    assert again.pending() == {tid: params}
    assert again.best() is not None and again.best().trial_id in {0, 1, 2, 3}  # type: ignore[union-attr]


def test_the_same_record_gives_the_same_proposal(config: Callable[..., StudyConfig], tmp_path: Path,
                                                 mlflow_store_factory: Callable[[Path], str]) -> None:
    a = RemoteStudy(config())
    b = RemoteStudy(config(output_dir=str(tmp_path / "out_b"), tracking_uri=mlflow_store_factory(tmp_path / "b")))
    for study in (a, b):
        for _ in range(3):
            tid, params = study.ask()
            study.tell(tid, f(params))
    assert a.ask() == b.ask()  # seeded by the study seed and the record


def test_telling_an_unknown_or_finished_trial_is_a_clear_error(config: Callable[..., StudyConfig]) -> None:
    study = RemoteStudy(config())
    tid, params = study.ask()
    with pytest.raises(ConfigError, match=r"trial 7 is not in the record.*pending trials \[0\]"):
        study.tell(7, 1.0)
    study.tell(tid, f(params))
    with pytest.raises(ConfigError, match=r"trial 0 was already told \(completed\)"):
        study.tell(tid, 2.0)
    with pytest.raises(ConfigError, match="must be a terminal trial state"):
        study.tell(tid, 2.0, state="running")


def test_ask_stops_at_the_trial_budget(config: Callable[..., StudyConfig]) -> None:
    study = RemoteStudy(config(budget={"max_trials": 2}))
    study.ask()
    study.ask()
    with pytest.raises(TrialError, match=r"budget.max_trials \(2\) is spent.*2 pending"):
        study.ask()


def test_concurrent_asks_wait_for_each_other_and_take_distinct_ids(config: Callable[..., StudyConfig]) -> None:
    import threading

    study = RemoteStudy(config())
    results: list[int] = []
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            results.append(study.ask()[0])
        except BaseException as exc:  # noqa: BLE001 (reported by the assertion below)
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and sorted(results) == [0, 1, 2]  # the record's lock serialised them
    assert sorted(study.pending()) == [0, 1, 2]


def test_the_study_run_is_running_while_points_are_out_and_finished_after(config: Callable[..., StudyConfig]) -> None:
    import mlflow

    from autotune.study._record import StudyRecord

    cfg = config()
    study = RemoteStudy(cfg)

    def status() -> str:
        record = StudyRecord(cfg)
        record.open({}, create=False)
        return str(mlflow.MlflowClient(cfg.tracking_uri).get_run(record.tracker.parent_run_id).info.status)

    (a, pa), (b, pb) = study.ask(), study.ask()
    assert status() == "RUNNING"
    study.tell(a, f(pa))
    assert status() == "RUNNING"  # b is still out
    study.tell(b, f(pb))
    assert status() == "FINISHED"
    with pytest.raises(ConfigError):
        study.tell(b, 0.0)  # a failed tell (already told) reads the record: still finished
    assert status() == "FINISHED"
    study.ask()
    assert status() == "RUNNING"
