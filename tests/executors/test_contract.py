"""The contract every executor that runs real code must pass: each outcome ends in its one state.

The same trials run through the in-process executor (plain and threaded) and the local
executor (real child processes, run in parallel to keep this fast).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from autotune.executors import Executor, InProcessExecutor, LocalExecutor
from autotune.trial import TrialResult, TrialSpec, TrialState
from tests.executors.helpers import CHILD_ENV, FNS, SCRIPT


@dataclass
class Case:
    entry_point: str
    state: TrialState
    params: dict[str, Any]
    check: Callable[[TrialResult], None]
    fixed_args: dict[str, Any] | None = None
    timeout_s: float | None = None


def _completed_with_reports(r: TrialResult) -> None:
    assert r.metrics["objective"] == pytest.approx(4.0)
    assert [h["step"] for h in r.history] == [0, 1, 2]
    assert r.metrics["loss"] == pytest.approx(4.0 + 1 / 3)  # the last report, merged under the return value
    assert r.error is None and r.end_time >= r.start_time and r.duration_s >= 0


def _dict_merged(r: TrialResult) -> None:
    assert r.metrics == {"loss": 1.0, "acc": 0.5, "objective": 0.25, "n_params": 1000.0}


def _traceback(r: TrialResult) -> None:
    assert r.error is not None and "Traceback" in r.error and "ValueError: bad batch size" in r.error
    assert r.metrics == {"loss": 1.0}


def _oom(r: TrialResult) -> None:
    assert r.error is not None and "Traceback" in r.error


def _nonfinite(r: TrialResult) -> None:
    assert r.metrics["objective"] != r.metrics["objective"]  # NaN


def _error_has(text: str) -> Callable[[TrialResult], None]:
    def check(r: TrialResult) -> None:
        assert r.error is not None and text in r.error, r.error

    return check


def _script(r: TrialResult) -> None:
    assert r.metrics["objective"] == pytest.approx(1.0 + 1 / 3)
    assert [h["step"] for h in r.history] == [0, 1, 2]  # fixed_args reached the script


def _timeout(r: TrialResult) -> None:
    assert 0.5 <= r.duration_s < 5 and "time limit" in (r.error or "")


CASES: dict[str, Case] = {
    "completed": Case(f"{FNS}:quadratic", TrialState.COMPLETED, {"x": 3.0}, _completed_with_reports),
    "dict": Case(f"{FNS}:with_dict", TrialState.COMPLETED, {}, _dict_merged),
    "failed": Case(f"{FNS}:failing", TrialState.FAILED, {}, _traceback),
    "memory_error": Case(f"{FNS}:oom_memory_error", TrialState.OOM, {}, _oom),
    "cuda_oom_message": Case(f"{FNS}:oom_cuda_message", TrialState.OOM, {}, _error_has("CUDA out of memory")),
    "oom_class": Case(f"{FNS}:oom_torch_class", TrialState.OOM, {}, _error_has("OutOfMemoryError")),
    "nan": Case(f"{FNS}:nan_objective", TrialState.NONFINITE, {}, _nonfinite),
    "bad_return": Case(f"{FNS}:bad_return", TrialState.FAILED, {}, _error_has("must return a number")),
    "no_objective": Case(f"{FNS}:no_objective", TrialState.FAILED, {}, _error_has("without a value for the objective")),
    "missing_fn": Case(f"{FNS}:does_not_exist", TrialState.FAILED, {}, _error_has("AttributeError")),
    "bad_entry_point": Case("no_colon_here", TrialState.FAILED, {}, _error_has("package.module:function")),
    "script": Case(SCRIPT, TrialState.COMPLETED, {"x": 3.0}, _script, fixed_args={"epochs": 3}),
    "script_exit": Case(SCRIPT, TrialState.FAILED, {"x": -1.0}, _error_has("exited with code 3")),
    "timeout": Case(f"{FNS}:sleepy", TrialState.TIMEOUT, {}, _timeout, timeout_s=0.5),
}

EXECUTORS: dict[str, Callable[[Any], Executor]] = {
    "inprocess": lambda tmp: InProcessExecutor(),
    "inprocess_threaded": lambda tmp: InProcessExecutor(3, threaded=True),
    "local": lambda tmp: LocalExecutor(4, root_dir=tmp, env=CHILD_ENV, kill_grace_s=1.0),
}


@pytest.fixture(scope="module", params=sorted(EXECUTORS))
def run(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, TrialResult], dict[str, Any]]:
    """Run every case once through one executor; return the results by case name."""
    executor = EXECUTORS[request.param](tmp_path_factory.mktemp(request.param))
    names = sorted(CASES)
    jobs = {}
    for trial_id, name in enumerate(names):
        case = CASES[name]
        spec = TrialSpec(
            trial_id, case.params, case.entry_point, fixed_args=case.fixed_args or {}, timeout_s=case.timeout_s
        )
        jobs[name] = executor.submit(spec)
    pending = list(jobs.values())
    while pending:
        for job in executor.wait(pending):
            pending.remove(job)
    executor.shutdown()
    return request.param, {name: job.result() for name, job in jobs.items()}, jobs


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_outcome_ends_in_its_state(run: tuple[str, dict[str, TrialResult], dict[str, Any]], case: str) -> None:
    executor_name, results, _ = run
    result = results[case]
    assert result.state is CASES[case].state, f"{executor_name}/{case}: {result.error}"
    assert result.state.is_finished
    CASES[case].check(result)


def test_new_reports_then_nothing_new(run: tuple[str, dict[str, TrialResult], dict[str, Any]]) -> None:
    _, results, jobs = run
    job = jobs["completed"]
    assert job.done() and job.state is TrialState.COMPLETED
    assert job.new_reports() == results["completed"].history
    assert job.new_reports() == []
    assert job.cancel() is False  # already finished: the state does not change
    assert job.result().state is TrialState.COMPLETED
