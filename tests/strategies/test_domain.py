"""Candidate sets and fixed values (``Optimizer.ask(n, candidates=..., fixed=...)``) on every path.

The contract suite (``autotune.testing.strategies``) checks every registered strategy on a mixed
conditional space; here: continuous, mixed and all-discrete spaces for the main strategies, the
acquisition's choice over a candidate set, and the errors.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from autotune.exceptions import ConfigError
from autotune.optimizer import Optimizer
from autotune.space import Categorical, Float, Int, SearchSpace
from autotune.strategies import Candidate, Context, Domain, Strategy
from autotune.testing.strategies import make_optimizer

SPACES = {
    "continuous": SearchSpace([Float("x", low=0.0, high=1.0), Float("y", low=-2.0, high=2.0),
                               Float("temperature", low=250.0, high=350.0)]),
    "mixed": SearchSpace([Float("x", low=0.0, high=1.0), Int("k", low=0, high=6),
                          Categorical("temperature", choices=(250, 300, 350))]),
    "discrete": SearchSpace([Int("x", low=0, high=7), Categorical("y", choices=("a", "b", "c")),
                             Int("temperature", low=250, high=350, step=50)]),
}
STRATEGIES = ["ei", "ucb", "max_variance", "thompson", "qei", "kmeans", "local_penalization", "random", "sobol",
              "diversity"]


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def objective(p: dict[str, Any]) -> float:
    x = float(p["x"]) / (7.0 if isinstance(p["x"], int) else 1.0)
    t = float(p["temperature"])
    return (x - 0.3) ** 2 + (t - 300.0) ** 2 / 1e4 + 0.1 * float(p.get("k", 0)) + (0.2 if p.get("y") == "b" else 0.0)


def taught(strategy: str, space: SearchSpace, n_obs: int = 5, seed: int = 0) -> Optimizer:
    opt = make_optimizer(strategy, space, seed=seed)
    for p in space.sample(n_obs, "random", seed=50 + seed):
        opt.add(p, objective(p))
    return opt


@pytest.mark.parametrize("kind", list(SPACES))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_point_is_a_candidate_and_none_repeats(strategy: str, kind: str) -> None:
    space = SPACES[kind]
    opt = taught(strategy, space)
    cands = space.sample(12, "random", seed=9)
    cands = [c for c in cands if space.key(c) not in {space.key(o.params) for o in opt.observations}]
    asked = []
    for _ in range(2):
        batch = opt.ask(2, candidates=cands)
        asked += batch
        for s in batch:
            opt.tell(s, objective(s.params))
    keys = [space.key(s.params) for s in asked]
    assert all(s.params in cands for s in asked) and len(set(keys)) == 4
    assert not any("fallback" in s.info for s in asked), [s.info for s in asked]


@pytest.mark.parametrize("kind", list(SPACES))
@pytest.mark.parametrize("strategy", STRATEGIES)
def test_fixed_values_are_held_and_the_rest_is_chosen(strategy: str, kind: str) -> None:
    space = SPACES[kind]
    opt = taught(strategy, space)
    held = 300
    batch = opt.ask(3, fixed={"temperature": held}) + opt.ask(2, fixed={"temperature": held})
    assert [s.params["temperature"] for s in batch] == [held] * 5
    assert len({space.key(s.params) for s in batch}) == 5  # the free parameters vary
    assert not any(s.info.get("fallback") == "outside_domain" for s in batch)


def test_the_initial_design_spreads_over_the_candidates() -> None:
    space = SPACES["continuous"]
    opt = make_optimizer("ei", space, seed=0, n_initial=4)
    # Two tight clusters: a space-filling choice of two takes one point of each.
    cands = [{"x": 0.01 * i, "y": -2.0, "temperature": 250.0} for i in range(5)]
    cands += [{"x": 1.0 - 0.01 * i, "y": 2.0, "temperature": 350.0} for i in range(5)]
    batch = opt.ask(2, candidates=cands)
    assert {s.params["y"] for s in batch} == {-2.0, 2.0}
    assert all(s.info["strategy"] == "sobol" for s in batch)


def test_a_model_based_choice_is_the_acquisition_maximiser_over_the_candidates() -> None:
    from botorch.acquisition.analytic import UpperConfidenceBound

    space = SPACES["continuous"]
    opt = taught("ucb", space, n_obs=8)
    cands = space.sample(30, "random", seed=3)
    ctx = opt.context()
    model = ctx.objective_model()
    X = torch.tensor([space.encode(c) for c in cands], dtype=torch.float64)
    with torch.no_grad():
        ucb = UpperConfidenceBound(model, beta=opt.strategy.beta_at(len(ctx.X) + 1, ctx.d))(X.unsqueeze(-2))  # type: ignore[attr-defined]
    (s,) = opt.ask(1, candidates=cands)
    assert s.params == cands[int(ucb.argmax())]


def test_observed_and_pending_candidates_are_left_out_and_too_few_is_an_error() -> None:
    space = SPACES["discrete"]
    opt = taught("ei", space, n_obs=0)
    cands = space.sample(5, "random", seed=4)
    opt.add(cands[0], 1.0)
    first = opt.ask(2, candidates=cands)
    second = opt.ask(2, candidates=cands)
    keys = [space.key(s.params) for s in first + second]
    assert len(set(keys)) == 4 and space.key(cands[0]) not in keys
    with pytest.raises(ConfigError, match=r"candidates: must leave at least n=1 points .* 0 of 5 do.*tell"):
        opt.ask(1, candidates=cands)
    opt.forget(first[0].trial_id)
    (again,) = opt.ask(1, candidates=cands)
    assert again.params == first[0].params


def test_candidates_that_differ_from_the_fixed_values_are_left_out() -> None:
    space = SPACES["discrete"]
    opt = taught("ucb", space)
    cands = [{"x": x, "y": "a", "temperature": t} for x in range(3) for t in (250, 300)]
    batch = opt.ask(3, candidates=cands, fixed={"temperature": 300})
    assert sorted(s.params["x"] for s in batch) == [0, 1, 2] and {s.params["temperature"] for s in batch} == {300}
    with pytest.raises(ConfigError, match="3 differ from the fixed values"):
        opt.ask(1, candidates=cands, fixed={"temperature": 300})


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fixed": {"temprature": 300}}, r"fixed.temprature: is not a parameter of the space.*did you mean 'temperature'"),
        ({"fixed": {"temperature": 400}}, r"fixed.temperature: must be in \[250.0, 350.0\], got 400"),
        ({"fixed": {"x": "a"}}, r"fixed.x: must be a number, got 'a'"),
        ({"fixed": [("x", 1)]}, r"fixed: must be a dict of parameter values"),
        ({"fixed": {"x": 0.5, "y": 0.0, "temperature": 300}}, r"fixes every tunable parameter"),
        ({"candidates": {"x": 0.5}}, r"candidates: must be a list of parameter dicts"),
        ({"candidates": []}, r"candidates: must hold at least one point"),
        ({"candidates": [0.5]}, r"candidates\[0\]: must be a dict"),
        ({"candidates": [{"x": 0.5, "y": 0.0, "temperature": 300, "z": 1}]},
         r"candidates\[0\].z: is not a parameter of the space"),
        ({"candidates": [{"x": 0.5, "y": 0.0, "temperature": 300}, {"x": 1.5, "y": 0.0, "temperature": 300}]},
         r"candidates\[1\].x: must be in \[0.0, 1.0\], got 1.5.*Fix"),
        ({"candidates": [{"x": 0.5, "y": 0.0}]}, r"candidates\[0\].temperature: is missing"),
    ],
)
def test_bad_candidates_and_fixed_values_name_the_entry_and_change_nothing(kwargs: dict[str, Any], message: str) -> None:
    opt = taught("ei", SPACES["continuous"])
    with pytest.raises(ConfigError, match=message) as e:
        opt.ask(1, **kwargs)
    assert str(e.value).startswith("Optimizer.ask")
    assert not opt.pending and opt.ask(1)  # nothing was registered


def test_a_strategy_that_ignores_the_domain_is_moved_into_it() -> None:
    class Corner(Strategy):
        name = "corner_test_only"
        model_based = False

        def ask(self, ctx: Context, n: int) -> list[Candidate]:
            return [Candidate(torch.zeros(ctx.d, dtype=torch.float64)) for _ in range(n)]

    space = SPACES["continuous"]
    opt = Optimizer(space, Corner(), seed=0)
    cands = space.sample(6, "random", seed=1)
    batch = opt.ask(2, candidates=cands)
    assert all(s.params in cands for s in batch) and batch[0].info["fallback"] == "outside_domain"
    (s,) = opt.ask(1, fixed={"temperature": 300.0})
    assert s.params["temperature"] == 300.0 and s.info["fallback"] == "outside_domain"


def test_domain_keeps_fixed_columns_in_the_bounds_and_pools() -> None:
    space = SPACES["mixed"]
    d = Domain(space, fixed={"temperature": 350, "x": 0.25})
    b = d.bounds()
    assert b[0, 0] == b[1, 0] == 0.25 and b[0, 2] == b[1, 2] == 2.0
    pool = d.pool(64, seed=0)
    assert bool((pool[:, 0] == 0.25).all()) and bool((pool[:, 2] == 2.0).all()) and len(set(pool[:, 1].tolist())) > 1


@pytest.mark.parametrize("strategy", ["qlognehvi", "qnparego", "mo_thompson"])
def test_multi_objective_strategies_keep_to_the_candidates_and_fixed_values(strategy: str) -> None:
    space = SPACES["continuous"]
    opt = Optimizer(space, strategy, seed=0, n_initial=0, objectives=[("a", "minimize"), ("b", "minimize")],
                    strategy_options={"num_restarts": 2, "raw_samples": 64} if strategy != "mo_thompson" else None)
    for p in space.sample(6, "random", seed=5):
        opt.add(p, {"a": objective(p), "b": (p["x"] - 0.8) ** 2 + p["y"] ** 2})
    cands = space.sample(10, "random", seed=6)
    batch = opt.ask(2, candidates=cands)
    assert all(s.params in cands for s in batch) and len({space.key(s.params) for s in batch}) == 2
    assert not any("fallback" in s.info for s in batch)
    held = opt.ask(2, fixed={"temperature": 300.0})
    assert [s.params["temperature"] for s in held] == [300.0, 300.0]
    assert not any(s.info.get("fallback") == "outside_domain" for s in held)
