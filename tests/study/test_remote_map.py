"""``RemoteStudy.posterior`` and the live map refreshed by ``RemoteStudy.tell`` (real SQLite MLflow store)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotune.exceptions import ConfigError
from autotune.study import RemoteStudy, StudyConfig
from autotune.study._record import StudyRecord

SPACE = {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0},
                        "y": {"type": "float", "low": 0.0, "high": 1.0}}}


def f(p: dict[str, Any]) -> float:
    return 10.0 - 20.0 * ((p["x"] - 0.3) ** 2 + (p["y"] - 0.7) ** 2)


@pytest.fixture
def config(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> StudyConfig:
    data: dict[str, Any] = {
        "name": "live-map", "space": SPACE, "objective": {"metric": "signal", "direction": "maximize"},
        "strategy": {"name": "max_variance", "options": {"num_restarts": 2, "raw_samples": 64}}, "n_initial": 3,
        "budget": {"max_trials": 20}, "trial": {"entry_point": "instrument:measure_trial"},
        "output_dir": str(tmp_path / "out"), "tracking_uri": mlflow_store_factory(tmp_path / "store"),
    }
    return StudyConfig.from_dict(data)


def plot_files(config: StudyConfig) -> tuple[StudyRecord, list[str]]:
    record = StudyRecord(config)
    assert record.exists()  # opens the tracker on the record
    return record, [a.path for a in record.tracker.client.list_artifacts(record.tracker.parent_run_id, "plots")]


def map_digest(config: StudyConfig, tmp_path: Path) -> str | None:
    record, files = plot_files(config)
    run = record.tracker.parent_run_id
    if "plots/posterior_map.png" not in files:
        return None
    local = record.tracker.client.download_artifacts(run, "plots/posterior_map.png", str(tmp_path / f"dl{len(files)}"))
    return hashlib.sha256(Path(local).read_bytes()).hexdigest()


def measure(study: RemoteStudy, n: int) -> None:
    for _ in range(n):
        tid, params = study.ask()
        study.tell(tid, f(params))


def test_the_map_appears_and_changes_as_measurements_arrive(config: StudyConfig, tmp_path: Path) -> None:
    study = RemoteStudy(config, plots_every=1)
    measure(study, 2)
    assert map_digest(config, tmp_path / "a") is None  # two points: too few for a map
    measure(study, 1)
    first = map_digest(config, tmp_path / "b")
    assert first is not None
    measure(study, 1)
    second = map_digest(config, tmp_path / "c")
    assert second is not None and second != first
    assert {"plots/convergence.png", "plots/posterior_map.png"} <= set(plot_files(config)[1])


def test_the_default_cadence_is_the_drivers(config: StudyConfig, tmp_path: Path) -> None:
    measure(RemoteStudy(config), 4)
    assert map_digest(config, tmp_path) is None  # every 10 finished trials by default


def test_posterior_matches_the_optimizers_prediction(config: StudyConfig) -> None:
    study = RemoteStudy(config, plots_every=0)
    with pytest.raises(ConfigError, match="posterior: needs a completed measurement"):
        study.posterior([{"x": 0.5, "y": 0.5}])
    measure(study, 6)
    points = [{"x": 0.3, "y": 0.7}, {"x": 0.9, "y": 0.1}]
    mean, std = study.posterior(points)
    record = StudyRecord(config)
    assert record.exists()
    optimizer = record.new_optimizer()
    record.rebuild(optimizer, pending=True)
    expected_mean, expected_std = optimizer.predict(points)
    assert mean == pytest.approx(expected_mean, rel=1e-6) and std == pytest.approx(expected_std, rel=1e-6)
    measured = study.observations()[0]
    (m,), (s,) = study.posterior([measured.params])
    assert m == pytest.approx(measured.value, abs=1.0) and 0 < s < 1.0  # in the objective's units (values 5-10)
    with pytest.raises(ConfigError, match=r"posterior: points\[0\].x: must be in \[0.0, 1.0\], got 2"):
        study.posterior([{"x": 2.0, "y": 0.5}])
    with pytest.raises(ConfigError, match="plots_every: must be an integer >= 0"):
        RemoteStudy(config, plots_every=-1)
