"""A study's history in autotune's terms, and moving it in and out of autotune studies.

:class:`History` is what the Optuna and Ax importers produce and what their exporters
consume: a search space, the finished trials as :class:`~autotune.trial.Observation` and the
direction. :func:`import_trials` lands a history in an :class:`~autotune.optimizer.Optimizer`
(through ``add``) or in a :class:`~autotune.study.Study`'s MLflow record (as finished trial
runs, so that ``Study.optimize`` rebuilds the optimiser from them like from any resumed
trial); :func:`study_history` reads either back.

Hand-written because it is glue: the record layout and the resume path are autotune's own.
Nothing here imports optuna, ax, torch or mlflow at module import.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Literal

from autotune.exceptions import ConfigError, SearchSpaceError
from autotune.trial import Observation, TrialResult, TrialState

if TYPE_CHECKING:
    from autotune.optimizer import Optimizer
    from autotune.space import SearchSpace
    from autotune.study import Study

__all__ = ["TAG_IMPORTED_FROM", "History", "import_trials", "study_history"]

TAG_IMPORTED_FROM = "autotune.imported_from"
"""Tag of a trial run written by :func:`import_trials`: where the observation came from."""

Direction = Literal["minimize", "maximize"]


@dataclasses.dataclass
class History:
    """Finished trials of a study, tool-neutral.

    Attributes:
        space: The search space every observation lies in.
        observations: Finished trials (completed ones with their value, failed ones with
            ``value=None`` and a failure state), in trial order.
        direction: ``minimize`` or ``maximize`` the objective.
        metric: The objective's name (Optuna studies have none: ``objective``).
        name: The study's or experiment's name, if any.
        source: Where it was read from (a storage URL, a file), for records and messages.
        objectives: For a multi-objective history, ``(metric, direction)`` of each objective
            (``metric`` and ``direction`` are then the first's); each completed observation
            holds every objective's value in ``metrics`` (``value`` is the first's). ``None``
            for one objective.
    """

    space: SearchSpace
    observations: list[Observation]
    direction: Direction = "minimize"
    metric: str = "objective"
    name: str | None = None
    source: str | None = None
    objectives: list[tuple[str, str]] | None = None

    def __post_init__(self) -> None:
        if self.direction not in ("minimize", "maximize"):
            raise ConfigError("History.direction", "must be minimize or maximize", self.direction,
                              "use direction='minimize'.")

    @property
    def completed(self) -> list[Observation]:
        """The observations with an objective value."""
        return [o for o in self.observations if o.value is not None]


def import_trials(target: Study | Optimizer, history: History) -> list[int]:
    """Add a history's finished trials to an optimiser or to a study's MLflow record.

    Every observation is checked against the target's space first; nothing is added unless
    all fit. Killed observations are skipped (no one learns from them).

    For a :class:`~autotune.study.Study`, each observation becomes a finished trial run
    (tagged :data:`TAG_IMPORTED_FROM`) after the record's last trial id; the objective value
    is stored under the study's objective metric. ``Study.optimize()`` then learns from them
    as from resumed trials (``autotune resume``: ``autotune run`` refuses a record that
    already holds trials). Imported trials count against ``budget.max_trials``.

    Args:
        target: An optimiser or a study.
        history: The trials to add.

    Returns:
        The trial ids the observations got, in order.

    Raises:
        ConfigError: The directions differ, or an observation does not fit the target's space.
        TrackingError: The study's record cannot be used, or a driver runs the study now.
    """
    from autotune.optimizer import Optimizer

    if isinstance(target, Optimizer):
        _check_fit(target.space, target.direction, history, "Optimizer",
                   [(o.metric, o.direction) for o in target.objectives] if target.multi_objective else None)
        names = [o.metric for o in target.objectives] if target.multi_objective else []
        return [
            target.add(o.params, _values(o, names), state=o.state,
                       metrics={k: v for k, v in o.metrics.items() if k not in names}).trial_id  # type: ignore[misc]
            for o in _learnable(history)
        ]
    return _import_into_study(target, history)


def study_history(source: Study | Optimizer) -> History:
    """The finished trials of an optimiser, or of a study's MLflow record, as a history.

    For a study, the latest run of each trial id counts; running, killed and re-queued
    trials are left out.

    Args:
        source: An optimiser or a study.

    Returns:
        The history (the objective metric's value as ``value``, the other final metrics
        as ``metrics``).

    Raises:
        ConfigError: The study has no record yet.
    """
    from autotune.optimizer import Optimizer

    if isinstance(source, Optimizer):
        obs = [dataclasses.replace(o, params=dict(o.params), metrics=dict(o.metrics)) for o in source.observations]
        if source.multi_objective:
            objs = [(o.metric, o.direction) for o in source.objectives]
            return History(source.space, obs, source.direction, objs[0][0], objectives=objs)  # type: ignore[arg-type]
        return History(source.space, obs, source.direction)  # type: ignore[arg-type]
    cfg = source.config
    record = source.record
    if not record.exists():
        raise ConfigError(f"study {cfg.name!r}", f"has no record in {cfg.resolved_tracking_uri}", None,
                          "run the study first, or check its name and output_dir.")
    metric = cfg.objective.metric
    observations = []
    for trial in record.trials():
        if not trial.state.is_finished or trial.state is TrialState.KILLED or trial.requeue:
            continue
        metrics = {k: v for k, v in trial.metrics.items() if k != metric or cfg.objectives}
        observations.append(Observation(dict(trial.params), trial.value(metric), trial.state, metrics, trial.trial_id))
    objectives: list[tuple[str, str]] | None = (
        [(o.metric, str(o.direction)) for o in cfg.objectives] if cfg.objectives else None)
    return History(cfg.search_space, observations, cfg.objective.direction, metric, cfg.name,
                   cfg.resolved_tracking_uri, objectives)


# -- helpers ---------------------------------------------------------------------------------


def _learnable(history: History) -> list[Observation]:
    return [o for o in history.observations if o.state is not TrialState.KILLED]


def _values(o: Observation, names: list[str]) -> float | dict[str, float] | None:
    """What ``Optimizer.add`` takes: the value, or ``{metric: value}`` of several objectives."""
    if not names or o.value is None:
        return o.value
    return {n: o.metrics[n] for n in names}


def _check_fit(space: SearchSpace, direction: str, history: History, where: str,
               objectives: list[tuple[str, str]] | None = None) -> None:
    """Raise unless every observation of ``history`` fits ``space`` and the objectives agree."""
    if [tuple(o) for o in history.objectives or []] != [tuple(o) for o in objectives or []]:
        raise ConfigError(
            f"{where}: objectives", f"are {objectives or 'one objective'} but the imported history "
            f"({history.source or history.name or 'given'}) has {history.objectives or 'one objective'}", None,
            "import trials with the same objectives (metric names and directions, in order).",
        )
    if objectives:
        names = [m for m, _ in objectives]
        for i, o in enumerate(_learnable(history)):
            if o.value is not None and any(n not in o.metrics for n in names):
                missing = next(n for n in names if n not in o.metrics)
                raise ConfigError(f"{where}: trial {o.trial_id if o.trial_id is not None else i}",
                                  f"has no value for the objective {missing!r}", None,
                                  "give every completed observation each objective in its metrics.")
    if history.direction != direction:
        raise ConfigError(
            f"{where}: direction", f"is {direction!r} but the imported history "
            f"({history.source or history.name or 'given'}) is {history.direction!r}", None,
            "import trials of an objective optimised the same way (negate the values to flip it).",
        )
    for i, o in enumerate(_learnable(history)):
        try:
            space.validate(o.params, where=f"trial {o.trial_id if o.trial_id is not None else i}")
        except SearchSpaceError as exc:
            raise ConfigError(
                f"{where}: space", f"does not fit an imported trial ({exc})", None,
                "import into a study whose space holds the history's space (History.space shows it).",
            ) from None


def _import_into_study(study: Study, history: History) -> list[int]:
    cfg = study.config
    _check_fit(cfg.search_space, cfg.objective.direction, history, f"study {cfg.name!r}",
               [(o.metric, o.direction) for o in cfg.objectives] if cfg.objectives else None)
    metric = cfg.objective.metric
    source = history.source or history.name or "import"
    record = study.record
    ids: list[int] = []
    with record.lock():  # no driver may write the record meanwhile
        record.open({"autotune.objective": metric, "autotune.direction": cfg.objective.direction})
        next_id = max((t.trial_id for t in record.trials()), default=-1) + 1
        try:
            for o in _learnable(history):
                params = cfg.search_space.validate(o.params)
                run_id = record.open_trial(next_id, params, tags={TAG_IMPORTED_FROM: source,
                                                                  "autotune.strategy": "import"})
                metrics = dict(o.metrics)
                if o.value is not None:
                    metrics[metric] = float(o.value)
                state = TrialState.COMPLETED if o.value is not None else (
                    o.state if o.state.is_failure else TrialState.NONFINITE)
                error = None if o.value is not None else f"imported {state.value} trial from {source}"
                record.finish_trial(run_id, TrialResult(next_id, state, metrics=metrics, error=error,
                                                        device="imported"))
                ids.append(next_id)
                next_id += 1
        finally:
            record.end("FINISHED")
    return ids
