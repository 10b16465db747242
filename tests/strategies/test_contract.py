"""Every registered strategy passes the shipped contract suite."""

import pytest

from autotune.strategies import strategy_class, strategy_names
from autotune.testing.strategies import StrategyContract

# The suite's studies have one objective; the multi-objective strategies have theirs in tests/multi.
SINGLE = [n for n in strategy_names(aliases=False) if not getattr(strategy_class(n), "multi_objective", False)]


class TestEveryStrategy(StrategyContract):
    @pytest.fixture(params=SINGLE)  # aliases: tests/strategies/test_registry.py
    def strategy(self, request: pytest.FixtureRequest) -> str:
        return request.param
