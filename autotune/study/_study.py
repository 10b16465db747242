"""The study driver: an asynchronous ask/submit/tell loop recorded in MLflow.

One :meth:`Study.optimize` call::

    hold the record's lock -> open the record (store, parent run) -> recover a dead driver's
    trials (re-attach or adopt the finished, close the lost) -> rebuild the optimiser from the
    record -> while the budget lasts: the free workers get new pending-aware suggestions
    at once, from batched asks of up to :data:`ASK_BATCH_MAX` (after those asked ahead while the
    driver waited, if ``parallelism.prefetch`` keeps some ready) -> reports stream into the trial's run -> on completion: end the run,
    tell the optimiser, log the best so far -> plots -> end the parent run.

The MLflow record (:class:`~autotune.study.StudyRecord`, which owns every read and write of
it) is the only state that survives the driver: resuming is the same loop started from the
record. A finished trial is never run again; a trial a killed driver left running is taken
back by the executor (``adopt``) or adopted from its result file, else closed as failed or
re-queued with the same params (``on_orphans``). One writer at a time holds the record's lock
(tracking URI + experiment).

Stops and failures: a signal stops gracefully (a second one at once, after the record write in
progress); a trial the executor cannot take, or the first :data:`FAIL_FAST_TRIALS` trials all
failing with the same error, stop the study with :class:`~autotune.exceptions.TrialError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from autotune.exceptions import ConfigError, StudyConfigError, TrialError
from autotune.study._config import StudyConfig, load_study_config
from autotune.study._record import (
    TAG_REQUEUED_FROM,
    TAG_WORKDIR,
    BestTrial,
    StudyRecord,
    StudyStatus,
)
from autotune.study._stopping import EarlyStopper
from autotune.trial import Resources, TrialResult, TrialSpec, TrialState

if TYPE_CHECKING:
    import pandas as pd
    from rich.progress import Progress, TaskID

    from autotune.executors import Executor, Job, SubmitError
    from autotune.optimizer import Optimizer, Suggestion
    from autotune.study._ahead import AskAhead
    from autotune.tracking import LoadedTrial

__all__ = ["BestTrial", "Study", "StudyStatus", "StudySummary"]

logger = logging.getLogger(__name__)


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

ANALYSIS_FILE = "analysis/analysis.html"
"""The analysis views (importance, slices, contour, EDF, curves) under ``output_dir``, refreshed with the plots."""

ANALYSIS_ARTIFACT_DIR = "analysis"
"""Their folder in the study run's artifacts (MLflow's artifact viewer renders the HTML, interactive)."""

FAIL_FAST_TRIALS = 3
"""The study stops with an error when its first this-many trials all fail with the same error
before any completes (a broken trial function or environment, not a bad region of the space)."""


@dataclasses.dataclass(frozen=True)
class StudySummary(StudyStatus):
    """How one :meth:`Study.optimize` call ended (the record's status, plus this call's facts).

    Attributes:
        stop_reason: ``max_trials``, ``max_time_s``, ``SIGINT`` or ``SIGTERM``.
        recovered: What resume found of the trials a dead driver left running (adopted,
            never started, lost), as trial ids per kind.
        n_new_trials: Trials started by this call (re-queued ones included).
        duration_s: Wall-clock seconds of this call.
    """

    stop_reason: str = ""
    n_new_trials: int = 0
    duration_s: float = 0.0
    recovered: dict[str, list[int]] = dataclasses.field(default_factory=dict)

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
    def record(self) -> StudyRecord:
        """The study's MLflow record (read it, or write it holding its lock)."""
        return StudyRecord(self.config)

    # -- reading the record ---------------------------------------------------------------------

    def status(self) -> StudyStatus:
        """Trial counts per state and the best trial, read from the MLflow record only."""
        return self.record.status()

    def best(self) -> BestTrial | None:
        """The best feasible completed trial in the MLflow record, or ``None``."""
        return self.status().best

    def trials(self) -> pd.DataFrame:
        """Every trial in the MLflow record (the latest run per trial id), as ``autotune trials`` lists them.

        Returns:
            A DataFrame indexed by ``trial_id`` with the state, the objective (a column named
            after its metric), ``duration_s``, ``device``, a one-line ``failure``, ``started``
            and one ``params.<name>`` column per parameter.
        """
        from autotune.study._trials import trials_frame

        return trials_frame(self.record, self.config.objective.metric)

    # -- running --------------------------------------------------------------------------------

    def optimize(self, progress: bool = True, *, resume: bool | None = None) -> StudySummary:
        """Run the study until its budget is spent or a signal stops it.

        Ctrl-C (SIGINT) or SIGTERM stops it gracefully: running trials are cancelled and
        recorded ``killed``, reports are flushed, and the summary comes back as usual. A second
        signal stops at once (``KeyboardInterrupt``), still closing every trial's run.

        On resume, the trials a dead driver left running are recovered first
        (:meth:`StudyRecord.recover`): finished ones are adopted from their result files.

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
            TrackingError: The store cannot be used (a full disk, a read-only folder), or
                another driver runs this study.
            TrialError: A trial could not be submitted, or the first trials all failed with
                the same error (:data:`FAIL_FAST_TRIALS`).
        """
        cfg = self.config
        optimizer = self._optimizer()
        executor = self.executor if self.executor is not None else self._make_executor()  # starts nothing yet
        if executor.n_workers != cfg.parallelism.workers:
            raise ConfigError("Study(executor=...)", f"must have n_workers == parallelism.workers "
                              f"({cfg.parallelism.workers})", executor.n_workers,
                              "build the executor with n_workers=config.parallelism.workers.")
        cfg.resolved_output_dir.mkdir(parents=True, exist_ok=True)
        record = self.record
        with record.lock():
            record.open(self._study_tags(), resume=resume)
            recovery = record.recover(started_here=executor.leaves_trial_files,
                                      reattach=self._reattacher(executor))
            requeue = record.rebuild(optimizer, pending=True)  # the re-attached trials are pending
            driver = _Driver(cfg, record, optimizer, executor, requeue)
            for tid, (trial, job) in recovery.jobs.items():
                driver.reattached(tid, trial.run_id, job)
            summary = driver.run(progress)
        return dataclasses.replace(summary, recovered=recovery.counts())

    def _reattacher(self, executor: Executor) -> Callable[[LoadedTrial, Path, int], Job | None] | None:
        """How to take back a dead driver's trial (:meth:`Executor.adopt` returns ``None`` if it cannot)."""
        root = self.config.resolved_output_dir

        def reattach(trial: LoadedTrial, workdir: Path, reports_sent: int) -> Job | None:
            spec = _trial_spec(self.config, trial.trial_id, trial.params, workdir)
            return executor.adopt(workdir, spec, root=root, reports_seen=reports_sent)

        return reattach

    def _study_tags(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "autotune.objective": cfg.objective.metric,
            "autotune.direction": cfg.objective.direction,
            "autotune.executor": cfg.executor.name,
            "autotune.workers": cfg.parallelism.workers,
        }

    def _optimizer(self) -> Optimizer:
        """The driver's fresh optimiser (a hook for benchmarks that time its calls)."""
        return self.record.new_optimizer()

    def _make_executor(self) -> Executor:
        """The executor the config names, built by its own :meth:`Executor.for_study` hook."""
        from autotune.executors import get_executor_class

        cfg = self.config
        executor_class = get_executor_class(cfg.executor.name)
        try:
            return executor_class.for_study(cfg.base_dir, cfg.parallelism, dict(cfg.executor.options))
        except TypeError as exc:
            raise StudyConfigError(f"{self.record.where}: executor.options",
                                   f"are not accepted by the {cfg.executor.name!r} executor ({exc})",
                                   cfg.executor.options,
                                   "remove the unknown option; see the executor's documentation.") from None


