"""Optuna: any autotune strategy as an Optuna sampler, and Optuna studies in and out of autotune.

* :class:`AutotuneSampler` runs an autotune strategy inside an Optuna study. Like Optuna's
  ``GPSampler``, the relative search space is the intersection of the completed trials'
  spaces; parameters outside it (define-by-run branches, changed ranges) are sampled by an
  independent sampler (``RandomSampler``). Completed trials are observations, failed ones
  (an exception or a NaN value) failed observations that the feasibility model learns from,
  running ones pending points, so the pending-aware batch strategies spread out parallel
  workers (``n_jobs``, or ``study.ask()`` from several processes on a shared storage: the
  relative sample is stored in the trial's system attributes, as ``GPSampler`` does).
  Optuna constraint values (``trial.set_constraint``) become outcome constraints ``<= 0``.
* :func:`load_study` reads an Optuna study (any storage URL) as a
  :class:`~autotune.integrations.History`; :func:`save_study` writes a history as a new
  Optuna study. :func:`space_from_distributions` and :func:`distributions_from_space` map
  the search spaces both ways.

Distributions map to autotune parameters as follows: a float to a ``Float`` (``log`` kept);
a stepped float to an ``Ordinal`` of its grid ``low + k * step`` (the formula Optuna's own
samplers use, so their values match exactly; a grid above 1000 points stays a ``Float`` and
proposals are rounded onto it); an int to an ``Int`` (``log``, ``step``); a categorical to a
``Categorical``; a single-valued one to a ``Fixed``.

Hand-written: the mapping and the trial bookkeeping (no library maps Optuna trials to
autotune observations). Reused: Optuna's ``BaseSampler`` contract, ``IntersectionSearchSpace``,
``RandomSampler`` and ``create_trial``. Importing this module needs the ``optuna`` extra.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import math
import secrets
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from autotune.exceptions import ConfigError, MissingExtraError
from autotune.integrations._history import History
from autotune.trial import Observation, TrialState

try:
    import optuna
    from optuna.distributions import (
        BaseDistribution,
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )
    from optuna.samplers import BaseSampler, RandomSampler
    from optuna.trial import FrozenTrial
    from optuna.trial import TrialState as OptunaState
except ImportError:  # pragma: no cover - exercised by a test that hides optuna
    raise MissingExtraError("optuna", "optuna") from None

if TYPE_CHECKING:
    from optuna.storages import BaseStorage
    from optuna.study import Study as OptunaStudy

    from autotune.models import GPFitter
    from autotune.space import SearchSpace

__all__ = [
    "AutotuneSampler",
    "distributions_from_space",
    "load_study",
    "save_study",
    "space_from_distributions",
]

logger = logging.getLogger(__name__)

RELATIVE_PARAMS_KEY = "autotune:relative_params"
"""Trial system attribute holding the relative sample (JSON, in chunks), read for running trials."""
INFO_KEY = "autotune:info"
"""Trial system attribute holding how the point was proposed (strategy, acquisition value, GP prediction)."""
SPACE_ATTR = "autotune_space"
"""Study user attribute written by :func:`save_study`: the autotune space, for an exact round trip."""
METRIC_ATTR = "autotune_metric"
"""Study user attribute written by :func:`save_study`: the objective's name."""
STATE_ATTR = "autotune_state"
OBJECTIVES_ATTR = "autotune_objectives"
"""Study user attribute of a multi-objective export: ``[[metric, direction], ...]``."""
"""Trial user attribute written by :func:`save_study` on a failed trial: its autotune state (``oom``...)."""
CONSTRAINT_PREFIX = "optuna_constraint."
"""Metric name prefix of Optuna constraint values inside the optimiser."""

_CHUNK = 2045  # RDBStorage keeps system attributes of at most 2045 characters
_MAX_GRID = 1000  # stepped floats with more points are modelled as continuous, then rounded


# -- distributions <-> search space ------------------------------------------------------------


