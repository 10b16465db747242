"""Ask/tell from outside the driver: an instrument computer (or any script) runs the trials.

:class:`RemoteStudy` is the study of a study file without an executor: :meth:`RemoteStudy.ask`
proposes the next point and opens its trial run in MLflow, the caller measures it, and
:meth:`RemoteStudy.tell` closes the run with the result. Every call reads the study back from
its MLflow record and rebuilds the optimiser from it, exactly as resume does, so the record is
the only state: the instrument computer (or this process) can restart at any time, and a
point asked for and never told stays *pending* (its run stays ``RUNNING``) until it is told.
One call at a time holds the record's lock (per tracking URI + experiment, shared with
``autotune run``; an ask or tell waits up to :data:`LOCK_WAIT_S` for another one), so two
callers never take the same trial id.

The ``autotune ask`` and ``autotune tell`` commands are this class, one call per command.
Every read and write goes through :class:`~autotune.study.StudyRecord`, as the driver's do.

Note that ``autotune run``/``resume`` on the same study closes pending ask/tell trials as
orphans (its ``on_orphans`` rule): tell every asked point before handing a study to a driver.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ConfigError, TrialError
from autotune.study._config import StudyConfig, load_study_config
from autotune.study._fitstate import load_fit_state, save_fit_state
from autotune.study._record import (
    TAG_ASK_TELL,
    BestTrial,
    StudyRecord,
    StudyStatus,
    is_pending,
)
from autotune.trial import Observation, TrialResult, TrialState

if TYPE_CHECKING:
    from torch import Tensor

    from autotune.optimizer import Optimizer
    from autotune.strategies import KnownCost

__all__ = ["RemoteStudy"]

logger = logging.getLogger(__name__)

LOCK_WAIT_S = 30.0
"""How long an ask or tell waits for another one to release the record's lock."""

PLOTS_EVERY = 10
"""Default of ``plots_every``: tells between two refreshes of the study plots and the live map
(the driver's cadence, :data:`autotune.study._study.PLOTS_EVERY`)."""


