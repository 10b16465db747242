"""Cost as a modifier of any acquisition: the ``cost`` and ``cost_exponent`` strategy options.

Every single-objective model-based strategy (``ei``, ``pi``, ``ucb``, ``max_variance``,
``greedy``, ``thompson``, ``qei``, ``constant_liar``, ``kriging_believer``,
``local_penalization``, ``kmeans``) takes::

    strategy: {name: max_variance, options: {cost: known, cost_exponent: 1}}

``cost: known`` weights by the study's known cost function (``known_cost: module:function`` in
the study file, or ``Optimizer(known_cost=...)``); ``cost: model`` by a GP of the log of the
``cost_metric`` the trials report (e.g. instrument seconds). The options are parsed in one
place (:func:`autotune.strategies.get_strategy`) and applied in one place
(:func:`weight_by_cost`, called by every acquisition the strategies build):

* a log-form acquisition ``log a(x)`` (LogEI, LogPI, qLogNEI; ``max_variance`` becomes
  ``log sigma(x)``) becomes ``log a(x) - alpha log c(x)``: the acquisition per unit cost to
  the power ``alpha`` (Snoek et al. 2012; the exploration per unit cost of Noack et al. 2019);
* a signed acquisition (UCB, the posterior mean, a Thompson sample) becomes
  ``a(x) - alpha s log c(x)``, ``s`` the standard deviation of the observed objective: an
  ``e``-fold dearer point must promise ``alpha`` standard deviations more.

Either way equal acquisition values go to the cheaper point. ``ei_per_cost`` is EI with this
weighting and cost cooling (EI-cool).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import torch
from torch import Tensor

from autotune.exceptions import ConfigError, shown

if TYPE_CHECKING:
    from botorch.acquisition import AcquisitionFunction

    from autotune.space import SearchSpace
    from autotune.strategies._base import Context
    from autotune.trial import Observation

COST_OPTIONS: tuple[str, ...] = ("cost", "cost_exponent")
"""The option names every cost-aware strategy takes besides its constructor's."""

CostKind = Literal["known", "model"]


def check_cost_options(strategy: str, options: Mapping[str, Any], where: str = "strategy") -> tuple[CostKind, float] | None:
    """Check the cost options of a strategy.

    Args:
        strategy: The strategy's name (for errors).
        options: Its options (``cost``, ``cost_exponent`` read; others ignored).
        where: The key path of the strategy.

    Returns:
        ``(kind, exponent)``, or ``None`` without ``cost``.

    Raises:
        ConfigError: ``cost`` not ``known``/``model``, or ``cost_exponent`` not a finite
            number ``>= 0`` or given without ``cost``.
    """
    kind = options.get("cost")
    exponent = options.get("cost_exponent", 1.0)
    if kind is None:
        if "cost_exponent" in options:
            raise ConfigError(f"{where}.options.cost_exponent", "needs the cost option", shown(exponent),
                              "add cost: known (the study's known_cost function) or cost: model (a GP of cost_metric).")
        return None
    if not isinstance(kind, str) or kind not in ("known", "model"):
        raise ConfigError(f"{where}.options.cost", "must be known or model", shown(kind),
                          "use cost: known (the study's known_cost function) or cost: model (a GP of the cost_metric).")
    ok = isinstance(exponent, (int, float)) and not isinstance(exponent, bool) and math.isfinite(exponent) and exponent >= 0
    if not ok:
        raise ConfigError(f"{where}.options.cost_exponent", "must be a finite number >= 0", shown(exponent),
                          "use e.g. cost_exponent: 1 (acquisition per unit cost; 0 ignores the cost).")
    return kind, float(exponent)  # type: ignore[return-value]


def check_cost_inputs(strategy: Any, known_cost: object | None, cost_metric: str | None) -> None:
    """Check that a cost-weighted strategy has its cost: a known function, or a cost metric to model.

    Raises:
        ConfigError: Naming ``strategy.options.cost`` and what to add.
    """
    kind = getattr(strategy, "cost", None)
    if kind == "known" and known_cost is None:
        raise ConfigError("strategy.options.cost", "is known but no known cost function is given", "known",
                          "name one in the study file (known_cost: 'module:function') or pass Optimizer(known_cost=...); "
                          "or use cost: model with a cost_metric.")
    if kind == "model" and cost_metric is None:
        raise ConfigError("strategy.options.cost", "is model but no cost_metric is given", "model",
                          "set cost_metric: the metric each trial reports its cost in (e.g. instrument_s), "
                          "or use cost: known with a known_cost function.")