class _Running:
    """A trial on the executor: its job, its MLflow run and its proposal."""

    def __init__(self, job: Job, run_id: str, suggestion: Suggestion) -> None:
        self.job = job
        self.run_id = run_id
        self.suggestion = suggestion
        self.started = time.monotonic()
        self.unsent: list[dict[str, Any]] = []  # reports read (and judged) but not yet sent to MLflow

    def take_reports(self) -> list[dict[str, Any]]:
        """The reports not sent yet: those read already, then the job's new ones."""
        reports = [*self.unsent, *self.job.new_reports()]
        self.unsent = []
        return reports


class _Driver:
    """The state of one :meth:`Study.optimize` call (private: the loop's pieces, kept small)."""

    def __init__(self, cfg: StudyConfig, record: StudyRecord, optimizer: Optimizer, executor: Executor,
                 requeue: list[LoadedTrial]) -> None:
        self.cfg = cfg
        self.record = record
        self.optimizer = optimizer
        self.executor = executor
        self.requeue = requeue
        self.running: dict[int, _Running] = {}
        # Trials counted against max_trials: recorded ones (a killed trial produced nothing
        # and is not counted), re-queued ones, and those started now.
        self.budget_ids = {o.trial_id for o in optimizer.observations if o.trial_id is not None}
        self.budget_ids |= {t.trial_id for t in requeue}
        self.n_new = 0
        self.stop_reason = ""
        self.signal_name = ""
        self.view = _View(cfg.name)
        self.durations: list[float] = []  # of the trials finished by this driver (for the ETA)
        self.stopper = EarlyStopper(cfg)
        #: Whether the strategy learns from the trials' learning curves (``mobster``).
        self.curves = bool(optimizer.strategy.uses_curves)
        self.start_clock = executor.now()
        self.last_stream = time.monotonic()
        self.last_plots = time.monotonic()
        self.plots_interval_s = PLOTS_MIN_INTERVAL_S
        self.finished_at_plots = self.n_finished
        # Suggestions asked ahead while the driver waits (pending to the optimiser, not yet started).
        self.ready: deque[Suggestion] = deque()
        self.prefetch = 0 if optimizer.strategy.synchronous else (cfg.parallelism.prefetch or 0)
        # The optimiser's mirror in a second process (parallelism.ask_process), started with the loop.
        self.ahead: AskAhead | None = None
        # The errors of the first failed trials, while none has completed (fail fast).
        self.first_errors: list[str] | None = (
            None if any(o.state is TrialState.COMPLETED for o in optimizer.observations) else [])
        # Record writes in progress: a second signal waits for them (no run is left RUNNING).
        self.shield = 0
        self.interrupt_pending = False

    def reattached(self, trial_id: int, run_id: str, job: Job) -> None:
        """Carry on with a trial a dead driver started (its run is open, the optimiser holds it pending)."""
        suggestion = next(s for s in self.optimizer.pending if s.trial_id == trial_id)
        self.running[trial_id] = _Running(job, run_id, suggestion)
        self.budget_ids.add(trial_id)

    @property
    def n_finished(self) -> int:
        """Trials learned from (killed ones are not)."""
        return len(self.optimizer.observations)

    # -- the loop -------------------------------------------------------------------------------

    def run(self, progress: bool) -> StudySummary:
        from autotune.executors import SubmitError  # loaded already: the executor exists

        start = time.monotonic()
        status = "FINISHED"
        try:
            with contextlib.suppress(Exception):  # the description from the start (presentation only)
                self._note(self.record.trials(), [], None)
            if self.stopper.active or self.curves:  # the rungs and curves as a dead driver left them
                from autotune.study._trials import read_reports

                trials = self.record.trials()
                reports = read_reports(self.record, trials)
                self.stopper.replay(trials, reports)
                for tid, records in reports.items():
                    self._learn_curve(tid, records)
            with _graceful_stop(self), self.view.showing(progress, self.cfg.budget.max_trials, self.n_finished):
                for trial in self.requeue:
                    self._launch(self.optimizer.add_pending(trial.params, trial.trial_id, {"strategy": "requeue"}),
                                 {TAG_REQUEUED_FROM: trial.run_id})
                self._start_ahead()
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
                    self._feed_ahead()
                    ahead = self._wants_prefetch()
                    mirror_busy = self.ahead is not None and self.ahead.busy
                    try:
                        finished = self.executor.wait(jobs, timeout_s=0.0 if ahead or mirror_busy else POLL_S)
                    except SubmitError as exc:  # e.g. Slurm refused a queued trial's job
                        self._stop_on_submit_error(exc)
                    if ahead and not finished:
                        self.ready.append(self.optimizer.ask(1)[0])
                    elif mirror_busy and not finished:  # real time passes while the mirror works
                        self._feed_ahead(wait_s=AHEAD_WAIT_S)
                    if self.stopper.active or self.curves:  # the rule decides on every report as it comes
                        self._collect()
                        self.stopper.enforce(jobs)
                    interval = max(STREAM_EVERY_S, STREAM_S_PER_TRIAL * len(self.running))
                    if time.monotonic() - self.last_stream >= interval:
                        self._stream()
                    for job in finished:  # a freed worker starts a ready suggestion before the next end is recorded
                        self._finish(job)
                        self._fill(ask=False)
                if self.signal_name:
                    status = "KILLED"
        except BaseException as exc:
            status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
            self._abandon()
            raise
        finally:
            self.shield += 1  # from here on every signal waits: the record is being closed
            if self.ahead is not None:
                self.ahead.close()
            for suggestion in self.ready:
                self.optimizer.forget(suggestion.trial_id)
            self.ready.clear()
            with contextlib.suppress(Exception):
                self.executor.shutdown(kill=True)
            if status != "FAILED":
                self._plots(final=True)
            with contextlib.suppress(Exception):
                self.record.end(status)
        fields = {f.name: getattr(self.record.status(), f.name) for f in dataclasses.fields(StudyStatus)}
        return StudySummary(**fields, stop_reason=self.stop_reason, n_new_trials=self.n_new,
                            duration_s=time.monotonic() - start)

    @contextlib.contextmanager
    def _shielded(self) -> Iterator[None]:
        """A record write that a second signal must not cut in half (it raises afterwards)."""
        self.shield += 1
        try:
            yield
        finally:
            self.shield -= 1
            if not self.shield and self.interrupt_pending:
                self.interrupt_pending = False
                raise KeyboardInterrupt

    def _remaining(self) -> int | None:
        max_trials = self.cfg.budget.max_trials
        return None if max_trials is None else max(0, max_trials - len(self.budget_ids))

    def _fill(self, ask: bool = True) -> None:
        """Give every free worker a trial: prefetched suggestions first, then ``ask(k)``, ``k <= ASK_BATCH_MAX``.

        Args:
            ask: ``False`` starts only suggestions already chosen (here or by the ask process),
                between the records of a wave of trials that ended together.
        """
        if self.stop_reason or (not ask and (self.signal_name or not (self.ready or self.ahead) or self.first_errors)):
            return  # (between records: not while the first trials fail, which may stop the study in this wave)
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
            if ask:
                for suggestion in self.optimizer.ask(min(workers, remaining or workers)):
                    self._launch(suggestion)
            return
        # The prefetched suggestions first, then batched asks of at most ASK_BATCH_MAX (one model
        # per batch, each point pending-aware), each batch launched as soon as it is chosen; any
        # left unlaunched by an error stay ready and are forgotten.
        # Before each ask here, the mirror's answer is taken if it is in and the mirror is given
        # its next request: a wave of free workers keeps both processes proposing.
        n = free if remaining is None else min(free, remaining)
        for i in range(n):
            if not self.ready:
                self._feed_ahead()
            if not self.ready:
                if not ask:
                    return
                self.ready.extend(self.optimizer.ask(min(n - i, ASK_BATCH_MAX)))
            self._launch(self.ready.popleft())

    def _wants_prefetch(self) -> bool:
        """Whether to ask one suggestion ahead now (every worker busy, fewer than ``prefetch`` ready)."""
        if len(self.ready) >= self.prefetch or self.stop_reason or self.signal_name:
            return False
        remaining = self._remaining()
        return remaining is None or remaining > len(self.ready)

    def _start_ahead(self) -> None:
        """Start the optimiser's mirror if ``parallelism.ask_process`` asks for it (or by default)."""
        if not wants_ask_process(self.cfg, self.optimizer):
            return
        from autotune.study._ahead import AskAhead, AskAheadError

        try:
            self.ahead = AskAhead(self.optimizer)
        except AskAheadError as exc:
            self._lose_ahead(exc)

    def _feed_ahead(self, wait_s: float = 0.0) -> None:
        """Make ready what the mirror proposed (waiting up to ``wait_s``), and give it the next request."""
        if self.ahead is None:
            return
        from autotune.study._ahead import AskAheadError

        try:
            got = self.ahead.collect(wait_s)
            if got:
                self.ready.extend(got)
            if self.ahead.busy or self.stop_reason or self.signal_name or not self.optimizer.models_next:
                return  # the initial design is the driver's: the mirror would propose the same points
            want = max(self.prefetch, AHEAD_BATCH) - len(self.ready)
            remaining = self._remaining()
            if remaining is not None:
                want = min(want, remaining - len(self.ready))
            if want > 0:
                self.ahead.request(min(want, AHEAD_BATCH))
        except AskAheadError as exc:
            self._lose_ahead(exc)

    def _lose_ahead(self, exc: Exception) -> None:
        """Go on asking in the driver's process (one warning; the mirror recorded nothing)."""
        import warnings

        message = (f"{self.record.where}: suggestions are asked in the driver's process from now on: the background "
                   f"ask process (parallelism.ask_process) failed: {exc}")
        logger.warning(message)
        warnings.warn(message, RuntimeWarning, stacklevel=2)
        if self.ahead is not None:
            self.ahead.close()
        self.ahead = None

    def _launch(self, suggestion: Suggestion, extra_tags: Mapping[str, Any] | None = None) -> None:
        """Open the trial's run, then submit it (a driver killed in between leaves an orphan run).

        Raises:
            TrialError: The executor refused the trial (the study stops; the trial is recorded failed).
        """
        cfg = self.cfg
        tid = suggestion.trial_id
        workdir = self.record.workdir(tid)
        spec = _trial_spec(cfg, tid, suggestion.params, workdir)
        with self._shielded():
            run_id = self.record.open_suggestion(suggestion, {TAG_WORKDIR: str(workdir), **(extra_tags or {})})
            self.budget_ids.add(tid)
            self.n_new += 1
            try:
                job = self.executor.submit(spec)
            except Exception as exc:
                now = self.executor.now()
                error = f"the trial could not be submitted: {exc}"
                self._record(run_id, TrialResult(tid, TrialState.FAILED, error=error, start_time=now, end_time=now))
                if isinstance(exc, ConfigError):  # e.g. resources no executor can give: the user's to fix
                    raise
                raise TrialError(
                    f"{self.record.where}: trial {tid} could not be submitted to the {cfg.executor.name!r} executor "
                    f"({type(exc).__name__}: {exc}); the study stops (trial {tid} is recorded failed). "
                    f"Fix: correct the cause, then `autotune resume {self.record.where}`."
                ) from exc
            self.running[tid] = _Running(job, run_id, suggestion)

    def _stop_on_submit_error(self, exc: SubmitError) -> NoReturn:
        """Stop as for a failed submit: the executor can start no trial (it sends trials later, e.g. Slurm).

        The trials it ended (those it could not send are ``FAILED``) are recorded; the others
        are then cancelled and closed by :meth:`run`'s error path.

        Raises:
            TrialError: Always, naming the study and the fix.
        """
        for running in list(self.running.values()):
            if running.job.state.is_finished:  # no poll: that could send (and fail) again
                self._finish(running.job)
        raise TrialError(
            f"{self.record.where}: the {self.cfg.executor.name!r} executor cannot start trials any more ({exc}); "
            f"the study stops (the trials it could not start are recorded failed, the running ones killed). "
            f"Fix: correct the cause, then `autotune resume {self.record.where}`."
        ) from exc

    def _collect(self) -> None:
        """Read the running trials' new reports (kept for :meth:`_stream`) and let the rule judge them."""
        for running in self.running.values():
            reports = running.job.new_reports()
            if reports:
                running.unsent.extend(reports)
                self._learn_curve(running.job.trial_id, reports)
                self.stopper.feed(running.job, reports)

    def _learn_curve(self, trial_id: int, reports: Sequence[Mapping[str, Any]]) -> None:
        """Give the objective's reported values to a strategy that learns from learning curves."""
        if not self.curves:
            return
        metric = self.cfg.objective.metric
        for r in reports:
            step, value = r.get("step"), r.get(metric)
            if isinstance(step, int) and step >= 0 and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.optimizer.report(trial_id, step, float(value))

    def _stream(self) -> None:
        """Send the reports made since the last look to each running trial's run (one batch each)."""
        self.last_stream = time.monotonic()
        for running in self.running.values():
            reports = running.take_reports()
            if reports:
                self.record.tracker.log_reports(running.run_id, reports)

    def _finish(self, job: Job) -> None:
        with self._shielded():
            running = self.running[job.trial_id]
            reports = running.take_reports()
            if reports:
                with contextlib.suppress(Exception):  # the result below still closes the run
                    self.record.tracker.log_reports(running.run_id, reports)
            self.running.pop(job.trial_id)
            result, tags = self.stopper.finish(job, job.result())
            self._learn_curve(job.trial_id, result.history)
            self._record(running.run_id, result, tags)

    def _record(self, run_id: str, result: TrialResult, tags: Mapping[str, Any] | None = None) -> None:
        """End the trial's run, tell the optimiser, update the best so far (one record call)."""
        self.record.finish_trial(run_id, result, self.optimizer, tags)
        if result.state is not TrialState.KILLED and result.duration_s > 0:
            self.durations.append(result.duration_s)
        best = self.optimizer.best()
        best_value = None if best is None else best.value
        self.view.trial_line(result, self.cfg.objective.metric, best_value, None if best is None else best.trial_id)
        self._check_fail_fast(result)
        if (self.n_finished - self.finished_at_plots >= PLOTS_EVERY
                and time.monotonic() - self.last_plots >= self.plots_interval_s):
            self._plots(final=False)

    def _check_fail_fast(self, result: TrialResult) -> None:
        """Stop when the first :data:`FAIL_FAST_TRIALS` trials all failed with the same error."""
        if self.first_errors is None or result.state is TrialState.KILLED:
            return
        if result.state in (TrialState.COMPLETED, TrialState.PRUNED):  # the trial code works
            self.first_errors = None
            return
        self.first_errors.append(_error_line(result))
        if len(self.first_errors) >= FAIL_FAST_TRIALS and len(set(self.first_errors)) == 1:
            raise TrialError(
                f"{self.record.where}: the first {FAIL_FAST_TRIALS} trials all failed with the same error before any "
                f"completed: {self.first_errors[0]}. The study stops (the trials are recorded). Fix: correct the "
                f"trial function or its environment (the full error is each run's trial/error.txt), then "
                f"`autotune resume {self.record.where}`."
            )
        if len(self.first_errors) >= FAIL_FAST_TRIALS:
            self.first_errors = None  # different errors: the space, not the code; carry on

    def _cancel_all(self) -> None:
        """Stop every running trial; each is recorded ``killed`` with its reports so far."""
        for job in [r.job for r in self.running.values()]:
            with self._shielded():  # a second signal waits for this trial's run to be closed
                job.cancel()
                self._finish(job)

    def _abandon(self) -> None:
        """On an error or a second signal: cancel the running trials and close every run.

        Signals wait meanwhile; a run whose result cannot be written is still closed (killed).
        """
        self.shield += 1
        try:
            for tid, running in list(self.running.items()):
                with contextlib.suppress(Exception):
                    running.job.cancel()
                try:
                    self._finish(running.job)
                except Exception:  # noqa: BLE001 (close the run whatever happened)
                    self.running.pop(tid, None)
                    with contextlib.suppress(Exception):
                        self.record.tracker.end_trial(running.run_id, TrialResult(
                            tid, TrialState.KILLED, error="the driver stopped on an error"))
            self.running.clear()
        finally:
            self.shield -= 1

    def _plots(self, final: bool) -> None:
        """Redraw the plots and the analysis views and rewrite the study run's description.

        All at one cadence whose interval grows with their cost (:data:`PLOTS_TIME_SHARE`).
        """
        from autotune.tracking import refresh_posterior_map, refresh_study_plots

        start = time.monotonic()
        tracker = self.record.tracker
        trials: list[LoadedTrial] = []
        plots: list[str] = []
        analysis: str | None = None
        try:
            trials = tracker.load_trials()
            plots = refresh_study_plots(tracker, trials, self.cfg.objective.direction, self.cfg.objective.metric,
                                        out_dir=self.cfg.resolved_output_dir / "plots",
                                        objectives=[(o.metric, o.direction) for o in self.cfg.objectives or []])
            live_map = refresh_posterior_map(tracker, self.optimizer, self.cfg.objective.metric,
                                             out_dir=self.cfg.resolved_output_dir / "plots")
            plots += [live_map] if live_map else []
        except Exception as exc:  # noqa: BLE001 (plots must never stop a study)
            logger.warning("the study plots could not be drawn%s: %s", " at the end" if final else "", exc)
        try:
            analysis = self._analysis(trials)
        except Exception as exc:  # noqa: BLE001 (nor the analysis views)
            logger.warning("the analysis views could not be drawn%s: %s", " at the end" if final else "", exc)
        try:
            self._note(trials, plots, analysis)
        except Exception as exc:  # noqa: BLE001 (nor the description)
            logger.warning("the study run's description could not be written: %s", exc)
        self.last_plots, self.finished_at_plots = time.monotonic(), self.n_finished
        self.plots_interval_s = max(PLOTS_MIN_INTERVAL_S, (self.last_plots - start) / PLOTS_TIME_SHARE)

    def _analysis(self, trials: Sequence[LoadedTrial]) -> str | None:
        """Write the analysis views (:mod:`autotune.analysis`) to the study run; their artifact path.

        ``None`` (nothing written) until :data:`autotune.analysis.MIN_COMPLETED` trials completed.
        """
        from autotune.analysis import MIN_COMPLETED, write_report
        from autotune.study._trials import read_reports

        if sum(1 for o in self.optimizer.observations if o.state is TrialState.COMPLETED) < MIN_COMPLETED:
            return None
        reports = read_reports(self.record, trials)
        path = write_report(self.optimizer, reports, self.cfg.resolved_output_dir / ANALYSIS_FILE,
                            title=f"Study {self.cfg.name}", objective=self.cfg.objective.metric)
        self.record.tracker.log_study_artifact(path, ANALYSIS_ARTIFACT_DIR)
        return f"{ANALYSIS_ARTIFACT_DIR}/{path.name}"

    def _note(self, trials: Sequence[LoadedTrial], plots: Sequence[str], analysis: str | None) -> None:
        """Rewrite the study run's Markdown description (MLflow's note)."""
        from autotune.tracking import study_note

        tracker = self.record.tracker
        best = self.optimizer.best()
        cfg = self.cfg
        tracker.set_study_note(study_note(
            study_name=cfg.name, experiment_id=tracker.experiment_id, parent_run_id=tracker.parent_run_id,
            objective=cfg.objective.metric, direction=cfg.objective.direction, strategy=cfg.strategy.name,
            trials=trials, best_trial_id=None if best is None else best.trial_id,
            max_trials=cfg.budget.max_trials, study_file=None if cfg.study_file is None else str(cfg.study_file),
            plots=plots, analysis=analysis))

    def _refresh_view(self) -> None:
        failed = sum(1 for o in self.optimizer.observations if o.state.is_failure)
        best = self.optimizer.best()
        total = self.cfg.budget.max_trials
        eta = None if total is None else eta_seconds(total - self.n_finished, self.running_ages(),
                                                     self.cfg.parallelism.workers, self.durations)
        self.view.update(self.n_finished, len(self.running), failed, None if best is None else best.value, eta)

    def running_ages(self) -> list[float]:
        """How long each running trial has run, in real seconds (for the ETA)."""
        now = time.monotonic()
        return [now - r.started for r in self.running.values()]

    def on_signal(self, signum: int) -> None:
        """Ask the loop to stop (called from the signal handler: only sets a flag)."""
        self.signal_name = signal.Signals(signum).name


