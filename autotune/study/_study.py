"""The study driver: an asynchronous ask/submit/tell loop recorded in MLflow.

One :meth:`Study.optimize` call::

    ensure_store -> start (or find) the parent run -> close orphans -> rebuild the optimiser
    from the record -> while the budget lasts: every free worker gets one new pending-aware
    suggestion at once (one asked ahead while the driver waited, if ``parallelism.prefetch``
    keeps some ready) -> reports stream into the trial's run -> on completion: end the run,
    tell the optimiser, log the best so far -> plots -> end the parent run.

The MLflow record is the only state that survives the driver: resuming is the same loop
started from :meth:`MlflowTracker.load_trials`. A finished trial is never run again; a trial
a killed driver left running is closed as failed, or re-queued with the same params
(``on_orphans``). One driver runs a study at a time (a lock file in ``output_dir``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ConfigError, SearchSpaceError, StudyConfigError, TrackingError, TrialError
from autotune.study._config import StudyConfig, load_study_config
from autotune.trial import Resources, TrialResult, TrialSpec, TrialState

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

    from autotune.executors import Executor, Job
    from autotune.optimizer import Optimizer, Suggestion
    from autotune.tracking import LoadedTrial, MlflowTracker

__all__ = ["BestTrial", "Study", "StudyStatus", "StudySummary"]

logger = logging.getLogger(__name__)

TAG_BATCH_ID = "autotune.batch_id"
TAG_FALLBACK = "autotune.fallback"
TAG_WORKDIR = "autotune.workdir"
TAG_REQUEUED_FROM = "autotune.requeued_from"
TAG_BEST_TRIAL = "autotune.best_trial_id"

POLL_S = 0.5
"""Longest wait between two looks at the running trials (executor clock)."""

STREAM_EVERY_S = 5.0
"""Real seconds between two sends of the running trials' reports to MLflow (one batch per trial;
a trial's last reports are sent when it ends). Each send is one store write per trial (~25-60
ms on SQLite), so streaming at every poll would cost the driver more than the trials' own time."""

STREAM_S_PER_TRIAL = 0.5
"""With many trials running the interval grows to this many seconds per running trial, so
streaming takes at most ~5-10 % of the driver's time (64 workers: every 32 s)."""

PLOTS_EVERY = 10
"""Finished trials between two refreshes of the study plots (they are also drawn at the end)."""

PLOTS_MIN_INTERVAL_S = 30.0
"""Real seconds at least between two refreshes of the study plots (drawing takes ~1 s)."""

PLOTS_TIME_SHARE = 0.02
"""Longest share of the driver's real time spent drawing plots during a study: after a refresh
that took ``t`` seconds the next waits at least ``t / PLOTS_TIME_SHARE`` (2 s of drawing: 100 s)."""

_LOCK_FILE = "driver.lock"


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
class StudySummary(StudyStatus):
    """How one :meth:`Study.optimize` call ended (the record's status, plus this call's facts).

    Attributes:
        stop_reason: ``max_trials``, ``max_time_s``, ``SIGINT`` or ``SIGTERM``.
        n_new_trials: Trials started by this call (re-queued ones included).
        duration_s: Wall-clock seconds of this call.
    """

    stop_reason: str = ""
    n_new_trials: int = 0
    duration_s: float = 0.0

    @property
    def interrupted(self) -> bool:
        """Whether a signal stopped the study before its budget was spent."""
        return self.stop_reason in ("SIGINT", "SIGTERM")


