"""One ask/tell adapter per optimiser, so the runner drives every peer the same way.

Protocol: ``ask(n) -> list[dict]`` proposes ``n`` parameter dicts (pending until told) and
``tell(params, value, metrics)`` reports one of them; ``metrics`` carries the constraint metric
``c`` when the problem has one. After each ``ask``, ``last_model_based`` says per proposal whether
the optimiser's model proposed it (``False`` for its initial design or random search, ``None``
when the library does not say); the health figures count model-based proposals only. Each adapter uses its library's own defaults (initial design,
model, acquisition optimiser): the point is to compare what a user gets out of the box.

Hand-written glue only: the translation of autotune's search space into Optuna distributions
and Ax parameter configs, and a pending-point map from a parameter dict to the library's
trial handle (none of the libraries hands back a trial for a parameter dict).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Protocol

from benchmarks.compare.problems import COST_BUDGET, Problem


class Adapter(Protocol):
    """What the runner drives."""

    name: str
    last_model_based: list[bool | None]

    def ask(self, n: int) -> list[dict[str, Any]]:
        """Propose ``n`` points; they stay pending until told."""
        ...

    def tell(self, params: Mapping[str, Any], value: float, metrics: Mapping[str, float]) -> None:
        """Report the outcome of a pending point."""
        ...


def _key(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, v) for k, v in params.items()))


def _plain(v: Any) -> Any:
    """numpy scalars to Python scalars (Ax and Optuna hand back either)."""
    return v.item() if hasattr(v, "item") else v


class AutotuneAdapter:
    """autotune's :class:`~autotune.Optimizer` with a named strategy (``default`` = ``Optimizer``'s)."""

    def __init__(self, problem: Problem, seed: int, strategy: str | None = None, budget: float | None = None,
                 optimizer_options: Mapping[str, Any] | None = None, **options: Any) -> None:
        from autotune import Optimizer

        kwargs: dict[str, Any] = {"direction": "minimize", "seed": seed, **(optimizer_options or {})}
        if budget is not None:  # cost cooling: the budget in the problem's cost units
            kwargs.update(budget=budget, cost_metric="cost")
        if problem.constraint is not None:
            kwargs["constraints"] = [f"{problem.constraint[0]} <= {problem.constraint[1]}"]
        if strategy == "ei_per_cost":
            kwargs["known_cost"] = problem.known_cost
        if options:
            kwargs["strategy_options"] = options
        self.opt = Optimizer(problem.space, strategy, **kwargs) if strategy else Optimizer(problem.space, **kwargs)
        self.name = f"autotune-{self.opt.strategy.name}"
        self._pending: dict[tuple[tuple[str, Any], ...], int] = {}
        self._asked = 0
        self.last_model_based: list[bool | None] = []

    def ask(self, n: int) -> list[dict[str, Any]]:
        out = []
        self.last_model_based = []
        for s in self.opt.ask(n):
            self._pending[_key(s.params)] = s.trial_id
            out.append(dict(s.params))
            # the initial design, then the strategy (unless it fell back to a space-filling point)
            self.last_model_based.append(self._asked >= self.opt.n_initial and "fallback" not in s.info)
            self._asked += 1
        return out

    def tell(self, params: Mapping[str, Any], value: float, metrics: Mapping[str, float]) -> None:
        self.opt.tell(self._pending.pop(_key(params)), value, metrics=dict(metrics))


class RandomAdapter:
    """Uniform random search over autotune's space encoding (log scales respected)."""

    name = "random"

    def __init__(self, problem: Problem, seed: int) -> None:
        self.space = problem.space
        self.seed = seed
        self._drawn = 0
        self.last_model_based: list[bool | None] = []

    def ask(self, n: int) -> list[dict[str, Any]]:
        pts = self.space.sample(n, "random", seed=self.seed * 100_003 + self._drawn)
        self._drawn += 1
        self.last_model_based = [False] * n
        return pts

    def tell(self, params: Mapping[str, Any], value: float, metrics: Mapping[str, float]) -> None:
        pass


