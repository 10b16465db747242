"""The strategy interface, the registry, and the data a strategy sees (:class:`Context`).

A strategy turns a :class:`Context` (observations and pending points in the model space)
into ``n`` model-space candidates. Strategies never decode, deduplicate or track pending
points: :class:`autotune.optimizer.Optimizer` does that once for all of them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

import torch
from torch import Tensor

from autotune.exceptions import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from botorch.models.model import Model

    from autotune.models import GPFitter, Surrogates
    from autotune.space import SearchSpace


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
            if op in text:
                metric, _, bound = text.partition(op)
                try:
                    return cls(metric.strip(), op, float(bound))  # type: ignore[arg-type]
                except ValueError:
                    break
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
        models: The surrogates over this data (built from the fields above).
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
    models: Surrogates = field(init=False, repr=False)

    def __post_init__(self) -> None:
        from autotune.models import Surrogates

        self.models = Surrogates(
            self.X, self.y, self.failed, self.fitter, constraints=self.constraints,
            constraint_values=self.constraint_values, cost=self.cost, model_failures=self.model_failures,
        )

    @property
    def _cache(self) -> dict[str, Any]:
        """Deprecated scratch space of a strategy for one ask: use ``models.cached(key, build)``."""
        return self.models.memo

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
    """

    name: ClassVar[str] = ""
    model_based: ClassVar[bool] = True
    synchronous: ClassVar[bool] = False

    @abstractmethod
    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        """Propose ``n`` model-space candidates that also differ from ``ctx.X_pending``.

        Args:
            ctx: The data.
            n: How many.

        Returns:
            ``n`` candidates.
        """

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
    if cls.name in _REGISTRY:
        raise ValueError(f"a strategy named {cls.name!r} is already registered ({_REGISTRY[cls.name].__name__})")
    _REGISTRY[cls.name] = cls
    return cls


def strategy_names() -> list[str]:
    """All registered strategy names."""
    _load_builtins()
    return sorted(_REGISTRY)


def get_strategy(name: str | Strategy, where: str = "strategy", **options: Any) -> Strategy:
    """Build a registered strategy by name with typed options.

    Args:
        name: A registered name (or a ready strategy, returned as is).
        where: The key path used in errors.
        **options: Constructor options of the strategy.

    Raises:
        UnknownNameError: listing the valid names.
        ConfigError: for an unknown or badly typed option.
    """
    if isinstance(name, Strategy):
        return name
    _load_builtins()
    if name not in _REGISTRY:
        raise UnknownNameError("strategy", name, list(_REGISTRY), where=f"{where}.name")
    cls = _REGISTRY[name]
    import inspect

    sig = inspect.signature(cls.__init__)
    valid = [p for p in sig.parameters if p != "self"]
    for k, v in options.items():
        if k not in valid:
            raise ConfigError(f"{where}.options.{k}", f"is not an option of strategy {name!r}", v,
                              f"use one of: {', '.join(valid) or '(none)'}.")
    return cls(**options)


def _load_builtins() -> None:
    import autotune.strategies._baselines
    import autotune.strategies._batch
    import autotune.strategies._sequential  # noqa: F401


def check_positive(where: str, value: float, name: str) -> None:
    """Raise the standard error for an option that must be > 0."""
    if not (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0):
        raise ConfigError(f"{where}.{name}", "must be a number > 0", value, f"set {name} to a positive number.")
