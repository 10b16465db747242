"""Every registered strategy passes the shipped contract suite."""

import pytest

from autotune.strategies import strategy_names
from autotune.testing.strategies import StrategyContract


class TestEveryStrategy(StrategyContract):
    @pytest.fixture(params=strategy_names(aliases=False))  # aliases: tests/strategies/test_registry.py
    def strategy(self, request: pytest.FixtureRequest) -> str:
        return request.param