def log_cost_function(ctx: Context, kind: CostKind | Literal["auto"]) -> Callable[[Tensor], Tensor] | None:
    """``X -> log c(X)`` for `... x d` model-space points, or ``None`` when there is no cost yet.

    Args:
        ctx: The data (its known cost, its cost GP).
        kind: ``known``, ``model``, or ``auto`` (known if given, else the model).

    Raises:
        ConfigError: ``known`` without a known cost function.
    """
    from autotune.models import gp_posterior

    if kind == "known" or (kind == "auto" and ctx.known_cost is not None):
        known = ctx.known_cost
        if known is None:
            raise ConfigError("strategy.options.cost", "is known but the optimiser has no known cost function", "known",
                              "name one in the study file (known_cost: 'module:function') or pass "
                              "Optimizer(known_cost=...), or use cost: model with a cost_metric.")

        def log_known(X: Tensor) -> Tensor:
            return known(X).clamp_min(1e-12).log()

        return log_known
    cost_model = ctx.cost_model()
    if cost_model is None:  # no cost metric yet (or none configured): unweighted
        return None

    def log_model(X: Tensor) -> Tensor:
        return gp_posterior(cost_model, X).mean.squeeze(-1)

    return log_model


def weight_by_cost(
    acqf: AcquisitionFunction, ctx: Context, kind: CostKind | Literal["auto"], exponent: float, log_form: bool,
) -> AcquisitionFunction:
    """The acquisition weighted by the cost (see the module docstring); unchanged without a cost yet.

    Args:
        acqf: The acquisition (`batch x q x d` to `batch`).
        ctx: The data.
        kind: ``known``, ``model`` or ``auto``.
        exponent: ``alpha``.
        log_form: Whether ``acqf`` is in log form (else it is signed).
    """
    from autotune.strategies._acquisitions import LogCostWeighted

    log_cost = log_cost_function(ctx, kind)
    if log_cost is None or exponent == 0:
        return acqf
    if log_form:
        return LogCostWeighted(acqf, log_cost, exponent)
    return LogCostWeighted(acqf, log_cost, exponent * objective_scale(ctx))


def cost_effective_design(ctx: Context, n: int, exponent: float = 1.0, pool: int = 256) -> list[Tensor]:
    """``n`` initial-design points, space-filling per unit of known cost.

    The first phase of CArBO (Lee, Perrone, Archambeau & Seeger 2020, "Cost-aware Bayesian
    optimization", arXiv:2003.10870): a cost-blind design spends a large share of a cost budget
    before the model starts (seven Sobol points on a problem whose costs run from 1 to 20 cost
    about 45 of a budget of 150). Here the points are chosen greedily from ``pool`` scrambled
    Sobol points of the space: each maximises ``d(x) / c(x) ** exponent``, ``d`` the distance (in
    the unit cube, :func:`~autotune.strategies._optimize.unit_distance`) to the nearest point tried, running or already chosen (the box's diagonal
    before there is any), ``c`` the known cost. With ``exponent = 0`` it is a plain greedy maximin
    design.

    Args:
        ctx: The data; its ``known_cost`` must be set. Fixed columns of ``ctx.domain`` are held.
        n: How many points.
        exponent: ``alpha``, the weight of the cost.
        pool: How many Sobol points to choose from (at least ``8 n``).

    Returns:
        ``n`` model-space points (`d` tensors).
    """
    from autotune.strategies._optimize import unit_distance

    known = ctx.known_cost
    if known is None:
        raise ValueError("cost_effective_design needs ctx.known_cost")
    params = ctx.space.sample(max(pool, 8 * n), "sobol", seed=ctx.stable_seed("cost-effective-design"))
    P = torch.tensor([ctx.space.encode(p) for p in params], dtype=torch.float64).reshape(len(params), ctx.d)
    if ctx.domain.fixed:
        P = ctx.domain.apply_fixed(P)
    weight = known(P).reshape(-1).to(P).clamp_min(1e-12).pow(exponent)
    busy = torch.cat([ctx.X, ctx.pending]).to(P)
    nearest = (unit_distance(P, busy, ctx.space).min(dim=1).values if len(busy)
               else torch.full((len(P),), math.sqrt(ctx.d), dtype=P.dtype))
    chosen: list[Tensor] = []
    for _ in range(n):
        i = int((nearest / weight).argmax())
        chosen.append(P[i].clone())
        nearest = torch.minimum(nearest, unit_distance(P, P[i: i + 1], ctx.space).squeeze(-1))
    return chosen


