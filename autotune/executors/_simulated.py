"""Simulated time (as in Syne Tune): trial durations are replayed, so scheduling is tested in seconds.

Nothing sleeps. :meth:`SimulatedExecutor.wait` jumps the virtual clock to the next
completion; :meth:`SimulatedExecutor.now` reads it. Worker busy time is recorded so the
utilisation of a schedule can be measured.

With ``driver_clock=True`` the driver's own real time counts too: the wall time spent outside
the executor's calls (asking the optimiser, logging to MLflow, bookkeeping) moves the virtual
clock, so a slow driver shows up as idle workers. Hand-written: Syne Tune's simulator has no
such hook for an arbitrary driver loop, and it is a few lines here.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ConfigError
from autotune.executors._base import Executor, Job, StudyParallelism
from autotune.executors._outcome import (
    Outcome,
    latest_values,
    outcome_from_exception,
    outcome_from_return,
    resolve_entry_point,
)
from autotune.executors._paths import add_to_sys_path
from autotune.executors._registry import register_executor
from autotune.report import to_metrics
from autotune.trial import TrialResult, TrialSpec, TrialState

__all__ = ["SimulatedExecutor"]

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

ObjectiveValue = float | Mapping[str, Any] | Sequence[Mapping[str, Any]]


class _SimulatedJob(Job):
    executor: SimulatedExecutor

    def __init__(self, executor: SimulatedExecutor, spec: TrialSpec) -> None:
        super().__init__(executor, spec)
        self.worker: int | None = None
        self.start_time = 0.0
        self.end_time = 0.0  # planned end (completion or time limit)
        self.outcome: Outcome | None = None  # planned outcome
        self.reports: list[tuple[float, dict[str, Any]]] = []  # (virtual time, record)

    def _started(self) -> bool:
        return self.worker is not None

    def _poll(self) -> None:
        """Nothing happens between clock moves: a job is done only once :meth:`wait` passes its end."""

    def cancel(self) -> bool:
        return self.executor._cancel(self)

    def _all_reports(self) -> list[dict[str, Any]]:
        now = self.executor.now()
        return [record for t, record in self.reports if t <= now]


@register_executor("simulated")
class SimulatedExecutor(Executor):
    """Replays trials in virtual time: each takes ``duration_fn(params)`` seconds, instantly.

    A trial starts at the virtual time it is submitted (or, when every worker is busy, when the
    first one frees) and ends ``duration_fn(params)`` seconds later; a trial with
    ``spec.timeout_s`` shorter than that ends ``TIMEOUT`` at ``start + timeout_s``.
    ``objective_fn(params)`` gives the trial's outcome, evaluated when it starts:

    * a float, or a dict of metrics (as a training function returns);
    * a list of dicts: a learning curve, replayed as ``report(...)`` records spread evenly over
      the duration (record ``i`` of ``n`` at ``start + (i + 1) / n * duration``), so pruning
      can be simulated; the final metrics are the last values.

    An exception from ``objective_fn`` ends the trial as a real one would (``FAILED``, ``OOM``),
    at the end of its duration.

    Args:
        n_workers: How many trials run at once.
        duration_fn: Seconds a trial takes, from its parameters.
        objective_fn: The trial's outcome, from its parameters.
        start_time: The virtual clock's start.
        driver_clock: Also move the virtual clock by the real time the driver spends between
            two calls of this executor (:meth:`submit`, :meth:`wait`, :meth:`now`,
            :meth:`advance`, a job's ``cancel``), from the first call on; time inside the
            calls (the replayed ``duration_fn``/``objective_fn`` included) is not counted.
            :attr:`driver_time_s` sums what was charged.
        wall_clock: The real clock ``driver_clock`` reads, in seconds (injectable for tests).
    """

    def __init__(
        self,
        n_workers: int = 1,
        duration_fn: Callable[[dict[str, Any]], float] | None = None,
        objective_fn: Callable[[dict[str, Any]], ObjectiveValue] | None = None,
        *,
        start_time: float = 0.0,
        driver_clock: bool = False,
        wall_clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        super().__init__(n_workers)
        if duration_fn is None or objective_fn is None:
            raise ConfigError(
                "SimulatedExecutor",
                "needs duration_fn and objective_fn",
                fix="pass duration_fn=lambda params: seconds and objective_fn=lambda params: value.",
            )
        self.duration_fn = duration_fn
        self.objective_fn = objective_fn
        self.start_time = start_time
        self._now = start_time
        self._free_workers = list(range(n_workers))  # a heap: the lowest free index first
        self._queue: list[_SimulatedJob] = []
        self._events: list[tuple[float, int, _SimulatedJob]] = []  # (end time, sequence, job)
        self._seq = 0
        self._jobs: list[_SimulatedJob] = []
        self._busy_s = [0.0] * n_workers
        self._busy_since: dict[int, float] = {}  # worker -> start of its running trial
        self.driver_clock = driver_clock
        self.wall_clock = wall_clock
        self.driver_time_s = 0.0
        """Virtual seconds charged for the driver's own time (``driver_clock=True``)."""
        self._left_at: float | None = None  # wall-clock time the driver last left this executor
        self._in_call = False

    @classmethod
    def for_study(cls, study_dir: str | os.PathLike[str], parallelism: StudyParallelism,
                  options: dict[str, Any]) -> Self:
        """See :meth:`Executor.for_study`: ``study_dir`` goes on ``sys.path``, and
        ``duration_fn``/``objective_fn`` may be ``"module:function"`` strings (imported from there)."""
        add_to_sys_path(study_dir)
        options = dict(options)
        for key in ("duration_fn", "objective_fn"):
            if isinstance(options.get(key), str):
                options[key] = resolve_entry_point(options[key])
        return cls(n_workers=parallelism.workers, **options)

    # -- public API -----------------------------------------------------------------------

    def submit(self, spec: TrialSpec) -> Job:
        """Start the trial at the current virtual time (or queue it); see :meth:`Executor.submit`."""
        with self._driver_call():
            job = _SimulatedJob(self, spec)
            self._jobs.append(job)
            self._queue.append(job)
            self._dispatch()
        return job

    def wait(self, jobs: Sequence[Job], timeout_s: float | None = None) -> list[Job]:
        """Advance the virtual clock to the next completion(s); see :meth:`Executor.wait`.

        Every trial ending at the same virtual time finishes together. With ``timeout_s`` the
        clock moves at most that far.
        """
        self._own(jobs)
        with self._driver_call():
            limit = math.inf if timeout_s is None else self._now + timeout_s
            while True:
                finished = [job for job in jobs if job._result is not None]
                if finished or not jobs:
                    return finished
                if not self._step(limit):
                    if timeout_s is not None:
                        self._now = max(self._now, limit)
                    return []

    def now(self) -> float:
        """The virtual time in seconds."""
        with self._driver_call():
            return self._now

    def advance(self, seconds: float) -> None:
        """Move the clock forward, e.g. to model the driver's own time between suggestions.

        Trials ending within ``seconds`` finish (and queued ones start) as they would have
        meanwhile.

        Args:
            seconds: How far to move, >= 0.
        """
        if not seconds >= 0:
            raise ConfigError("SimulatedExecutor.advance(seconds=...)", "must be >= 0", seconds)
        with self._driver_call():
            self._advance(seconds)

    def shutdown(self, kill: bool = False) -> None:
        """See :meth:`Executor.shutdown` (without ``kill`` the clock runs until every trial ends)."""
        unfinished = [job for job in self._jobs if job._result is None]
        for job in unfinished:
            if kill:
                job.cancel()
            else:
                job.result()

    def busy_time_s(self) -> list[float]:
        """Seconds each worker has spent running trials, up to now."""
        busy = list(self._busy_s)
        for worker, since in self._busy_since.items():
            busy[worker] += self._now - since
        return busy

    @property
    def makespan_s(self) -> float:
        """Virtual seconds since the clock started."""
        return self._now - self.start_time

    def utilisation(self) -> float:
        """Busy time over capacity: ``sum(busy_time_s()) / (n_workers * makespan_s)``; 0 before any time passes."""
        if self.makespan_s <= 0:
            return 0.0
        return sum(self.busy_time_s()) / (self.n_workers * self.makespan_s)

    # -- internals ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _driver_call(self) -> Iterator[None]:
        """Charge the driver's real time since it last left the executor, then time this call out.

        Nested calls (e.g. :meth:`now` from a job inside :meth:`wait`) charge nothing.
        """
        if not self.driver_clock or self._in_call:
            yield
            return
        if self._left_at is not None:
            elapsed = max(0.0, self.wall_clock() - self._left_at)
            self.driver_time_s += elapsed
            self._advance(elapsed)
        self._in_call = True
        try:
            yield
        finally:
            self._in_call = False
            self._left_at = self.wall_clock()

    def _advance(self, seconds: float) -> None:
        target = self._now + seconds
        while self._step(target):
            pass
        self._now = target

    def _step(self, limit: float) -> bool:
        """Jump to the next completion time if it is <= ``limit`` and end every trial due then.

        Returns:
            Whether the clock moved (``False``: nothing runs, or the next end is past ``limit``).
        """
        while self._events and self._events[0][2]._result is not None:  # cancelled meanwhile
            heapq.heappop(self._events)
        if not self._events or self._events[0][0] > limit:
            return False
        self._now = max(self._now, self._events[0][0])
        while self._events and self._events[0][0] <= self._now:
            _, _, job = heapq.heappop(self._events)
            if job._result is None and job.outcome is not None:
                self._end(job, job.outcome)
        self._dispatch()
        return True

    def _dispatch(self) -> None:
        while self._queue and self._free_workers:
            self._start(self._queue.pop(0), heapq.heappop(self._free_workers))

    def _start(self, job: _SimulatedJob, worker: int) -> None:
        params = dict(job.spec.params)
        duration = float(self.duration_fn(params))
        if not (math.isfinite(duration) and duration >= 0):
            raise ConfigError(
                f"SimulatedExecutor: duration_fn(trial {job.trial_id})", "must be a finite number >= 0", duration
            )
        job.worker, job.device = worker, f"sim:{worker}"
        job.start_time = self._now
        self._busy_since[worker] = self._now
        try:
            value = self.objective_fn(params)
            if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
                records = [to_metrics(record) for record in value]
                job.reports = [(self._now + (i + 1) / len(records) * duration, r) for i, r in enumerate(records)]
                outcome = outcome_from_return(None, records, job.spec.objective)
            else:
                outcome = outcome_from_return(value, [], job.spec.objective)
        except Exception as exc:  # noqa: BLE001 (a simulated trial failure)
            outcome = outcome_from_exception(exc, [])
        timeout_s = job.spec.timeout_s
        if timeout_s is not None and duration > timeout_s:
            job.end_time = self._now + timeout_s
            job.reports = [(t, r) for t, r in job.reports if t <= job.end_time]
            outcome = Outcome(TrialState.TIMEOUT, {}, f"ran past its time limit of {timeout_s} s (needs {duration} s)")
        else:
            job.end_time = self._now + duration
        job.outcome = outcome
        heapq.heappush(self._events, (job.end_time, self._seq, job))
        self._seq += 1

    def _cancel(self, job: _SimulatedJob) -> bool:
        with self._driver_call():
            if job._result is not None:
                return False
            if job.worker is None:
                self._queue.remove(job)
                job.start_time = self._now
            job.reports = [(t, r) for t, r in job.reports if t <= self._now]
            self._end(job, Outcome(TrialState.KILLED, {}, "cancelled by the driver"))
            self._dispatch()
            return True

    def _end(self, job: _SimulatedJob, outcome: Outcome) -> None:
        """Record the terminal state at the current virtual time and free the worker."""
        history = [record for t, record in job.reports if t <= self._now]
        metrics = (
            outcome.metrics if outcome.state is TrialState.COMPLETED or outcome.metrics else latest_values(history)
        )
        if job.worker is not None:
            self._busy_s[job.worker] += self._now - self._busy_since.pop(job.worker)
            heapq.heappush(self._free_workers, job.worker)
        job.set_result(
            TrialResult(
                trial_id=job.trial_id,
                state=outcome.state,
                metrics=metrics,
                history=history,
                error=outcome.error,
                device=job.device or "",
                duration_s=self._now - job.start_time,
                start_time=job.start_time,
                end_time=self._now,
            )
        )
