"""InProcessExecutor: cooperative stop at report(), KeyboardInterrupt, scripts without a process."""

from __future__ import annotations

import time

import pytest

from autotune.executors import InProcessExecutor
from autotune.trial import TrialSpec, TrialState
from tests.executors.helpers import FNS, SCRIPT


def test_runs_inside_submit_by_default() -> None:
    executor = InProcessExecutor()
    job = executor.submit(TrialSpec(0, {"x": 1.0}, f"{FNS}:quadratic"))
    assert job.done() and job.result().state is TrialState.COMPLETED and job.result().metrics["objective"] == 0.0
    assert job.result().device == "cpu" and job.result().stdout_path is None


def test_keyboard_interrupt_kills_the_trial_and_reaches_the_driver() -> None:
    executor = InProcessExecutor()
    with pytest.raises(KeyboardInterrupt):
        executor.submit(TrialSpec(0, {}, f"{FNS}:keyboard_interrupt"))
    (job,) = executor._jobs
    assert job.result().state is TrialState.KILLED and job.result().history == [{"step": 0, "loss": 1.0}]


def test_threaded_cancel_stops_the_function_at_its_next_report() -> None:
    executor = InProcessExecutor(1, threaded=True)
    running = executor.submit(TrialSpec(0, {}, f"{FNS}:sleepy"))
    queued = executor.submit(TrialSpec(1, {"x": 2.0}, f"{FNS}:quadratic"))
    while not running.new_reports():
        time.sleep(0.01)
    assert queued.state is TrialState.PENDING
    assert queued.cancel() and running.cancel()
    assert running.done() and running.result().state is TrialState.KILLED
    assert queued.result().state is TrialState.KILLED
    executor.shutdown()  # returns: the thread stopped at its next report()
    assert running.future is not None and running.future.done()  # type: ignore[attr-defined]
    assert running.result().state is TrialState.KILLED  # the late ending did not overwrite the state


def test_threaded_timeout_is_marked_by_wait() -> None:
    executor = InProcessExecutor(2, threaded=True)
    job = executor.submit(TrialSpec(0, {}, f"{FNS}:sleepy", timeout_s=0.2))
    assert executor.wait([job]) == [job]
    assert job.result().state is TrialState.TIMEOUT
    executor.shutdown()


def test_script_reads_params_from_the_trial_context() -> None:
    job = InProcessExecutor().submit(TrialSpec(0, {"x": 2.0}, SCRIPT, fixed_args={"epochs": 1}))
    assert job.result().state is TrialState.COMPLETED and job.result().metrics["objective"] == 1.0
