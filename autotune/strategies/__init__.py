"""Strategies: one registry of baselines, sequential acquisitions, batch methods, cost and constraints.

Names: ``sobol``, ``random``, ``lhs``, ``grid``, ``diversity``, ``greedy``, ``pi``, ``ei``,
``ucb``, ``lcb``, ``max_variance``, ``ei_per_cost``, ``qei``, ``constant_liar``,
``kriging_believer``, ``local_penalization``, ``thompson``, ``kmeans``; for two or more
objectives ``qlognehvi``, ``qnparego`` and ``mo_thompson`` (model-free ones work with any number); with
early stopping, ``mobster`` learns from the trials' learning curves.
``lcb`` and ``kriging_believer`` are aliases (of ``ucb`` and ``ei``): a minimised objective is
negated inside, so UCB on it is LCB; and ``ei`` already conditions the GP on its posterior mean
at pending points, which is the kriging believer.
Outcome constraints and failed trials weight every model-based strategy by the probability
of feasibility, so "constrained BO" is any of them with constraints set; failed points also
enter the objective model at the worst observed value. The models come built in
``Context.models`` (:class:`autotune.models.Surrogates`).
"""

from autotune.strategies._base import (
    Candidate,
    Context,
    Curves,
    OutcomeConstraint,
    Strategy,
    get_strategy,
    option_names,
    register,
    strategy_class,
    strategy_names,
)
from autotune.strategies._cost import CostState, KnownCost, check_cost_inputs, cost_effective_design
from autotune.strategies._domain import Domain, build_domain

# The built-ins register themselves on import (the base module never imports its subclasses).
from autotune.strategies import _baselines, _batch, _fidelity, _multi, _sequential  # noqa: F401  # isort: skip

__all__ = [
    "cost_effective_design",
    "Candidate",
    "Context",
    "Curves",
    "CostState",
    "Domain",
    "KnownCost",
    "OutcomeConstraint",
    "Strategy",
    "build_domain",
    "check_cost_inputs",
    "get_strategy",
    "option_names",
    "register",
    "strategy_class",
    "strategy_names",
]