class Study:
    """Runs a study file: trials on an executor, proposals from an optimiser, the record in MLflow.

    Args:
        config: The validated study config.
        executor: A ready executor to use instead of the one the config names (e.g. a
            :class:`~autotune.executors.SimulatedExecutor` with its own clock); its
            ``n_workers`` must equal ``parallelism.workers``.

    Example:
        >>> study = Study.from_file("studies/quadratic/study.yaml")  # doctest: +SKIP
        >>> summary = study.optimize()  # doctest: +SKIP
        >>> summary.best.params  # doctest: +SKIP
    """

    def __init__(self, config: StudyConfig, *, executor: Executor | None = None) -> None:
        self.config = config
        self.executor = executor

    @classmethod
    def from_file(cls, path: str | Path, overrides: Mapping[str, Any] | None = None) -> Study:
        """The study of a study file (see :func:`load_study_config`)."""
        return cls(load_study_config(path, overrides))

    @property
    def _where(self) -> str:
        study_file = self.config.study_file
        return os.path.relpath(study_file) if study_file is not None else f"study {self.config.name!r}"

    # -- reading the record ---------------------------------------------------------------------

    def status(self) -> StudyStatus:
        """Trial counts per state and the best trial, read from the MLflow record only."""
        tracker = self._reader()
        if tracker is None:
            return _status(self.config, [], started=False)
        return _status(self.config, tracker.load_trials(), started=True)

    def best(self) -> BestTrial | None:
        """The best feasible completed trial in the MLflow record, or ``None``."""
        return self.status().best

    def _reader(self) -> MlflowTracker | None:
        """A tracker on the study's record, or ``None`` when there is none (nothing is created)."""
        from autotune.tracking import MlflowTracker
        from autotune.tracking._store import sqlite_path

        uri = self.config.resolved_tracking_uri
        db = sqlite_path(uri)
        if db is not None and not db.is_file():
            return None
        tracker = MlflowTracker(uri, self.config.name)
        return tracker if tracker.find_study() is not None else None

    # -- running --------------------------------------------------------------------------------

    def optimize(self, progress: bool = True, *, resume: bool | None = None) -> StudySummary:
        """Run the study until its budget is spent or a signal stops it.

        Ctrl-C (SIGINT) or SIGTERM stops it gracefully: running trials are cancelled and
        recorded ``killed``, reports are flushed, and the summary comes back as usual. A second
        signal stops at once (``KeyboardInterrupt``).

        Args:
            progress: Show a progress bar when standard output is a terminal (``FORCE_COLOR=1``
                forces it); otherwise one log line per finished trial.
            resume: ``None`` continues the record if there is one; ``False`` refuses a study
                that already has trials; ``True`` refuses one that has no record.

        Returns:
            The summary, read back from the record.

        Raises:
            ConfigError: ``resume`` does not match the record, the record does not fit the
                study's space, or the executor options are invalid.
            TrackingError: The store cannot be used, or another driver runs this study.
        """
        from autotune.tracking import MlflowTracker, ensure_store

        cfg = self.config
        optimizer = self._optimizer()
        executor = self.executor if self.executor is not None else self._make_executor()  # starts nothing yet
        if executor.n_workers != cfg.parallelism.workers:
            raise ConfigError("Study(executor=...)", f"must have n_workers == parallelism.workers "
                              f"({cfg.parallelism.workers})", executor.n_workers,
                              "build the executor with n_workers=config.parallelism.workers.")
        output_dir = cfg.resolved_output_dir
        output_dir.mkdir(parents=True, exist_ok=True)
        with _driver_lock(output_dir, cfg.name):
            ensure_store(cfg.resolved_tracking_uri)  # the driver creates the store, before any worker
            tracker = MlflowTracker(cfg.resolved_tracking_uri, cfg.name)
            self._check_resume(tracker, resume)
            tracker.start_study(cfg.to_dict(), cfg.study_file, tags=self._study_tags())
            for orphan in tracker.close_orphans(cfg.on_orphans):
                _kill_orphan(orphan)
            requeue = self._rebuild(optimizer, tracker.load_trials())
            return _Driver(cfg, tracker, optimizer, executor, requeue).run(progress)

    def _check_resume(self, tracker: MlflowTracker, resume: bool | None) -> None:
        if resume is None:
            return
        where = self._where
        found = tracker.find_study() is not None
        n = len({t.trial_id for t in tracker.load_trials()}) if found else 0
        if resume and not found:
            raise ConfigError(where, f"study {self.config.name!r} has no record to resume in {tracker.tracking_uri}",
                              None,
                              f"start it with `autotune run {where}` (or check name and output_dir).")
        if not resume and n:
            raise ConfigError(where, f"study {self.config.name!r} already has {n} trials in {tracker.tracking_uri}",
                              None,
                              f"continue it with `autotune resume {where}`, or start afresh under another name or "
                              f"output_dir (or delete {self.config.resolved_output_dir}).")

    def _study_tags(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "autotune.objective": cfg.objective.metric,
            "autotune.direction": cfg.objective.direction,
            "autotune.executor": cfg.executor.name,
            "autotune.workers": cfg.parallelism.workers,
        }

    def _optimizer(self) -> Optimizer:
        from autotune.optimizer import Optimizer

        cfg = self.config
        return Optimizer(
            cfg.search_space,
            cfg.strategy.name,
            direction=cfg.objective.direction,
            seed=cfg.seed,
            n_initial=cfg.n_initial,
            initial_design=cfg.initial_design,
            constraints=cfg.constraints,
            cost_metric=cfg.cost_metric,
            budget=cfg.budget.max_trials if cfg.cost_metric is None else None,
            strategy_options=cfg.strategy.options,
        )

    def _rebuild(self, optimizer: Optimizer, trials: Sequence[LoadedTrial]) -> list[LoadedTrial]:
        """Teach the optimiser every finished trial of the record; return the ones to run again."""
        requeue = []
        for trial in _latest_runs(trials):
            if trial.requeue:
                requeue.append(trial)
                continue
            state = trial.state if trial.state.is_finished else TrialState.FAILED
            try:
                optimizer.add(trial.params, trial.value(self.config.objective.metric), state=state,
                              metrics=trial.metrics, trial_id=trial.trial_id)
            except SearchSpaceError as exc:
                raise StudyConfigError(
                    f"{self._where}: space", f"does not fit trial {trial.trial_id} recorded in "
                    f"{self.config.resolved_tracking_uri} ({exc})", None,
                    "keep a study's space fixed; to change it, start a new study (another name or output_dir).",
                ) from None
        return requeue

    def _make_executor(self) -> Executor:
        """The executor the config names, wired to the study's parallelism and folder."""
        from autotune.executors import get_executor

        cfg = self.config
        name = cfg.executor.name
        options = dict(cfg.executor.options)
        study_dir = str(cfg.base_dir)
        if name in ("local", "ray", "slurm"):  # trial processes import 'module:function' from the study's folder too
            env = dict(options.get("env") or {})
            inherited = env.get("PYTHONPATH", "")  # the driver's own PYTHONPATH comes after its cwd
            env["PYTHONPATH"] = os.pathsep.join(p for p in (study_dir, inherited) if p)
            options["env"] = env
        if name == "local":
            options["trials_per_gpu"] = cfg.parallelism.trials_per_gpu
        elif name in ("inprocess", "simulated") and study_dir not in sys.path:  # trials import in this process
            sys.path.append(study_dir)
        if name == "simulated":
            from autotune.executors._outcome import resolve_entry_point

            for key in ("duration_fn", "objective_fn"):
                if isinstance(options.get(key), str):
                    options[key] = resolve_entry_point(options[key])
        try:
            return get_executor(name, n_workers=cfg.parallelism.workers, **options)
        except TypeError as exc:
            raise StudyConfigError(f"{self._where}: executor.options",
                                   f"are not accepted by the {name!r} executor ({exc})", cfg.executor.options,
                                   "remove the unknown option; see the executor's documentation.") from None


