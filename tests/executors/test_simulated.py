"""SimulatedExecutor: virtual time, worker busy time and utilisation, checked by hand."""

from __future__ import annotations

import itertools
import math
import random
from typing import Any

import pytest

from autotune.exceptions import ConfigError
from autotune.executors import SimulatedExecutor, get_executor
from autotune.trial import TrialSpec, TrialState


def _sim(n_workers: int = 2, **kwargs: Any) -> SimulatedExecutor:
    return SimulatedExecutor(
        n_workers, duration_fn=lambda p: p["d"], objective_fn=lambda p: p.get("y", p["d"]), **kwargs
    )


def test_replays_durations_and_computes_utilisation() -> None:
    # 2 workers, durations A=3, B=1, C=1, D=2 submitted at t=0:
    #   worker 0: A [0, 3]            worker 1: B [0, 1], C [1, 2], D [2, 4]
    # busy = 3 + 4 = 7 over a makespan of 4 with 2 workers: 7 / 8.
    ex = _sim(2)
    a, b, c, d = (ex.submit(TrialSpec(i, {"d": dur}, "sim")) for i, dur in enumerate([3.0, 1.0, 1.0, 2.0]))
    assert [j.state for j in (a, b, c, d)] == [TrialState.RUNNING] * 2 + [TrialState.PENDING] * 2
    order = []
    pending = [a, b, c, d]
    while pending:
        for job in ex.wait(pending):
            pending.remove(job)
            order.append((job.trial_id, ex.now()))
    assert order == [(1, 1.0), (2, 2.0), (0, 3.0), (3, 4.0)]
    assert [(j.result().start_time, j.result().end_time) for j in (a, b, c, d)] == [(0, 3), (0, 1), (1, 2), (2, 4)]
    assert [j.result().device for j in (a, b, c, d)] == ["sim:0", "sim:1", "sim:1", "sim:1"]
    assert ex.busy_time_s() == [3.0, 4.0] and ex.makespan_s == 4.0
    assert ex.utilisation() == pytest.approx(7 / 8)
    assert d.result().metrics == {"objective": 2.0} and d.result().duration_s == 2.0


def test_simultaneous_completions_come_back_together_and_wait_timeout_moves_the_clock() -> None:
    ex = _sim(3)
    jobs = [ex.submit(TrialSpec(i, {"d": 2.0}, "sim")) for i in range(2)]
    assert ex.wait(jobs, timeout_s=0.5) == [] and ex.now() == 0.5
    assert ex.wait(jobs) == jobs and ex.now() == 2.0
    assert ex.utilisation() == pytest.approx(4 / 6)  # one worker idle throughout


def test_timeout_ends_at_start_plus_limit() -> None:
    ex = _sim(1)
    ex.advance(1.0)  # the driver's own time: idle capacity
    job = ex.submit(TrialSpec(0, {"d": 10.0}, "sim", timeout_s=4.0))
    result = job.result()  # advances the virtual clock
    assert result.state is TrialState.TIMEOUT and (result.start_time, result.end_time) == (1.0, 5.0)
    assert ex.now() == 5.0 and ex.utilisation() == pytest.approx(4 / 5)


def test_learning_curves_are_replayed_as_reports_and_cancel_kills_at_now() -> None:
    curve = [{"loss": 3.0}, {"loss": 2.0}, {"loss": 1.0, "objective": 1.0}]
    ex = SimulatedExecutor(1, duration_fn=lambda p: 6.0, objective_fn=lambda p: curve)
    job = ex.submit(TrialSpec(0, {}, "sim"))
    queued = ex.submit(TrialSpec(1, {}, "sim"))
    ex.advance(4.5)  # reports at t = 2, 4, 6
    assert job.new_reports() == [{"loss": 3.0}, {"loss": 2.0}] and job.new_reports() == []
    assert job.cancel() is True and job.cancel() is False
    result = job.result()
    assert result.state is TrialState.KILLED and result.end_time == 4.5 and result.metrics == {"loss": 2.0}
    assert queued.state is TrialState.RUNNING and queued.result().start_time == 4.5  # took the freed worker
    assert queued.result().end_time == 10.5 and queued.result().metrics == {"loss": 1.0, "objective": 1.0}
    assert ex.busy_time_s() == [10.5]


def test_objective_outcomes_map_to_states() -> None:
    def objective(p: dict[str, Any]) -> Any:
        if p["kind"] == "oom":
            raise MemoryError
        if p["kind"] == "error":
            raise ValueError("boom")
        return math.nan if p["kind"] == "nan" else 1.0

    ex = SimulatedExecutor(4, duration_fn=lambda p: 1.0, objective_fn=objective)
    jobs = [ex.submit(TrialSpec(i, {"kind": k}, "sim")) for i, k in enumerate(["ok", "oom", "error", "nan"])]
    ex.shutdown()  # runs the clock until all end
    assert [j.result().state for j in jobs] == [
        TrialState.COMPLETED,
        TrialState.OOM,
        TrialState.FAILED,
        TrialState.NONFINITE,
    ]
    assert "ValueError: boom" in (jobs[2].result().error or "")


def test_random_schedules_keep_the_invariants() -> None:
    rng = random.Random(0)
    for _ in range(30):
        n_workers = rng.randint(1, 4)
        ex = _sim(n_workers)
        durations = [rng.choice([0.0, 0.5, 1.0, 2.0, 3.5]) for _ in range(rng.randint(1, 12))]
        jobs = [ex.submit(TrialSpec(i, {"d": d}, "sim")) for i, d in enumerate(durations)]
        ex.shutdown()
        results = [j.result() for j in jobs]
        assert all(r.state is TrialState.COMPLETED for r in results)
        assert [r.end_time - r.start_time for r in results] == durations
        for worker in range(n_workers):  # a worker runs one trial at a time
            spans = sorted((r.start_time, r.end_time) for r in results if r.device == f"sim:{worker}")
            assert all(s1[1] <= s2[0] for s1, s2 in itertools.pairwise(spans))
        assert sum(ex.busy_time_s()) == pytest.approx(sum(durations))
        assert ex.now() == max(r.end_time for r in results)
        assert 0.0 <= ex.utilisation() <= 1.0 + 1e-12


def test_registry_and_argument_errors() -> None:
    ex = get_executor("simulated", n_workers=2, duration_fn=lambda p: 1.0, objective_fn=lambda p: 0.0)
    assert isinstance(ex, SimulatedExecutor) and ex.n_workers == 2 and ex.now() == 0.0
    with pytest.raises(ConfigError, match="duration_fn"):
        SimulatedExecutor(1)
    bad = SimulatedExecutor(1, duration_fn=lambda p: -1.0, objective_fn=lambda p: 0.0)
    with pytest.raises(ConfigError, match="finite number >= 0"):
        bad.submit(TrialSpec(0, {}, "sim"))
