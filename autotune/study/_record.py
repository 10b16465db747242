"""The study's MLflow record, with one owner: :class:`StudyRecord`.

Everything that reads or writes a study's record goes through here: the driver
(:class:`~autotune.study.Study`), ask/tell from outside (:class:`~autotune.study.RemoteStudy`)
and imports (:func:`~autotune.integrations.import_trials`). It holds:

* the record lock (per record: tracking URI + experiment, not per output folder), held by
  every writer for its critical section (the driver for its whole run);
* whether the record exists (nothing is created by looking);
* the latest run of each trial id, and rebuilding an optimiser from the finished ones;
* opening a trial's run from a suggestion and finishing it (end the run, tell the
  optimiser, the best-trial tag, the study metrics), in one place;
* resume's recovery of the trials a dead driver left ``RUNNING``: a trial whose process
  finished is adopted from its result file (``<output_dir>/trials/<id>/result.json``, never a
  path read from the record), a live one is stopped (only a process whose pid *and* start
  time match the pid file under this study's own output folder), one that never started is
  closed ``killed`` (not learned from, not counted), and only the truly lost ones are closed
  by the ``on_orphans`` rule.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from autotune.exceptions import (
    ConfigError,
    SearchSpaceError,
    StudyConfigError,
    TrackingError,
)
from autotune.study._pareto import ParetoRecord, checked_objectives, objective_value, optimizer_objectives
from autotune.trial import Observation, TrialResult, TrialState

if TYPE_CHECKING:
    from torch import Tensor

    from autotune.optimizer import Optimizer, Suggestion
    from autotune.strategies import KnownCost
    from autotune.study._config import StudyConfig
    from autotune.tracking import LoadedTrial, MlflowTracker

__all__ = [
    "TAG_ASK_TELL",
    "TAG_BATCH_ID",
    "TAG_BEST_TRIAL",
    "TAG_FALLBACK",
    "TAG_REQUEUED_FROM",
    "TAG_WORKDIR",
    "BestTrial",
    "Recovery",
    "StudyRecord",
    "StudyStatus",
    "is_pending",
    "latest_runs",
    "record_write_error",
]

logger = logging.getLogger(__name__)

TAG_BATCH_ID = "autotune.batch_id"
TAG_FALLBACK = "autotune.fallback"
TAG_WORKDIR = "autotune.workdir"
"""Where the trial ran (for people reading the record; resume never trusts it)."""
TAG_REQUEUED_FROM = "autotune.requeued_from"
TAG_BEST_TRIAL = "autotune.best_trial_id"
TAG_ASK_TELL = "autotune.ask_tell"
TAG_ADOPTED = "autotune.adopted"
"""On a trial a dead driver left running whose result resume read from its result file."""

DRIVER_DIED = "driver died"
NEVER_STARTED = "driver died before the trial process started"
RESULT_FILE = "result.json"
REPORTS_FILE = "reports.jsonl"
STDOUT_FILE = "stdout.log"
STDERR_FILE = "stderr.log"
_TRIALS_DIR = "trials"
_FRESH_SLACK_S = 2.0  # clock slack when comparing a trial file's mtime to its run's start

_INFO_TAGS = {"batch_id": TAG_BATCH_ID, "fallback": TAG_FALLBACK}  # plus the tracking module's own tags


def _sqlite_path(uri: str) -> Path | None:
    from autotune.tracking import sqlite_path  # deferred: keeps `import autotune.study` light

    return sqlite_path(uri)


# -- reading ------------------------------------------------------------------------------------


def latest_runs(trials: Sequence[LoadedTrial]) -> list[LoadedTrial]:
    """One run per trial id: the latest (a re-queued trial has several), sorted by trial id."""
    latest: dict[int, LoadedTrial] = {}
    for trial in trials:  # sorted by trial id, then start time
        latest[trial.trial_id] = trial
    return [latest[tid] for tid in sorted(latest)]


def is_pending(trial: LoadedTrial) -> bool:
    """Asked (or started) and not told: the run is still open and no final state was written."""
    return trial.status == "RUNNING" and not trial.state.is_finished


@dataclasses.dataclass(frozen=True)
class BestTrial:
    """The best feasible completed trial of a study.

    Attributes:
        trial_id: Its number.
        value: Its objective value.
        params: Its parameters.
        metrics: Its final metrics.
        run_id: Its MLflow run.
    """

    trial_id: int
    value: float
    params: dict[str, Any]
    metrics: dict[str, float]
    run_id: str


@dataclasses.dataclass(frozen=True)
class StudyStatus:
    """A study as its MLflow record tells it.

    Attributes:
        name: The study.
        tracking_uri: Where it is recorded.
        started: Whether the record holds the study at all.
        counts: Trials per state (every :class:`~autotune.trial.TrialState` value, zeros included),
            one per trial id (the latest run of a re-queued trial).
        best: The best feasible completed trial, if any.
        metric: The objective metric.
        direction: ``minimize`` or ``maximize``.
    """

    name: str
    tracking_uri: str
    started: bool
    counts: dict[str, int]
    best: BestTrial | None
    metric: str
    direction: str

    @property
    def n_trials(self) -> int:
        """Trials in the record."""
        return sum(self.counts.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for ``--format json``)."""
        data = dataclasses.asdict(self)
        data["n_trials"] = self.n_trials
        return data