ASK_BATCH_MAX = 8
"""The most suggestions the driver asks for at once when several workers are free. One batch
shares one model (a batch of 4 takes one GP build instead of 4), but its first trial waits for
the whole batch: unbounded batches (up to 200 points at 256 workers) left waves of workers idle
for a minute in ``benchmarks/results/utilisation_w128_256_batched.md``."""


AHEAD_BATCH = 4
"""Points per request to the optimiser's mirror (``parallelism.ask_process``): small, so each
batch is chosen from a fresh history, and the driver's own asks cover a wave of free workers."""

AHEAD_WAIT_S = 0.05
"""How long the driver waits on the mirror before it polls the executor again."""


def wants_ask_process(cfg: StudyConfig, optimizer: Optimizer) -> bool:
    """Whether the study asks in a background process: ``parallelism.ask_process`` (resolved with
    the file, :class:`~autotune.study._config.ParallelismConfig`), if the optimiser's strategy is
    asynchronous, model-based and learns nothing from curves (a mirror would not see the reports)."""
    strategy = optimizer.strategy
    able = strategy.model_based and not strategy.synchronous and not strategy.uses_curves
    return bool(cfg.parallelism.ask_process) and able


def _trial_spec(cfg: StudyConfig, trial_id: int, params: Mapping[str, Any], workdir: Path) -> TrialSpec:
    """What the executor runs for one trial of the study."""
    return TrialSpec(
        trial_id=trial_id,
        params=dict(params),
        entry_point=cfg.trial.entry_point,
        fixed_args=dict(cfg.trial.fixed_args),
        timeout_s=cfg.trial.timeout_s,
        workdir=str(workdir),
        resources=Resources(cfg.parallelism.gpus_per_trial, cfg.parallelism.cpus_per_trial,
                            cfg.parallelism.trials_per_gpu),
        objective=cfg.objective.metric,
    )


