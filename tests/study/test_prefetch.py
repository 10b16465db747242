"""The driver asks ahead while it waits (``parallelism.prefetch``): freed workers start at once.

The simulated executor charges the driver's time to its virtual clock (``driver_clock``); a fake
wall clock makes every ``ask`` cost ``ASK_S`` seconds and nothing else cost any, so the
schedules below are exact.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotune.executors import SimulatedExecutor
from autotune.optimizer import Optimizer
from autotune.study import Study, StudyConfig
from autotune.study._config import ParallelismConfig
from tests.study.helpers import study_dict
from tests.study.trial_fns import sim_objective

ASK_S = 10.0
DURATION_S = 100.0
WORKERS = 2
TRIALS = 10
REAL_ASK = Optimizer.ask


def _run(tmp_path: Path, store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch,
         prefetch: int, **budget: Any) -> tuple[SimulatedExecutor, list[int], Any]:
    clock = [0.0]
    asked: list[int] = []

    def slow_ask(self: Optimizer, n: int = 1) -> Any:
        clock[0] += ASK_S * n
        out = REAL_ASK(self, n)
        asked.extend(s.trial_id for s in out)
        return out

    monkeypatch.setattr(Optimizer, "ask", slow_ask)
    config = StudyConfig(**study_dict(
        name=f"prefetch{prefetch}", budget={"max_trials": TRIALS, **budget},
        parallelism={"workers": WORKERS, "prefetch": prefetch}, executor={"name": "simulated"},
        output_dir=str(tmp_path / f"p{prefetch}"),
    ))
    store_factory(config.resolved_output_dir)
    executor = SimulatedExecutor(WORKERS, duration_fn=lambda p: DURATION_S, objective_fn=sim_objective,
                                 driver_clock=True, wall_clock=lambda: clock[0])
    summary = Study(config, executor=executor).optimize(progress=False)
    return executor, asked, summary


def _wave_makespan(gap_s: float) -> float:
    """Makespan when the workers run in waves (equal durations: they free together).

    The first wave starts after one ask of WORKERS points (the driver asks once for all free
    workers); every later wave starts ``gap_s`` after the previous one ends.
    """
    waves = TRIALS // WORKERS
    return ASK_S * WORKERS + waves * DURATION_S + (waves - 1) * gap_s


def test_prefetched_suggestions_start_when_a_worker_frees(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    slow, asked_slow, summary_slow = _run(tmp_path, mlflow_store_factory, monkeypatch, prefetch=0)
    fast, asked_fast, summary_fast = _run(tmp_path, mlflow_store_factory, monkeypatch, prefetch=2)
    # Without prefetching the freed workers wait for one ask of all of them; with it, for none.
    assert slow.makespan_s == pytest.approx(_wave_makespan(gap_s=ASK_S * WORKERS))
    assert fast.makespan_s == pytest.approx(_wave_makespan(gap_s=0.0))
    assert fast.utilisation() > slow.utilisation() + 0.04
    # The budget holds: exactly TRIALS suggestions were made, and all of them ran.
    for asked, summary in ((asked_slow, summary_slow), (asked_fast, summary_fast)):
        assert sorted(asked) == list(range(TRIALS))
        assert summary.counts["completed"] == TRIALS


def test_unused_prefetched_suggestions_are_dropped_at_the_end(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A time budget ends the study with suggestions still ready: they are never started or recorded."""
    _, asked, summary = _run(tmp_path, mlflow_store_factory, monkeypatch, prefetch=3, max_time_s=250.0)
    started = summary.counts["completed"] + summary.counts.get("killed", 0)
    assert summary.stop_reason == "max_time_s"
    assert len(asked) > started  # some were asked ahead and never started
    assert summary.n_trials == started


@pytest.mark.parametrize(("workers", "prefetch", "expected"), [(1, None, 0), (4, None, 0), (8, None, 2),
                                                             (64, None, 16), (4, 3, 3), (64, 0, 0)])
def test_prefetch_default_grows_with_workers(workers: int, prefetch: int | None, expected: int) -> None:
    assert ParallelismConfig(workers=workers, prefetch=prefetch).prefetch == expected


def test_a_wave_of_ends_restarts_each_worker_once_its_own_end_is_recorded(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Trials that end together: a freed worker takes a ready suggestion right after its trial is
    recorded, not after the whole wave is (each record costs ``record_s`` of the driver's time)."""
    from autotune.study._record import StudyRecord
    from autotune.study._study import _Driver

    record_s, workers, trials = 5.0, 4, 12
    real_finish, real_fill = StudyRecord.finish_trial, _Driver._fill

    def run(name: str) -> SimulatedExecutor:
        clock = [0.0]

        def slow_finish(self: StudyRecord, *args: Any, **kwargs: Any) -> Any:
            clock[0] += record_s
            return real_finish(self, *args, **kwargs)

        monkeypatch.setattr(StudyRecord, "finish_trial", slow_finish)
        config = StudyConfig(**study_dict(
            name=name, budget={"max_trials": trials}, parallelism={"workers": workers, "prefetch": workers},
            executor={"name": "simulated"}, output_dir=str(tmp_path / name),
        ))
        mlflow_store_factory(config.resolved_output_dir)
        executor = SimulatedExecutor(workers, duration_fn=lambda p: DURATION_S, objective_fn=sim_objective,
                                     driver_clock=True, wall_clock=lambda: clock[0])
        summary = Study(config, executor=executor).optimize(progress=False)
        assert summary.counts["completed"] == trials
        return executor

    interleaved = run("interleaved")
    monkeypatch.setattr(_Driver, "_fill", lambda self, ask=True: real_fill(self) if ask else None)
    after_the_wave = run("after")
    # Three waves of 100 s. Interleaved: the k-th freed worker restarts k x 5 s after the wave
    # ends, so the staggered waves end at 305-320 and the last record at 325. After the wave:
    # every worker waits for all 4 records (20 s) twice, the last wave ends at 340, its records
    # reach 355.
    assert interleaved.makespan_s == pytest.approx(325.0)
    assert after_the_wave.makespan_s == pytest.approx(355.0)
    assert interleaved.utilisation() > after_the_wave.utilisation() + 0.07


def test_no_trial_starts_between_the_records_of_a_first_wave_that_fails_alike(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    """The first trials failing with one error may stop the study within their wave: the ready
    suggestions are not started between those records (they would only be killed at once)."""
    from autotune.exceptions import TrialError

    def broken(params: dict[str, Any]) -> float:
        raise RuntimeError("libcuda.so.1: cannot open shared object file")

    config = StudyConfig(**study_dict(
        name="wave_fails", budget={"max_trials": 20}, parallelism={"workers": 8, "prefetch": 4},
        executor={"name": "simulated"}, output_dir=str(tmp_path / "w"),
    ))
    mlflow_store_factory(config.resolved_output_dir)
    executor = SimulatedExecutor(8, duration_fn=lambda p: DURATION_S, objective_fn=broken)
    study = Study(config, executor=executor)
    with pytest.raises(TrialError, match="failed with the same error"):
        study.optimize(progress=False)
    states = study.trials()["state"].tolist()
    # The first wave only: three recorded failed, the rest of the wave (ended, not yet recorded) killed.
    assert len(states) == 8 and states.count("failed") == 3 and states.count("killed") == 5