class _Running:
    """A trial on the executor: its job, its MLflow run and its proposal."""

    def __init__(self, job: Job, run_id: str, suggestion: Suggestion) -> None:
        self.job = job
        self.run_id = run_id
        self.suggestion = suggestion


class _Driver:
    """The state of one :meth:`Study.optimize` call (private: the loop's pieces, kept small)."""

    def __init__(self, cfg: StudyConfig, tracker: MlflowTracker, optimizer: Optimizer, executor: Executor,
                 requeue: list[LoadedTrial]) -> None:
        self.cfg = cfg
        self.tracker = tracker
        self.optimizer = optimizer
        self.executor = executor
        self.requeue = requeue
        self.running: dict[int, _Running] = {}
        # Trials counted against max_trials: recorded ones (a killed trial produced nothing
        # and is not counted), re-queued ones, and those started now.
        self.budget_ids = {o.trial_id for o in optimizer.observations if o.trial_id is not None}
        self.budget_ids |= {t.trial_id for t in requeue}
        self.n_finished = len(optimizer.observations)
        self.n_new = 0
        self.stop_reason = ""
        self.signal_name = ""
        self.best_id: int | None = None
        self.view = _View(cfg.name)
        self.start_clock = executor.now()
        self.last_stream = time.monotonic()
        self.last_plots = time.monotonic()
        self.plots_interval_s = PLOTS_MIN_INTERVAL_S
        self.finished_at_plots = self.n_finished
        # Suggestions asked ahead while the driver waits (pending to the optimiser, not yet started).
        self.ready: deque[Suggestion] = deque()
        self.prefetch = 0 if optimizer.strategy.synchronous else (cfg.parallelism.prefetch or 0)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, progress: bool) -> StudySummary:
        start = time.monotonic()
        status = "FINISHED"
        try:
            with _graceful_stop(self), self.view.showing(progress, self.cfg.budget.max_trials, self.n_finished):
                for trial in self.requeue:
                    self._launch(self.optimizer.add_pending(trial.params, trial.trial_id, {"strategy": "requeue"}),
                                 {TAG_REQUEUED_FROM: trial.run_id})
                while True:
                    if self.signal_name:
                        self.stop_reason = self.signal_name
                        self._cancel_all()
                        break
                    self._fill()
                    self._refresh_view()
                    if not self.running:
                        break
                    jobs = [r.job for r in self.running.values()]
                    ahead = self._wants_prefetch()
                    finished = self.executor.wait(jobs, timeout_s=0.0 if ahead else POLL_S)
                    if ahead and not finished:
                        self.ready.append(self.optimizer.ask(1)[0])
                    interval = max(STREAM_EVERY_S, STREAM_S_PER_TRIAL * len(self.running))
                    if time.monotonic() - self.last_stream >= interval:
                        self._stream()
                    for job in finished:
                        self._finish(job)
            if self.signal_name:
                status = "KILLED"
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            self._abandon()
            raise
        finally:
            for suggestion in self.ready:
                self.optimizer.forget(suggestion.trial_id)
            self.ready.clear()
            self.executor.shutdown(kill=True)
            self._plots(final=True)
            with contextlib.suppress(Exception):
                self.tracker.end_study(status)  # type: ignore[arg-type]
        record = _status(self.cfg, self.tracker.load_trials(), started=True)
        fields = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}
        return StudySummary(**fields, stop_reason=self.stop_reason, n_new_trials=self.n_new,
                            duration_s=time.monotonic() - start)

    def _remaining(self) -> int | None:
        max_trials = self.cfg.budget.max_trials
        return None if max_trials is None else max(0, max_trials - len(self.budget_ids))

    def _fill(self) -> None:
        """Give every free worker a trial: one new suggestion at a time (a batch when synchronous)."""
        if self.stop_reason:
            return
        max_time_s = self.cfg.budget.max_time_s
        if max_time_s is not None and self.executor.now() - self.start_clock >= max_time_s:
            self.stop_reason = "max_time_s"
            return
        workers = self.cfg.parallelism.workers
        free = workers - len(self.running)
        if free <= 0 or (self.optimizer.strategy.synchronous and self.running):
            return
        remaining = self._remaining()
        if remaining == 0:
            self.stop_reason = "max_trials"
            return
        if self.optimizer.strategy.synchronous:
            for suggestion in self.optimizer.ask(min(workers, remaining or workers)):
                self._launch(suggestion)
            return
        for _ in range(free if remaining is None else min(free, remaining)):
            self._launch(self.ready.popleft() if self.ready else self.optimizer.ask(1)[0])

    def _wants_prefetch(self) -> bool:
        """Whether to ask one suggestion ahead now (every worker busy, fewer than ``prefetch`` ready)."""
        if len(self.ready) >= self.prefetch or self.stop_reason or self.signal_name:
            return False
        remaining = self._remaining()
        return remaining is None or remaining > len(self.ready)

    def _launch(self, suggestion: Suggestion, extra_tags: Mapping[str, Any] | None = None) -> None:
        """Open the trial's run, then submit it (a driver killed in between leaves an orphan run)."""
        from autotune.tracking import TAG_ACQ_VALUE, TAG_PRED_MEAN, TAG_PRED_STD, TAG_STRATEGY

        cfg = self.cfg
        tid = suggestion.trial_id
        workdir = cfg.resolved_output_dir / "trials" / str(tid)
        info = suggestion.info
        names = {"strategy": TAG_STRATEGY, "batch_id": TAG_BATCH_ID, "acq_value": TAG_ACQ_VALUE,
                 "pred_mean": TAG_PRED_MEAN, "pred_std": TAG_PRED_STD, "fallback": TAG_FALLBACK}
        tags = {tag: info[key] for key, tag in names.items() if key in info}
        tags[TAG_WORKDIR] = str(workdir)
        run_id = self.tracker.start_trial(tid, suggestion.params, {**tags, **(extra_tags or {})})
        spec = TrialSpec(
            trial_id=tid,
            params=dict(suggestion.params),
            entry_point=cfg.trial.entry_point,
            fixed_args=dict(cfg.trial.fixed_args),
            timeout_s=cfg.trial.timeout_s,
            workdir=str(workdir),
            resources=Resources(cfg.parallelism.gpus_per_trial, cfg.parallelism.cpus_per_trial,
                                cfg.parallelism.trials_per_gpu),
            objective=cfg.objective.metric,
        )
        self.budget_ids.add(tid)
        self.n_new += 1
        try:
            job = self.executor.submit(spec)
        except Exception as exc:
            now = self.executor.now()
            error = f"the trial could not be submitted: {exc}"
            self._record(run_id, tid, TrialResult(tid, TrialState.FAILED, error=error, start_time=now, end_time=now))
            if not isinstance(exc, TrialError):  # e.g. resources no executor can give: every trial would fail
                raise
            return
        self.running[tid] = _Running(job, run_id, suggestion)

    def _stream(self) -> None:
        """Send the reports made since the last look to each running trial's run (one batch each)."""
        self.last_stream = time.monotonic()
        for running in self.running.values():
            reports = running.job.new_reports()
            if reports:
                self.tracker.log_reports(running.run_id, reports)

    def _finish(self, job: Job) -> None:
        running = self.running.pop(job.trial_id)
        reports = job.new_reports()
        if reports:
            self.tracker.log_reports(running.run_id, reports)
        self._record(running.run_id, job.trial_id, job.result())

    def _record(self, run_id: str, trial_id: int, result: TrialResult) -> None:
        """End the trial's run, tell the optimiser, update the best so far."""
        self.tracker.end_trial(run_id, result)
        metric = self.cfg.objective.metric
        value = result.metrics.get(metric) if result.state is TrialState.COMPLETED else None
        self.optimizer.tell(trial_id, value, state=result.state, metrics=result.metrics)
        if result.state is not TrialState.KILLED:
            self.n_finished += 1
        best = self.optimizer.best()
        best_value = None if best is None else best.value
        if best is not None and best.trial_id != self.best_id:
            self.best_id = best.trial_id
            self.tracker.set_study_tags({TAG_BEST_TRIAL: best.trial_id})
        self.tracker.log_study_metrics({f"best_{metric}": best_value, "finished_trials": self.n_finished},
                                       step=self.n_finished)
        self.view.trial_line(result, metric, best_value, self.best_id)
        if (self.n_finished - self.finished_at_plots >= PLOTS_EVERY
                and time.monotonic() - self.last_plots >= self.plots_interval_s):
            self._plots(final=False)

    def _cancel_all(self) -> None:
        """Stop every running trial; each is recorded ``killed`` with its reports so far."""
        for job in [r.job for r in self.running.values()]:
            job.cancel()
            self._finish(job)

    def _abandon(self) -> None:
        """On an error: cancel the running trials and close their runs, as far as possible."""
        for running in list(self.running.values()):
            with contextlib.suppress(Exception):
                running.job.cancel()
                self._finish(running.job)
        self.running.clear()

    def _plots(self, final: bool) -> None:
        from autotune.tracking import refresh_study_plots

        start = time.monotonic()
        try:
            refresh_study_plots(self.tracker, self.tracker.load_trials(), self.cfg.objective.direction,
                                self.cfg.objective.metric, out_dir=self.cfg.resolved_output_dir / "plots")
        except Exception as exc:  # noqa: BLE001 (plots must never stop a study)
            logger.warning("the study plots could not be drawn%s: %s", " at the end" if final else "", exc)
        self.last_plots, self.finished_at_plots = time.monotonic(), self.n_finished
        self.plots_interval_s = max(PLOTS_MIN_INTERVAL_S, (self.last_plots - start) / PLOTS_TIME_SHARE)

    def _refresh_view(self) -> None:
        failed = sum(1 for o in self.optimizer.observations if o.state.is_failure)
        best = self.optimizer.best()
        self.view.update(self.n_finished, len(self.running), failed, None if best is None else best.value)

    def on_signal(self, signum: int) -> None:
        """Ask the loop to stop (called from the signal handler: only sets a flag)."""
        self.signal_name = signal.Signals(signum).name