def _error_line(result: TrialResult) -> str:
    """The line that names a failed trial's error (the traceback's last), or its state."""
    lines = (result.error or "").strip().splitlines()
    return lines[-1][:300] if lines else result.state.value


@contextlib.contextmanager
def _graceful_stop(driver: _Driver) -> Iterator[None]:
    """SIGINT/SIGTERM ask the driver to stop; a second one raises ``KeyboardInterrupt`` at once.

    At once, except inside a record write: then it raises when the write is done, so that
    every trial's run is closed. Handlers are only installed from the main thread (elsewhere
    signals cannot be caught).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if driver.signal_name:
            if driver.shield:
                driver.interrupt_pending = True
                return
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
                from rich.progress import (
                    BarColumn,
                    MofNCompleteColumn,
                    Progress,
                    TextColumn,
                    TimeElapsedColumn,
                )

                self.progress = Progress(
                    TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("running {task.fields[running]}  failed {task.fields[failed]}  "
                               "best {task.fields[best]}"),
                    TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"), console=console,
                )
                self.task = self.progress.add_task(self.name, total=total, completed=done, running=0, failed=0,
                                                   best="-", eta="-")
        if self.progress is None:
            yield
            return
        with self.progress:
            yield
        self.progress = None

    def update(self, done: int, running: int, failed: int, best: float | None, eta_s: float | None = None) -> None:
        if self.progress is not None and self.task is not None:
            self.progress.update(self.task, completed=done, running=running, failed=failed,
                                 best="-" if best is None else f"{best:.5g}", eta=format_eta(eta_s))


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


def eta_seconds(remaining: int, running_ages: Sequence[float], workers: int, durations: Sequence[float]) -> float | None:
    """Real seconds until the budget's last trial ends, from the trials' durations so far.

    Each running trial needs the median duration minus its age (at least 0); the trials not
    yet started run ``workers`` at a time, each taking the median duration. An estimate for a
    progress bar, not a promise: trials of very different lengths (early stopping, sizes) make
    it rough.

    Args:
        remaining: Trials of the budget not finished yet (running ones included).
        running_ages: How long each running trial has run.
        workers: Trials that run at once.
        durations: Durations of the finished trials.

    Returns:
        The estimate; ``None`` before any trial finished, ``0.0`` when nothing remains.
    """
    if remaining <= 0:
        return 0.0
    if not durations:
        return None
    ordered = sorted(durations)
    mid = len(ordered) // 2
    median = ordered[mid] if len(ordered) % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])
    running = list(running_ages)[:remaining]
    running_left = max((max(median - age, 0.0) for age in running), default=0.0)
    unstarted = remaining - len(running)
    waves = math.ceil(unstarted / max(workers, 1)) if unstarted > 0 else 0
    # a new trial starts as soon as a running one ends: the first wave overlaps the running ones
    first_free = min((max(median - age, 0.0) for age in running), default=0.0) if len(running) >= workers else 0.0
    return max(running_left, first_free + waves * median)


def format_eta(seconds: float | None) -> str:
    """``1:02:03``, ``4:05`` or ``-`` (unknown)."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
