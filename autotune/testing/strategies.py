"""The contract every strategy must pass (in the style of Optuna's sampler test suite).

Use it for a strategy of your own by subclassing :class:`StrategyContract` in a test
module and overriding the ``strategy`` fixture::

    from autotune.testing.strategies import StrategyContract

    class TestMyStrategy(StrategyContract):
        @pytest.fixture
        def strategy(self):
            return "my_strategy"   # a registered name

Every test builds small optimisers with cheap acquisition settings, so the suite runs in
seconds per strategy.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import pytest

from autotune.optimizer import Optimizer
from autotune.space import Bool, Categorical, Condition, Fixed, Float, Int, Ordinal, SearchSpace
from autotune.trial import TrialState

CHEAP = {"num_restarts": 2, "raw_samples": 64}


def mixed_space() -> SearchSpace:
    """A small space with every parameter kind and two conditions."""
    return SearchSpace(
        [
            Float("lr", low=1e-4, high=1e-1, log=True),
            Int("n_layers", low=1, high=3),
            Int("width_3", low=8, high=64, log=True, conditions=(Condition("n_layers", ">=", 3),)),
            Categorical("optimizer", choices=("sgd", "adam", "rmsprop")),
            Float("momentum", low=0.0, high=0.99, conditions=(Condition("optimizer", "==", "sgd"),)),
            Ordinal("batch_size", values=(16, 32, 64)),
            Bool("batch_norm"),
            Fixed("epochs", value=3),
        ]
    )


def toy_objective(p: dict[str, Any]) -> float:
    """A deterministic function of every active parameter."""
    v = (math.log10(p["lr"]) + 2.5) ** 2 + 0.1 * p["n_layers"] + (0.2 if p["batch_norm"] else 0.0)
    v += {"sgd": 0.3, "adam": 0.0, "rmsprop": 0.5}[p["optimizer"]] + 0.01 * p["batch_size"] / 16
    v += 0.5 * p.get("momentum", 0.0) + 0.001 * p.get("width_3", 0)
    return v


def make_optimizer(strategy: str, space: SearchSpace | None = None, **kw: Any) -> Optimizer:
    """An optimiser with cheap settings for the strategy (only options it takes)."""
    import inspect

    from autotune.strategies import strategy_class

    cls = strategy_class(strategy)
    params = inspect.signature(cls.__init__).parameters
    opts = {k: v for k, v in CHEAP.items() if k in params}
    if "n_pool" in params:
        opts.update(n_pool=512, n_samples=128)
    if "n_candidates" in params:
        opts["n_candidates"] = 256
    kw.setdefault("n_initial", 3)
    opt = Optimizer(space or mixed_space(), strategy, strategy_options=opts, **kw)
    opt.fitter.max_fit_iter = 40  # a rougher fit is enough for contract checks
    return opt


def seeded(strategy: str, n_obs: int = 5, seed: int = 0, fn: Any = toy_objective, **kw: Any) -> Optimizer:
    """An optimiser told ``n_obs`` random points (no model-based asks, so the suite stays fast)."""
    opt = make_optimizer(strategy, seed=seed, **kw)
    for p in opt.space.sample(n_obs, "random", seed=100 + seed):
        opt.add(p, fn(p))
    return opt


def run(opt: Optimizer, n: int, fn: Any = toy_objective) -> None:
    """Ask and tell ``n`` points one at a time."""
    for _ in range(n):
        (s,) = opt.ask()
        opt.tell(s, fn(s.params))


class StrategyContract:
    """Behaviour every strategy must show. Override the ``strategy`` fixture."""

    @pytest.fixture
    def strategy(self) -> str:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _quiet(self) -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield

    def test_suggestions_lie_in_the_space_with_true_types(self, strategy: str) -> None:
        opt = seeded(strategy, 6, seed=1)
        space = opt.space
        for s in opt.ask(3):
            assert space.validate(s.params) == s.params  # active parameters only, legal values
            assert isinstance(s.params["n_layers"], int) and not isinstance(s.params["n_layers"], bool)
            assert isinstance(s.params["batch_norm"], bool)
            assert isinstance(s.params["lr"], float)
            assert s.params["batch_size"] in (16, 32, 64)
            assert ("width_3" in s.params) == (s.params["n_layers"] >= 3)
            assert ("momentum" in s.params) == (s.params["optimizer"] == "sgd")
            assert s.params["epochs"] == 3

    def test_ask_n_returns_n_distinct_points(self, strategy: str) -> None:
        opt = seeded(strategy, 5, seed=2)
        batch = opt.ask(4)
        assert len(batch) == 4
        keys = {opt.space.key(s.params) for s in batch}
        assert len(keys) == 4
        assert len({s.trial_id for s in batch}) == 4

    def test_pending_points_are_respected(self, strategy: str) -> None:
        opt = seeded(strategy, 5, seed=3)
        first = opt.ask(2)
        second = opt.ask(2)
        told = {opt.space.key(o.params) for o in opt.observations}
        k1 = {opt.space.key(s.params) for s in first}
        k2 = {opt.space.key(s.params) for s in second}
        assert not (k1 & k2) and not (k2 & told)
        assert [s.trial_id for s in opt.pending] == [s.trial_id for s in first + second]

    @pytest.mark.parametrize("n_obs", [0, 1, 2])
    def test_works_with_few_observations(self, strategy: str, n_obs: int) -> None:
        opt = make_optimizer(strategy, seed=4, n_initial=0)
        for p in mixed_space().sample(n_obs, "random", seed=9):
            opt.add(p, toy_objective(p))
        batch = opt.ask(2)
        assert len(batch) == 2

    def test_duplicate_points_in_history(self, strategy: str) -> None:
        opt = seeded(strategy, 3, seed=5)
        p = mixed_space().sample(1, "random", seed=1)[0]
        for v in (1.0, 1.2, 0.9):
            opt.add(p, v)
        assert len(opt.ask(2)) == 2

    def test_constant_objective(self, strategy: str) -> None:
        opt = seeded(strategy, 6, seed=6, fn=lambda p: 1.0)
        assert len(opt.ask(2)) == 2

    def test_failed_and_nan_results(self, strategy: str) -> None:
        opt = make_optimizer(strategy, seed=7)
        for i, p in enumerate(opt.space.sample(8, "random", seed=7)):
            s = opt.add_pending(p)
            if i % 3 == 0:
                opt.tell(s, float("nan"))
            elif i % 3 == 1:
                opt.tell(s, None, state=TrialState.FAILED)
            else:
                opt.tell(s, toy_objective(s.params))
        states = [o.state for o in opt.observations]
        assert states.count(TrialState.NONFINITE) == 3 and states.count(TrialState.FAILED) == 3
        assert len(opt.ask(2)) == 2

    def test_deterministic_under_a_seed(self, strategy: str) -> None:
        def history() -> list[dict[str, Any]]:
            opt = seeded(strategy, 5, seed=11)
            return [s.params for s in opt.ask(2)]

        assert history() == history()

    @pytest.mark.parametrize("direction", ["minimize", "maximize"])
    def test_directions(self, strategy: str, direction: str) -> None:
        opt = seeded(strategy, 5, seed=8, direction=direction)
        run(opt, 1)
        best = opt.best()
        values = [o.value for o in opt.observations if o.value is not None]
        assert best is not None
        assert best.value == (min(values) if direction == "minimize" else max(values))
        assert len(opt.ask(1)) == 1

    def test_candidates_are_never_left(self, strategy: str) -> None:
        opt = seeded(strategy, 5, seed=12)
        cands = opt.space.sample(16, "random", seed=77)
        first = opt.ask(3, candidates=cands)
        second = opt.ask(2, candidates=cands)  # the first three are pending: left out
        got = [s.params for s in first + second]
        assert all(p in cands for p in got)  # the candidates' own dicts, exactly
        assert len({opt.space.key(p) for p in got}) == 5
        assert not any(s.info.get("fallback") == "outside_domain" for s in first + second)

    def test_candidates_in_the_initial_design(self, strategy: str) -> None:
        opt = make_optimizer(strategy, seed=13)
        cands = opt.space.sample(8, "random", seed=78)
        batch = opt.ask(3, candidates=cands)
        assert all(s.params in cands for s in batch) and len({opt.space.key(s.params) for s in batch}) == 3

    def test_fixed_values_are_held(self, strategy: str) -> None:
        opt = seeded(strategy, 5, seed=14)
        fixed = {"optimizer": "sgd", "momentum": 0.5, "lr": 0.01}
        batch = opt.ask(3, fixed=fixed)
        for s in batch:
            assert {k: s.params[k] for k in fixed} == fixed  # exactly as given
            assert opt.space.validate(s.params) == s.params
            assert s.info.get("fallback") != "outside_domain"
        assert len({opt.space.key(s.params) for s in batch}) == 3
