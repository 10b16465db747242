"""RemoteStudy asks warm: the GP hyperparameters travel in the record between processes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from autotune.models import GPFitter
from autotune.space import Float, SearchSpace
from autotune.study import RemoteStudy, StudyConfig, StudyRecord
from autotune.study._fitstate import FIT_STATE_TAG, load_fit_state

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


def _tag(cfg: StudyConfig) -> str | None:
    record = StudyRecord(cfg)
    record.open({}, create=False)
    return record.tracker.client.get_run(record.tracker.parent_run_id).data.tags.get(FIT_STATE_TAG)


def _fitter_after_load(cfg: StudyConfig) -> tuple[int, GPFitter]:
    record = StudyRecord(cfg)
    record.open({}, create=False)
    optimizer = record.new_optimizer()
    return load_fit_state(record, optimizer), optimizer.fitter


def test_the_hyperparameters_of_an_ask_reach_the_next_process(config: Callable[..., StudyConfig]) -> None:
    study = RemoteStudy(config(), plots_every=0)
    for _ in range(5):  # 3 Sobol points (no GP, no state), then model-based asks
        tid, params = study.ask()
        study.tell(tid, f(params))
    text = _tag(config())
    assert text is not None
    stored = json.loads(text)["names"]["objective"]
    assert stored["n"] >= 3 and "covar_module.raw_lengthscale" in "".join(stored["state"])
    loaded, fitter = _fitter_after_load(config())  # a fresh optimiser, as in another process
    assert loaded == 1
    assert torch.equal(fitter._good["objective"]["likelihood.noise_covar.raw_noise"],
                       torch.tensor(stored["state"]["likelihood.noise_covar.raw_noise"], dtype=torch.float64))
    tid, params = RemoteStudy(config(), plots_every=0).ask()  # and a fresh study asks with it
    assert 0.0 <= params["x"] <= 1.0 and tid == 5


def test_a_foreign_or_broken_state_is_ignored_and_the_ask_still_valid(config: Callable[..., StudyConfig]) -> None:
    study = RemoteStudy(config(), plots_every=0)
    for _ in range(4):
        tid, params = study.ask()
        study.tell(tid, f(params))
    record = StudyRecord(config())
    record.open({}, create=False)
    other = GPFitter(SearchSpace([Float("x", 0.0, 5.0)]))  # another space: another signature
    other.fit("objective", torch.rand(6, 1, dtype=torch.float64), torch.rand(6, 1, dtype=torch.float64))
    for text in (json.dumps(other.export_state()), "{not json", json.dumps({"signature": 1})):
        record.tracker.set_study_tags({FIT_STATE_TAG: text})
        record.tracker.flush()
        loaded, _ = _fitter_after_load(config())
        assert loaded == 0
        tid, params = RemoteStudy(config(), plots_every=0).ask()
        assert set(params) == {"x", "y"} and all(0.0 <= v <= 1.0 for v in params.values())
        study.tell(tid, f(params))


def test_a_fitter_warm_from_an_exported_state_skips_the_cold_fit() -> None:
    space = SearchSpace([Float("x", 0.0, 1.0), Float("y", 0.0, 1.0)])
    X = torch.rand(30, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    Y = torch.sin(4 * X.sum(-1, keepdim=True))
    first = GPFitter(space)
    first.fit("objective", X, Y)
    state = json.loads(json.dumps(first.export_state()))  # through JSON, as in the record
    second = GPFitter(space)
    assert second.import_state(state) == 1
    second.fit("objective", X, Y)
    assert second.last_outcome["objective"] == "conditioned"  # same data: no fit at all
    bad = json.loads(json.dumps(state))
    bad["names"]["objective"]["state"]["likelihood.noise_covar.raw_noise"] = [float("nan")]
    assert GPFitter(space).import_state(bad) == 0  # a non-finite value: fitted cold instead
    assert GPFitter(space, kernel="rbf").import_state(state) == 0  # another kernel