@dataclasses.dataclass(frozen=True)
class Recovery:
    """What resume found of the trials a dead driver left running.

    Attributes:
        adopted: Trials whose result file was recorded as their outcome.
        reattached: Trials handed back to the executor (``reattach``): their process still
            runs, or finished meanwhile; their runs stay open until the driver ends them.
        never_started: Trials closed ``killed`` (no process ever ran them; not counted).
        lost: Trials closed by the ``on_orphans`` rule (their process died or was stopped).
        stopped: Trials whose still-running process was stopped (a subset of ``lost``).
        jobs: The re-attached trials' jobs, by trial id, with their runs.
    """

    adopted: list[int] = dataclasses.field(default_factory=list)
    reattached: list[int] = dataclasses.field(default_factory=list)
    never_started: list[int] = dataclasses.field(default_factory=list)
    lost: list[int] = dataclasses.field(default_factory=list)
    stopped: list[int] = dataclasses.field(default_factory=list)
    jobs: dict[int, tuple[LoadedTrial, Any]] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    def counts(self) -> dict[str, list[int]]:
        """The trial ids of each kind (plain data, without the jobs)."""
        return {"adopted": list(self.adopted), "reattached": list(self.reattached),
                "never_started": list(self.never_started), "lost": list(self.lost), "stopped": list(self.stopped)}


# -- the record ---------------------------------------------------------------------------------


