"""The strategy interface, the registry, and the data a strategy sees (:class:`Context`).

A strategy turns a :class:`Context` (observations and pending points in the model space)
into ``n`` model-space candidates. Strategies never decode, deduplicate or track pending
points: :class:`autotune.optimizer.Optimizer` does that once for all of them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar, cast

import torch
from torch import Tensor

from autotune.exceptions import ConfigError, UnknownNameError, one_of, shown
from autotune.strategies._cost import COST_OPTIONS, check_cost_options

if TYPE_CHECKING:
    from botorch.models.model import Model

    from autotune.models import GPFitter, PowerWarp, Surrogates
    from autotune.space import SearchSpace
    from autotune.strategies._domain import Domain


@dataclass(frozen=True)
class OutcomeConstraint:
    """``metric <= bound`` or ``metric >= bound`` on a reported metric.

    Args:
        metric: The name of a final metric of every trial (e.g. ``"n_params"``).
        op: ``"<="`` or ``">="``.
        bound: The threshold.
    """

    metric: str
    op: Literal["<=", ">="]
    bound: float

    @classmethod
    def parse(cls, text: str, where: str = "constraints") -> OutcomeConstraint:
        """Parse ``"n_params <= 2e6"``."""
        for op in ("<=", ">="):
            if isinstance(text, str) and op in text:
                metric, _, bound_text = text.partition(op)
                try:
                    bound = float(bound_text)
                except ValueError:
                    break
                if not metric.strip():
                    raise ConfigError(where, "names no metric", text, f"write the metric first, e.g. 'n_params {op} 2e6'.")
                if not math.isfinite(bound):
                    raise ConfigError(where, "must have a finite bound", text,
                                      f"write a number, e.g. '{metric.strip()} {op} 2e6'.")
                return cls(metric.strip(), cast(Literal["<=", ">="], op), bound)
        raise ConfigError(where, "must read 'metric <= number' or 'metric >= number'", text,
                          "write e.g. 'n_params <= 2e6'.")

    def slack(self, value: Tensor) -> Tensor:
        """Signed slack, ``>= 0`` exactly when satisfied."""
        return self.bound - value if self.op == "<=" else value - self.bound

    def satisfied(self, value: float | None) -> bool:
        """Whether a metric value satisfies the constraint (a missing or non-finite one does not)."""
        return value is not None and math.isfinite(value) and (value <= self.bound if self.op == "<=" else value >= self.bound)

    def satisfied_mask(self, values: Tensor) -> Tensor:
        """:meth:`satisfied` over a tensor of metric values (``nan`` for missing), elementwise."""
        return torch.isfinite(values) & (self.slack(values) >= 0)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"


@dataclass
class Candidate:
    """A proposed model-space point and what the surrogate said about it.

    Attributes:
        x: A `d` tensor.
        acq_value: The acquisition value at proposal (``None`` for model-free strategies).
    """

    x: Tensor
    acq_value: float | None = None


@dataclass(frozen=True)
class Curves:
    """Learning-curve points: the objective reported at intermediate steps of trials.

    Attributes:
        X: A `m x d` tensor: the configuration of each point (model space).
        step: A `m` tensor of the steps (e.g. epochs) the values were reported at.
        y: A `m` tensor of the values, oriented for maximisation like :attr:`Context.y`.
        trial: A `m` tensor of the trial ids.
    """

    X: Tensor
    step: Tensor
    y: Tensor
    trial: Tensor


@dataclass
class Context:
    """What a strategy sees: the data in the model space and the surrogates built on it.

    Plain data: the models live in :attr:`models` (an :class:`autotune.models.Surrogates`,
    each GP fitted on first use and kept for the ask); the model methods below are
    shortcuts to it. The objective is oriented for maximisation (a minimised objective is
    negated).

    Attributes:
        space: The search space.
        X: A `n x d` tensor of finished points (completed, infeasible and failed).
        y: A `n` tensor of objective values (``nan`` where the trial failed).
        failed: A `n` boolean tensor, ``True`` where the trial failed (crash, OOM, NaN, timeout).
        fitter: Fits (and warm-starts) the GPs.
        constraint_values: Per outcome constraint, a `n` tensor of its metric (``nan`` if missing).
        constraints: The outcome constraints.
        cost: A `n` tensor of the cost metric (``nan`` if missing), or ``None``.
        X_pending: A `p x d` tensor of points proposed but not yet told.
        seed: The seed of this ask (already applied to torch's RNG).
        budget_fraction_used: ``[0, 1]``, how much of the budget is spent (for cost cooling).
        budget_fraction_initial: The fraction spent by the initial design.
        known_cost: A callable mapping a `... x d` tensor to `...` positive costs, if the cost is known.
        model_failures: Model failed trials as an unknown feasibility constraint.
        minimize: Whether the user minimises (``y`` holds the negated values).
        study_seed: The optimiser's seed (constant across asks).
        Y: With several objectives, a `n x M` tensor of their values, maximised (``nan`` where
            the trial failed; ``y`` is its first column); else ``None``.
        ref_point: With several objectives, the `M` reference point, maximised (``None`` before
            any feasible observation).
        pruned: A `n` boolean tensor, ``True`` where the trial was stopped early: its ``y`` is a
            value at some intermediate step, not at the end of training (``None``: none pruned).
        curves: The intermediate values the trials reported (:meth:`Optimizer.report
            <autotune.optimizer.Optimizer.report>`), for multi-fidelity strategies; ``None``
            unless the strategy asks for them (``uses_curves``).
        warp: The output warp ``y`` (and ``curves.y``) already went through
            (:class:`~autotune.models.PowerWarp`; ``None``: the raw objective). It is strictly
            increasing, so incumbents and rankings are those of the raw values.
        models: The surrogates over this data (built from the fields above).
        domain: Where this ask may propose (:class:`~autotune.strategies.Domain`: the whole
            space unless the caller gave candidates or fixed values); the shared optimisers,
            pools and designs honour it.
    """

    space: SearchSpace
    X: Tensor
    y: Tensor
    failed: Tensor
    fitter: GPFitter
    constraint_values: dict[str, Tensor] = field(default_factory=dict)
    constraints: list[OutcomeConstraint] = field(default_factory=list)
    cost: Tensor | None = None
    X_pending: Tensor | None = None
    seed: int = 0
    budget_fraction_used: float = 0.0
    budget_fraction_initial: float = 0.0
    known_cost: Callable[[Tensor], Tensor] | None = None
    model_failures: bool = True
    minimize: bool = False
    study_seed: int = 0
    Y: Tensor | None = None
    ref_point: Tensor | None = None
    pruned: Tensor | None = None
    curves: Curves | None = None
    warp: PowerWarp | None = None
    models: Surrogates = field(init=False, repr=False)
    domain: Domain = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from autotune.models import Surrogates
        from autotune.strategies._domain import Domain

        self.domain = Domain(self.space)

        self.models = Surrogates(
            self.X, self.y, self.failed, self.fitter, constraints=self.constraints,
            constraint_values=self.constraint_values, cost=self.cost, model_failures=self.model_failures,
        )

    @property
    def d(self) -> int:
        return self.space.dim

    @property
    def pending(self) -> Tensor:
        """A `p x d` tensor (possibly empty) of pending points."""
        if self.X_pending is None:
            return torch.empty(0, self.d, dtype=torch.float64)
        return self.X_pending

    @property
    def ok(self) -> Tensor:
        """A `n` mask of observations with a finite objective."""
        return self.models.ok

    @property
    def n_ok(self) -> int:
        return int(self.ok.sum())

    def feasible(self) -> Tensor:
        """A `n` mask of observations with a finite objective that satisfy every constraint."""
        m = self.ok.clone()
        for c in self.constraints:
            m &= c.satisfied_mask(self.constraint_values[c.metric])
        return m

    def best_f(self) -> float | None:
        """The best feasible observed objective (maximisation), or ``None`` if none is feasible."""
        m = self.feasible()
        return float(self.y[m].max()) if bool(m.any()) else None

    def objective_model(self) -> Model:
        """The objective GP (:meth:`autotune.models.Surrogates.objective`)."""
        return self.models.objective()

    def constraint_models(self) -> list[tuple[Model, float]]:
        """The constraint and crash GPs (:meth:`autotune.models.Surrogates.constraint_models`)."""
        return self.models.constraint_models()

    def log_feasibility(self, X: Tensor) -> Tensor:
        """``sum_k log P(c_k(x) feasible)`` (:meth:`autotune.models.Surrogates.log_feasibility`).

        Args:
            X: A `batch x q x d` tensor.

        Returns:
            A `batch` tensor (``0`` when there are no constraints), summed over the q points.
        """
        return self.models.log_feasibility(X)

    def cost_model(self) -> Model | None:
        """The GP of log cost, or ``None`` (:meth:`autotune.models.Surrogates.cost_model`)."""
        return self.models.cost_model()

    def stable_seed(self, salt: str) -> int:
        """A seed derived from this ask's seed and a salt."""
        import zlib

        return zlib.crc32(f"{self.seed}:{salt}".encode()) & 0x7FFFFFFF


class Strategy(ABC):
    """Base class of every strategy.

    Subclasses set ``name`` and implement :meth:`ask`. Constructors only store options.

    Class attributes:
        name: The registry name.
        model_based: Whether the strategy needs a surrogate (the optimiser runs the initial
            design before it, and falls back to a space-filling point if the GP fails).
        synchronous: Whether it prefers to wait for a whole batch to finish.
        uses_curves: Whether it learns from intermediate values (the optimiser then fills
            :attr:`Context.curves`).
        cost_aware: Whether it takes the ``cost`` and ``cost_exponent`` options
            (:mod:`autotune.strategies._cost`), parsed by :func:`get_strategy` for all of them.
        optimizes: Whether it looks for the best value (then the optimiser's output warp
            applies); ``False`` for a strategy that maps the objective (maximum variance), whose
            GP must model the values themselves.

    Attributes:
        cost: ``known`` or ``model`` when the acquisition is weighted by a cost, else ``None``.
        cost_exponent: The cost's exponent ``alpha``.
    """

    name: ClassVar[str] = ""
    model_based: ClassVar[bool] = True
    synchronous: ClassVar[bool] = False
    uses_curves: ClassVar[bool] = False
    cost_aware: ClassVar[bool] = False
    optimizes: ClassVar[bool] = True
    cost: Literal["known", "model"] | None = None
    cost_exponent: float = 1.0

    @abstractmethod
    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        """Propose ``n`` model-space candidates that also differ from ``ctx.X_pending``.

        Stay in ``ctx.domain`` (a candidate set, fixed columns): the shared helpers
        (``optimize_acquisition(acqf, ctx.domain, ...)``, ``ctx.domain.pool``) do so; a proposal
        outside it is moved in by the optimiser and flagged ``fallback: outside_domain``.

        Args:
            ctx: The data.
            n: How many.

        Returns:
            ``n`` candidates.
        """

    def known_cost_exponent(self, ctx: Context) -> float | None:
        """The exponent ``alpha`` with which this ask weighs the known cost, or ``None`` if it does not.

        The optimiser then draws the initial design cost-effectively
        (:func:`~autotune.strategies.cost_effective_design`).
        """
        return self.cost_exponent if self.cost == "known" and ctx.known_cost is not None else None

    def options(self) -> dict[str, Any]:
        """The strategy's options (constructor arguments), for records."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options().items())
        return f"{type(self).__name__}({opts})"


_S = TypeVar("_S", bound=type[Strategy])
_REGISTRY: dict[str, type[Strategy]] = {}


def register(cls: _S) -> _S:
    """Class decorator adding a strategy to the registry under ``cls.name``.

    Raises:
        ValueError: if the name is taken.
    """
    if not cls.name:
        raise ValueError(f"{cls.__name__} has no name")
    if cls.name in _ALIASES:
        raise ValueError(f"{cls.name!r} is an alias of the strategy {_ALIASES[cls.name][0]!r}; choose another name")
    if cls.name in _REGISTRY:
        raise ValueError(f"a strategy named {cls.name!r} is already registered ({_REGISTRY[cls.name].__name__})")
    _REGISTRY[cls.name] = cls
    return cls


_ALIASES: dict[str, tuple[str, dict[str, Any]]] = {
    # name: (registered strategy, options it presets)
    "lcb": ("ucb", {}),  # the same bound: the optimiser negates a minimised objective, so UCB on it is LCB
    "kriging_believer": ("ei", {}),  # ei already conditions on the posterior mean at busy points
}
"""Other names of registered strategies. An alias builds its target with the preset options
(which the caller may not set); the optimiser records the name the caller used."""


def strategy_names(aliases: bool = True) -> list[str]:
    """All strategy names: the registered ones and (with ``aliases``) their other names."""
    return sorted({*_REGISTRY, *_ALIASES} if aliases else _REGISTRY)


def strategy_class(name: str, where: str = "strategy") -> type[Strategy]:
    """The class a strategy name (or alias) builds.

    Raises:
        UnknownNameError: listing the valid names.
    """
    target = _ALIASES[name][0] if name in _ALIASES else name
    if target not in _REGISTRY:
        raise UnknownNameError("strategy", name, strategy_names(), where=f"{where}.name")
    return _REGISTRY[target]


def get_strategy(
    name: str | Strategy, options: Mapping[str, Any] | None = None, /, *, where: str = "strategy", **kwargs: Any
) -> Strategy:
    """Build a registered strategy by name with typed options.

    Args:
        name: A registered name (or a ready strategy, returned as is).
        options: The strategy's constructor options as a mapping (any names, ``where`` included).
        where: The key path used in errors.
        **kwargs: More constructor options (merged over ``options``).

    Raises:
        UnknownNameError: listing the valid names.
        ConfigError: for an unknown option (with the closest valid one) or a bad value.
    """
    if isinstance(name, Strategy):
        return name
    opts = {**(options or {}), **kwargs}
    if name in _ALIASES:
        target, preset = _ALIASES[name]
        clash = sorted(set(opts) & set(preset))
        if clash:
            raise ConfigError(f"{where}.options.{clash[0]}", f"is fixed by the alias {name!r}", opts[clash[0]],
                              f"drop the option, or use strategy {target!r} to set it.")
        name, opts = target, {**preset, **opts}
    cls = strategy_class(name, where)
    valid = option_names(cls)
    for k, v in opts.items():
        if k in COST_OPTIONS and not cls.cost_aware:
            aware = ", ".join(n for n in strategy_names(aliases=False) if _REGISTRY[n].cost_aware)
            raise ConfigError(f"{where}.options.{k}", f"is not an option of strategy {name!r}: a cost weights an "
                              "acquisition, and it has none (or weights its own)", shown(v), f"use one of: {aware}.")
        if k not in valid:
            raise ConfigError(f"{where}.options.{k}", f"is not an option of strategy {name!r}", shown(v),
                              one_of(k, valid) if valid else "remove it: the strategy takes no options.")
    cost = check_cost_options(name, opts, where)
    try:
        strategy = cls(**{k: v for k, v in opts.items() if k not in COST_OPTIONS})
    except ConfigError as e:  # constructors name their options under "strategy.": name the caller's key
        if where == "strategy" or not e.where.startswith("strategy."):
            raise
        raise ConfigError(where + e.where.removeprefix("strategy"), e.rule, e.value, e.fix) from None
    if cost is not None:  # the one place the cost options are set, for every cost-aware strategy
        strategy.cost, strategy.cost_exponent = cost
    return strategy


def option_names(cls: type[Strategy]) -> list[str]:
    """The option names of a strategy: its constructor's named parameters, and the cost options
    (``cost``, ``cost_exponent``) of a cost-aware one."""
    import inspect

    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = list(inspect.signature(cls.__init__).parameters.values())[1:]  # without self
    return [p.name for p in params if p.kind in kinds] + (list(COST_OPTIONS) if cls.cost_aware else [])

