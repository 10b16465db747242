"""The cost-effective initial design (CArBO's first phase) of strategies that weigh a known cost."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from autotune.optimizer import Optimizer
from autotune.space import Float, SearchSpace
from autotune.strategies import Context, cost_effective_design

SPACE = SearchSpace([Float(f"x{i}", low=0.0, high=1.0) for i in range(4)])


@pytest.fixture(autouse=True)
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def exp_cost(X: torch.Tensor) -> torch.Tensor:
    """exp(3 x0): 1 to 20, as the benchmark's cost-varying Hartmann."""
    return (3.0 * X[..., 0]).exp()


def ctx_with(X: torch.Tensor, known: Any = exp_cost, seed: int = 0) -> Context:
    return Context(space=SPACE, X=X, y=torch.zeros(len(X), dtype=torch.float64),
                   failed=torch.zeros(len(X), dtype=torch.bool), fitter=None, known_cost=known,  # type: ignore[arg-type]
                   study_seed=seed, seed=seed)


def min_gap(points: list[torch.Tensor]) -> float:
    P = torch.stack(points)
    d = torch.cdist(P, P) + torch.eye(len(P), dtype=P.dtype) * 1e9
    return float(d.min())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_design_is_cheaper_than_a_cost_blind_one_and_still_spread(seed: int) -> None:
    empty = torch.empty(0, SPACE.dim, dtype=torch.float64)
    cheap = cost_effective_design(ctx_with(empty, seed=seed), 8, exponent=1.0)
    blind = cost_effective_design(ctx_with(empty, seed=seed), 8, exponent=0.0)  # greedy maximin
    cost = [float(exp_cost(torch.stack(d)).sum()) for d in (cheap, blind)]
    assert cost[0] < 0.5 * cost[1]
    assert min_gap(cheap) > 0.25  # distinct points across the box, not a cluster at the cheap face
    assert min_gap(blind) >= min_gap(cheap) - 1e-12  # the price of cheapness is spread, and only that
    assert {round(float(x[1]), 1) for x in cheap} != {round(float(cheap[0][1]), 1)}  # other columns vary


def test_the_design_keeps_away_from_points_tried_and_running() -> None:
    tried = torch.tensor([[0.0, 0.5, 0.5, 0.5]], dtype=torch.float64)  # the cheapest face's centre
    ctx = ctx_with(tried)
    ctx.X_pending = torch.tensor([[0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    (x,) = cost_effective_design(ctx, 1)
    assert float(torch.cdist(x[None], torch.cat([ctx.X, ctx.X_pending])).min()) > 0.3


def test_without_a_known_cost_it_refuses() -> None:
    with pytest.raises(ValueError, match="known_cost"):
        cost_effective_design(ctx_with(torch.empty(0, SPACE.dim, dtype=torch.float64), known=None), 2)


def _first(opt: Optimizer, n: int) -> list[Any]:
    out = []
    for _ in range(n):
        (s,) = opt.ask(1)
        out.append(s)
        opt.tell(s, float(sum(s.params.values())))
    return out


def _spent(suggestions: list[Any]) -> float:
    return sum(math.exp(3.0 * s.params["x0"]) for s in suggestions)


def test_a_strategy_that_weighs_the_known_cost_starts_from_the_cheap_design() -> None:
    known = Optimizer(SPACE, "ei_per_cost", seed=0, n_initial=6, known_cost=exp_cost)
    weighted = Optimizer(SPACE, "ei", seed=0, n_initial=6, known_cost=exp_cost, strategy_options={"cost": "known"})
    blind = Optimizer(SPACE, "ei", seed=0, n_initial=6, known_cost=exp_cost)  # given the cost, not weighing it
    first = {name: _first(opt, 6) for name, opt in (("known", known), ("weighted", weighted), ("blind", blind))}
    assert {s.info["strategy"] for s in first["known"]} == {"cost_effective_sobol"}
    assert {s.info["strategy"] for s in first["weighted"]} == {"cost_effective_sobol"}
    assert {s.info["strategy"] for s in first["blind"]} == {"sobol"}
    assert _spent(first["known"]) < 0.6 * _spent(first["blind"])
    (after,) = known.ask(1)
    assert after.info["strategy"] == "ei_per_cost"  # the model takes over after n_initial


def test_another_initial_design_asked_for_is_kept() -> None:
    opt = Optimizer(SPACE, "ei_per_cost", seed=0, n_initial=4, known_cost=exp_cost, initial_design="lhs")
    assert {s.info["strategy"] for s in _first(opt, 4)} == {"lhs"}


def test_fixed_values_hold_in_the_cheap_design() -> None:
    opt = Optimizer(SPACE, "ei_per_cost", seed=0, n_initial=4, known_cost=exp_cost)
    for _ in range(3):
        (s,) = opt.ask(1, fixed={"x2": 0.25})
        assert s.params["x2"] == 0.25 and s.info["strategy"] == "cost_effective_sobol"
        opt.tell(s, 1.0)


def test_a_design_larger_than_the_pool_has_no_repeated_point() -> None:
    points = cost_effective_design(ctx_with(torch.empty(0, SPACE.dim, dtype=torch.float64)), 40, pool=16)
    assert len({tuple(p.tolist()) for p in points}) == 40


def test_a_cost_exponent_of_zero_keeps_the_plain_design() -> None:
    opt = Optimizer(SPACE, "ei", seed=0, n_initial=3, known_cost=exp_cost,
                    strategy_options={"cost": "known", "cost_exponent": 0})
    assert {s.info["strategy"] for s in _first(opt, 3)} == {"sobol"}