def optuna_distributions(space: Any) -> dict[str, Any]:
    """autotune parameters as Optuna distributions (float, int, categorical)."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    out: dict[str, Any] = {}
    for name, p in space.parameters.items():
        if p.kind == "float":
            out[name] = FloatDistribution(p.low, p.high, log=p.log)
        elif p.kind == "int":
            out[name] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
        elif p.kind == "categorical":
            out[name] = CategoricalDistribution(list(p.choices))
        else:
            raise ValueError(f"parameter {name!r}: kind {p.kind!r} has no Optuna translation here; use float/int/categorical")
    return out


class OptunaAdapter:
    """Optuna through its ask-and-tell interface with ``TPESampler(multivariate=True)`` or ``GPSampler``."""

    def __init__(self, problem: Problem, seed: int, sampler: str = "tpe", n_startup_trials: int = 10) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        constraints_func = None
        if problem.constraint is not None:
            metric, bound = problem.constraint

            def constraints_func(t: Any) -> list[float]:
                return [float(t.user_attrs[metric]) - bound]  # <= 0 is feasible

        if sampler == "tpe":
            s: Any = optuna.samplers.TPESampler(
                multivariate=True, seed=seed, n_startup_trials=n_startup_trials, constraints_func=constraints_func
            )
        elif sampler == "gp":
            s = optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials, constraints_func=constraints_func)
        else:
            raise ValueError(f"sampler {sampler!r}: use 'tpe' or 'gp'")
        self.name = f"optuna-{sampler}"
        self.study = optuna.create_study(direction="minimize", sampler=s)
        self.dists = optuna_distributions(problem.space)
        self.constraint = problem.constraint
        self.n_startup_trials = n_startup_trials
        self._pending: dict[tuple[tuple[str, Any], ...], Any] = {}
        self.last_model_based: list[bool | None] = []

    def ask(self, n: int) -> list[dict[str, Any]]:
        out = []
        self.last_model_based = []
        for _ in range(n):
            t = self.study.ask(self.dists)
            params = {k: _plain(v) for k, v in t.params.items()}
            self._pending[_key(params)] = t
            out.append(params)
            # both samplers sample independently (randomly) until n_startup_trials trials exist
            self.last_model_based.append(t.number >= self.n_startup_trials)
        return out

    def tell(self, params: Mapping[str, Any], value: float, metrics: Mapping[str, float]) -> None:
        t = self._pending.pop(_key(params))
        if self.constraint is not None:
            t.set_user_attr(self.constraint[0], float(metrics[self.constraint[0]]))
        self.study.tell(t, value)


class AxAdapter:
    """Ax's ``Client`` with its default generation strategy (Sobol, then BoTorch)."""

    name = "ax"

    def __init__(self, problem: Problem, seed: int) -> None:
        from ax.api import Client
        from ax.api.configs import ChoiceParameterConfig, RangeParameterConfig

        # Ax sets a level on each of its module loggers, so the parent's level alone does not silence it.
        for name in list(logging.root.manager.loggerDict):
            if name.split(".")[0] in ("ax", "pyro"):
                logging.getLogger(name).setLevel(logging.WARNING)

        params: list[Any] = []
        for name, p in problem.space.parameters.items():
            if p.kind in ("float", "int"):
                params.append(
                    RangeParameterConfig(
                        name=name, bounds=(p.low, p.high), parameter_type=p.kind, scaling="log" if p.log else "linear"
                    )
                )
            elif p.kind == "categorical":
                params.append(ChoiceParameterConfig(name=name, values=list(p.choices), parameter_type="str", is_ordered=False))
            else:
                raise ValueError(f"parameter {name!r}: kind {p.kind!r} has no Ax translation here")
        self.client = Client(random_seed=seed)
        self.client.configure_experiment(parameters=params, name=f"{problem.name}-{seed}")
        cons = [f"{problem.constraint[0]} <= {problem.constraint[1]}"] if problem.constraint else None
        self.client.configure_optimization(objective="-value", outcome_constraints=cons)
        self.constraint = problem.constraint
        self._pending: dict[tuple[tuple[str, Any], ...], int] = {}
        self.last_model_based: list[bool | None] = []

    def _model_based(self, idx: int) -> bool | None:
        """Whether Ax's generation node for trial ``idx`` is a model (not Sobol/centre); None if unknown."""
        try:
            node = self.client._experiment.trials[idx].generator_runs[0]._generation_node_name
        except (AttributeError, IndexError, KeyError):
            return None
        if node is None:
            return None
        return not any(k in str(node).lower() for k in ("sobol", "center", "initial"))

    def ask(self, n: int) -> list[dict[str, Any]]:
        out = []
        self.last_model_based = []
        for idx, p in self.client.get_next_trials(max_trials=n).items():
            params = {k: _plain(v) for k, v in p.items()}
            self._pending[_key(params)] = idx
            out.append(params)
            self.last_model_based.append(self._model_based(idx))
        return out

    def tell(self, params: Mapping[str, Any], value: float, metrics: Mapping[str, float]) -> None:
        raw = {"value": float(value)}
        if self.constraint is not None:
            raw[self.constraint[0]] = float(metrics[self.constraint[0]])
        self.client.complete_trial(self._pending.pop(_key(params)), raw_data=raw)


# method name -> (factory kwargs); the runner builds adapters by these names in worker processes.
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "random": ("random", {}),
    "optuna-tpe": ("optuna", {"sampler": "tpe"}),
    "optuna-gp": ("optuna", {"sampler": "gp"}),
    "ax": ("ax", {}),
    "autotune": ("autotune", {}),  # Optimizer's default strategy
    "autotune-ei": ("autotune", {"strategy": "ei"}),
    "autotune-ei_per_cost": ("autotune", {"strategy": "ei_per_cost"}),
    "autotune-kriging_believer": ("autotune", {"strategy": "kriging_believer"}),
    "autotune-local_penalization": ("autotune", {"strategy": "local_penalization"}),
    "autotune-qei": ("autotune", {"strategy": "qei"}),
    "autotune-thompson": ("autotune", {"strategy": "thompson"}),
    # EI-cool (Lee et al. 2020): the cost exponent decays from 1 to 0 as COST_BUDGET is spent.
    "autotune-ei_per_cost_cool": ("autotune", {"strategy": "ei_per_cost", "cooling": True, "budget": COST_BUDGET}),
    "autotune-constant_liar": ("autotune", {"strategy": "constant_liar"}),
    # Candidate defaults (issue 12), measured on the development half before any is adopted.
    "autotune-warp": ("autotune", {"optimizer_options": {"output_warp": "power"}}),
    "autotune-nowarp": ("autotune", {"optimizer_options": {"output_warp": "none"}}),
}


def make_adapter(method: str, problem: Problem, seed: int, **overrides: Any) -> Adapter:
    """Build the adapter for a method name of :data:`METHODS`.

    Raises:
        KeyError: if the method is unknown; the message lists the valid names.
    """
    if method not in METHODS:
        raise KeyError(f"unknown method {method!r}; choose from {sorted(METHODS)}")
    kind, kwargs = METHODS[method]
    kwargs = {**kwargs, **overrides}
    if kind == "random":
        return RandomAdapter(problem, seed)
    if kind == "optuna":
        return OptunaAdapter(problem, seed, **kwargs)
    if kind == "ax":
        return AxAdapter(problem, seed)
    return AutotuneAdapter(problem, seed, **kwargs)
