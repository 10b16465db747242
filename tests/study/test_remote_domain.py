"""``RemoteStudy.ask(candidates=..., fixed=...)`` against a real SQLite MLflow store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotune.exceptions import ConfigError
from autotune.study import RemoteStudy, StudyConfig

SPACE = {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0},
                        "temperature": {"type": "float", "low": 250.0, "high": 350.0}}}


@pytest.fixture
def config(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> StudyConfig:
    data: dict[str, Any] = {
        "name": "remote-domain", "space": SPACE, "objective": {"metric": "signal", "direction": "maximize"},
        "strategy": {"name": "max_variance", "options": {"num_restarts": 2, "raw_samples": 64}}, "n_initial": 2,
        "budget": {"max_trials": 20}, "trial": {"entry_point": "instrument:measure_trial"},
        "output_dir": str(tmp_path / "out"), "tracking_uri": mlflow_store_factory(tmp_path / "store"),
    }
    return StudyConfig.from_dict(data)


def test_candidates_and_fixed_values_round_trip_through_the_record(config: StudyConfig) -> None:
    slots = [{"x": 0.1 * i, "temperature": 300.0} for i in range(5)]
    study = RemoteStudy(config)
    asked = {}
    for _ in range(4):  # the design (2), then max variance, the earlier points pending or measured
        tid, params = study.ask(candidates=slots)
        asked[tid] = params
        if tid % 2:
            study.tell(tid, params["x"])
    assert all(p in slots for p in asked.values()) and len({p["x"] for p in asked.values()}) == 4
    # A fresh process reads the pending and measured slots back from MLflow and leaves them out.
    tid, params = RemoteStudy(config).ask(candidates=slots)
    assert params not in asked.values() and params in slots
    with pytest.raises(ConfigError, match="must leave at least n=1 points not yet observed or pending; 0 of 5 do"):
        RemoteStudy(config).ask(candidates=slots)
    tid, params = study.ask(fixed={"temperature": 275.0})
    assert params["temperature"] == 275.0 and study.pending()[tid] == params


def test_a_bad_candidate_opens_no_trial(config: StudyConfig) -> None:
    study = RemoteStudy(config)
    with pytest.raises(ConfigError, match=r"candidates\[0\].temperature: must be in \[250.0, 350.0\], got 20"):
        study.ask(candidates=[{"x": 0.5, "temperature": 20.0}])
    assert study.pending() == {}
