"""Ask/tell over a history with pending points: the one object every front end drives.

``ask(n)`` returns ``n`` distinct suggestions that also differ from everything tried and
everything pending; each stays pending until ``tell`` (or ``forget``). The optimiser owns
the parts every strategy shares, written once here: the initial design, direction handling
(a minimised objective is negated so strategies always maximise), seeding (the same seed
and the same history give the same suggestions), deduplication, the fallback to a
space-filling point when the GP cannot be fitted, and the proposal metadata (acquisition
value, the GP's predicted mean and standard deviation) that studies record.
"""

from __future__ import annotations

import logging
import math
import numbers
import reprlib
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, SupportsFloat, TypeVar

from autotune.exceptions import ConfigError, ModelFitError
from autotune.trial import Observation, TrialState

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from autotune.models import PowerWarp
    from autotune.objectives import Objective
    from autotune.space import SearchSpace
    from autotune.strategies import Candidate, Context, Curves, KnownCost, OutcomeConstraint, Strategy

logger = logging.getLogger(__name__)

MAX_ASK = 10_000
"""The most suggestions one :meth:`Optimizer.ask` returns (each costs an acquisition optimisation)."""


@dataclass
class Suggestion:
    """A proposed trial.

    Attributes:
        trial_id: Its number, unique within the optimiser.
        params: The active parameters, with their true types.
        info: How it was proposed: ``strategy``, ``batch_id``, and, for model-based proposals,
            ``acq_value``, ``pred_mean`` and ``pred_std`` (in the objective's units); ``fallback``
            says why a space-filling point replaced the strategy's choice, if it did.
    """

    trial_id: int
    params: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)


def default_n_initial(d: int, n_objectives: int = 1) -> int:
    """The initial design's default size for a `d`-column space.

    One objective: ``clip(d + 1, 5, 10)``. Several: ``2(d + 1)``, the size BoTorch's
    multi-objective tutorials use (Daulton et al. 2020, 2021). With ``d + 1`` points, DTLZ2
    (d = 6) with four running trials reached 0.34 of the sequential hypervolume in the median
    of 10 seeds: the GPs called the inputs of its bowl irrelevant and the proposals went to the
    corners of the box; with ``2(d + 1)``, 0.81 (``benchmarks/results/multi_q4_stall.md``).

    Args:
        d: Columns of the model space.
        n_objectives: Objectives of the study.

    Returns:
        The number of initial-design points.
    """
    if n_objectives > 1:
        return 2 * (d + 1)
    return min(max(d + 1, 5), 10)


