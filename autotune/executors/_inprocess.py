"""The debugging executor: trials run in the driver's own process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from autotune.executors._base import Executor, Job, StudyParallelism
from autotune.executors._outcome import (
    Outcome,
    latest_values,
    outcome_from_exception,
    resolve_entry_point,
    run_entry_point,
)
from autotune.executors._paths import add_to_sys_path
from autotune.executors._registry import register_executor
from autotune.report import Reporter, TrialStopped
from autotune.trial import TrialResult, TrialSpec, TrialState

__all__ = ["InProcessExecutor"]

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11


class _InProcessJob(Job):
    executor: InProcessExecutor
    cancel_is_graceful = True  # cancel() stops the trial at its next report (TrialStopped), never mid-step

    def __init__(self, executor: InProcessExecutor, spec: TrialSpec) -> None:
        super().__init__(executor, spec)
        self.reporter = Reporter(check=self._check)
        self.future: Future[None] | None = None
        self.stop_reason: TrialState | None = None  # KILLED or TIMEOUT, asked by the driver
        self.start_time = 0.0
        self.start_mono: float | None = None

    def _check(self) -> None:
        """Called at each report: stop a cancelled or timed-out trial."""
        if self.stop_reason is None and self._past_deadline():
            self.stop_reason = TrialState.TIMEOUT
        if self.stop_reason is not None:
            raise TrialStopped(self.stop_reason.value)

    def _timeout_message(self) -> str:
        return f"ran past its time limit of {self.spec.timeout_s} s"

    def _past_deadline(self) -> bool:
        timeout_s = self.spec.timeout_s
        return timeout_s is not None and self.start_mono is not None and time.monotonic() - self.start_mono > timeout_s

    def _started(self) -> bool:
        return self.start_mono is not None

    def _all_reports(self) -> list[dict[str, Any]]:
        return list(self.reporter.history)

    def _poll(self) -> None:
        if self._result is None and self.stop_reason is None and self._past_deadline():
            self.stop_reason = TrialState.TIMEOUT
            self._finish(Outcome(TrialState.TIMEOUT, {}, self._timeout_message()))

    def cancel(self) -> bool:
        if self._result is not None:
            return False
        self.stop_reason = TrialState.KILLED
        if self.future is not None:
            self.future.cancel()  # a queued trial never starts; a running one stops at its next report
        self._finish(Outcome(TrialState.KILLED, {}, "cancelled by the driver"))
        return True

    def _finish(self, outcome: Outcome) -> None:
        """Record the terminal state; the first call wins."""
        with self.executor._cond:
            if self._result is not None:
                return
            now = time.time()
            start = self.start_time if self.start_mono is not None else now
            metrics = outcome.metrics or latest_values(self.reporter.history)
            self.set_result(
                TrialResult(
                    trial_id=self.trial_id,
                    state=outcome.state,
                    metrics=metrics,
                    history=list(self.reporter.history),
                    error=outcome.error,
                    device=self.device or "cpu",
                    duration_s=now - start,
                    start_time=start,
                    end_time=now,
                )
            )
            self.executor._cond.notify_all()

    def run(self) -> None:
        """Run the trial in the calling thread."""
        if self._result is not None:  # cancelled while queued
            return
        self.device = "cuda" if self.spec.resources.gpus > 0 else "cpu"
        self.start_time, self.start_mono = time.time(), time.monotonic()
        try:
            target = resolve_entry_point(self.spec.entry_point)
        except Exception as exc:  # noqa: BLE001 (an import failure is the trial's failure)
            self._finish(outcome_from_exception(exc, []))
            return
        try:
            outcome = run_entry_point(
                target, dict(self.spec.params), dict(self.spec.fixed_args), self.reporter, self.spec.objective
            )
        except KeyboardInterrupt:
            self._finish(Outcome(TrialState.KILLED, {}, "interrupted (KeyboardInterrupt)"))
            raise
        if self.stop_reason is None and self._past_deadline():
            self.stop_reason = TrialState.TIMEOUT
        if self.stop_reason is TrialState.TIMEOUT:
            outcome = Outcome(TrialState.TIMEOUT, outcome.metrics, self._timeout_message())
        elif self.stop_reason is TrialState.KILLED:
            outcome = Outcome(TrialState.KILLED, outcome.metrics, "cancelled by the driver")
        self._finish(outcome)


@register_executor("inprocess")
class InProcessExecutor(Executor):
    """Runs each trial in the driver's process: for debugging (breakpoints, plain tracebacks).

    By default a trial runs to its end inside :meth:`submit`. With ``threaded=True`` trials run
    in a pool of ``n_workers`` threads. A thread cannot be killed: a cancelled or timed-out trial
    is marked at once, and the function is stopped at its next ``report(...)`` call. Time limits
    are also checked when the function returns. Output is not captured.

    Args:
        n_workers: How many trials run at once (threads; only with ``threaded=True``).
        threaded: Run trials in threads instead of inside :meth:`submit`.
    """

    def __init__(self, n_workers: int = 1, *, threaded: bool = False) -> None:
        super().__init__(n_workers)
        self.threaded = threaded
        self._cond = threading.Condition()
        self._jobs: list[_InProcessJob] = []
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def for_study(cls, study_dir: str | os.PathLike[str], parallelism: StudyParallelism,
                  options: dict[str, Any]) -> Self:
        """See :meth:`Executor.for_study`: trials import from ``study_dir`` in this process."""
        add_to_sys_path(study_dir)
        return cls(n_workers=parallelism.workers, **options)

    def submit(self, spec: TrialSpec) -> Job:
        """Run (or start, with ``threaded=True``) a trial; see :meth:`Executor.submit`."""
        job = _InProcessJob(self, spec)
        self._jobs.append(job)
        if not self.threaded:
            job.run()
            return job
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.n_workers, thread_name_prefix="autotune-trial")
        job.future = self._pool.submit(job.run)
        return job

    def wait(self, jobs: Sequence[Job], timeout_s: float | None = None) -> list[Job]:
        """See :meth:`Executor.wait`."""
        self._own(jobs)
        if not jobs:
            return []
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._cond:
            while True:
                finished = [job for job in jobs if job.done()]
                remaining = None if deadline is None else deadline - time.monotonic()
                if finished or (remaining is not None and remaining <= 0):
                    return finished
                self._cond.wait(timeout=0.05 if remaining is None else min(remaining, 0.05))

    def now(self) -> float:
        """Wall-clock time, seconds since the epoch."""
        return time.time()

    def shutdown(self, kill: bool = False) -> None:
        """See :meth:`Executor.shutdown`."""
        if kill:
            for job in self._jobs:
                job.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=not kill, cancel_futures=kill)
            self._pool = None
