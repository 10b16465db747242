"""The simulated beamline: motor time, noise, the radius fit, and steering against a raster."""

from __future__ import annotations

import itertools
import math
import shutil
from types import ModuleType

import numpy as np
import pytest

from tests.studies.helpers import load_study_module


def _load(name: str) -> ModuleType:
    return load_study_module("beamline", name)


@pytest.fixture(scope="module")
def inst() -> ModuleType:
    return _load("instrument")


@pytest.fixture(scope="module")
def steer() -> ModuleType:
    return _load("steer")


def test_time_is_exposure_plus_distance_over_speed(inst: ModuleType) -> None:
    beamline = inst.Beamline(exposure_s=1.5, speed=0.1, seed=0)
    assert beamline.cost(0.3, 0.4) == pytest.approx(1.5 + 0.5 / 0.1)  # from the origin
    m1 = beamline.measure(0.3, 0.4)
    assert m1.move_s == pytest.approx(5.0) and m1.instrument_s == pytest.approx(6.5)
    assert beamline.clock_s == pytest.approx(6.5) and beamline.position == (0.3, 0.4)
    m2 = beamline.measure(0.3, 0.4)  # no move: exposure only
    assert m2.move_s == 0.0 and beamline.clock_s == pytest.approx(8.0)
    m3 = beamline.measure(0.9, 0.4)
    assert m3.move_s == pytest.approx(0.6 / 0.1)
    assert beamline.clock_s == pytest.approx(8.0 + 6.0 + 1.5)
    with pytest.raises(ValueError, match="off the sample"):
        beamline.measure(1.2, 0.0)


def test_measurements_are_noisy_but_unbiased(inst: ModuleType) -> None:
    beamline = inst.Beamline(seed=1)
    x, y = 0.4, 0.6
    curves = np.stack([beamline.curve(x, y) for _ in range(2)])
    assert not np.allclose(curves[0], curves[1])  # the detector is noisy
    radii = np.asarray([beamline.measure(x, y).radius for _ in range(20)])
    true = float(inst.true_radius(x, y))
    assert radii.std() > 0.01  # the noise reaches the quantity of interest
    assert abs(radii.mean() - true) < 0.5 and np.abs(radii - true).max() < 2.0
    quiet = inst.Beamline(seed=1, noise=0.0)
    assert quiet.measure(x, y).radius == pytest.approx(true, abs=0.05)
    feature = inst.FEATURE_CENTRE
    assert quiet.measure(*feature).radius > quiet.measure(0.2, 0.8).radius + 20  # the narrow feature stands out
    assert inst.in_feature(*feature) and not inst.in_feature(0.2, 0.8)


def test_missing_compiler_is_a_clear_error(inst: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(inst.CompilerMissingError, match="Fix: install gcc"):
        inst.Beamline()


def test_raster_fits_its_plan(steer: ModuleType) -> None:
    n = steer.raster_size(300.0, exposure_s=2.0, speed=0.05)
    points = steer.raster_points(n)
    assert len(points) == n * n and len(set(points)) == n * n
    assert all(math.dist(a, b) == pytest.approx(1 / n) for a, b in itertools.pairwise(points))  # serpentine
    run = steer.steer("raster", 0, 300.0)
    assert run.points[-1][3] <= 300.0 and len(run.points) == n * n  # the whole raster fits the budget
    assert len(steer.steer("raster", 0, 300.0, raster_plan_s=400.0).points) > n * n


def test_max_variance_maps_faster_than_a_raster_of_equal_time(steer: ModuleType) -> None:
    # Both planned for 600 instrument seconds; compared after the first 150 s.
    budget_s = 150.0
    raster = steer.evaluate(steer.steer("raster", 0, budget_s, raster_plan_s=600.0), [budget_s])
    autonomous = steer.evaluate(steer.steer("max_variance", 0, budget_s), [budget_s])
    assert autonomous.points[-1][3] >= budget_s  # it spent the budget (the last point may end after it)
    assert autonomous.rmse[0] < 0.8 * raster.rmse[0], (autonomous.rmse, raster.rmse)


def test_a_length_scale_cap_makes_cost_aware_steering_sweep_densely(steer: ModuleType) -> None:
    """Capped at the feature's scale, max variance per cost keeps finding uncertain points nearby:
    shorter moves, more measurements in the same instrument time (the sweep that finds the feature)."""
    budget_s = 100.0
    free = steer.steer("max_variance_per_cost", 0, budget_s)
    capped = steer.steer("max_variance_per_cost", 0, budget_s, model_kw={"max_length_scale": {"x": 0.1, "y": 0.1}})

    def mean_move(run: object) -> float:
        pts = run.points[4:]  # type: ignore[attr-defined]  # after the Sobol points
        return float(np.mean([math.dist(a[:2], b[:2]) for a, b in itertools.pairwise(pts)]))

    assert len(capped.points) > len(free.points)
    assert mean_move(capped) < mean_move(free)