@contextlib.contextmanager
def _graceful_stop(driver: _Driver) -> Iterator[None]:
    """SIGINT/SIGTERM ask the driver to stop; a second one raises ``KeyboardInterrupt`` at once.

    Handlers are only installed from the main thread (elsewhere signals cannot be caught).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if driver.signal_name:
            raise KeyboardInterrupt
        driver.on_signal(signum)
        logger.warning("%s: stopping; running trials are cancelled (send it again to stop at once)",
                       signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def _driver_lock(output_dir: Path, name: str) -> Iterator[None]:
    """Hold ``output_dir/driver.lock`` so that two drivers never run one study (released on any exit)."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    path = output_dir / _LOCK_FILE
    with open(path, "a+", encoding="utf-8") as file:
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            pid = file.read().strip() or "?"
            raise TrackingError(
                f"{path}: study {name!r} is already being run by another driver (pid {pid}). "
                f"Fix: wait for it to finish, or stop it (kill -TERM {pid}) and resume."
            ) from None
        file.seek(0)
        file.truncate()
        file.write(f"{os.getpid()}\n")
        file.flush()
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)


def _kill_orphan(trial: LoadedTrial) -> None:
    """Stop the process of a trial a dead driver left running (local trials leave a pid file)."""
    from autotune.executors._local import kill_orphan_trial

    workdir = trial.tags.get(TAG_WORKDIR)
    if workdir:
        kill_orphan_trial(workdir)