class RemoteStudy:
    """A study driven from outside through ask and tell, with its state in MLflow.

    Args:
        config: The validated study config (its ``trial`` section is not used).
        known_cost: A known cost in place of the study file's ``known_cost``: a
            :class:`~autotune.strategies.KnownCost` or a function of model-space points (`... x d`
            to `...`), for ``cost: known`` and ``ei_per_cost`` (e.g. the motor time from where the
            instrument stands now).
        plots_every: Redraw the study plots and, for a 1-D or 2-D space, the live map of the
            posterior (``plots/posterior_map.png`` in the study run) after every this-many
            finished trials; ``1`` refreshes the map at each tell, ``0`` never.

    Example:
        >>> study = RemoteStudy.from_file("studies/beamline/study.yaml")  # doctest: +SKIP
        >>> trial_id, params = study.ask()  # doctest: +SKIP
        >>> study.tell(trial_id, measure(**params), metrics={"instrument_s": 3.2})  # doctest: +SKIP
    """

    def __init__(
        self, config: StudyConfig, *, known_cost: Callable[[Tensor], Tensor] | KnownCost | None = None,
        plots_every: int = PLOTS_EVERY,
    ) -> None:
        if isinstance(plots_every, bool) or not isinstance(plots_every, int) or plots_every < 0:
            raise ConfigError("RemoteStudy: plots_every", "must be an integer >= 0", plots_every,
                              "use plots_every=1 to redraw the map at each tell, or 0 for never.")
        self.config = config
        self.known_cost = known_cost
        self.plots_every = plots_every

    @classmethod
    def from_file(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> RemoteStudy:
        """The ask/tell study of a study file (see :func:`~autotune.study.load_study_config`)."""
        return cls(load_study_config(path, overrides))

    # -- ask and tell ---------------------------------------------------------------------------

    def ask(
        self, *, candidates: Sequence[Mapping[str, Any]] | None = None, fixed: Mapping[str, Any] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Propose the next point and record it as a pending (``RUNNING``) trial.

        Pending points from earlier asks, this process's or another's, are taken into account
        (the new point differs from them, and the GP is conditioned on them).

        Args:
            candidates: Choose among these parameter dicts only (sample slots, reachable motor
                positions); the measured and pending ones are left out.
            fixed: ``{name: value}`` held at these values (e.g. the temperature set now).

        Returns:
            ``(trial_id, params)``: tell the result with this ``trial_id``.

        Raises:
            TrialError: The study's ``budget.max_trials`` is spent.
            ConfigError: A candidate or fixed value is not in the space, or no candidate is left
                (see :meth:`autotune.optimizer.Optimizer.ask`).
        """
        with _session(self.config) as session:
            record = session.record
            optimizer = self._optimizer(record)
            max_trials = self.config.budget.max_trials
            n_trials = len(optimizer.observations) + len(optimizer.pending)
            if max_trials is not None and n_trials >= max_trials:
                raise TrialError(
                    f"{record.where}: budget.max_trials ({max_trials}) is spent: the record holds {n_trials} trials "
                    f"({len(optimizer.pending)} pending). Fix: raise budget.max_trials to ask for more."
                )
            load_fit_state(record, optimizer)  # warm: the hyperparameters of the last ask
            (suggestion,) = optimizer.ask(1, candidates=candidates, fixed=fixed)
            save_fit_state(record, optimizer)
            record.open_suggestion(suggestion, {TAG_ASK_TELL: "true"})
            session.points_out = True
            return suggestion.trial_id, dict(suggestion.params)

    def tell(
        self,
        trial_id: int,
        value: float | Mapping[str, float] | None,
        *,
        metrics: Mapping[str, float] | None = None,
        state: TrialState | str | None = None,
    ) -> Observation:
        """Record the result of a pending trial and close its run.

        Args:
            trial_id: The id :meth:`ask` returned.
            value: The objective value; ``None`` or non-finite records a failure. With
                ``objectives:``, ``{metric: value}`` for every objective.
            metrics: Other final metrics (constraint metrics, the cost metric).
            state: The terminal state (default: ``completed``, ``nonfinite`` for a non-finite
                value, ``failed`` for ``None``).

        Returns:
            The observation as the optimiser learns it.

        Raises:
            ConfigError: ``trial_id`` is not a pending trial of the study, or ``state`` is not
                a terminal state.
        """
        if self.config.objectives:
            from autotune.objectives import Objective, check_objective_values

            objs = [Objective(o.metric, o.direction) for o in self.config.objectives]
            first, values = check_objective_values(value, objs, "tell: value")
            final_state = _final_state(None if first is None else min(values.values(), key=_nonfinite_first), state)
        else:
            values = {}
            final_state = _final_state(value, state)  # type: ignore[arg-type]
        with _session(self.config) as session:
            record = session.record
            trials = record.trials()
            trial = next((t for t in trials if t.trial_id == int(trial_id)), None)
            pending = [t.trial_id for t in trials if is_pending(t)]
            if trial is None or not is_pending(trial):
                how = "is not in the record" if trial is None else f"was already told ({trial.state.value})"
                raise ConfigError(
                    f"{record.where}: trial_id", f"must be a pending trial of study {self.config.name!r}; "
                    f"trial {trial_id} {how}", trial_id,
                    f"tell one of the pending trials {pending} (printed by `autotune ask`), or ask for a new one.",
                )
            objective = self.config.objective.metric
            final = {k: float(v) for k, v in (metrics or {}).items()}
            if values:
                final.update(values)
            elif value is not None:
                final[objective] = float(value)  # type: ignore[arg-type]
            start_ms = record.tracker.client.get_run(trial.run_id).info.start_time or 0
            now = time.time()
            result = TrialResult(
                trial_id=trial.trial_id, state=final_state, metrics=final, device="external",
                duration_s=max(now - start_ms / 1000.0, 0.0), start_time=start_ms / 1000.0, end_time=now,
            )
            optimizer = self._optimizer(record)
            obs = record.finish_trial(trial.run_id, result, optimizer)
            assert obs is not None  # an optimiser was given
            session.points_out = len(pending) > 1  # the others stay out
            if self.plots_every and len(optimizer.observations) % self.plots_every == 0:
                load_fit_state(record, optimizer)  # the map's GP starts from the last ask's fit
                self._plots(record, optimizer)
            return obs

    def posterior(self, points: Sequence[Mapping[str, Any]]) -> tuple[list[float], list[float]]:
        """The objective GP's mean and standard deviation at some points, in the objective's units.

        The GP of :meth:`autotune.optimizer.Optimizer.predict` over every finished trial in the
        record (with several objectives, the first one's).

        Args:
            points: Parameter dicts of the space.

        Returns:
            ``(mean, std)``, one value per point.

        Raises:
            ConfigError: A point is not in the space, or nothing has completed yet.
        """
        space = self.config.search_space
        checked = [space.validate(p, where=f"posterior: points[{i}]") for i, p in enumerate(points)]
        record = StudyRecord(self.config)
        optimizer = self._optimizer(record) if record.exists() else None
        if optimizer is None or not any(o.value is not None for o in optimizer.observations):
            raise ConfigError("posterior", f"needs a completed measurement of study {self.config.name!r}", 0,
                              "tell a result first (RemoteStudy.tell or `autotune tell`).")
        return optimizer.predict(checked) if checked else ([], [])

    # -- reading --------------------------------------------------------------------------------

    def pending(self) -> dict[int, dict[str, Any]]:
        """The trials asked for and not yet told: ``{trial_id: params}``, from the record."""
        return {t.trial_id: dict(t.params) for t in StudyRecord(self.config).trials() if is_pending(t)}

    def observations(self) -> list[Observation]:
        """The finished trials as the optimiser learns them, from the record."""
        record = StudyRecord(self.config)
        return self._optimizer(record).observations if record.exists() else []

    def status(self) -> StudyStatus:
        """Trial counts per state and the best trial (as ``autotune status``)."""
        return StudyRecord(self.config).status()

    def best(self) -> BestTrial | None:
        """The best feasible completed trial, or ``None``."""
        return self.status().best

    # -- helpers --------------------------------------------------------------------------------

    def _plots(self, record: StudyRecord, optimizer: Optimizer) -> None:
        """Redraw the study plots and the live map in the study run (never fails a tell)."""
        from autotune.tracking import refresh_posterior_map, refresh_study_plots

        cfg = self.config
        try:
            refresh_study_plots(record.tracker, record.trials(), cfg.objective.direction, cfg.objective.metric,
                                objectives=[(o.metric, o.direction) for o in cfg.objectives or []])
            refresh_posterior_map(record.tracker, optimizer, cfg.objective.metric)
        except Exception as exc:  # noqa: BLE001 (plots must never stop a measurement)
            logger.warning("the study plots could not be drawn: %s", exc)

    def _optimizer(self, record: StudyRecord) -> Optimizer:
        """The optimiser of the study taught the record: finished trials told, open ones pending."""
        optimizer = record.new_optimizer(known_cost=self.known_cost)  # else the study file's known_cost
        record.rebuild(optimizer, pending=True)  # re-queued trials (closed by `autotune resume`) are skipped
        return optimizer


@dataclasses.dataclass
class _Session:
    """An open ask or tell: the record, and whether points are out after it (``None``: read the record)."""

    record: StudyRecord
    points_out: bool | None = None


@contextlib.contextmanager
def _session(config: StudyConfig) -> Iterator[_Session]:
    """One ask or tell: the record's lock held, the record opened (created on the first ask).

    On the way out the study run is left ``RUNNING`` while points are out, else ``FINISHED``:
    as the caller says when it completed (an ask leaves one out), else as the record shows (one
    more read of every trial, 0.25 s at 200 trials on SQLite).
    """
    record = StudyRecord(config)
    with record.lock(wait_s=LOCK_WAIT_S):
        record.open({"autotune.objective": config.objective.metric, "autotune.direction": config.objective.direction,
                     "autotune.executor": "ask/tell", TAG_ASK_TELL: "true"}, create=False)
        session = _Session(record)
        try:
            yield session
        finally:
            out = session.points_out
            if out if out is not None else any(is_pending(t) for t in record.trials()):
                record.tracker.client.update_run(record.tracker.parent_run_id, status="RUNNING")
            else:
                record.end("FINISHED")


def _nonfinite_first(v: float) -> float:
    """Sort key putting a non-finite value first (so one stands for all in :func:`_final_state`)."""
    return -math.inf if not math.isfinite(v) else 0.0


def _final_state(value: float | None, state: TrialState | str | None) -> TrialState:
    if state is not None:
        try:
            final = TrialState(state)
        except ValueError:
            final = None
        if final is None or not final.is_finished:
            valid = ", ".join(s.value for s in TrialState if s.is_finished)
            raise ConfigError("tell: state", "must be a terminal trial state", str(state), f"use one of: {valid}.")
        return final
    if value is None:
        return TrialState.FAILED
    return TrialState.COMPLETED if math.isfinite(float(value)) else TrialState.NONFINITE
