"""Optuna's own sampler contract, run on :class:`AutotuneSampler`.

The tests are Optuna's: the installed ``optuna`` ships its third-party sampler suite as
``optuna.testing.pytest_samplers`` (the same test bodies as Optuna's repository
``tests/samplers_tests/test_samplers.py``, MIT licence), and this module subclasses its
test cases, so every Optuna upgrade brings its updated contract with it. Nothing is
copied or re-implemented here; only the ``sampler`` fixture is ours.

Which apply:

* ``BasicSamplerTestCase`` (independent sampling of every distribution kind, NaN
  objectives, ``PartialFixedSampler``, single-valued distributions, define-by-run and
  dynamic-range objectives) and ``RelativeSamplerTestCase`` (relative sampling of numerical,
  categorical and mixed spaces, types of the returned values, ``n_jobs=2``): all of them.
* ``MultiObjectiveSamplerTestCase``: applies (the sampler takes multi-objective studies),
  run with ``sobol`` and the default strategy (``qlognehvi`` for several objectives).
* ``SingleOnlySamplerTestCase``: does not apply (it checks that multi-objective studies are
  refused, which they no longer are).

Strategies: ``sobol`` (model-free) runs the whole suite; ``ei`` runs it with ``n_initial=2``,
so the GP and the acquisition optimiser take over from the third trial and the tests that
run whole studies exercise the model path, not only the initial design;
``kriging_believer`` (a pending-aware batch strategy) runs the tests with concurrent trials
(``n_jobs=2``), a define-by-run branch and ``PartialFixedSampler``. The large parametrised
cross-products of
single-call checks (``test_float``/``test_int``/``test_categorical`` and the 6 x 6
``test_combination_of_different_distributions_objective`` / ``test_sample_relative_numerical``
grids) go through independent sampling or the initial design for every strategy, so they
run for ``sobol`` only, to stay within the CI budget.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import optuna
import pytest
from optuna.testing.pytest_samplers import (
    BasicSamplerTestCase,
    MultiObjectiveSamplerTestCase,
    RelativeSamplerTestCase,
)

from autotune.integrations.optuna import AutotuneSampler

optuna.logging.set_verbosity(optuna.logging.ERROR)

_FAST = {"num_restarts": 2, "raw_samples": 64}  # the contract is about the interface, not the optimiser's effort
_STRATEGIES = {
    "sobol": {},
    "ei": {"n_initial": 2, "strategy_options": _FAST},
    "kriging_believer": {"n_initial": 2, "strategy_options": _FAST},
    "default": {"n_initial": 2, "strategy_options": _FAST},  # qlognehvi on a multi-objective study
}
# The batch strategy runs the tests where trials run concurrently (pending points) or the
# space changes under it; the others add nothing over ei.
_BATCH_TESTS = {"test_trial_relative_params", "test_conditional_parameter_objective", "test_partial_fixed_sampling"}

# Cross-products whose every case stays in independent sampling or the initial design:
# running them once (sobol) covers the contract; the model-based strategies add nothing.
_SOBOL_ONLY = {
    "test_float",
    "test_int",
    "test_categorical",
    "test_combination_of_different_distributions_objective",
    "test_sample_relative_numerical",
    "test_sample_relative_mixed",
    "test_single_parameter_objective",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run every contract test for each strategy, the single-call cross-products for sobol only."""
    if "sampler" in metafunc.fixturenames:
        test = metafunc.function.__name__
        names = ["sobol"] if test in _SOBOL_ONLY else ["sobol", "ei"] + (["kriging_believer"] if test in _BATCH_TESTS else [])
        if test.startswith("test_multi_objective"):
            names = ["sobol", "default"]
        metafunc.parametrize("sampler", names, indirect=True)


class _Autotune:
    """Supplies Optuna's test cases with the ``sampler`` fixture (a factory, as they expect)."""

    @pytest.fixture
    def sampler(self, request: pytest.FixtureRequest) -> Callable[[], AutotuneSampler]:
        name = request.param
        options = _STRATEGIES[name]

        def make() -> AutotuneSampler:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return AutotuneSampler(None if name == "default" else name, seed=0, warn_independent_sampling=False,
                                       **options)

        return make


class TestBasic(_Autotune, BasicSamplerTestCase):
    pass


class TestRelative(_Autotune, RelativeSamplerTestCase):
    pass


class TestMultiObjective(_Autotune, MultiObjectiveSamplerTestCase):
    pass
