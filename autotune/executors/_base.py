"""The executor contract: ``Executor.submit(spec) -> Job`` with ``concurrent.futures`` verbs."""

from __future__ import annotations

import abc
import json
import logging
import os
import time
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from autotune.exceptions import AutotuneError, ConfigError, TrialError
from autotune.executors._outcome import latest_values
from autotune.trial import TrialResult, TrialSpec, TrialState

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

__all__ = [
    "Executor",
    "Job",
    "PolledJob",
    "PollingExecutor",
    "StudyParallelism",
    "SubmitError",
    "check_positive_int",
    "read_new_reports",
]

logger = logging.getLogger(__name__)


class SubmitError(AutotuneError):
    """The executor cannot start trials at all: no trial of this study can run until it is fixed.

    Raised by :meth:`Executor.submit` (and, for executors that send trials later, by
    :meth:`Executor.wait`) when the means of running trials is broken rather than one trial:
    the interpreter is missing, the cluster refused the submission, the scheduler is
    unreachable. A driver should stop with a non-zero exit instead of recording a failure
    for every trial. (An error of one trial's own spec stays a
    :class:`~autotune.exceptions.TrialError` or :class:`~autotune.exceptions.ConfigError`.)
    """


def check_positive_int(where: str, value: Any) -> None:
    """Raise :class:`~autotune.exceptions.ConfigError` unless ``value`` is an int >= 1.

    Args:
        where: The argument, e.g. ``"LocalExecutor(n_workers=...)"``.
        value: The value received.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(where, "must be an int >= 1", value)


class Job(abc.ABC):
    """A submitted trial.

    Subclasses implement :meth:`_poll`, :meth:`cancel`, :meth:`_started` and :meth:`_all_reports`;
    the executor calls :meth:`set_result` once, when the trial reaches its terminal state.

    Args:
        executor: The executor that runs the job.
        spec: The trial.
    """

    def __init__(self, executor: Executor, spec: TrialSpec) -> None:
        self.executor = executor
        self.spec = spec
        self.device: str | None = None
        """Where the trial runs (``"cpu"``, ``"cuda:3"``, ``"cuda:2,cuda:5"``), ``None`` before it starts."""
        self._result: TrialResult | None = None
        self._n_reports_seen = 0

    @property
    def trial_id(self) -> int:
        """The trial number."""
        return self.spec.trial_id

    @property
    def state(self) -> TrialState:
        """``PENDING`` (queued), ``RUNNING``, or the terminal state."""
        if self._result is not None:
            return self._result.state
        return TrialState.RUNNING if self._started() else TrialState.PENDING

    def set_result(self, result: TrialResult) -> bool:
        """Record how the trial ended; for executors. The first call wins.

        Args:
            result: The terminal result (its state must be finished).

        Returns:
            Whether this call set the result (``False``: the job had already ended).

        Raises:
            TrialError: ``result`` is for another trial or its state is not terminal.
        """
        if result.trial_id != self.trial_id or not result.state.is_finished:
            raise TrialError(
                f"trial {self.trial_id}: set_result() needs a finished result of this trial, got trial "
                f"{result.trial_id} in state {result.state.value!r}."
            )
        if self._result is not None:
            return False
        self._result = result
        return True

    def done(self) -> bool:
        """Whether the trial has reached its terminal state (checks without blocking)."""
        if self._result is None:
            self._poll()
        return self._result is not None

    def result(self, timeout_s: float | None = None) -> TrialResult:
        """Wait for the trial to finish and return how it ended.

        Args:
            timeout_s: The longest wait in seconds (of the executor's clock), ``None`` for no limit.

        Returns:
            The trial's result.

        Raises:
            TimeoutError: The trial did not finish within ``timeout_s``.
        """
        if self._result is None:
            self.executor.wait([self], timeout_s=timeout_s)
            if self._result is None and timeout_s is None:  # e.g. woken with nothing finished
                while self._result is None:
                    self.executor.wait([self])
        if self._result is None:
            raise TimeoutError(f"trial {self.trial_id} did not finish within {timeout_s} s")
        return self._result

    def new_reports(self) -> list[dict[str, Any]]:
        """The ``report(...)`` records made since the previous call, oldest first."""
        reports = self._all_reports()
        new = reports[self._n_reports_seen :]
        self._n_reports_seen = len(reports)
        return [dict(record) for record in new]

    @abc.abstractmethod
    def cancel(self) -> bool:
        """Stop the trial: it ends ``KILLED``.

        Returns:
            ``True`` if the trial was stopped (or will never start), ``False`` if it had already
            finished.
        """

    @abc.abstractmethod
    def _poll(self) -> None:
        """Update the job's state without blocking; :meth:`set_result` once it has finished."""

    @abc.abstractmethod
    def _started(self) -> bool:
        """Whether the trial has started running."""

    @abc.abstractmethod
    def _all_reports(self) -> list[dict[str, Any]]:
        """Every report record made so far, oldest first."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(trial_id={self.trial_id}, state={self.state.value}, device={self.device!r})"


class StudyParallelism(Protocol):
    """A study's ``parallelism`` settings as :meth:`Executor.for_study` reads them."""

    @property
    def workers(self) -> int:
        """How many trials run at once."""

    @property
    def trials_per_gpu(self) -> int:
        """How many trials may share one GPU."""


class Executor(abc.ABC):
    """Runs trials: ``submit`` a :class:`~autotune.trial.TrialSpec`, ``wait`` for jobs to finish.

    Executors are driven from one thread. A job submitted while every worker is busy is queued
    and starts when one frees (its state stays ``PENDING`` until then).

    Args:
        n_workers: How many trials may run at once.
    """

    def __init__(self, n_workers: int = 1) -> None:
        check_positive_int(f"{type(self).__name__}(n_workers=...)", n_workers)
        self.n_workers = n_workers

    @classmethod
    def for_study(cls, study_dir: str | os.PathLike[str], parallelism: StudyParallelism,
                  options: dict[str, Any]) -> Self:
        """Build the executor a study file names, adapting the study's generic settings.

        The study calls this hook (never the constructor) so that each executor decides
        itself what the study's folder and parallelism mean to it: executors that start
        trial processes put ``study_dir`` on the trials' import path, those that run trials
        in the driver's process put it on ``sys.path``. This default passes
        ``n_workers=parallelism.workers`` and ``options`` to the constructor; plugins
        inherit it and override it when they need more.

        Args:
            study_dir: The study file's folder (trials import ``module:function`` from it).
            parallelism: The study's ``parallelism`` settings.
            options: The study file's ``executor.options`` (not changed).

        Returns:
            The executor.

        Raises:
            TypeError: ``options`` holds an argument the constructor does not accept.
        """
        return cls(n_workers=parallelism.workers, **options)

    @property
    def leaves_trial_files(self) -> bool:
        """Whether trials run on this machine and leave their output in their workdir.

        A resumed study then reads a dead driver's trials from their folders (result file,
        logs) and kills trial processes still running there. ``False`` by default.
        """
        return False

    def adopt(self, workdir: str | os.PathLike[str], spec: TrialSpec, *,
              root: str | os.PathLike[str] | None = None, reports_seen: int = 0) -> Job | None:
        """Take back a trial a dead driver started in ``workdir``, if it still runs or has finished.

        Args:
            workdir: The trial's folder.
            spec: The trial, as it was submitted.
            root: The study's output folder (a trial's folder must lie inside it).
            reports_seen: How many of its reports the record already holds.

        Returns:
            A job following the trial, or ``None``: this executor cannot re-attach (the default).
        """
        return None

    @abc.abstractmethod
    def submit(self, spec: TrialSpec) -> Job:
        """Start (or queue) a trial.

        Args:
            spec: The trial.

        Returns:
            Its job.
        """

    @abc.abstractmethod
    def wait(self, jobs: Sequence[Job], timeout_s: float | None = None) -> list[Job]:
        """Block until at least one of ``jobs`` has finished, or ``timeout_s`` has passed.

        Args:
            jobs: Jobs of this executor.
            timeout_s: The longest wait in seconds (of :meth:`now`'s clock), ``None`` for no limit.

        Returns:
            The finished jobs among ``jobs``, in the given order (empty on timeout, or when
            ``jobs`` is empty).
        """

    @abc.abstractmethod
    def now(self) -> float:
        """The executor's clock in seconds (wall-clock epoch time, or simulated time)."""

    @abc.abstractmethod
    def shutdown(self, kill: bool = False) -> None:
        """Stop the executor.

        Args:
            kill: ``True`` cancels every unfinished job (they end ``KILLED``); ``False`` waits
                for them to finish.
        """

    def _own(self, jobs: Sequence[Job]) -> None:
        for job in jobs:
            if job.executor is not self:
                raise TrialError(
                    f"trial {job.trial_id}: wait() was given a job of another executor ({type(job.executor).__name__})."
                )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown(kill=exc_type is not None)


def read_new_reports(path: str | os.PathLike[str], offset: int) -> tuple[list[dict[str, Any]], int]:
    """The records appended to a reports channel (JSON lines) since byte ``offset``.

    A line still being written (no newline yet) is left for the next read; a line that is not
    a JSON object is skipped with a warning.

    Args:
        path: The channel file (it may not exist yet).
        offset: Where the previous read stopped.

    Returns:
        The new records and the offset to read from next time.
    """
    try:
        with open(path, "rb") as file:
            file.seek(offset)
            chunk = file.read()
    except FileNotFoundError:
        return [], offset
    end = chunk.rfind(b"\n") + 1
    records: list[dict[str, Any]] = []
    for line in chunk[:end].splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            logger.warning("%s: skipped a line that is not JSON: %r", path, line[:200])
            continue
        if isinstance(record, dict):
            records.append(_clean_record(record, path))
    return records, offset + end


def _clean_record(record: dict[str, Any], path: str | os.PathLike[str]) -> dict[str, Any]:
    """A report record as the driver may use it: ``step`` an int, every other value a float.

    ``report(...)`` writes only such records, but the channel is a plain file in the trial's
    folder: a value that is not a number (or an int beyond a float's range) is dropped with a
    warning rather than left to crash the driver later.
    """
    clean: dict[str, Any] = {}
    for name, value in record.items():
        if name == "step" and isinstance(value, int) and not isinstance(value, bool):
            clean[name] = value
            continue
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                clean[str(name)] = float(value)
                continue
            except OverflowError:
                pass
        logger.warning("%s: dropped the value of %r, which is not a float: %.80r", path, name, value)
    return clean


class PolledJob(Job):
    """A job of a :class:`PollingExecutor`: polling and cancelling go through the executor.

    Attributes:
        start_time: When the trial started, seconds since the epoch (``None`` before, or unknown).
        start_mono: The same on ``time.monotonic``'s clock (``None`` before, or unknown).
    """

    executor: PollingExecutor[Any]

    def __init__(self, executor: PollingExecutor[Any], spec: TrialSpec) -> None:
        super().__init__(executor, spec)
        self.start_time: float | None = None
        self.start_mono: float | None = None
        self._reports: list[dict[str, Any]] = []

    def _accept(self, result: TrialResult, host: str | None) -> None:
        """End with a result the trial's own process returned on ``host`` (its whole report history)."""
        if host:
            result.device = f"{result.device or 'cpu'}@{host}"
        self.device = result.device
        self._reports = list(result.history)
        self.executor._settle(self, result)

    def _poll(self) -> None:
        self.executor.poll()

    def cancel(self) -> bool:
        return self.executor._cancel(self)


_J = TypeVar("_J", bound=PolledJob)


class PollingExecutor(Executor, Generic[_J]):
    """An executor on the wall clock that looks at its trials every ``poll_interval_s``.

    The shared loop of the local, Ray and Slurm executors: the queue (trials start in order
    while fewer than ``n_workers`` run), the wait loop, cancelling a trial that has not
    started, and recording a terminal state decided on the driver's side (:meth:`_finish`).
    Subclasses implement :meth:`_launch` (start one trial), :meth:`_update` (collect finished
    trials, then call :meth:`_dispatch`) and :meth:`_cancel_running`; they may override
    :meth:`_can_start` (e.g. free GPUs), :meth:`_release` (what a finished trial held) and
    :meth:`_pause` (wait on something better than ``time.sleep``).

    Args:
        n_workers: How many trials may run at once.
    """

    poll_interval_s: float

    def __init__(self, n_workers: int = 1) -> None:
        super().__init__(n_workers)
        self._queue: list[_J] = []
        self._running: list[_J] = []
        self._jobs: list[_J] = []

    def poll(self) -> None:
        """Look at the trials once, without blocking: collect finished ones, start queued ones."""
        self._update()

    def wait(self, jobs: Sequence[Job], timeout_s: float | None = None) -> list[Job]:
        """See :meth:`Executor.wait`."""
        self._own(jobs)
        if not jobs:
            return []
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self.poll()
            finished = [job for job in jobs if job._result is not None]
            if finished:
                return finished
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return []
            self._pause(self.poll_interval_s if remaining is None else min(remaining, self.poll_interval_s))

    def now(self) -> float:
        """Wall-clock time, seconds since the epoch."""
        return time.time()

    def shutdown(self, kill: bool = False) -> None:
        """See :meth:`Executor.shutdown`."""
        unfinished = [job for job in self._jobs if job._result is None]
        for job in unfinished:
            if kill:
                self._cancel(job)
            else:
                job.result()

    # -- the queue --------------------------------------------------------------------------

    def _enqueue(self, job: _J) -> None:
        """Add a new job to the queue, then start what can start."""
        self._jobs.append(job)
        self._queue.append(job)
        self._dispatch()

    def _dispatch(self) -> None:
        """Start queued trials, in order, while fewer than ``n_workers`` run and :meth:`_can_start` agrees."""
        while self._queue and len(self._running) < self.n_workers:
            job = self._queue[0]
            if not self._can_start(job):
                return
            self._queue.pop(0)
            self._launch(job)

    def _can_start(self, job: _J) -> bool:
        """Whether the first queued job may start now (reserving what it needs); ``True`` by default."""
        return True

    @abc.abstractmethod
    def _launch(self, job: _J) -> None:
        """Start a job taken from the queue: add it to ``_running``, or :meth:`_finish` it if it cannot start."""

    @abc.abstractmethod
    def _update(self) -> None:
        """Collect finished trials, then :meth:`_dispatch` queued ones."""

    # -- ending jobs ------------------------------------------------------------------------

    def _cancel(self, job: _J) -> bool:
        """Stop ``job``; whether it was stopped (``False``: it had already ended)."""
        if job._result is not None:
            return False
        if job in self._queue:
            self._queue.remove(job)
            self._finish(job, TrialState.KILLED, "cancelled by the driver before it started")
            return True
        return self._cancel_running(job)

    @abc.abstractmethod
    def _cancel_running(self, job: _J) -> bool:
        """Stop a started, unfinished job; whether it was stopped (``False``: it had already ended)."""

    def _finish(
        self, job: _J, state: TrialState, error: str | None, metrics: dict[str, float] | None = None
    ) -> None:
        """Record a terminal state decided on the driver's side (the first call wins).

        The metrics are the latest reported values unless given; start and duration come from
        the job's ``start_mono``/``start_time`` (0 s for a trial that never started).
        """
        if job._result is not None:
            return
        end = time.time()
        if job.start_mono is not None:
            duration = time.monotonic() - job.start_mono
            start = job.start_time if job.start_time is not None else end - duration
        elif job.start_time is not None:
            start, duration = job.start_time, end - job.start_time
        else:
            start, duration = end, 0.0
        result = TrialResult(
            trial_id=job.trial_id,
            state=state,
            metrics=latest_values(job._reports) if metrics is None else metrics,
            history=list(job._reports),
            error=error,
            device=job.device or "",
            duration_s=duration,
            start_time=start,
            end_time=end,
        )
        self._settle(job, result)

    def _settle(self, job: _J, result: TrialResult) -> None:
        """Give a job its result (the first wins), take it off the running list and :meth:`_release` it."""
        if job._result is not None:
            return
        if job in self._running:
            self._running.remove(job)
        self._release(job, result)
        job.set_result(result)

    def _release(self, job: _J, result: TrialResult) -> None:
        """Free what a finished job held, and complete its result (e.g. output files); nothing by default."""

    def _pause(self, seconds: float) -> None:
        """Wait up to ``seconds`` between two looks at the trials."""
        time.sleep(seconds)