@dataclass(frozen=True)
class _Codec:
    """How one Optuna parameter value maps to its autotune value and back (stepped floats only)."""

    low: float
    step: float
    high: float

    def snap(self, value: Any) -> float:
        k = round((float(value) - self.low) / self.step)
        return min(max(k * self.step + self.low, self.low), self.high)


def space_from_distributions(distributions: Mapping[str, BaseDistribution]) -> SearchSpace:
    """The autotune search space of some Optuna distributions.

    Args:
        distributions: Parameter name to distribution, e.g. a relative search space.

    Returns:
        The space, parameters in the given order.

    Raises:
        ConfigError: A distribution of an unknown kind.
    """
    return _space_and_codecs(distributions)[0]


def _space_and_codecs(distributions: Mapping[str, BaseDistribution]) -> tuple[SearchSpace, dict[str, _Codec]]:
    from autotune.space import (
        Categorical,
        Fixed,
        Float,
        Int,
        Ordinal,
        Parameter,
        SearchSpace,
    )

    params: list[Parameter] = []
    codecs: dict[str, _Codec] = {}
    for name, d in distributions.items():
        if not isinstance(d, (FloatDistribution, IntDistribution, CategoricalDistribution)):
            raise ConfigError(f"distributions.{name}", "is not a Float, Int or Categorical distribution",
                              type(d).__name__, "use trial.suggest_float, suggest_int or suggest_categorical.")
        if d.single():
            if isinstance(d, CategoricalDistribution):
                params.append(Fixed(name, value=d.choices[0]))
            elif isinstance(d, IntDistribution):
                params.append(Fixed(name, value=int(d.low)))
            else:
                params.append(Fixed(name, value=float(d.low)))
        elif isinstance(d, FloatDistribution) and d.step is not None:
            codec = _Codec(d.low, d.step, d.high)
            n = round((d.high - d.low) / d.step) + 1
            if n <= _MAX_GRID:
                params.append(Ordinal(name, values=tuple(codec.snap(d.low + k * d.step) for k in range(n))))
            else:
                params.append(Float(name, low=d.low, high=d.high))
            codecs[name] = codec
        elif isinstance(d, FloatDistribution):
            params.append(Float(name, low=d.low, high=d.high, log=d.log))
        elif isinstance(d, IntDistribution):
            params.append(Int(name, low=d.low, high=d.high, log=d.log, step=d.step))
        else:
            params.append(Categorical(name, choices=tuple(d.choices)))
    return SearchSpace(params, name="optuna"), codecs


def distributions_from_space(space: SearchSpace) -> dict[str, BaseDistribution]:
    """The Optuna distributions of an autotune search space (conditions are dropped).

    ``Float`` and ``Int`` keep their bounds, ``log`` and ``step``; an ``Ordinal`` of evenly
    spaced numbers becomes a stepped float or int distribution; ``Categorical``, other
    ``Ordinal``, ``Bool`` and ``Fixed`` become categorical distributions of their values.

    Args:
        space: The space.

    Returns:
        Parameter name to distribution.
    """
    from autotune.space import Bool, Categorical, Fixed, Float, Int, Ordinal

    out: dict[str, BaseDistribution] = {}
    for p in space:
        if isinstance(p, Float):
            out[p.name] = FloatDistribution(p.low, p.high, log=p.log)
        elif isinstance(p, Int):
            out[p.name] = IntDistribution(p.low, p.high, log=p.log, step=p.step)
        elif isinstance(p, Categorical):
            out[p.name] = CategoricalDistribution(p.choices)
        elif isinstance(p, Ordinal):
            out[p.name] = _stepped(p.values) or CategoricalDistribution(p.values)
        elif isinstance(p, Bool):
            out[p.name] = CategoricalDistribution((False, True))
        elif isinstance(p, Fixed):
            out[p.name] = CategoricalDistribution((p.value,))
    return out


