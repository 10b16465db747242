"""Ask/tell from outside the driver: an instrument computer (or any script) runs the trials.

:class:`RemoteStudy` is the study of a study file without an executor: :meth:`RemoteStudy.ask`
proposes the next point and opens its trial run in MLflow, the caller measures it, and
:meth:`RemoteStudy.tell` closes the run with the result. Every call reads the study back from
its MLflow record and rebuilds the optimiser from it, exactly as resume does, so the record is
the only state: the instrument computer (or this process) can restart at any time, and a
point asked for and never told stays *pending* (its run stays ``RUNNING``) until it is told.
One call at a time holds the study's lock (``output_dir/driver.lock``, shared with
``autotune run``), so two callers never take the same trial id.

The ``autotune ask`` and ``autotune tell`` commands are this class, one call per command.
Hand-written because it is the glue between :class:`~autotune.optimizer.Optimizer` and
:class:`~autotune.tracking.MlflowTracker`; it reuses :class:`~autotune.study.Study` for the
optimiser's settings and for reading the status.

Note that ``autotune run``/``resume`` on the same study closes pending ask/tell trials as
orphans (its ``on_orphans`` rule): tell every asked point before handing a study to a driver.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ConfigError, StudyConfigError, TrialError
from autotune.study._config import StudyConfig, load_study_config
from autotune.study._study import (
    TAG_BATCH_ID,
    TAG_BEST_TRIAL,
    TAG_FALLBACK,
    BestTrial,
    Study,
    StudyStatus,
    _driver_lock,
    _latest_runs,
)
from autotune.trial import Observation, TrialResult, TrialState

if TYPE_CHECKING:
    from torch import Tensor

    from autotune.optimizer import Optimizer
    from autotune.tracking import LoadedTrial, MlflowTracker

__all__ = ["RemoteStudy"]

TAG_ASK_TELL = "autotune.ask_tell"


class RemoteStudy:
    """A study driven from outside through ask and tell, with its state in MLflow.

    Args:
        config: The validated study config (its ``trial`` section is not used).
        known_cost: A known cost of model-space points (`... x d` to `...`), for ``ei_per_cost``
            (e.g. the motor time from where the instrument stands now).

    Example:
        >>> study = RemoteStudy.from_file("studies/beamline/study.yaml")  # doctest: +SKIP
        >>> trial_id, params = study.ask()  # doctest: +SKIP
        >>> study.tell(trial_id, measure(**params), metrics={"instrument_s": 3.2})  # doctest: +SKIP
    """

    def __init__(self, config: StudyConfig, *, known_cost: Callable[[Tensor], Tensor] | None = None) -> None:
        self.config = config
        self.known_cost = known_cost

    @classmethod
    def from_file(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> RemoteStudy:
        """The ask/tell study of a study file (see :func:`~autotune.study.load_study_config`)."""
        return cls(load_study_config(path, overrides))

    @property
    def _where(self) -> str:
        file = self.config.study_file
        return str(file) if file is not None else f"study {self.config.name!r}"

    # -- ask and tell ---------------------------------------------------------------------------

    def ask(self) -> tuple[int, dict[str, Any]]:
        """Propose the next point and record it as a pending (``RUNNING``) trial.

        Pending points from earlier asks, this process's or another's, are taken into account
        (the new point differs from them, and the GP is conditioned on them).

        Returns:
            ``(trial_id, params)``: tell the result with this ``trial_id``.

        Raises:
            TrialError: The study's ``budget.max_trials`` is spent.
        """
        from autotune.tracking import (
            TAG_ACQ_VALUE,
            TAG_PRED_MEAN,
            TAG_PRED_STD,
            TAG_STRATEGY,
        )

        with _session(self.config) as tracker:
            optimizer = self._optimizer(tracker.load_trials())
            max_trials = self.config.budget.max_trials
            n_trials = len(optimizer.observations) + len(optimizer.pending)
            if max_trials is not None and n_trials >= max_trials:
                raise TrialError(
                    f"{self._where}: budget.max_trials ({max_trials}) is spent: the record holds {n_trials} trials "
                    f"({len(optimizer.pending)} pending). Fix: raise budget.max_trials to ask for more."
                )
            (suggestion,) = optimizer.ask(1)
            names = {"strategy": TAG_STRATEGY, "batch_id": TAG_BATCH_ID, "acq_value": TAG_ACQ_VALUE,
                     "pred_mean": TAG_PRED_MEAN, "pred_std": TAG_PRED_STD, "fallback": TAG_FALLBACK}
            tags: dict[str, Any] = {tag: suggestion.info[key] for key, tag in names.items() if key in suggestion.info}
            tags[TAG_ASK_TELL] = "true"
            tracker.start_trial(suggestion.trial_id, suggestion.params, tags)
            return suggestion.trial_id, dict(suggestion.params)

    def tell(
        self,
        trial_id: int,
        value: float | None,
        *,
        metrics: Mapping[str, float] | None = None,
        state: TrialState | str | None = None,
    ) -> Observation:
        """Record the result of a pending trial and close its run.

        Args:
            trial_id: The id :meth:`ask` returned.
            value: The objective value; ``None`` or non-finite records a failure.
            metrics: Other final metrics (constraint metrics, the cost metric).
            state: The terminal state (default: ``completed``, ``nonfinite`` for a non-finite
                value, ``failed`` for ``None``).

        Returns:
            The observation as the optimiser learns it.

        Raises:
            ConfigError: ``trial_id`` is not a pending trial of the study, or ``state`` is not
                a terminal state.
        """
        final_state = _final_state(value, state)
        with _session(self.config) as tracker:
            trials = _latest_runs(tracker.load_trials())
            trial = next((t for t in trials if t.trial_id == int(trial_id)), None)
            pending = [t.trial_id for t in trials if _is_pending(t)]
            if trial is None or not _is_pending(trial):
                how = "is not in the record" if trial is None else f"was already told ({trial.state.value})"
                raise ConfigError(
                    f"{self._where}: trial_id", f"must be a pending trial of study {self.config.name!r}; "
                    f"trial {trial_id} {how}", trial_id,
                    f"tell one of the pending trials {pending} (printed by `autotune ask`), or ask for a new one.",
                )
            objective = self.config.objective.metric
            final = {k: float(v) for k, v in (metrics or {}).items()}
            if value is not None:
                final[objective] = float(value)
            start_ms = tracker.client.get_run(trial.run_id).info.start_time or 0
            now = time.time()
            tracker.end_trial(trial.run_id, TrialResult(
                trial_id=trial.trial_id, state=final_state, metrics=final, device="external",
                duration_s=max(now - start_ms / 1000.0, 0.0), start_time=start_ms / 1000.0, end_time=now,
            ))
            optimizer = self._optimizer(tracker.load_trials())
            best = optimizer.best()
            tags: dict[str, Any] = {} if best is None else {TAG_BEST_TRIAL: best.trial_id}
            tracker.set_study_tags(tags)
            tracker.log_study_metrics({f"best_{objective}": None if best is None else best.value,
                                       "finished_trials": len(optimizer.observations)},
                                      step=len(optimizer.observations))
            told = final_state is TrialState.COMPLETED
            return Observation(dict(trial.params), final.get(objective) if told else None, final_state, final,
                               trial.trial_id)

    # -- reading --------------------------------------------------------------------------------

    def pending(self) -> dict[int, dict[str, Any]]:
        """The trials asked for and not yet told: ``{trial_id: params}``, from the record."""
        tracker = Study(self.config)._reader()
        if tracker is None:
            return {}
        return {t.trial_id: dict(t.params) for t in _latest_runs(tracker.load_trials()) if _is_pending(t)}

    def observations(self) -> list[Observation]:
        """The finished trials as the optimiser learns them, from the record."""
        tracker = Study(self.config)._reader()
        return [] if tracker is None else self._optimizer(tracker.load_trials()).observations

    def status(self) -> StudyStatus:
        """Trial counts per state and the best trial (as ``autotune status``)."""
        return Study(self.config).status()

    def best(self) -> BestTrial | None:
        """The best feasible completed trial, or ``None``."""
        return Study(self.config).best()

    # -- helpers --------------------------------------------------------------------------------

    def _optimizer(self, trials: Sequence[LoadedTrial]) -> Optimizer:
        """The optimiser of the study taught the record: finished trials told, open ones pending."""
        optimizer = Study(self.config)._optimizer()
        optimizer.known_cost = self.known_cost
        metric = self.config.objective.metric
        for trial in _latest_runs(trials):
            if trial.requeue:
                continue  # a trial `autotune resume` closed for re-running: not learned from
            try:
                if _is_pending(trial):
                    optimizer.add_pending(trial.params, trial.trial_id, {"strategy": "pending"})
                else:
                    state = trial.state if trial.state.is_finished else TrialState.FAILED
                    optimizer.add(trial.params, trial.value(metric), state=state, metrics=trial.metrics,
                                  trial_id=trial.trial_id)
            except ConfigError as exc:
                raise StudyConfigError(
                    f"{self._where}: space", f"does not fit trial {trial.trial_id} recorded in "
                    f"{self.config.resolved_tracking_uri} ({exc})", None,
                    "keep a study's space fixed; to change it, start a new study (another name or output_dir).",
                ) from None
        return optimizer


@contextlib.contextmanager
def _session(config: StudyConfig) -> Iterator[MlflowTracker]:
    """One ask or tell: the study's lock held, the record opened (created on the first ask).

    On the way out the study run is left ``RUNNING`` while points are out, else ``FINISHED``.
    """
    from autotune.tracking import MlflowTracker, ensure_store
    from autotune.tracking._store import sqlite_path

    output_dir = config.resolved_output_dir
    output_dir.mkdir(parents=True, exist_ok=True)
    with _driver_lock(output_dir, config.name):
        uri = config.resolved_tracking_uri
        db = sqlite_path(uri)
        if db is None or not db.is_file():
            ensure_store(uri)
        tracker = MlflowTracker(uri, config.name)
        if tracker.find_study() is None:
            tracker.start_study(config.to_dict(), config.study_file, tags={
                "autotune.objective": config.objective.metric, "autotune.direction": config.objective.direction,
                "autotune.executor": "ask/tell", TAG_ASK_TELL: "true",
            })
        try:
            yield tracker
        finally:
            if any(_is_pending(t) for t in tracker.load_trials()):
                tracker.client.update_run(tracker.parent_run_id, status="RUNNING")
            else:
                tracker.end_study("FINISHED")


def _is_pending(trial: LoadedTrial) -> bool:
    """Asked and not told: the run is still open and no final state was written."""
    return trial.status == "RUNNING" and not trial.state.is_finished


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