def objective_scale(ctx: Context) -> float:
    """The standard deviation of the observed objective (``1`` with fewer than two or all equal)."""
    y = ctx.y[ctx.ok]
    s = float(y.std()) if len(y) > 1 else 1.0
    return s if math.isfinite(s) and s > 0 else 1.0


@dataclass(frozen=True)
class CostState:
    """What a known cost function may need besides the points: the instrument's state.

    Attributes:
        last: The parameters of the most recently asked point (measured or still pending):
            where the instrument stands, or is heading; ``None`` before the first.
        observations: The finished trials, in the order they were told.
        pending: The parameters of the points asked for and not yet told.
    """

    last: dict[str, Any] | None
    observations: Sequence[Observation] = field(default_factory=tuple)
    pending: Sequence[dict[str, Any]] = field(default_factory=tuple)


class KnownCost:
    """A known cost written in the user's units, with the instrument's state.

    The function is called as ``fn(points, state)``: ``points`` maps each parameter with a
    model-space column to a `...` tensor of its values (floats and integers in their own
    units, integers relaxed to reals; ordinals, booleans and categoricals as their index),
    ``state`` is a :class:`CostState`; it returns a `...` tensor of positive costs, built from
    differentiable torch operations (the acquisition is optimised by gradient).

    Args:
        fn: The cost function.
        space: The search space.

    Example:
        >>> def motor_s(p, state):  # seconds to drive the stage there and expose
        ...     if state.last is None:
        ...         return 1.0 + 0 * p["x"]
        ...     return 1.0 + ((p["x"] - state.last["x"]) ** 2 + (p["y"] - state.last["y"]) ** 2).sqrt() / 0.05
        >>> opt = Optimizer(space, "max_variance", strategy_options={"cost": "known"},  # doctest: +SKIP
        ...                 known_cost=KnownCost(motor_s, space))
    """

    def __init__(self, fn: Callable[[dict[str, Tensor], CostState], Tensor], space: SearchSpace) -> None:
        self.fn = fn
        self.space = space

    def bind(self, state: CostState) -> Callable[[Tensor], Tensor]:
        """The cost of `... x d` model-space points given the state (what the strategies call)."""

        def cost(X: Tensor) -> Tensor:
            value = self.fn(user_units(self.space, X), state)
            return torch.as_tensor(value, dtype=X.dtype).expand(X.shape[:-1])

        return cost


def user_units(space: SearchSpace, X: Tensor) -> dict[str, Tensor]:
    """Each column of `... x d` model-space points in the parameter's units, differentiably.

    Floats and integers are mapped back through their (linear or log) scale, integers without
    rounding; ordinals, booleans and categoricals give their index.
    """
    from autotune.space import Categorical, Float, Int, Ordinal

    out: dict[str, Tensor] = {}
    for j, name in enumerate(space.columns):
        p = space.parameters[name]
        u = X[..., j]
        if isinstance(p, (Float, Int)):
            if p.log:
                lo, hi = math.log(p.low), math.log(p.high)
                out[name] = torch.exp(lo + u * (hi - lo))
            else:
                out[name] = p.low + u * (p.high - p.low)
        elif isinstance(p, Ordinal):
            out[name] = u * (len(p.values) - 1)
        elif isinstance(p, Categorical):
            out[name] = u
        else:
            out[name] = u
    return out