def _stepped(values: Sequence[Any]) -> BaseDistribution | None:
    """A stepped Float/Int distribution of evenly spaced ascending numbers, else ``None``."""
    if not all(type(v) is type(values[0]) and type(v) in (int, float) for v in values):
        return None
    step = values[1] - values[0]
    if step <= 0 or any(not math.isclose(b - a, step, rel_tol=1e-9) for a, b in itertools.pairwise(values)):
        return None
    if isinstance(step, int):
        return IntDistribution(values[0], values[-1], step=step)
    dist = FloatDistribution(values[0], values[-1], step=step)
    return dist if all(_contains(dist, v) for v in values) else None


def _to_autotune(params: Mapping[str, Any], codecs: Mapping[str, _Codec]) -> dict[str, Any]:
    return {n: codecs[n].snap(v) if n in codecs else v for n, v in params.items()}


def _contains(distribution: BaseDistribution, value: Any) -> bool:
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


# -- the sampler -------------------------------------------------------------------------------


class AutotuneSampler(BaseSampler):
    """An Optuna sampler that proposes with an autotune strategy.

    Args:
        strategy: A strategy name (see :func:`autotune.strategies.strategy_names`), e.g.
            ``ei``, ``qei``, ``kriging_believer``, ``sobol``; for a multi-objective study
            (``optuna.create_study(directions=[...])``) ``qlognehvi``, ``qnparego`` or
            ``mo_thompson``. Default: ``ei``, or ``qlognehvi`` for a multi-objective study.
        seed: Seed of every random choice; the same seed and the same trials give the
            same proposals. ``None`` draws one.
        n_initial: Trials from the initial design before a model-based strategy takes over
            (default: autotune's, ``clip(d + 1, 5, 10)``, or ``2(d + 1)`` with several objectives).
        initial_design: ``sobol`` (default), ``random``, ``lhs`` or ``grid``.
        strategy_options: Options of the strategy.
        independent_sampler: Samples the parameters outside the relative search space
            (default ``RandomSampler(seed)``).
        warn_independent_sampling: Log a warning (once per parameter) when a parameter is
            sampled independently although completed trials exist.
        pruned: What a pruned trial teaches the strategy: ``ignore`` (default, as Optuna's
            ``GPSampler``), ``failed`` (a failed point), or ``last_value`` (its last
            intermediate value as the objective; ignored if it reported none, and in a
            multi-objective study, which reports no intermediate values).

    Example:
        >>> sampler = AutotuneSampler("kriging_believer", seed=0)
        >>> study = optuna.create_study(sampler=sampler)
        >>> study.optimize(objective, n_trials=30, n_jobs=4)  # doctest: +SKIP
    """

    def __init__(
        self,
        strategy: str | None = None,
        *,
        seed: int | None = None,
        n_initial: int | None = None,
        initial_design: str = "sobol",
        strategy_options: Mapping[str, Any] | None = None,
        independent_sampler: BaseSampler | None = None,
        warn_independent_sampling: bool = True,
        pruned: Literal["ignore", "failed", "last_value"] = "ignore",
    ) -> None:
        from autotune.strategies import get_strategy

        # Fail fast on a bad name or option. Without a name, the options must suit the default
        # of one of the study kinds (ei, or qlognehvi for several objectives), known on first use.
        try:
            get_strategy(strategy or "ei", dict(strategy_options or {}), where="AutotuneSampler.strategy")
        except ConfigError:
            if strategy is not None:
                raise
            get_strategy("qlognehvi", dict(strategy_options or {}), where="AutotuneSampler.strategy")
        if pruned not in ("ignore", "failed", "last_value"):
            raise ConfigError("AutotuneSampler.pruned", "must be ignore, failed or last_value", pruned,
                              "use pruned='ignore'.")
        self.strategy = strategy
        self.seed = int(seed) if seed is not None else secrets.randbelow(2**31)
        self.n_initial = n_initial
        self.initial_design = initial_design
        self.strategy_options = dict(strategy_options or {})
        self.pruned = pruned
        self.warn_independent_sampling = warn_independent_sampling
        self._independent_sampler = independent_sampler or RandomSampler(seed=seed)
        self._intersection = optuna.search_space.IntersectionSearchSpace()
        self._fitter: tuple[str, GPFitter] | None = None  # warm starts while the space is unchanged
        self._warned: set[str] = set()
        self._lock = threading.Lock()

    def __str__(self) -> str:
        return f"AutotuneSampler({self.strategy or 'ei'!r})"

    def reseed_rng(self) -> None:
        """Draw new seeds (Optuna calls this for each worker of ``n_jobs > 1``)."""
        self.seed = secrets.randbelow(2**31)
        self._independent_sampler.reseed_rng()

    def infer_relative_search_space(self, study: OptunaStudy, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        """The distributions every completed trial shares, single-valued ones left out."""
        return {n: d for n, d in self._intersection.calculate(study).items() if not d.single()}

    def sample_relative(
        self, study: OptunaStudy, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        """Ask the strategy for one point of ``search_space``, the running trials pending."""
        if not search_space:
            return {}
        with self._lock:
            params, info = self._ask(study, trial, search_space)
        text = json.dumps(params)
        storage = study._storage
        for i in range(0, len(text), _CHUNK):
            storage.set_trial_system_attr(trial._trial_id, f"{RELATIVE_PARAMS_KEY}:{i // _CHUNK}", text[i: i + _CHUNK])
        storage.set_trial_system_attr(trial._trial_id, INFO_KEY, json.dumps(info)[:_CHUNK])
        return params

    def sample_independent(
        self, study: OptunaStudy, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        """Sample a parameter outside the relative search space with the independent sampler."""
        if self.warn_independent_sampling and param_name not in self._warned:
            completed = study.get_trials(deepcopy=False, states=(OptunaState.COMPLETE,))
            if completed:
                self._warned.add(param_name)
                logger.warning(
                    "%s: parameter %r of trial %d is sampled independently by %s (it is not in every completed "
                    "trial with one distribution: a define-by-run branch or a changed range). Pass "
                    "warn_independent_sampling=False if that is intended.", self, param_name, trial.number,
                    type(self._independent_sampler).__name__,
                )
        return self._independent_sampler.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: OptunaStudy, trial: FrozenTrial) -> None:
        self._independent_sampler.before_trial(study, trial)

    def after_trial(
        self, study: OptunaStudy, trial: FrozenTrial, state: OptunaState, values: Sequence[float] | None
    ) -> None:
        self._independent_sampler.after_trial(study, trial, state, values)

    # -- internals ------------------------------------------------------------------------------

    def _ask(
        self, study: OptunaStudy, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        from autotune.optimizer import Optimizer

        space, codecs = _space_and_codecs(search_space)
        fixed = {n: p.default for n, p in space.parameters.items() if n not in space.columns}
        if space.dim == 0:
            return fixed, {"strategy": "fixed"}
        trials = [t for t in study.get_trials(deepcopy=False) if t._trial_id != trial._trial_id]
        constraint_names = sorted({c for t in trials if t.state == OptunaState.COMPLETE for c in t.constraints})
        dirs = ["maximize" if d.name == "MAXIMIZE" else "minimize" for d in study.directions]
        names = [f"objective_{i}" for i in range(len(dirs))] if len(dirs) > 1 else []
        opt = Optimizer(
            space, self.strategy, direction=dirs[0],  # type: ignore[arg-type]
            seed=self.seed, n_initial=self.n_initial, initial_design=self.initial_design,
            constraints=[f"{CONSTRAINT_PREFIX}{c} <= 0" for c in constraint_names],
            strategy_options=self.strategy_options,
            objectives=list(zip(names, dirs)) or None,  # type: ignore[arg-type]
        )
        key = repr(sorted(search_space.items()))
        if self._fitter is not None and self._fitter[0] == key:
            opt.fitter = self._fitter[1]
        self._fitter = (key, opt.fitter)
        for t in trials:
            params = _params_in(t, search_space)
            if params is None:
                continue
            params = _to_autotune(params, codecs)
            metrics = {CONSTRAINT_PREFIX + c: float(v) for c, v in t.constraints.items()}
            if t.state == OptunaState.RUNNING:
                opt.add_pending(params, trial_id=t.number)
            elif t.state == OptunaState.COMPLETE and names:
                opt.add(params, dict(zip(names, t.values)), metrics=metrics, trial_id=t.number)
            elif t.state == OptunaState.COMPLETE:
                opt.add(params, t.value, metrics=metrics, trial_id=t.number)
            elif t.state == OptunaState.FAIL or t.state == OptunaState.PRUNED and self.pruned == "failed":
                opt.add(params, None, state=TrialState.FAILED, trial_id=t.number)
            elif t.state == OptunaState.PRUNED and self.pruned == "last_value" and t.intermediate_values and not names:
                last = t.intermediate_values[max(t.intermediate_values)]
                opt.add(params, last, metrics=metrics, trial_id=t.number)
        held = _held(trial, space, codecs)
        if held and all(n in held for n in space.tunable):  # every parameter enqueued: nothing to choose
            return {n: held.get(n, fixed.get(n)) for n in search_space}, {"strategy": "enqueued"}
        (suggestion,) = opt.ask(1, fixed=held or None)
        params = {**fixed, **suggestion.params}
        params = {n: codecs[n].snap(params[n]) if n in codecs else params[n] for n in search_space}
        return params, suggestion.info


def _held(trial: FrozenTrial, space: SearchSpace, codecs: Mapping[str, _Codec]) -> dict[str, Any]:
    """The legal values a partial ``study.enqueue_trial({...})`` set for this trial's tunable parameters.

    Optuna uses them for the trial whatever the sampler proposes; the strategy holds them (the
    ``fixed`` of :meth:`autotune.optimizer.Optimizer.ask`) and chooses the other parameters for
    them. Values outside the space are left to Optuna.
    """
    given = _to_autotune({n: v for n, v in (trial.system_attrs.get("fixed_params") or {}).items()
                          if n in space.tunable}, codecs)
    return {n: v for n, v in given.items() if space.parameters[n].violation(v) is None}


def _params_in(trial: FrozenTrial, search_space: Mapping[str, BaseDistribution]) -> dict[str, Any] | None:
    """The trial's values of the search space's parameters, or ``None`` if it lacks one or one is outside.

    A running trial's relative sample (stored in its system attributes) stands in for the
    parameters it has not suggested yet.
    """
    params = dict(trial.params)
    if not trial.state.is_finished():
        chunks: list[str] = []
        while (chunk := trial.system_attrs.get(f"{RELATIVE_PARAMS_KEY}:{len(chunks)}")) is not None:
            chunks.append(chunk)
        if chunks:
            params = {**json.loads("".join(chunks)), **params}
    out = {}
    for name, d in search_space.items():
        if name not in params or not _contains(d, params[name]):
            return None
        out[name] = params[name]
    return out


# -- studies in and out ------------------------------------------------------------------------


def load_study(
    storage: str | BaseStorage,
    study_name: str | None = None,
    *,
    space: SearchSpace | None = None,
) -> History:
    """Read the finished trials of an Optuna study as a history (to import into autotune).

    Completed trials keep their value; failed ones become failed observations; pruned and
    running ones are left out. Numeric trial user attributes become metrics, constraint
    values metrics ``optuna_constraint.<name>``.

    The space is, in order: ``space``; the one :func:`save_study` stored with the study; or
    one inferred from the trials: each parameter's distribution (ranges that changed are
    widened to cover every trial; categorical choices merged), and a parameter that only
    some trials have becomes conditional on a categorical parameter whose values tell them
    apart (``when: {optimizer: [sgd]}``).

    Args:
        storage: An Optuna storage URL (``sqlite:///optuna.db``, ...) or storage object.
        study_name: The study; may be left out when the storage holds only one.
        space: The space to read the trials into (trials outside it are an error).

    Returns:
        The history.

    Raises:
        ConfigError: The study is multi-objective, or the space cannot be inferred.
    """
    from autotune.space import SearchSpace

    study = optuna.load_study(study_name=study_name, storage=storage)
    where = f"optuna study {study.study_name!r}"
    dirs = ["maximize" if d.name == "MAXIMIZE" else "minimize" for d in study.directions]
    names = [f"objective_{i}" for i in range(len(dirs))]
    stored_objs = study.user_attrs.get(OBJECTIVES_ATTR)
    if isinstance(stored_objs, list) and len(stored_objs) == len(dirs):
        names = [str(o[0]) for o in stored_objs]
    objectives = list(zip(names, dirs)) if len(dirs) > 1 else None
    trials = study.get_trials(deepcopy=False, states=(OptunaState.COMPLETE, OptunaState.FAIL))
    stored = study.user_attrs.get(SPACE_ATTR)
    if space is None and stored is not None:
        space = SearchSpace.from_dict(stored, source=f"{where}: user_attrs.{SPACE_ATTR}")
    codecs: dict[str, _Codec] = {}
    if space is None:
        space, codecs = _infer_space(trials, where)
    observations = []
    for t in trials:
        params = _to_autotune(t.params, codecs)
        metrics = {k: float(v) for k, v in t.user_attrs.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        metrics.update({CONSTRAINT_PREFIX + c: float(v) for c, v in t.constraints.items()})
        if t.state == OptunaState.COMPLETE and objectives and t.values is not None:
            metrics.update({n: float(v) for n, v in zip(names, t.values)})
            observations.append(Observation(params, float(t.values[0]), TrialState.COMPLETED, metrics, t.number))
            continue
        if t.state == OptunaState.COMPLETE and not objectives and t.value is not None:
            observations.append(Observation(params, float(t.value), TrialState.COMPLETED, metrics, t.number))
            continue
        try:
            params = space.validate(params, where=f"{where}: trial {t.number}.params")
        except ConfigError:
            continue  # a trial that failed before suggesting every parameter: nothing to learn
        state = TrialState(t.user_attrs.get(STATE_ATTR, "failed"))
        observations.append(Observation(params, None, state if state.is_failure else TrialState.FAILED, metrics,
                                        t.number))
    for o in observations:
        space.validate(o.params, where=f"{where}: trial {o.trial_id}.params")
    metric = names[0] if objectives else str(study.user_attrs.get(METRIC_ATTR, "objective"))
    return History(space, observations, dirs[0], metric, study.study_name,  # type: ignore[arg-type]
                   storage if isinstance(storage, str) else None, objectives)


def save_study(
    history: History,
    storage: str | BaseStorage | None = None,
    study_name: str | None = None,
    *,
    load_if_exists: bool = False,
) -> OptunaStudy:
    """Write a history as finished trials of an Optuna study (to continue it in Optuna).

    Completed observations become ``COMPLETE`` trials with their value, failed ones ``FAIL``
    trials (their autotune state in the user attribute ``autotune_state``); killed ones
    are left out. Metrics become trial user attributes; the autotune space and the metric
    name are stored as study user attributes so :func:`load_study` reads the study back
    exactly. A multi-objective history becomes a study with one direction per objective
    (the values in order, the objectives' names in the study user attribute
    ``autotune_objectives``).

    Args:
        history: The trials (e.g. from :func:`autotune.integrations.study_history`).
        storage: An Optuna storage URL or object (``None``: in memory).
        study_name: The new study's name (default: the history's).
        load_if_exists: Add to an existing study of that name instead of refusing.

    Returns:
        The Optuna study.
    """
    distributions = distributions_from_space(history.space)
    objs = history.objectives or []
    study = optuna.create_study(storage=storage, study_name=study_name or history.name,
                                directions=[d for _, d in objs] or [history.direction],  # type: ignore[misc]
                                load_if_exists=load_if_exists)
    study.set_user_attr(SPACE_ATTR, json.loads(json.dumps(history.space.to_dict())))
    study.set_user_attr(METRIC_ATTR, history.metric)
    if objs:
        study.set_user_attr(OBJECTIVES_ATTR, [list(o) for o in objs])
    names = [m for m, _ in objs]
    trials = []
    for o in history.observations:
        if o.state is TrialState.KILLED:
            continue
        params = history.space.validate(o.params, where=f"history trial {o.trial_id}.params")
        attrs: dict[str, Any] = {k: v for k, v in o.metrics.items()
                                 if not k.startswith(CONSTRAINT_PREFIX) and math.isfinite(v) and k not in names}
        ok = o.value is not None and math.isfinite(o.value)
        values = [o.metrics.get(n, math.nan) for n in names] if ok and names else None
        ok = ok and (values is None or all(math.isfinite(v) for v in values))
        if not ok:
            attrs[STATE_ATTR] = o.state.value if o.state.is_failure else TrialState.NONFINITE.value
        trials.append(optuna.trial.create_trial(
            state=OptunaState.COMPLETE if ok else OptunaState.FAIL,
            value=o.value if ok and not names else None,
            values=values if ok else None,
            params=params,
            distributions={n: distributions[n] for n in params},
            user_attrs=attrs,
        ))
    study.add_trials(trials)
    return study


def _infer_space(trials: Sequence[FrozenTrial], where: str) -> tuple[SearchSpace, dict[str, _Codec]]:
    """A space covering every trial's distributions, with conditions for parameters some trials lack."""
    from autotune.space import Condition, SearchSpace

    if not trials:
        raise ConfigError(where, "has no completed or failed trials to import", None, "run some trials first.")
    merged: dict[str, BaseDistribution] = {}
    for t in trials:
        for name, d in t.distributions.items():
            merged[name] = d if name not in merged else _merge(merged[name], d, f"{where}: parameter {name!r}")
    space, codecs = _space_and_codecs(merged)
    # A failed trial may have stopped before suggesting everything: completed ones tell the branches.
    complete = [t for t in trials if t.state == OptunaState.COMPLETE] or list(trials)
    everywhere = [n for n in merged if all(n in t.params for t in complete)]
    params = list(space)
    for i, p in enumerate(params):
        if p.name in everywhere:
            continue
        parents = [n for n in everywhere if isinstance(merged[n], CategoricalDistribution)]
        cond = _condition_for(p.name, complete, parents)
        if cond is None:
            raise ConfigError(
                f"{where}: parameter {p.name!r}", "is in only some trials and no categorical parameter tells "
                "which", None, "pass space= (a SearchSpace with the condition that makes it active).",
            )
        params[i] = dataclasses.replace(p, conditions=(Condition(cond[0], "in", cond[1]),))
    return SearchSpace(params, name="optuna"), codecs


def _condition_for(name: str, trials: Sequence[FrozenTrial], parents: Sequence[str]) -> tuple[str, tuple[Any, ...]] | None:
    for parent in parents:
        with_it = {json.dumps(t.params[parent]): t.params[parent] for t in trials if name in t.params}
        without = {json.dumps(t.params[parent]) for t in trials if name not in t.params}
        if with_it and not set(with_it) & without:
            return parent, tuple(with_it.values())
    return None


def _merge(a: BaseDistribution, b: BaseDistribution, where: str) -> BaseDistribution:
    """One distribution covering ``a`` and ``b`` (a changed range is widened)."""
    if a == b:
        return a
    if isinstance(a, CategoricalDistribution) and isinstance(b, CategoricalDistribution):
        return CategoricalDistribution(list(a.choices) + [c for c in b.choices if c not in a.choices])
    same = type(a) is type(b) and getattr(a, "log", None) == getattr(b, "log", None)
    same = same and getattr(a, "step", None) == getattr(b, "step", None)
    if same and isinstance(a, (FloatDistribution, IntDistribution)) and isinstance(b, type(a)):
        low, high = min(a.low, b.low), max(a.high, b.high)
        if isinstance(a, IntDistribution):
            return IntDistribution(int(low), int(high), log=a.log, step=a.step)
        if a.step is not None and (b.low - a.low) / a.step != round((b.low - a.low) / a.step):
            raise ConfigError(where, "has stepped ranges on different grids", f"{a} and {b}",
                              "pass space= with the grid to use.")
        return FloatDistribution(low, high, log=a.log, step=a.step)
    raise ConfigError(where, "has distributions of different kinds in different trials", f"{a} and {b}",
                      "pass space= with the distribution to use.")