class Optimizer:
    """Bayesian optimisation over a search space through ask and tell.

    Args:
        space: The search space.
        strategy: A strategy name (see :func:`autotune.strategies.strategy_names`) or instance.
        direction: ``minimize`` or ``maximize`` the objective.
        seed: Seed of every random choice.
        n_initial: Points from the initial design before the strategy takes over
            (default: :func:`default_n_initial`, ``clip(d + 1, 5, 10)`` for one objective and
            ``2(d + 1)`` for several). Ignored by model-free strategies.
        initial_design: ``sobol`` (default), ``random``, ``lhs`` or ``grid``.
        constraints: Outcome constraints (``"n_params <= 2e6"`` strings or objects) on metrics
            passed to :meth:`tell`.
        cost_metric: Name of the metric holding each trial's cost (for ``ei_per_cost``).
        known_cost: A known cost: a :class:`~autotune.strategies.KnownCost` (a function of the
            points in the user's units and the instrument's state), or a function of model-space
            points (`... x d` to `...`); used by ``cost: known`` and ``ei_per_cost``.
        budget: Total budget (in cost units with ``cost_metric``, else in trials), for cost cooling.
        kernel: ``matern52`` (default) or ``rbf``.
        min_length_scale: ``{parameter: size}``, the smallest length scale the GPs may fit, in
            the parameter's units (a factor > 1 for a log-scaled one): the smallest feature that
            matters (:mod:`autotune.models._lengthscale`).
        max_length_scale: ``{parameter: size}``, the largest length scale the GPs may fit: the
            size of a narrow feature the GP must not smooth away (variance-driven exploration
            then keeps measuring until no gap much wider than it is left).
        model_failures: Learn from failed trials (default) so the optimiser avoids regions that
            crash: a crash GP weights the acquisition by the probability of running, and the
            objective GP sees each failed point at the worst observed value
            (:class:`autotune.models.Surrogates`).
        strategy_options: Options of the strategy when given by name.
        objectives: Two or more :class:`~autotune.objectives.Objective` (or ``(metric, direction)``
            pairs) for a multi-objective study: :meth:`tell` then takes ``{metric: value}``, the
            default strategy is ``qlognehvi``, and :meth:`pareto_front` and :meth:`hypervolume` give
            the result. One objective sets ``direction`` and lets :meth:`tell` take ``{metric: value}``.
        reference_point: The worst value of interest of each objective (``{metric: value}`` or a
            list in the objectives' order), the corner of the hypervolume; inferred from the data
            when absent (:meth:`reference_point`).
        device: Where the GPs are fitted and the acquisitions optimised: ``cpu`` (default),
            ``cuda``, ``cuda:<i>``, or ``auto`` (the first GPU if one is visible, else the CPU);
            ``cuda`` without CUDA warns and uses the CPU (:func:`autotune.models.select_device`).
            Suggestions are plain Python values either way.
        output_warp: ``power`` (default): the single-objective GP is fitted to a Yeo-Johnson transform of
            the objective, refitted at every ask (:class:`~autotune.models.PowerWarp`; HEBO's
            choice), which tames heavy tails such as Rosenbrock's; ``none``: to the raw values.
            A strategy that maps instead of optimising (``max_variance``) always sees the raw values.
            The transform is increasing, so the incumbent is unchanged; :meth:`predict` and the
            ``pred_mean``/``pred_std`` of a suggestion are in the objective's units either way.

    Example:
        >>> opt = Optimizer(space, "ei", direction="minimize", seed=0)
        >>> for _ in range(20):
        ...     (s,) = opt.ask()
        ...     opt.tell(s.trial_id, f(**s.params))
    """

    def __init__(
        self,
        space: SearchSpace,
        strategy: str | Strategy | None = None,
        *,
        direction: Literal["minimize", "maximize"] = "minimize",
        seed: int = 0,
        n_initial: int | None = None,
        initial_design: str = "sobol",
        constraints: Sequence[str | OutcomeConstraint] = (),
        cost_metric: str | None = None,
        known_cost: Callable[[Tensor], Tensor] | KnownCost | None = None,
        budget: float | None = None,
        kernel: Literal["matern52", "rbf"] = "matern52",
        min_length_scale: Mapping[str, float] | None = None,
        max_length_scale: Mapping[str, float] | None = None,
        model_failures: bool = True,
        strategy_options: Mapping[str, Any] | None = None,
        objectives: Sequence[Objective | tuple[str, str] | Mapping[str, str]] | None = None,
        reference_point: Mapping[str, float] | Sequence[float] | None = None,
        device: str | torch.device = "cpu",
        output_warp: Literal["none", "power"] = "power",
    ) -> None:
        from autotune.models import GPFitter, length_scale_bounds, select_device
        from autotune.objectives import parse_objectives, parse_reference_point
        from autotune.strategies import OutcomeConstraint, check_cost_inputs, get_strategy

        #: The objectives (empty for a plain single-objective optimiser); two or more: multi-objective.
        self.objectives = parse_objectives(objectives) if objectives is not None else []
        if len(self.objectives) == 1:
            direction = self.objectives[0].direction
        self._reference_point = parse_reference_point(reference_point, self.objectives) if self.objectives else None
        if reference_point is not None and not self.multi_objective:
            raise ConfigError("reference_point", "needs two or more objectives", reference_point,
                              "drop it, or pass objectives=[...] with two or more objectives.")
        if strategy is None:
            strategy = "qlognehvi" if self.multi_objective else "ei"

        if direction not in ("minimize", "maximize"):
            raise ConfigError("direction", "must be minimize or maximize", direction, "use direction: minimize.")
        if initial_design not in ("sobol", "random", "lhs", "grid"):
            raise ConfigError("initial_design", "unknown design", initial_design, "use sobol, random, lhs or grid.")
        if kernel not in ("matern52", "rbf"):
            raise ConfigError("kernel", "unknown kernel", kernel, "use matern52 or rbf.")
        if output_warp not in ("none", "power"):
            raise ConfigError("output_warp", "unknown output warp", output_warp, "use power or none.")
        if n_initial is not None and (not isinstance(n_initial, int) or n_initial < 0):
            raise ConfigError("n_initial", "must be an integer >= 0", n_initial, "use e.g. n_initial: 8.")
        if not space.tunable:
            fixed = ", ".join(space.parameters) or "(no parameters)"
            raise ConfigError("space", "has nothing to tune: every parameter takes a single value", fixed,
                              "give at least one parameter a range or two or more choices.")
        self.space = space
        self.strategy = get_strategy(strategy, dict(strategy_options or {}), where="strategy")
        #: The name proposals are recorded under: the one the caller used (an alias stays itself).
        self.strategy_name = strategy if isinstance(strategy, str) else self.strategy.name
        _check_strategy_objectives(self.strategy, self.strategy_name, len(self.objectives))
        self.direction = direction
        self.seed = int(seed)
        self.n_initial = n_initial if n_initial is not None else default_n_initial(space.dim, len(self.objectives))
        self.initial_design = initial_design
        self.constraints = [c if isinstance(c, OutcomeConstraint) else OutcomeConstraint.parse(c) for c in constraints]
        self.cost_metric = cost_metric
        self.known_cost = known_cost
        check_cost_inputs(self.strategy, known_cost, cost_metric)
        self.budget = budget
        self.model_failures = model_failures
        self.output_warp = output_warp
        self._warp_lam: float | None = None  # the warp's exponent chosen by the last ask's GP
        self.fitter = GPFitter(space, kernel, bounds=length_scale_bounds(space, min_length_scale, max_length_scale, "Optimizer"))
        #: The ``torch.device`` of every model and acquisition of an ask.
        self.device = select_device(device, where="Optimizer(device=...)")
        self.observations: list[Observation] = []
        #: Intermediate objective values by trial id and step (:meth:`report`), in the user's units.
        self.curves: dict[int, dict[int, float]] = {}
        self._pending: dict[int, Suggestion] = {}
        self._next_id = 0
        self._batch = 0

    # -- history -------------------------------------------------------------------------------
    @property
    def multi_objective(self) -> bool:
        """Whether there are two or more objectives."""
        return len(self.objectives) >= 2

    @property
    def minimize(self) -> bool:
        return self.direction == "minimize"

    @property
    def pending(self) -> list[Suggestion]:
        """Suggestions asked for and not yet told, oldest first."""
        return list(self._pending.values())

    def add_pending(self, params: Mapping[str, Any], trial_id: int | None = None, info: dict[str, Any] | None = None) -> Suggestion:
        """Register a point as under evaluation (e.g. a running trial found on resume).

        Returns:
            The pending suggestion.
        """
        params = self.space.validate(params)
        tid = self._take_id(trial_id)
        s = Suggestion(tid, params, dict(info or {}))
        self._pending[tid] = s
        return s

    def adopt(self, proposals: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]]) -> list[Suggestion]:
        """Register points proposed elsewhere (a copy of this optimiser in another process) as
        one batch of pending suggestions, with this optimiser's trial ids.

        Args:
            proposals: ``(params, info)`` pairs as :meth:`ask` made them there.

        Returns:
            The new pending suggestions; a point already observed or pending here (proposed
            meanwhile) is dropped.
        """
        seen = self._seen_keys()
        batch_id = self._batch
        self._batch += 1
        adopted = []
        for params, info in proposals:
            key = self.space.key(params)
            if key in seen:
                continue
            seen.add(key)
            adopted.append(self.add_pending(params, None, {**info, "batch_id": batch_id}))
        return adopted

    def _seen_keys(self) -> set[tuple[float, ...]]:
        """The keys of every observed and pending point (what a new proposal must not repeat)."""
        return {self.space.key(o.params) for o in self.observations} | {self.space.key(s.params) for s in self._pending.values()}

    @property
    def models_next(self) -> bool:
        """Whether the next :meth:`ask` is the strategy's (the initial design is proposed and a
        trial has a value), not the initial design's: e.g. worth asking a mirror in another process for."""
        n_ok = sum(o.value is not None for o in self.observations)  # a failed or non-finite result has none
        return self.strategy.model_based and not self._design_due(len(self.observations) + len(self._pending), n_ok)

    def _design_due(self, proposed: int, n_ok: int) -> bool:
        """Whether a model-based strategy's next point comes from the initial design: fewer than
        ``n_initial`` points proposed, or no trial with a value yet."""
        return self.strategy.model_based and (proposed < self.n_initial or n_ok == 0)

    def forget(self, trial_id: int) -> None:
        """Drop a pending suggestion without learning from it (e.g. a killed trial)."""
        self._pending.pop(trial_id, None)
        self.curves.pop(trial_id, None)

    def report(self, trial: int | Suggestion, step: int, value: float) -> None:
        """Record an intermediate value of the objective: a point of the trial's learning curve.

        Multi-fidelity strategies (``mobster``) learn from these; the others ignore them. A
        trial may report while pending and after it was told; a step reported again keeps
        the last value, and a non-finite value is ignored (a diverged epoch is not a level).

        Args:
            trial: The trial id or its :class:`Suggestion`.
            step: The step (e.g. the epoch), ``>= 0``.
            value: The objective's value at that step, in the user's units.

        Raises:
            ConfigError: ``step`` is not a whole number ``>= 0`` or ``value`` is not a number.
        """
        tid = _check_trial_id(trial.trial_id if isinstance(trial, Suggestion) else trial, "Optimizer.report")
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise ConfigError("Optimizer.report: step", "must be a whole number >= 0", step,
                              "pass the epoch or iteration the value was measured at, e.g. step=3.")
        number = _check_number(value, "Optimizer.report: value", "pass the objective's value at that step")
        if number is not None and math.isfinite(number):
            self.curves.setdefault(tid, {})[step] = number

    def tell(
        self,
        trial: int | Suggestion,
        value: float | Mapping[str, float] | None = None,
        *,
        state: TrialState | str | None = None,
        metrics: Mapping[str, float] | None = None,
    ) -> Observation:
        """Record the result of a suggested trial.

        The call is atomic: every argument is checked before anything changes, so a refused
        call leaves the suggestion pending and the corrected call can follow.

        Args:
            trial: The suggestion or its ``trial_id``.
            value: The objective value (a real number), or ``None`` if the trial gave none; with
                ``objectives``, ``{metric: value}`` for every objective (each value then as here;
                the observation keeps them in ``metrics`` and the first as ``value``).
                ``None``, NaN, infinity or a number beyond the float range records the trial as
                failed (state ``nonfinite``, with a ``RuntimeWarning`` for a non-finite
                number), so the optimiser learns to avoid it, as when a study's trial returns one.
            state: The terminal state, a :class:`~autotune.trial.TrialState` or its name
                (default: ``completed``; ``nonfinite`` without a finite value). A failure
                state drops the value; ``killed`` is not learned from.
            metrics: Other final metrics by name (constraint metrics, the cost metric), numbers.

        Returns:
            The recorded observation.

        Raises:
            ConfigError: ``trial`` is not pending (told twice, or never asked), or ``value``,
                ``state`` or ``metrics`` is malformed; the message names the argument, the
                value and the fix.
        """
        tid = _check_trial_id(trial, "Optimizer.tell: trial")
        if tid not in self._pending:
            told = any(o.trial_id == tid for o in self.observations)
            why = "was already told" if told else "was never asked (or was forgotten)"
            pending = sorted(self._pending)
            raise ConfigError(
                "Optimizer.tell: trial", f"must be a pending trial; trial {tid} {why}", tid,
                f"tell one of the pending trials {_short(pending)}, or record a point that was not asked "
                "for with Optimizer.add(params, value).",
            )
        obs = self._observation(self._pending[tid].params, value, state, metrics, tid, "Optimizer.tell")
        del self._pending[tid]
        return self._learn(obs)

    def add(
        self,
        params: Mapping[str, Any],
        value: float | Mapping[str, float] | None,
        *,
        state: TrialState | str | None = None,
        metrics: Mapping[str, float] | None = None,
        trial_id: int | None = None,
    ) -> Observation:
        """Record an observation that was not asked for (prior data, an external measurement, resume).

        Arguments as in :meth:`tell`; checked before anything changes.
        """
        params = self.space.validate(params)
        if trial_id is not None:
            trial_id = _check_trial_id(trial_id, "Optimizer.add: trial_id")
        obs = self._observation(params, value, state, metrics, -1, "Optimizer.add")
        obs.trial_id = self._take_id(trial_id)
        return self._learn(obs)

    def _take_id(self, trial_id: int | None) -> int:
        if trial_id is None:
            trial_id = self._next_id
        self._next_id = max(self._next_id, int(trial_id) + 1)
        return int(trial_id)

    def _observation(
        self, params: dict[str, Any], value: Any, state: Any, metrics: Any, tid: int, where: str,
    ) -> Observation:
        """Check a result and build its observation; changes nothing.

        Raises:
            ConfigError: for a malformed ``value``, ``state`` or ``metrics``.
        """
        st = _check_state(state, f"{where}: state")
        final = _check_metrics(metrics, f"{where}: metrics")
        if self.objectives and (isinstance(value, Mapping) or self.multi_objective):
            from autotune.objectives import check_objective_values

            number, values = check_objective_values(value, self.objectives, f"{where}: value")
            if number is not None and any(not math.isfinite(v) for v in values.values()):
                bad = {k: v for k, v in values.items() if not math.isfinite(v)}
                value, number = bad, math.nan  # warned about below, recorded as nonfinite
            if not TrialState(st).is_failure and number is not None and math.isfinite(number):
                final.update(values)
        else:
            number = _check_number(value, f"{where}: value", "the objective value (a number), or None if the trial "
                                   "gave none; pass other results as metrics={'name': number}")
        if st == TrialState.COMPLETED and (number is None or not math.isfinite(number)):
            if number is not None:
                warnings.warn(f"trial {tid}: the objective value {reprlib.repr(value)} is not a finite float; the trial is "
                              "recorded as failed (state nonfinite).", RuntimeWarning, stacklevel=3)
            st = TrialState.NONFINITE
        if st.is_failure or (number is not None and not math.isfinite(number)):
            number = None
        return Observation(dict(params), number, st, final, tid)

    def _learn(self, obs: Observation) -> Observation:
        if obs.state != TrialState.KILLED:  # a stopped run says nothing about its configuration
            self.observations.append(obs)
        return obs

    def best(self) -> Observation | None:
        """The best completed observation that satisfies every constraint (on the first objective; a
        pruned trial's partial value is not a result)."""
        return best_feasible(self.observations, self.constraints, minimize=self.minimize,
                             value=lambda o: o.value if o.state is TrialState.COMPLETED else None)

    # -- several objectives ----------------------------------------------------------------------
    def _objective_matrix(self, obs: Sequence[Observation]) -> Tensor:
        """`n x M` objective values, maximised (``nan`` where a trial gave none)."""
        import torch

        from autotune.objectives import oriented

        rows = [[_metric(o, m.metric) if o.value is not None else math.nan for m in self.objectives] for o in obs]
        return oriented(torch.tensor(rows, dtype=torch.float64).reshape(len(obs), len(self.objectives)), self.objectives)

    def _feasible_observations(self) -> list[Observation]:
        return [o for o in self.observations if o.value is not None and not o.state.is_failure
                and feasible(o.metrics, self.constraints)]

    def pareto_front(self) -> list[Observation]:
        """The feasible completed observations that no other feasible one dominates, in trial order.

        Raises:
            ConfigError: the optimiser has fewer than two objectives.
        """
        self._need_multi("pareto_front")
        from autotune.objectives import non_dominated

        obs = self._feasible_observations()
        mask = non_dominated(self._objective_matrix(obs)).tolist()
        return [o for o, m in zip(obs, mask) if m]

    def reference_point(self) -> dict[str, float] | None:
        """The hypervolume's reference point by metric in the user's units: the given one, else
        inferred from the feasible observations (nadir of the front minus 10 % of its range);
        ``None`` before any feasible observation."""
        self._need_multi("reference_point")
        if self._reference_point is not None:
            return dict(self._reference_point)
        ref = self._ref_point_oriented()
        if ref is None:
            return None
        return {o.metric: o.sign * float(r) for o, r in zip(self.objectives, ref.tolist())}

    def _ref_point_oriented(self) -> Tensor | None:
        import torch

        from autotune.objectives import infer_reference_point

        if self._reference_point is not None:
            return torch.tensor([o.sign * self._reference_point[o.metric] for o in self.objectives], dtype=torch.float64)
        Y = self._objective_matrix(self._feasible_observations())
        Y = Y[torch.isfinite(Y).all(-1)]
        return infer_reference_point(Y) if len(Y) else None

    def hypervolume(self, history: bool = False) -> float | list[float]:
        """The hypervolume of the feasible observations above :meth:`reference_point`.

        Args:
            history: Return the hypervolume after each observation in turn instead (infeasible
                and failed ones repeat the previous value).
        """
        self._need_multi("hypervolume")
        import torch

        from autotune.objectives import hypervolume

        ref = self._ref_point_oriented()
        ok = [o.value is not None and not o.state.is_failure and feasible(o.metrics, self.constraints)
              for o in self.observations]
        if ref is None:
            return [0.0] * len(self.observations) if history else 0.0
        Y = self._objective_matrix(self.observations)
        Y[~torch.tensor(ok, dtype=torch.bool).reshape(-1)] = math.nan
        if not history:
            return hypervolume(Y, ref)
        return [hypervolume(Y[: i + 1], ref) for i in range(len(Y))]

    def _need_multi(self, what: str) -> None:
        if not self.multi_objective:
            raise ConfigError(f"Optimizer.{what}", "needs two or more objectives", len(self.objectives),
                              "pass objectives=[Objective('val_loss', 'minimize'), Objective('latency_ms', 'minimize')].")

    # -- asking ------------------------------------------------------------------------------
    def ask(
        self, n: int = 1, *, candidates: Sequence[Mapping[str, Any]] | None = None, fixed: Mapping[str, Any] | None = None,
    ) -> list[Suggestion]:
        """Propose ``n`` new trials, distinct from each other, the history and the pending ones.

        Args:
            n: How many, from 1 to :data:`MAX_ASK`.
            candidates: Choose among these parameter dicts only (sample slots, positions a motor
                reaches); the observed and pending ones are left out. Model-based strategies
                score their acquisition on the candidates, a batch greedily.
            fixed: ``{name: value}`` held at these values while the other parameters are chosen
                (a conditional parameter is held where it is active).

        Returns:
            ``n`` suggestions, registered as pending.

        Raises:
            ConfigError: ``n`` is not an integer in that range, a candidate or fixed value is not
                in the space, or fewer than ``n`` candidates are left.
        """

        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_ASK:
            raise ConfigError("Optimizer.ask: n", f"must be an integer from 1 to {MAX_ASK:,}", n,
                              f"pass a whole number of points from 1 to {MAX_ASK:,} (call ask again for more).")
        from autotune.models import device_scope

        with device_scope(self.device):
            return self._ask(n, candidates, fixed)

    def _ask(self, n: int, candidates: Sequence[Mapping[str, Any]] | None,
             fixed: Mapping[str, Any] | None) -> list[Suggestion]:
        import torch

        ctx = self.context()
        seen = self._seen_keys()
        if candidates is not None or fixed is not None:
            from autotune.strategies import build_domain

            ctx.domain = build_domain(self.space, candidates, fixed, n=n, seen=seen)
        batch_id = self._batch
        self._batch += 1
        import gpytorch

        # Exact Cholesky solves up to 10k points: GPyTorch's default switches to iterative
        # CG/Lanczos above 800 points, which is slower and noisier at the sizes we see.
        with torch.random.fork_rng(), gpytorch.settings.max_cholesky_size(10_000):
            torch.manual_seed(ctx.seed)
            proposed = self._propose(ctx, n)
        chosen: list[Suggestion] = []
        points: list[list[float]] = []  # the chosen points in the model space, for the annotation
        for c, name, fallback in proposed:
            x = c.x
            outside = ctx.domain.restricted and not ctx.domain.allows(x)
            if outside:  # a strategy that ignores ctx.domain: moved into it
                x = ctx.domain.snap(x.unsqueeze(0))[0]
            params = ctx.domain.decode(x)  # the one decode of a proposal (given values kept exactly)
            info: dict[str, Any] = {"strategy": name, "batch_id": batch_id}
            if fallback or outside:
                info["fallback"] = fallback or "outside_domain"
            if c.acq_value is not None and math.isfinite(c.acq_value) and not outside:
                info["acq_value"] = c.acq_value
            key = self.space.key(params)
            if key in seen:
                params = self._fresh_point(ctx, seen, len(chosen))
                key = self.space.key(params)
                info["fallback"] = "duplicate"
                info.pop("acq_value", None)
            seen.add(key)
            points.append(self.space.encode(params))
            chosen.append(Suggestion(self._take_id(None), params, info))
        self._annotate(ctx, chosen, points)
        self._choose_warp(ctx)
        for s in chosen:
            self._pending[s.trial_id] = s
        return chosen

    def _propose(self, ctx: Context, n: int) -> list[tuple[Candidate, str, str | None]]:
        """``n`` candidates, each with the strategy that chose it and its fallback reason, if any
        (a batch may finish the initial design and start the model's points)."""
        proposed = len(ctx.X) + len(ctx.pending)
        strategy = self.strategy
        if self._design_due(proposed, ctx.n_ok):
            k = n if ctx.n_ok == 0 else min(n, self.n_initial - proposed)
            first = self._design(ctx, k)
            if k == n:
                return first
            import torch

            ctx.X_pending = torch.cat([ctx.pending, torch.stack([c.x for c, _, _ in first])])
            rest, name, fb = self._propose_model(ctx, n - k)
            return first + [(c, name, fb) for c in rest]
        if not strategy.model_based:
            return [(c, self.strategy_name, None) for c in strategy.ask(ctx, n)]
        cands, name, fb = self._propose_model(ctx, n)
        return [(c, name, fb) for c in cands]

    def _design(self, ctx: Context, k: int) -> list[tuple[Candidate, str, str | None]]:
        """``k`` initial-design points: the ``initial_design`` strategy's, or with the default Sobol
        design and a strategy that weighs a known cost, :func:`~autotune.strategies.cost_effective_design`'s."""
        from autotune.strategies import Candidate, cost_effective_design, get_strategy

        exponent = self.strategy.known_cost_exponent(ctx) if self.strategy.model_based else None
        if exponent and self.initial_design == "sobol" and ctx.domain.candidates is None:  # 0: the cost ignored
            return [(Candidate(x), "cost_effective_sobol", None) for x in cost_effective_design(ctx, k, exponent)]
        design = get_strategy(self.initial_design)
        return [(c, design.name, None) for c in design.ask(ctx, k)]

    def _propose_model(self, ctx: Context, n: int) -> tuple[list[Candidate], str, str | None]:
        from autotune.strategies import get_strategy

        try:
            return self.strategy.ask(ctx, n), self.strategy_name, None
        except ModelFitError as e:
            warnings.warn(f"{e} Proposing space-filling points instead.", RuntimeWarning, stacklevel=3)
            return get_strategy("diversity").ask(ctx, n), "diversity", "model_fit_failed"

    def _fresh_point(self, ctx: Context, seen: set[tuple[float, ...]], salt: int) -> dict[str, Any]:
        """A space-filling point not in ``seen`` (replaces a duplicate proposal), in ``ctx.domain``."""
        if ctx.domain.restricted:
            import torch

            busy = torch.cat([ctx.X, ctx.pending])
            x = ctx.domain.fresh(seen, busy, ctx.stable_seed(f"dup{salt}"))
            if x is None:
                warnings.warn("Every point with these fixed values was tried: returning a repeated point.",
                              RuntimeWarning, stacklevel=3)
                x = ctx.domain.snap(busy[-1:] if len(busy) else ctx.domain.bounds()[:1])[0]
            return ctx.domain.decode(x)
        for k in range(64):
            for p in self.space.sample(16, "sobol", seed=ctx.stable_seed(f"dup{salt}:{k}")):
                if self.space.key(p) not in seen:
                    return p
        warnings.warn("The search space looks exhausted: returning a repeated point.", RuntimeWarning, stacklevel=3)
        return self.space.sample(1, "random", seed=ctx.stable_seed(f"dup{salt}"))[0]

    def _choose_warp(self, ctx: Context) -> None:
        """Choose the output warp's exponent for the next ask by the evidence of this ask's GP
        (:func:`autotune.models.evidence_exponent`)."""
        model = ctx.models.built("objective")
        if ctx.warp is None or model is None:
            return
        from autotune.models import evidence_exponent

        ok = ctx.ok
        self._warp_lam = evidence_exponent(model, ctx.X[ok], ctx.warp.inverse(ctx.y[ok]), ctx.warp)

    def _annotate(self, ctx: Context, chosen: list[Suggestion], points: list[list[float]]) -> None:
        """Add the GP's predicted mean and standard deviation (objective units) to model-based proposals."""
        model = ctx.models.built("objective")
        if model is None or not chosen:
            return
        import torch

        from autotune.models import lean_posterior

        X = torch.tensor(points, dtype=torch.float64).unsqueeze(-2)  # each point its own posterior
        with torch.no_grad():  # from the GP's factor where the lean path covers it (GPyTorch's: ~2 ms an ask)
            mean, std = _unwarped(lean_posterior(model).posterior(X), ctx.warp, self.minimize)
        for s, m, sd in zip(chosen, mean, std):
            s.info["pred_mean"] = m
            s.info["pred_std"] = sd

    def context(self) -> Context:
        """The model-space view of the history handed to the strategy."""
        import torch

        from autotune.models import fit_output_warp
        from autotune.strategies import Context

        obs = self.observations
        space = self.space
        X = torch.tensor([space.encode(o.params) for o in obs], dtype=torch.float64).reshape(len(obs), space.dim)
        sign = -1.0 if self.minimize else 1.0
        y = torch.tensor([sign * o.value if o.value is not None else math.nan for o in obs], dtype=torch.float64)
        Y = self._objective_matrix(obs) if self.multi_objective else None
        failed = torch.tensor([o.state.is_failure for o in obs], dtype=torch.bool)
        curves = self._curves(sign) if self.strategy.uses_curves else None
        cvals = {
            c.metric: torch.tensor([_metric(o, c.metric) for o in obs], dtype=torch.float64) for c in self.constraints
        }
        cost = (
            torch.tensor([_metric(o, self.cost_metric) for o in obs], dtype=torch.float64) if self.cost_metric else None
        )
        warps = self.strategy.model_based and self.strategy.optimizes and not self.multi_objective
        warp = fit_output_warp(self.output_warp, y, self._warp_lam) if warps else None
        if warp is not None:  # the strategy sees the warped objective (the curves on the same scale)
            y = warp(y)
            if curves is not None:
                curves = replace(curves, y=warp(curves.y))
        pend = [space.encode(s.params) for s in self._pending.values()]
        X_pending = torch.tensor(pend, dtype=torch.float64).reshape(len(pend), space.dim)
        pruned = torch.tensor([o.state == TrialState.PRUNED for o in obs], dtype=torch.bool)
        used, init = self._budget_fractions(cost)
        seed = zlib.crc32(f"{self.seed}:{len(obs)}:{len(pend)}".encode()) & 0x7FFFFFFF
        return Context(
            space=space, X=X, y=y, failed=failed, fitter=self.fitter, constraint_values=cvals,
            constraints=self.constraints, cost=cost, X_pending=X_pending, seed=seed,
            budget_fraction_used=used, budget_fraction_initial=init, known_cost=self._bound_cost(),
            model_failures=self.model_failures, minimize=self.minimize, study_seed=self.seed,
            Y=Y, ref_point=self._ref_point_oriented() if self.multi_objective else None,
            pruned=pruned, curves=curves, warp=warp,
        )

    def _curves(self, sign: float) -> Curves:
        """The reported learning curves of the known trials, in the model space."""
        import torch

        from autotune.strategies import Curves

        params = {s.trial_id: s.params for s in self._pending.values()}
        params.update({o.trial_id: o.params for o in self.observations if o.trial_id is not None})
        rows = [(tid, step, v) for tid, curve in self.curves.items() if tid in params for step, v in curve.items()]
        X = [self.space.encode(params[tid]) for tid, _, _ in rows]
        return Curves(
            X=torch.tensor(X, dtype=torch.float64).reshape(len(rows), self.space.dim),
            step=torch.tensor([s for _, s, _ in rows], dtype=torch.float64),
            y=torch.tensor([sign * v for _, _, v in rows], dtype=torch.float64),
            trial=torch.tensor([tid for tid, _, _ in rows], dtype=torch.long),
        )

    def _bound_cost(self) -> Callable[[Tensor], Tensor] | None:
        """The known cost of model-space points now: a :class:`~autotune.strategies.KnownCost` is
        given the instrument's state (the last asked point, the history, the pending points)."""
        from autotune.strategies import CostState, KnownCost

        if not isinstance(self.known_cost, KnownCost):
            return self.known_cost
        asked = [*((o.trial_id, o.params) for o in self.observations), *((s.trial_id, s.params) for s in self.pending)]
        last = dict(max(asked, key=lambda t: t[0] if t[0] is not None else -1)[1]) if asked else None
        return self.known_cost.bind(CostState(last, tuple(self.observations), tuple(dict(s.params) for s in self.pending)))

    def _budget_fractions(self, cost: Tensor | None) -> tuple[float, float]:
        if not self.budget:
            return 0.0, 0.0
        n_init = min(self.n_initial, len(self.observations))
        if cost is not None:
            c = cost.nan_to_num(0.0).clamp_min(0.0)
            return float(c.sum()) / self.budget, float(c[:n_init].sum()) / self.budget
        return len(self.observations) / self.budget, n_init / self.budget

    def predict(self, params: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
        """The objective GP's mean and standard deviation (objective units) at some points.

        With ``model_failures``, the GP has seen each failed point at the worst observed value.
        """
        import gpytorch
        import torch

        from autotune.models import device_scope, gp_posterior

        with device_scope(self.device), torch.no_grad(), gpytorch.settings.max_cholesky_size(10_000):
            ctx = self.context()
            post = gp_posterior(ctx.objective_model(), torch.tensor([self.space.encode(p) for p in params],
                                                                    dtype=torch.float64))
            return _unwarped(post, ctx.warp, self.minimize)


def _unwarped(post: Any, warp: PowerWarp | None, minimize: bool) -> tuple[list[float], list[float]]:
    """A GP posterior's mean and standard deviation, in the objective's units
    (:meth:`~autotune.models.PowerWarp.unwarp_moments` under an output warp)."""
    mean = post.mean.reshape(-1)
    sd = post.variance.clamp_min(0).sqrt().reshape(-1)
    if warp is not None:
        mean, sd = warp.unwarp_moments(mean, sd)
    sign = -1.0 if minimize else 1.0
    return [sign * m for m in mean.tolist()], sd.tolist()


def _check_strategy_objectives(strategy: Strategy, name: str, n_objectives: int) -> None:
    """A model-based strategy must match the number of objectives (model-free ones work with any)."""
    multi = bool(getattr(strategy, "multi_objective", False))
    if n_objectives >= 2 and strategy.model_based and not multi:
        raise ConfigError("strategy", f"optimises one objective; this study has {n_objectives}", name,
                          "use qlognehvi (default), qnparego, mo_thompson, random or sobol.")
    if n_objectives < 2 and multi:
        raise ConfigError("strategy", "needs two or more objectives", name,
                          "pass objectives=[...] with two or more, or use a single-objective strategy such as ei.")


def feasible(metrics: Mapping[str, float], constraints: Sequence[OutcomeConstraint]) -> bool:
    """Whether final metrics satisfy every outcome constraint (a missing or non-finite metric does not).

    The one definition of a feasible trial: the optimiser's :meth:`Optimizer.best`, the study
    status and the strategies' incumbent (``Context.feasible``, the same rule over tensors)
    all follow it through :meth:`OutcomeConstraint.satisfied`.

    Args:
        metrics: A trial's final metrics by name.
        constraints: The outcome constraints.
    """
    return all(c.satisfied(metrics.get(c.metric)) for c in constraints)


_T = TypeVar("_T")


def best_feasible(
    trials: Iterable[_T],
    constraints: Sequence[OutcomeConstraint],
    *,
    minimize: bool,
    value: Callable[[_T], float | None] = lambda t: t.value,  # type: ignore[attr-defined]
    metrics: Callable[[_T], Mapping[str, float]] = lambda t: t.metrics,  # type: ignore[attr-defined]
) -> _T | None:
    """The trial with the best finite objective among the feasible ones (the first of equals).

    Args:
        trials: Observations, or any records with a value and metrics.
        constraints: The outcome constraints.
        minimize: Whether smaller is better.
        value: Reads a trial's objective (``None`` when it failed); default ``trial.value``.
        metrics: Reads a trial's final metrics; default ``trial.metrics``.

    Returns:
        The best feasible trial, or ``None`` if no trial is feasible.
    """
    best: _T | None = None
    best_v = math.inf
    sign = 1.0 if minimize else -1.0
    for t in trials:
        v = value(t)
        if v is None or not math.isfinite(v) or not feasible(metrics(t), constraints):
            continue
        if best is None or sign * v < best_v:
            best, best_v = t, sign * v
    return best


def _check_trial_id(trial: Any, where: str) -> int:
    if isinstance(trial, Suggestion):
        return trial.trial_id
    if isinstance(trial, bool) or not isinstance(trial, numbers.Integral):
        raise ConfigError(where, "must be a Suggestion or its integer trial_id", trial,
                          "pass the suggestion ask() returned, or its trial_id.")
    return int(trial)


_STATES = ", ".join(s.value for s in TrialState if s.is_finished)


def _check_state(state: Any, where: str) -> TrialState:
    if state is None:
        return TrialState.COMPLETED
    try:
        st = TrialState(state)
    except ValueError:
        raise ConfigError(where, f"must be a terminal trial state ({_STATES})", state,
                          "use e.g. state='failed', or leave it out for a completed trial.") from None
    if not st.is_finished:
        raise ConfigError(where, f"must be a terminal trial state ({_STATES}); {st.value} is not", state,
                          "tell a trial once it has finished, with the state it ended in.")
    return st


def _check_number(value: Any, where: str, fix: str) -> float | None:
    """``value`` as a float (``inf`` beyond the float range), ``None`` for ``None``."""
    if value is None:
        return None
    if isinstance(value, (bool, str, bytes)) or not isinstance(value, (numbers.Real, SupportsFloat)):
        raise ConfigError(where, "must be a real number or None", value, f"pass {fix}.")
    try:
        return float(value)
    except OverflowError:  # an integer beyond the float range, e.g. 10**400
        return math.inf if value > 0 else -math.inf  # type: ignore[operator]
    except (TypeError, ValueError) as e:
        raise ConfigError(where, f"must be a real number or None ({e})", value, f"pass {fix}.") from None


def _check_metrics(metrics: Any, where: str) -> dict[str, float]:
    if metrics is None:
        return {}
    if not isinstance(metrics, Mapping):
        raise ConfigError(where, "must be a mapping of metric names to numbers", metrics,
                          "pass e.g. metrics={'n_params': 1.2e6}.")
    out: dict[str, float] = {}
    for k, v in metrics.items():
        if not isinstance(k, str):
            raise ConfigError(where, "must have string keys (metric names)", k, "name each metric with a string.")
        number = _check_number(v, f"{where}[{k!r}]", "a number for each metric")
        out[k] = math.nan if number is None else number
    return out


def _short(ids: Sequence[int], limit: int = 10) -> str:
    if not ids:
        return "(none are pending: ask() first)"
    shown = ", ".join(str(i) for i in ids[:limit])
    return f"[{shown}]" if len(ids) <= limit else f"[{shown}, ...] ({len(ids)} in all)"


def _metric(o: Observation, name: str | None) -> float:
    if name is None:
        return math.nan
    v = o.metrics.get(name)
    return float(v) if v is not None else math.nan
