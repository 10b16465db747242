"""The executor contract: ``Executor.submit(spec) -> Job`` with ``concurrent.futures`` verbs."""

from __future__ import annotations

import abc
import json
import logging
import os
import time
from collections.abc import Sequence
from types import TracebackType
from typing import Any, TypeVar

from autotune.exceptions import ConfigError, TrialError
from autotune.trial import TrialResult, TrialSpec, TrialState

__all__ = ["Executor", "Job", "PolledJob", "PollingExecutor", "check_positive_int", "read_new_reports"]

_E = TypeVar("_E", bound="Executor")

logger = logging.getLogger(__name__)


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

    Subclasses implement :meth:`_poll`, :meth:`cancel` and :meth:`_all_reports`; they set
    :attr:`_result` exactly once, when the trial reaches its terminal state.

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
        """Update the job's state without blocking; set :attr:`_result` once it has finished."""

    @abc.abstractmethod
    def _started(self) -> bool:
        """Whether the trial has started running."""

    @abc.abstractmethod
    def _all_reports(self) -> list[dict[str, Any]]:
        """Every report record made so far, oldest first."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(trial_id={self.trial_id}, state={self.state.value}, device={self.device!r})"


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

    def __enter__(self: _E) -> _E:
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
            records.append(record)
    return records, offset + end


class PolledJob(Job):
    """A job of a :class:`PollingExecutor`: polling and cancelling go through the executor."""

    executor: PollingExecutor
    _reports: list[dict[str, Any]]

    def _accept(self, result: TrialResult, host: str | None) -> None:
        """End with a result the trial's own process returned on ``host`` (its whole report history)."""
        if host:
            result.device = f"{result.device or 'cpu'}@{host}"
        self.device = result.device
        self._reports = list(result.history)
        self._result = result

    def _poll(self) -> None:
        self.executor._update()

    def cancel(self) -> bool:
        return self.executor._cancel(self)


class PollingExecutor(Executor):
    """An executor on the wall clock that looks at its trials every ``poll_interval_s``.

    The shared loop of the local, Ray and Slurm executors. Subclasses keep every job in
    ``_jobs`` and implement :meth:`_update` (collect finished trials, start queued ones) and
    :meth:`_cancel`; :meth:`_pause` may wait on something better than ``time.sleep``.
    """

    poll_interval_s: float
    _jobs: list[Job]

    def wait(self, jobs: Sequence[Job], timeout_s: float | None = None) -> list[Job]:
        """See :meth:`Executor.wait`."""
        self._own(jobs)
        if not jobs:
            return []
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            self._update()
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

    @abc.abstractmethod
    def _update(self) -> None:
        """Collect finished trials and start queued ones."""

    @abc.abstractmethod
    def _cancel(self, job: Any) -> bool:
        """Stop ``job``; whether it was stopped (``False``: it had already ended)."""

    def _pause(self, seconds: float) -> None:
        """Wait up to ``seconds`` between two looks at the trials."""
        time.sleep(seconds)
