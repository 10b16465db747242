"""Benchmark problems: a search space, an evaluation, and the optimum when it is known.

Synthetic functions come from :mod:`botorch.test_functions` (their ``optimal_value`` is the
known minimum). Hand-written here, because no library has them in this form:

- ``mixed``: Hartmann-6 with two coordinates on a 21-point integer grid and a categorical that
  picks a transform (identity, reflection ``x -> 1 - x``) and an offset; its optimum is computed
  once numerically (integer neighbourhood of the continuous optimum x L-BFGS-B) and cached.
- ``constrained``: BoTorch's ``ConstrainedHartmann`` (``c = sum(x**2) <= 1``), whose optimum is
  feasible, so the feasible optimum is Hartmann's.
- ``cost``: Hartmann-6 whose evaluation costs ``exp(3 * x0)`` (1 to 20 units; about 1.8 at the
  optimum), a known function of the point.
- ``svc``: a real tuning problem, an RBF/poly/sigmoid SVC on scikit-learn's bundled breast-cancer
  data scored by 3-fold cross-validated error. Its optimum is unknown: the report measures regret
  against the best value any method found in the whole run, and says so.

Every problem is minimised. Problems are built by name (:func:`make_problem`) so worker
processes rebuild them instead of pickling closures.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

    from autotune.space import SearchSpace


@dataclass(frozen=True)
class Problem:
    """A minimisation problem.

    Attributes:
        name: Registry name.
        space: The search space (autotune's; adapters translate it for their optimiser).
        evaluate: Parameters to outcomes: ``value`` and, where the problem has them, the
            constraint metric ``c`` and the ``cost``.
        optimal_value: The known minimum (feasible minimum for constrained problems), or ``None``
            when it is unknown and regret is taken against the best value seen in the run.
        constraint: ``(metric, bound)`` for an outcome constraint ``metric <= bound``.
        worst_value: The value used for regret before the first feasible observation.
        known_cost: The evaluation cost as a function of model-space points (`... x d` to `...`),
            for autotune's ``ei_per_cost``; ``None`` when cost does not vary.
        description: One line for the report.
    """

    name: str
    space: SearchSpace
    evaluate: Callable[[Mapping[str, Any]], dict[str, float]]
    optimal_value: float | None
    worst_value: float
    constraint: tuple[str, float] | None = None
    known_cost: Callable[[Tensor], Tensor] | None = None
    description: str = ""
    tags: tuple[str, ...] = field(default_factory=tuple)


def _float_space(bounds: list[tuple[float, float]]) -> SearchSpace:
    from autotune import Float, SearchSpace

    return SearchSpace([Float(f"x{i}", low=float(lo), high=float(hi)) for i, (lo, hi) in enumerate(bounds)])


def _botorch(fn: Any, name: str, worst: float, description: str) -> Problem:
    import torch

    space = _float_space([(float(lo), float(hi)) for lo, hi in fn._bounds])
    d = fn.dim

    def evaluate(p: Mapping[str, Any]) -> dict[str, float]:
        x = torch.tensor([[float(p[f"x{i}"]) for i in range(d)]], dtype=torch.float64)
        return {"value": float(fn.evaluate_true(x))}

    return Problem(name, space, evaluate, float(fn.optimal_value), worst, description=description, tags=("synthetic",))


_SYNTHETIC: dict[str, tuple[str, dict[str, int], float]] = {
    # name: (BoTorch class, kwargs, worst value for regret before any observation)
    "branin": ("Branin", {}, 310.0),
    "hartmann6": ("Hartmann", {"dim": 6}, 0.0),
    "ackley10": ("Ackley", {"dim": 10}, 23.0),
    "levy4": ("Levy", {"dim": 4}, 100.0),
    "rosenbrock4": ("Rosenbrock", {"dim": 4}, 1.5e6),
    "styblinski_tang4": ("StyblinskiTang", {"dim": 4}, 1000.0),
}

_MIX_OFFSETS = {"a": 0.0, "b": 0.4, "c": 0.8}
_MIX_GRID = 20  # integer i in 0..20 maps to x = i / 20


def _mixed_x(p: Mapping[str, Any]) -> list[float]:
    x = [p["i0"] / _MIX_GRID, p["i1"] / _MIX_GRID] + [float(p[f"x{k}"]) for k in range(2, 6)]
    if p["shift"] == "b":
        x = [1.0 - v for v in x]
    return x


@functools.lru_cache(maxsize=1)
def mixed_optimum() -> float:
    """The mixed problem's minimum: integer neighbourhood of Hartmann's optimum x L-BFGS-B."""
    import numpy as np
    import torch
    from botorch.test_functions import Hartmann
    from scipy.optimize import minimize

    h = Hartmann(dim=6)
    best = math.inf
    rng = np.random.default_rng(0)
    for i0 in range(2, 7):  # x0* = 0.2017
        for i1 in range(1, 6):  # x1* = 0.1500
            def f(z: np.ndarray, i0: int = i0, i1: int = i1) -> float:
                x = torch.tensor([[i0 / _MIX_GRID, i1 / _MIX_GRID, *z]], dtype=torch.float64)
                return float(h.evaluate_true(x))

            starts = [np.array([0.476874, 0.275332, 0.311652, 0.6573])] + list(rng.uniform(size=(2, 4)))
            for z0 in starts:
                r = minimize(f, z0, method="L-BFGS-B", bounds=[(0.0, 1.0)] * 4)
                best = min(best, float(r.fun))
    return best


def _mixed() -> Problem:
    import torch
    from botorch.test_functions import Hartmann

    from autotune import Categorical, Float, Int, SearchSpace

    h = Hartmann(dim=6)
    space = SearchSpace(
        [Int("i0", low=0, high=_MIX_GRID), Int("i1", low=0, high=_MIX_GRID)]
        + [Float(f"x{k}", low=0.0, high=1.0) for k in range(2, 6)]
        + [Categorical("shift", choices=tuple(_MIX_OFFSETS))]
    )

    def evaluate(p: Mapping[str, Any]) -> dict[str, float]:
        x = torch.tensor([_mixed_x(p)], dtype=torch.float64)
        return {"value": float(h.evaluate_true(x)) + _MIX_OFFSETS[p["shift"]]}

    return Problem(
        "mixed", space, evaluate, mixed_optimum(), 0.8, tags=("mixed",),
        description="Hartmann-6, x0 and x1 on a 21-point integer grid, a 3-way categorical (transform + offset)",
    )


def _constrained() -> Problem:
    import torch
    from botorch.test_functions.synthetic import ConstrainedHartmann

    fn = ConstrainedHartmann(dim=6)
    space = _float_space([(0.0, 1.0)] * 6)

    def evaluate(p: Mapping[str, Any]) -> dict[str, float]:
        x = torch.tensor([[float(p[f"x{i}"]) for i in range(6)]], dtype=torch.float64)
        return {"value": float(fn.evaluate_true(x)), "c": float((x**2).sum())}

    return Problem(
        "constrained_hartmann6", space, evaluate, float(fn.optimal_value), 0.0, constraint=("c", 1.0),
        tags=("constrained",), description="Hartmann-6 subject to sum(x**2) <= 1 (BoTorch ConstrainedHartmann)",
    )


COST_BUDGET = 150.0
"""The cost section's budget on ``cost_hartmann6``: every method runs until it has spent this
much (EI spends it in about 50 evaluations; the mean cost of a uniform point is 6.4)."""


def cost_of(x0: float) -> float:
    """Evaluation cost of the cost-varying problem at first coordinate ``x0`` in ``[0, 1]``."""
    return math.exp(3.0 * x0)


def _known_cost(X: Tensor) -> Tensor:
    return (3.0 * X[..., 0]).exp()


def _cost() -> Problem:
    import torch
    from botorch.test_functions import Hartmann

    h = Hartmann(dim=6)
    space = _float_space([(0.0, 1.0)] * 6)

    def evaluate(p: Mapping[str, Any]) -> dict[str, float]:
        x = torch.tensor([[float(p[f"x{i}"]) for i in range(6)]], dtype=torch.float64)
        return {"value": float(h.evaluate_true(x)), "cost": cost_of(float(p["x0"]))}

    return Problem(
        "cost_hartmann6", space, evaluate, float(h.optimal_value), 0.0, known_cost=_known_cost,
        tags=("cost",), description="Hartmann-6 whose evaluation costs exp(3 x0) (1 to 20; 1.8 at the optimum)",
    )


@functools.lru_cache(maxsize=1)
def _breast_cancer() -> tuple[Any, Any]:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    return data.data, data.target


def _svc() -> Problem:
    from autotune import Categorical, Float, Int, SearchSpace

    space = SearchSpace(
        [
            Float("C", low=1e-3, high=1e3, log=True),
            Float("gamma", low=1e-5, high=1e1, log=True),
            Categorical("kernel", choices=("rbf", "poly", "sigmoid")),
            Int("degree", low=2, high=5),
        ]
    )

    def evaluate(p: Mapping[str, Any]) -> dict[str, float]:
        import warnings

        from sklearn.model_selection import StratifiedKFold, cross_val_score
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        X, y = _breast_cancer()
        model = make_pipeline(
            StandardScaler(),
            SVC(C=float(p["C"]), gamma=float(p["gamma"]), kernel=p["kernel"], degree=int(p["degree"]), max_iter=20_000),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            acc = cross_val_score(model, X, y, cv=StratifiedKFold(3, shuffle=True, random_state=0))
        return {"value": 1.0 - float(acc.mean())}

    return Problem(
        "svc_breast_cancer", space, evaluate, None, 0.4, tags=("real",),
        description="SVC (C, gamma, kernel, degree) on breast-cancer, 3-fold CV error (optimum unknown)",
    )


def _make(name: str) -> Problem:
    if name in _SYNTHETIC:
        import botorch.test_functions as tf

        cls, kwargs, worst = _SYNTHETIC[name]
        fn = getattr(tf, cls)(**kwargs)
        return _botorch(fn, name, worst, f"BoTorch {cls}({', '.join(f'{k}={v}' for k, v in kwargs.items())})")
    builders = {"mixed": _mixed, "constrained_hartmann6": _constrained, "cost_hartmann6": _cost, "svc_breast_cancer": _svc}
    if name not in builders:
        raise KeyError(f"unknown problem {name!r}; choose from {problem_names()}")
    return builders[name]()


PROBLEM_NAMES = (*_SYNTHETIC, "mixed", "svc_breast_cancer", "constrained_hartmann6", "cost_hartmann6")


def problem_names() -> list[str]:
    """Every problem name."""
    return list(PROBLEM_NAMES)


@functools.cache
def make_problem(name: str) -> Problem:
    """Build a problem by name (cached per process).

    Raises:
        KeyError: if the name is unknown; the message lists the valid names.
    """
    return _make(name)