class StudyRecord:
    """The one owner of a study's MLflow record.

    Readers (:meth:`exists`, :meth:`trials`, :meth:`status`) create nothing. Writers hold
    :meth:`lock`, then :meth:`open` the record (creating the store and the study run if needed).

    Args:
        config: The validated study config.

    Example:
        >>> record = StudyRecord(config)  # doctest: +SKIP
        >>> with record.lock():  # doctest: +SKIP
        ...     record.open(tags)
        ...     optimizer = record.rebuild(record.new_optimizer()).optimizer
    """

    def __init__(self, config: StudyConfig) -> None:
        self.config = config
        self._tracker: MlflowTracker | None = None
        self._best_id: int | None = None
        self._pareto: ParetoRecord | None = None

    # -- identity -------------------------------------------------------------------------------

    @property
    def where(self) -> str:
        """The study file as the user named it (relative), for messages."""
        study_file = self.config.study_file
        return os.path.relpath(study_file) if study_file is not None else f"study {self.config.name!r}"

    @property
    def tracking_uri(self) -> str:
        """The record's MLflow tracking URI."""
        return self.config.resolved_tracking_uri

    @property
    def tracker(self) -> MlflowTracker:
        """The tracker on the record (after :meth:`open`, or :meth:`exists` returned ``True``)."""
        if self._tracker is None:
            raise TrackingError(f"{self.where}: the study record is not open. Fix: call StudyRecord.open() first.")
        return self._tracker

    def workdir(self, trial_id: int) -> Path:
        """A trial's folder: always this study's own ``output_dir/trials/<id>``."""
        return self.config.resolved_output_dir / _TRIALS_DIR / str(int(trial_id))

    # -- the lock and opening -------------------------------------------------------------------

    def lock(self, wait_s: float | None = None) -> contextlib.AbstractContextManager[Path]:
        """The record's lock (:func:`autotune.tracking.record_lock`); hold it around every write.

        Args:
            wait_s: ``None`` fails at once if another process holds it (a driver, held for a
                whole run); a number waits that long (a short critical section: ask, tell).

        Returns:
            A context manager yielding the lock file's path.

        Raises:
            TrackingError: Another process holds the lock (``StudyLockedError``), or the lock
                file cannot be opened (a symbolic link is refused).
        """
        from autotune.tracking import record_lock

        return record_lock(self.tracking_uri, self.config.name, blocking=wait_s is not None, timeout_s=wait_s)

    def exists(self) -> bool:
        """Whether the record holds this study (nothing is created by looking)."""
        from autotune.tracking import MlflowTracker

        db = _sqlite_path(self.tracking_uri)
        if db is not None and not db.is_file():
            return False
        tracker = MlflowTracker(self.tracking_uri, self.config.name, spool_dir=self.config.resolved_output_dir)
        if tracker.find_study() is None:
            return False
        self._tracker = tracker
        return True

    def open(self, tags: Mapping[str, Any], *, resume: bool | None = None, create: bool = True) -> MlflowTracker:
        """Create or find the store and the study run (call it holding :meth:`lock`).

        Args:
            tags: Tags of the study run.
            resume: ``None`` continues the record if there is one; ``False`` refuses a study
                that already has trials; ``True`` refuses one that has no record.
            create: ``False`` leaves an existing study run as it is (ask/tell) and only
                starts one when there is none.

        Returns:
            The tracker on the record.

        Raises:
            ConfigError: ``resume`` does not match the record.
            TrackingError: The store cannot be used.
        """
        from autotune.tracking import MlflowTracker, ensure_store

        db = _sqlite_path(self.tracking_uri)
        if db is None or not db.is_file():
            ensure_store(self.tracking_uri)
        tracker = MlflowTracker(self.tracking_uri, self.config.name, spool_dir=self.config.resolved_output_dir)
        if resume is not None:
            self._check_resume(tracker, resume)
        if create or tracker.find_study() is None:
            tracker.start_study(self.config.to_dict(), self.config.study_file, tags=tags)
            self._present(tracker)
        self._tracker = tracker
        return tracker

    def _present(self, tracker: MlflowTracker) -> None:
        """Give the study run its settings as parameters and the experiment its runs view.

        What a reviewer sees first in the MLflow UI (see ``autotune.tracking._views``); a store
        that refuses them costs a warning, never the study.
        """
        from autotune.tracking import runs_view_state

        cfg = self.config
        space = cfg.search_space
        try:
            kept = tracker.log_study_params({
                "objective": cfg.objective.metric, "direction": cfg.objective.direction,
                "strategy": cfg.strategy.name, "max_trials": cfg.budget.max_trials,
                "space": space.name or "inline", "n_parameters": len(space),
                "executor": cfg.executor.name, "workers": cfg.parallelism.workers,
            })
            if kept:
                logger.info("study run parameters keep their first values %s (MLflow parameters cannot change); "
                            "the run's description shows the current settings", kept)
            tracker.set_runs_view(runs_view_state(tracker.parent_run_id, cfg.objective.metric,
                                                  cfg.objective.direction, space.tunable))
        except Exception as exc:  # noqa: BLE001 (presentation only: the record is written either way)
            logger.warning("the study's MLflow view could not be set up: %s", exc)

    def _check_resume(self, tracker: MlflowTracker, resume: bool) -> None:
        where = self.where
        found = tracker.find_study() is not None
        n = len({t.trial_id for t in tracker.load_trials()}) if found else 0
        if resume and not found:
            raise ConfigError(where, f"study {self.config.name!r} has no record to resume in {self.tracking_uri}",
                              None, f"start it with `autotune run {where}` (or check name and output_dir).")
        if not resume and n:
            raise ConfigError(where, f"study {self.config.name!r} already has {n} trials in {self.tracking_uri}",
                              None,
                              f"continue it with `autotune resume {where}`, or start afresh under another name or "
                              f"output_dir (or delete {self.config.resolved_output_dir}).")

    def end(self, status: str = "FINISHED") -> None:
        """Close the study run (``FINISHED``, ``FAILED`` or ``KILLED``)."""
        self.tracker.end_study(status)  # type: ignore[arg-type]

    # -- reading --------------------------------------------------------------------------------

    def trials(self) -> list[LoadedTrial]:
        """The latest run of each trial id (empty without a record)."""
        if self._tracker is None and not self.exists():
            return []
        return latest_runs(self.tracker.load_trials())

    def status(self) -> StudyStatus:
        """Trial counts per state and the best feasible trial, from the record only."""
        started = self._tracker is not None or self.exists()
        return self._status(self.trials() if started else [], started)

    def _status(self, latest: Sequence[LoadedTrial], started: bool) -> StudyStatus:
        from autotune.optimizer import best_feasible
        from autotune.strategies import OutcomeConstraint

        cfg = self.config
        counts = Counter(t.state.value for t in latest)
        metric = cfg.objective.metric
        constraints = [OutcomeConstraint.parse(c) for c in cfg.constraints]
        best = best_feasible(latest, constraints, minimize=cfg.objective.direction == "minimize",
                             value=lambda t: t.value(metric), metrics=lambda t: t.metrics)
        best_trial = None
        if best is not None:
            best_trial = BestTrial(best.trial_id, float(best.value(metric) or 0.0), dict(best.params),
                                   dict(best.metrics), best.run_id)
        return StudyStatus(name=cfg.name, tracking_uri=self.tracking_uri, started=started,
                           counts={state.value: counts.get(state.value, 0) for state in TrialState},
                           best=best_trial, metric=metric, direction=cfg.objective.direction)

    # -- the optimiser --------------------------------------------------------------------------

    def new_optimizer(self, known_cost: Callable[[Tensor], Tensor] | KnownCost | None = None) -> Optimizer:
        """A fresh optimiser with the study's settings (nothing learned yet).

        Args:
            known_cost: A known cost in place of the study file's ``known_cost``.
        """
        from autotune.models import select_device
        from autotune.optimizer import Optimizer
        from autotune.study._cost import load_known_cost
        from autotune.study._stopping import strategy_options

        cfg = self.config
        device = select_device(cfg.model.device, trials_use_gpus=cfg.parallelism.gpus_per_trial > 0,
                               driver_gpu=cfg.parallelism.driver_gpu)
        return Optimizer(
            cfg.search_space,
            cfg.strategy.name,
            direction=cfg.objective.direction,
            seed=cfg.seed,
            n_initial=cfg.n_initial,
            initial_design=cfg.initial_design,
            min_length_scale=cfg.model.min_length_scale,
            max_length_scale=cfg.model.max_length_scale,
            constraints=cfg.constraints,
            cost_metric=cfg.cost_metric,
            known_cost=known_cost if known_cost is not None else load_known_cost(cfg),
            budget=cfg.budget.max_trials if cfg.cost_metric is None else None,
            strategy_options=strategy_options(cfg),
            device=device,
            output_warp=cfg.model.output_warp,
            **optimizer_objectives(cfg),
        )

    def rebuild(self, optimizer: Optimizer, *, pending: bool = False) -> list[LoadedTrial]:
        """Teach ``optimizer`` every finished trial of the record.

        Args:
            optimizer: A fresh optimiser (:meth:`new_optimizer`).
            pending: Add the open trials as pending points (ask/tell) instead of learning them
                as failures (the driver recovers them first: see :meth:`recover`).

        Returns:
            The trials to run again (closed for re-queueing by ``on_orphans: requeue``).

        Raises:
            StudyConfigError: A recorded trial does not fit the study's space.
        """
        requeue = []
        for trial in self.trials():
            if trial.requeue:
                requeue.append(trial)
                continue
            try:
                if pending and is_pending(trial):
                    optimizer.add_pending(trial.params, trial.trial_id, {"strategy": "pending"})
                    continue
                state = trial.state if trial.state.is_finished else TrialState.FAILED
                # a pruned trial keeps its last reported values (a low-fidelity observation)
                optimizer.add(trial.params, objective_value(self.config, lambda m: trial.to_observation(m).value),
                              state=state, metrics=trial.metrics, trial_id=trial.trial_id)
            except SearchSpaceError as exc:
                raise StudyConfigError(
                    f"{self.where}: space", f"does not fit trial {trial.trial_id} recorded in "
                    f"{self.tracking_uri} ({exc})", None,
                    "keep a study's space fixed; to change it, start a new study (another name or output_dir).",
                ) from None
        return requeue

    # -- trials ---------------------------------------------------------------------------------

    def open_trial(self, trial_id: int, params: Mapping[str, Any], info: Mapping[str, Any] | None = None,
                   tags: Mapping[str, Any] | None = None) -> str:
        """Open a trial's run: its params, the proposal's ``info`` as tags, and ``tags``.

        Returns:
            The run id.
        """
        from autotune.tracking import (
            TAG_ACQ_VALUE,
            TAG_PRED_MEAN,
            TAG_PRED_STD,
            TAG_STRATEGY,
        )

        names = {"strategy": TAG_STRATEGY, "acq_value": TAG_ACQ_VALUE, "pred_mean": TAG_PRED_MEAN,
                 "pred_std": TAG_PRED_STD, **_INFO_TAGS}
        run_tags: dict[str, Any] = {tag: info[key] for key, tag in names.items() if info and key in info}
        run_tags.update(tags or {})
        return self.tracker.start_trial(trial_id, params, run_tags)

    def open_suggestion(self, suggestion: Suggestion, tags: Mapping[str, Any] | None = None) -> str:
        """:meth:`open_trial` of a suggestion (its id, params and info)."""
        return self.open_trial(suggestion.trial_id, suggestion.params, suggestion.info, tags)

    def finish_trial(self, run_id: str, result: TrialResult, optimizer: Optimizer | None = None,
                     tags: Mapping[str, Any] | None = None) -> Observation | None:
        """End a trial's run, tell the optimiser, tag the best trial and log the study metrics.

        If the run cannot be written in full (a full disk, a read-only artifact store), it is
        still closed with its state and metrics (without logs) before the error is raised, so
        that no run stays ``RUNNING``.

        Args:
            run_id: The trial's run.
            result: How it ended.
            optimizer: The optimiser to tell (it must hold the trial as pending); ``None`` only
                ends the run (an import).
            tags: Extra tags of the run (e.g. where an early-stopping rule stopped it).

        Returns:
            The observation the optimiser learned (``None`` without an optimiser).

        Raises:
            TrackingError: The record could not be written (the run is closed first).
        """
        result = checked_objectives(self.config, result)
        try:
            self.tracker.end_trial(run_id, result, tags=tags)
        except Exception as exc:  # noqa: BLE001 (close the run whatever failed, then re-raise)
            self._close_bare(run_id, result)
            _raise_clearly(exc, self.where)
        if optimizer is None:
            return None
        metric = self.config.objective.metric
        # a pruned trial's last reported value is data too (a low-fidelity observation)
        counted = result.state in (TrialState.COMPLETED, TrialState.PRUNED)
        value = objective_value(self.config, lambda m: result.metrics.get(m) if counted else None)
        obs = optimizer.tell(result.trial_id, value, state=result.state, metrics=result.metrics)
        if optimizer.multi_objective:
            if self._pareto is None:
                self._pareto = ParetoRecord(self.tracker, self.trials)
            try:
                self._pareto.update(optimizer, result.trial_id, run_id)
            except Exception as exc:  # noqa: BLE001 (re-raised, in one line when the disk is full)
                _raise_clearly(exc, self.where)
        best = optimizer.best()
        try:
            if best is not None and best.trial_id != self._best_id:
                self._best_id = best.trial_id
                self.tracker.set_study_tags({TAG_BEST_TRIAL: best.trial_id})
            n = len(optimizer.observations)
            self.tracker.log_study_metrics({f"best_{metric}": None if best is None else best.value,
                                            "finished_trials": n}, step=n)
        except Exception as exc:  # noqa: BLE001 (re-raised, in one line when the disk is full)
            _raise_clearly(exc, self.where)
        return obs

    def _close_bare(self, run_id: str, result: TrialResult) -> None:
        """Close a run with no artifacts at all (the last resort of :meth:`finish_trial`)."""
        bare = dataclasses.replace(result, error=None, stdout_path=None, stderr_path=None, artifacts=[])
        with contextlib.suppress(Exception):
            self.tracker.end_trial(run_id, bare)

    # -- recovering a dead driver's trials ------------------------------------------------------

    def recover(self, on_orphans: str | None = None, *, started_here: bool = True,
                reattach: Callable[[LoadedTrial, Path, int], Any] | None = None) -> Recovery:
        """Close every trial run a dead driver left ``RUNNING`` with what really happened to it.

        For each such run (call it holding the driver's :meth:`lock`, before new trials start),
        its folder is this study's own ``output_dir/trials/<id>`` (never the path in the
        record). ``reattach`` may take the trial back (its process still runs, or it finished
        meanwhile): its run stays open for the driver. Otherwise a live process there (pid and
        start time matching the pid file) is stopped; then a result file written after the run
        started is recorded as the trial's outcome, with the reports it streamed; a trial with
        no trace of a process is closed ``killed`` (it never ran: not learned from, not
        counted); the rest are closed by ``on_orphans``.

        Args:
            on_orphans: ``fail`` or ``requeue`` (default: the study's ``on_orphans``).
            started_here: Whether the executor starts trial processes on this machine and
                leaves their output in the trial folder (the local executor), so that a
                folder without output means the trial never started.
            reattach: ``reattach(trial, workdir, reports_sent)`` returns a job for the trial, or
                ``None`` when there is nothing to re-attach to (``reports_sent``: how many of
                its report records the record already holds).

        Returns:
            What was found.
        """
        tracker = self.tracker
        recovery = Recovery()
        for trial in tracker.load_trials():
            if trial.status == "RUNNING" and trial.state.is_finished:  # died inside end_trial: only the status
                tracker.client.set_terminated(trial.run_id, _run_status(trial.state))
                continue
            if not is_pending(trial):
                continue
            tid = trial.trial_id
            workdir = self.workdir(tid)
            job = None
            if reattach is not None:
                job = reattach(trial, workdir, self._n_sent(trial.run_id, _read_reports(workdir / REPORTS_FILE)))
            if job is not None:
                recovery.reattached.append(tid)
                recovery.jobs[tid] = (trial, job)
                continue
            if _stop_orphan(workdir, self.config.resolved_output_dir):
                recovery.stopped.append(tid)
            since_s = (tracker.client.get_run(trial.run_id).info.start_time or 0) / 1000.0 - _FRESH_SLACK_S
            result = _read_result(workdir, tid, since_s)
            if result is not None:
                self._adopt(trial, result, workdir)
                recovery.adopted.append(tid)
            elif started_here and trial.tags.get(TAG_ASK_TELL) != "true" and not _fresh(workdir / STDOUT_FILE, since_s):
                tracker.end_trial(trial.run_id, TrialResult(tid, TrialState.KILLED, error=NEVER_STARTED))
                recovery.never_started.append(tid)
        if recovery.jobs:  # close_orphans would close the re-attached runs too: end the rest one by one
            for trial in tracker.load_trials():
                if is_pending(trial) and trial.trial_id not in recovery.jobs:
                    self._close_lost(trial, on_orphans or self.config.on_orphans)
                    recovery.lost.append(trial.trial_id)
        else:
            closed = tracker.close_orphans(on_orphans or self.config.on_orphans)  # type: ignore[arg-type]
            recovery.lost.extend(t.trial_id for t in closed)
        if any(recovery.counts().values()):
            logger.warning("resume: a dead driver left trials running: %d re-attached %s, %d finished and adopted "
                           "from their result files %s, %d never started %s, %d lost %s (%d of them stopped)",
                           len(recovery.reattached), recovery.reattached, len(recovery.adopted), recovery.adopted,
                           len(recovery.never_started), recovery.never_started, len(recovery.lost), recovery.lost,
                           len(recovery.stopped))
        return recovery

    def _close_lost(self, trial: LoadedTrial, mode: str) -> None:
        """What ``close_orphans`` does to one run (failed, or killed and marked for re-queueing)."""
        from autotune.tracking import TAG_REQUEUE

        state = TrialState.FAILED if mode == "fail" else TrialState.KILLED
        result = TrialResult(trial.trial_id, state, error=DRIVER_DIED)
        self.tracker.end_trial(trial.run_id, result, tags={TAG_REQUEUE: "true"} if mode == "requeue" else None)
        if mode == "requeue":  # close_orphans' status for a re-queued run
            self.tracker.client.set_terminated(trial.run_id, "FAILED")

    def _n_sent(self, run_id: str, reports: list[dict[str, Any]]) -> int:
        """How many leading report records the record already holds in full."""
        n = 0
        for report in self._unsent(run_id, reports):
            if len(report) > 1:  # a value not logged yet
                break
            n += 1
        return n

    def _adopt(self, trial: LoadedTrial, result: TrialResult, workdir: Path) -> None:
        """Record a finished orphan: the reports the dead driver had not sent, then its result."""
        reports = _read_reports(workdir / REPORTS_FILE)
        if reports:
            self.tracker.log_reports(trial.run_id, self._unsent(trial.run_id, reports))
        self.tracker.end_trial(trial.run_id, result, tags={TAG_ADOPTED: "true"})

    def _unsent(self, run_id: str, reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``reports`` with an explicit step each, without the values the record already holds."""
        client = self.tracker.client
        logged: dict[str, set[int]] = {}
        out = []
        step = 0
        for report in reports:
            given = report.get("step")
            step = int(float(given)) if isinstance(given, (int, float)) and not isinstance(given, bool) else step
            kept: dict[str, Any] = {"step": step}
            for key, value in report.items():
                if key == "step":
                    continue
                if key not in logged:
                    logged[key] = {m.step for m in _history(client, run_id, key)}
                if step not in logged[key]:
                    kept[key] = value
            out.append(kept)
            step += 1
        return out


# -- helpers ------------------------------------------------------------------------------------


def _run_status(state: TrialState) -> str:
    """The MLflow run status of a finished trial state."""
    if state is TrialState.COMPLETED:
        return "FINISHED"
    return "KILLED" if state in (TrialState.KILLED, TrialState.PRUNED) else "FAILED"


def _history(client: Any, run_id: str, key: str) -> list[Any]:
    try:
        return list(client.get_metric_history(run_id, key))
    except Exception:  # noqa: BLE001 (an invalid key was never logged)
        return []


def _fresh(path: Path, since_s: float) -> bool:
    """Whether ``path`` is a regular file (not a link) written since ``since_s`` (epoch seconds)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    import stat

    return stat.S_ISREG(st.st_mode) and st.st_mtime >= since_s


def _read_result(workdir: Path, trial_id: int, since_s: float) -> TrialResult | None:
    """The outcome a trial process wrote (``result.json``), or ``None`` if there is no usable one."""
    path = workdir / RESULT_FILE
    if not _fresh(path, since_s):
        return None
    try:
        with open(path, encoding="utf-8", errors="strict") as file:
            record = json.load(file)
        state = TrialState(record["state"])
        metrics = {str(k): float(v) for k, v in dict(record.get("metrics") or {}).items()}
        error = record.get("error")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        logger.warning("%s: unreadable result file; the trial is treated as lost", path)
        return None
    if not state.is_finished:
        return None
    end = path.stat().st_mtime
    start = min((p.stat().st_mtime for p in (workdir / "params.json",) if p.is_file()), default=end)
    logs = {name: str(workdir / name) if _fresh(workdir / name, since_s) else None for name in (STDOUT_FILE, STDERR_FILE)}
    return TrialResult(trial_id, state, metrics=metrics, error=str(error) if error else None, device="",
                       duration_s=max(end - start, 0.0), start_time=start, end_time=end,
                       stdout_path=logs[STDOUT_FILE], stderr_path=logs[STDERR_FILE])


def _read_reports(path: Path) -> list[dict[str, Any]]:
    """The complete JSON-object lines of a reports channel."""
    try:
        data = path.read_bytes()
    except OSError:
        return []
    reports = []
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            reports.append(value)
    return reports


def _stop_orphan(workdir: Path, root: Path) -> bool:
    """Stop a still-running trial process of a dead driver (only a worker of ``workdir``, inside ``root``)."""
    from autotune.executors import kill_orphan_trial

    return kill_orphan_trial(workdir, root=root)


def _raise_clearly(exc: Exception, where: str) -> NoReturn:
    """Re-raise a failed write to the record: one clear line for a full disk or a read-only folder."""
    clear = record_write_error(exc, where)
    if clear is None:
        raise exc
    raise clear from exc


def record_write_error(exc: BaseException, where: str) -> TrackingError | None:
    """A one-line error for a write that failed on a full disk or a read-only folder, else ``None``.

    Args:
        exc: What the write raised (an ``OSError``, or MLflow's wrapping of SQLite's error).
        where: The study file, for the fix (``autotune resume <where>``).

    Returns:
        The error to raise instead, or ``None`` for any other failure.
    """
    if isinstance(exc, TrackingError):
        return None
    text = str(exc)
    full = isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "disk is full" in text or "No space left" in text
    read_only = isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM) or (
        "readonly database" in text or "Read-only file system" in text)
    if not (full or read_only):
        return None
    path = getattr(exc, "filename", None) or ""
    why = "the disk is full" if full else "the folder is read-only"
    return TrackingError(
        f"{path or where}: the study record could not be written ({why}); the trials are recorded up to here. "
        f"Fix: {'free some space' if full else 'make it writable'}, then `autotune resume {where}`."
    )

