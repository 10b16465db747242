"""Strategies: one registry of baselines, sequential acquisitions, batch methods, cost and constraints.

Names: ``sobol``, ``random``, ``lhs``, ``grid``, ``diversity``, ``greedy``, ``pi``, ``ei``,
``ucb``, ``lcb``, ``max_variance``, ``ei_per_cost``, ``qei``, ``constant_liar``,
``kriging_believer``, ``local_penalization``, ``thompson``, ``kmeans``.
Outcome constraints and failed trials weight every model-based strategy by the probability
of feasibility, so "constrained BO" is any of them with constraints set; failed points also
enter the objective model at the worst observed value. The models come built in
``Context.models`` (:class:`autotune.models.Surrogates`).
"""

from autotune.strategies._base import (
    Candidate,
    Context,
    OutcomeConstraint,
    Strategy,
    get_strategy,
    register,
    strategy_names,
)

__all__ = [
    "Candidate",
    "Context",
    "OutcomeConstraint",
    "Strategy",
    "get_strategy",
    "register",
    "strategy_names",
]