def _latest_runs(trials: Sequence[LoadedTrial]) -> list[LoadedTrial]:
    """One run per trial id: the latest (a re-queued trial has several), sorted by trial id."""
    latest: dict[int, LoadedTrial] = {}
    for trial in trials:  # sorted by trial id, then start time
        latest[trial.trial_id] = trial
    return [latest[tid] for tid in sorted(latest)]


def _status(cfg: StudyConfig, trials: Sequence[LoadedTrial], started: bool) -> StudyStatus:
    """Counts per state and the best feasible trial of a record."""
    from autotune.strategies import OutcomeConstraint

    latest = _latest_runs(trials)
    counts = Counter(t.state.value for t in latest)
    metric = cfg.objective.metric
    constraints = [OutcomeConstraint.parse(c) for c in cfg.constraints]
    sign = 1.0 if cfg.objective.direction == "minimize" else -1.0
    best: LoadedTrial | None = None
    for trial in latest:
        value = trial.value(metric)
        if value is None or not _feasible(trial.metrics, constraints):
            continue
        if best is None or sign * value < sign * (best.value(metric) or 0.0):
            best = trial
    best_trial = None
    if best is not None:
        best_trial = BestTrial(best.trial_id, float(best.value(metric) or 0.0), dict(best.params), dict(best.metrics),
                               best.run_id)
    return StudyStatus(
        name=cfg.name,
        tracking_uri=cfg.resolved_tracking_uri,
        started=started,
        counts={state.value: counts.get(state.value, 0) for state in TrialState},
        best=best_trial,
        metric=metric,
        direction=cfg.objective.direction,
    )


