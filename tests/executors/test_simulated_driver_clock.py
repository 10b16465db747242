"""SimulatedExecutor(driver_clock=True): the driver's own real time moves the virtual clock."""

from __future__ import annotations

import time
from typing import Any

import pytest

from autotune.executors import SimulatedExecutor
from autotune.trial import TrialSpec


class FakeWallClock:
    """A wall clock that moves only when the test says the driver worked."""

    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t

    def work(self, seconds: float) -> None:
        self.t += seconds


def _sim(n_workers: int, **kwargs: Any) -> SimulatedExecutor:
    return SimulatedExecutor(n_workers, duration_fn=lambda p: p["d"], objective_fn=lambda p: p["d"], **kwargs)


def _sequential_driver(ex: SimulatedExecutor, n_trials: int, think: Any) -> None:
    """One worker's loop: think (ask, log), submit, wait for the result."""
    for i in range(n_trials):
        think()
        ex.submit(TrialSpec(i, {"d": 1.0}, "sim")).result()


def test_driver_time_between_calls_idles_the_worker_by_exactly_that_much() -> None:
    # Each cycle: 0.25 s of driver work, then a 1 s trial: makespan 5 * 1.25, busy 5 s.
    wall = FakeWallClock()
    ex = _sim(1, driver_clock=True, wall_clock=wall)
    ex.now()  # the first call starts the driver clock; nothing before it is charged
    _sequential_driver(ex, 5, lambda: wall.work(0.25))
    assert ex.now() == pytest.approx(5 * 1.25)
    assert ex.driver_time_s == pytest.approx(5 * 0.25)
    assert ex.utilisation() == pytest.approx(1 / 1.25)


def test_driver_time_overlaps_running_trials_and_ends_them_on_time() -> None:
    # Two 2 s trials start at 0; the driver then works 3 s: both end at t=2 (not at 3), the
    # workers idle from 2 to 3, and a trial submitted afterwards starts at 3.
    wall = FakeWallClock()
    ex = _sim(2, driver_clock=True, wall_clock=wall)
    a, b = (ex.submit(TrialSpec(i, {"d": 2.0}, "sim")) for i in range(2))
    wall.work(3.0)
    c = ex.submit(TrialSpec(2, {"d": 1.0}, "sim"))
    assert (a.result().end_time, b.result().end_time) == (2.0, 2.0)
    assert c.result().start_time == 3.0 and ex.now() == 4.0
    assert ex.busy_time_s() == [3.0, 2.0] and ex.utilisation() == pytest.approx(5 / 8)


def test_time_inside_executor_calls_is_not_charged() -> None:
    # The replayed objective runs inside submit(): its (fake) wall time is the trial's, not the driver's.
    wall = FakeWallClock()

    def objective(p: dict[str, Any]) -> float:
        wall.work(10.0)
        return 0.0

    ex = SimulatedExecutor(1, duration_fn=lambda p: 1.0, objective_fn=objective, driver_clock=True, wall_clock=wall)
    for i in range(3):
        ex.submit(TrialSpec(i, {}, "sim")).result()
    assert ex.driver_time_s == 0.0 and ex.now() == 3.0 and ex.utilisation() == 1.0


def test_real_sleep_lowers_utilisation_by_the_expected_amount_and_off_changes_nothing() -> None:
    sleep_s, n = 0.1, 3
    charged = _sim(1, driver_clock=True)
    charged.now()  # start the driver clock
    _sequential_driver(charged, n, lambda: time.sleep(sleep_s))
    expected = 1.0 / (1.0 + sleep_s)  # each 1 s trial waits for one sleep
    # Sleeping can overrun (a loaded machine), never undershoot: the lower bound allows 50 % more
    # (double counting would give 1 / (1 + 2 * sleep_s)).
    assert 1.0 / (1.0 + 1.5 * sleep_s) <= charged.utilisation() <= expected + 1e-9
    assert charged.driver_time_s >= n * sleep_s

    plain = _sim(1)  # the default: driver time is free, as before
    _sequential_driver(plain, n, lambda: time.sleep(sleep_s))
    assert plain.utilisation() == 1.0 and plain.now() == n * 1.0 and plain.driver_time_s == 0.0


def test_advance_still_moves_the_clock_on_top_of_charged_driver_time() -> None:
    wall = FakeWallClock()
    ex = _sim(1, driver_clock=True, wall_clock=wall)
    ex.advance(1.0)  # first call: starts the driver clock, then moves 1 s
    wall.work(0.5)
    job = ex.submit(TrialSpec(0, {"d": 2.0}, "sim"))
    assert job.result().start_time == 1.5 and ex.now() == 3.5 and ex.driver_time_s == 0.5
