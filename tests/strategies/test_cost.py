"""Cost as a modifier of any acquisition (``strategy.options.cost`` / ``cost_exponent``)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from autotune.exceptions import ConfigError
from autotune.optimizer import Optimizer
from autotune.space import Float, SearchSpace
from autotune.strategies import CostState, KnownCost, get_strategy, strategy_class, strategy_names
from autotune.testing.strategies import make_optimizer

SPACE = SearchSpace([Float("x", low=0.0, high=1.0)])
COST_AWARE = [n for n in strategy_names(aliases=False) if strategy_class(n).cost_aware]


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def squared_cost(p: dict[str, torch.Tensor], state: CostState) -> torch.Tensor:
    return 1.0 + 100.0 * p["x"] ** 2  # cheap near 0: 2 at x = 0.1, 82 at x = 0.9


def flat(strategy: str, known_cost: Any, **opts: Any) -> Optimizer:
    """A flat objective observed symmetrically about 0.5: x and 1 - x are equally good and uncertain."""
    opt = make_optimizer(strategy, SPACE, seed=0, n_initial=0, known_cost=known_cost)
    if known_cost is not None:
        opt.strategy = get_strategy(strategy, {**opt.strategy.options(), "cost": "known", **opts})
    for x in (0.3, 0.5, 0.7):
        opt.add({"x": x}, 1.0)
    return opt


def test_every_model_based_single_objective_strategy_is_cost_aware() -> None:
    assert set(COST_AWARE) == {"ei", "pi", "ucb", "max_variance", "greedy", "thompson", "qei", "constant_liar",
                               "local_penalization", "kmeans", "mobster"}


@pytest.mark.parametrize("strategy", COST_AWARE)
def test_a_flat_objective_goes_to_the_cheaper_of_two_equal_points(strategy: str) -> None:
    opt = flat(strategy, KnownCost(squared_cost, SPACE))
    (s,) = opt.ask(1, candidates=[{"x": 0.9}, {"x": 0.1}])
    assert s.params == {"x": 0.1}


@pytest.mark.parametrize("strategy", ["max_variance", "ucb", "ei"])
def test_without_candidates_the_cheap_side_is_explored(strategy: str) -> None:
    plain = flat(strategy, None)
    (p,) = plain.ask(1)
    assert p.params["x"] > 0.8 or p.params["x"] < 0.2  # an edge: the most uncertain (or symmetric EI/UCB)
    (s,) = flat(strategy, KnownCost(squared_cost, SPACE)).ask(1)
    assert s.params["x"] < 0.3


@pytest.mark.parametrize("seed", range(5))
def test_max_variance_prefers_a_near_point_when_two_are_equally_uncertain(seed: int) -> None:
    """The beamline rule: equal posterior std, the one nearer the stage (the last asked point) wins."""
    stage = {"x": 0.35 + 0.3 * torch.rand(1, generator=torch.Generator().manual_seed(seed)).item()}
    calls: list[CostState] = []

    def motor_s(p: dict[str, torch.Tensor], state: CostState) -> torch.Tensor:
        calls.append(state)
        assert state.last is not None
        return 1.0 + (p["x"] - state.last["x"]).abs() / 0.05

    opt = flat("max_variance", KnownCost(motor_s, SPACE))
    opt.add_pending(stage)  # the stage is heading there: the most recently asked point
    near, far = (0.1, 0.9) if stage["x"] < 0.5 else (0.9, 0.1)
    (s,) = opt.ask(1, candidates=[{"x": far}, {"x": near}])
    assert s.params == {"x": near}
    assert calls and calls[-1].last == stage and calls[-1].pending == (stage,) and len(calls[-1].observations) == 3


def test_cost_model_learns_the_cost_metric() -> None:
    opt = Optimizer(SPACE, "ucb", seed=0, n_initial=0, cost_metric="seconds",
                    strategy_options={"cost": "model", "num_restarts": 2, "raw_samples": 64})
    for x in (0.1, 0.3, 0.5, 0.7, 0.9):
        opt.add({"x": x}, 1.0, metrics={"seconds": 1.0 + 100.0 * x**2})
    (s,) = opt.ask(1, candidates=[{"x": 0.95}, {"x": 0.05}])
    assert s.params == {"x": 0.05}


def test_the_cost_is_recorded_with_the_strategy_options() -> None:
    strategy = get_strategy("qei", {"cost": "model", "cost_exponent": 0.5})
    assert strategy.options()["cost"] == "model" and strategy.options()["cost_exponent"] == 0.5
    assert get_strategy("qei", strategy.options()).options() == strategy.options()  # a round trip


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("max_variance", {"cost": "cheap"}, r"strategy.options.cost: must be known or model, got 'cheap'"),
        ("ucb", {"cost": "known", "cost_exponent": -1}, r"options.cost_exponent: must be a finite number >= 0, got -1"),
        ("ucb", {"cost": "known", "cost_exponent": True}, r"options.cost_exponent: must be a finite number >= 0"),
        ("ei", {"cost_exponent": 2}, r"options.cost_exponent: needs the cost option, got 2.*cost: known"),
        ("sobol", {"cost": "known"}, r"options.cost: is not an option of strategy 'sobol': a cost weights an "
                                     r"acquisition.*use one of: constant_liar, ei, greedy"),
        ("ei_per_cost", {"cost": "known"}, r"is not an option of strategy 'ei_per_cost'"),
        ("qlognehvi", {"cost": "model"}, r"is not an option of strategy 'qlognehvi'"),
    ],
)
def test_bad_cost_options_are_clear_errors(name: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        get_strategy(name, options)


def test_a_cost_without_its_source_fails_when_the_optimiser_is_built() -> None:
    with pytest.raises(ConfigError, match=r"strategy.options.cost: is known but no known cost function.*known_cost"):
        Optimizer(SPACE, "max_variance", strategy_options={"cost": "known"})
    with pytest.raises(ConfigError, match=r"strategy.options.cost: is model but no cost_metric.*set cost_metric"):
        Optimizer(SPACE, "ucb", strategy_options={"cost": "model"})


def _study(tmp_path: Path, mlflow_store_factory: Any, **extra: Any) -> Path:
    (tmp_path / "h18_motor.py").write_text(
        "import torch\n"
        "CALLS = []\n"
        "def motor_s(p, state):\n"
        "    CALLS.append(state.last)\n"
        "    here = state.last or {'x': 0.0, 'y': 0.0}\n"
        "    return 1.0 + ((p['x'] - here['x']) ** 2 + (p['y'] - here['y']) ** 2).clamp_min(1e-12).sqrt() / 0.05\n"
    )
    data = {
        "name": "costly", "space": {"parameters": {"x": {"type": "float", "low": 0.0, "high": 1.0},
                                                   "y": {"type": "float", "low": 0.0, "high": 1.0}}},
        "objective": {"metric": "signal", "direction": "maximize"}, "n_initial": 2, "budget": {"max_trials": 10},
        "strategy": {"name": "max_variance", "options": {"cost": "known", "num_restarts": 2, "raw_samples": 64}},
        "trial": {"entry_point": "h18_motor:motor_s"}, "output_dir": "out", **extra,
    }
    mlflow_store_factory(tmp_path / "out")
    path = tmp_path / "study.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_study_file_names_its_known_cost_and_the_function_sees_the_last_point(
    tmp_path: Path, mlflow_store_factory: Any
) -> None:
    import sys

    from autotune.study import RemoteStudy

    study = RemoteStudy.from_file(_study(tmp_path, mlflow_store_factory, known_cost="h18_motor:motor_s"))
    asked = []
    def calls() -> list[Any]:  # the function's module is imported at the first ask
        module = sys.modules.get("h18_motor")
        return module.CALLS if module is not None else []

    for k in range(3):  # two design points (chosen per unit cost too), then cost-weighted max variance
        before = len(calls())
        tid, params = study.ask()
        assert len(calls()) > before  # every ask weighs the cost
        # the stage stands at the last point asked (nowhere yet at the first ask)
        assert all(c == (asked[-1] if asked else None) for c in calls()[before:]), k
        asked.append(params)
        study.tell(tid, 1.0)


@pytest.mark.parametrize(
    ("known_cost", "message"),
    [
        ("h18_motor", r"known_cost: must be 'module:function', got 'h18_motor'"),
        ("h18_nosuch:motor_s", r"known_cost: cannot be imported: no module named 'h18_nosuch'"),
        ("h18_motor:nosuch", r"known_cost: names a function that module 'h18_motor' does not define"),
    ],
)
def test_a_bad_known_cost_names_the_file_and_key(tmp_path: Path, mlflow_store_factory: Any, known_cost: str,
                                                 message: str) -> None:
    from autotune.study import RemoteStudy

    path = _study(tmp_path, mlflow_store_factory, known_cost=known_cost)
    with pytest.raises(ConfigError, match=message):
        RemoteStudy.from_file(path).ask()


def test_cost_known_without_a_known_cost_in_the_file_fails_before_any_trial(
    tmp_path: Path, mlflow_store_factory: Any
) -> None:
    from autotune.study import RemoteStudy

    study = RemoteStudy.from_file(_study(tmp_path, mlflow_store_factory))
    with pytest.raises(ConfigError, match="strategy.options.cost: is known but no known cost function"):
        study.ask()
    assert study.pending() == {}