def _feasible(metrics: Mapping[str, float], constraints: Sequence[Any]) -> bool:
    for c in constraints:
        value = metrics.get(c.metric)
        if value is None or not math.isfinite(value) or (value > c.bound if c.op == "<=" else value < c.bound):
            return False
    return True


class _View:
    """What the user sees: a rich progress bar on a terminal, else one log line per trial."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.progress: Progress | None = None
        self.task: TaskID | None = None

    @contextlib.contextmanager
    def showing(self, progress: bool, total: int | None, done: int) -> Iterator[None]:
        if progress:
            from rich.console import Console

            console = Console()
            if console.is_terminal:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                self.progress = Progress(
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("running {task.fields[running]}  failed {task.fields[failed]}  "
                               "best {task.fields[best]}"),
                    TimeElapsedColumn(), console=console,
                )
                self.task = self.progress.add_task(self.name, total=total, completed=done, running=0, failed=0,
                                                   best="-")
        if self.progress is None:
            yield
            return
        with self.progress:
            yield
        self.progress = None

    def update(self, done: int, running: int, failed: int, best: float | None) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=done, running=running, failed=failed,
                                 best="-" if best is None else f"{best:.5g}")

    def trial_line(self, result: TrialResult, metric: str, best: float | None, best_id: int | None) -> None:
        value = result.metrics.get(metric)
        completed = result.state is TrialState.COMPLETED and value is not None
        what = f"{metric}={value:.5g}" if completed else result.state.value
        if result.error and result.state is not TrialState.COMPLETED:
            what += f" ({result.error.strip().splitlines()[-1][:200]})"
        best_text = "" if best is None else f"; best {best:.5g} (trial {best_id})"
        line = f"trial {result.trial_id}: {what} in {result.duration_s:.1f} s on {result.device or '?'}{best_text}"
        if self.progress is not None:
            self.progress.console.print(line, highlight=False, markup=False)
        else:
            logger.info(line)
