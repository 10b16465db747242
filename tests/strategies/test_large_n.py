"""Acquisition effort at large n: capped above a size, unchanged below; the incumbents' means only."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import autotune.strategies._optimize as optimize_module
from autotune.models import GPFitter
from autotune.space import Float, SearchSpace
from autotune.strategies._optimize import (
    FULL_EFFORT_UP_TO,
    LARGE_N_EFFORT,
    AcqOptions,
    optimize_acquisition,
    train_size,
)

SPACE = SearchSpace([Float(f"x{i}", low=0.0, high=1.0) for i in range(2)])


def log_ei(n: int) -> Any:
    from botorch.acquisition.analytic import LogExpectedImprovement

    g = torch.Generator().manual_seed(0)
    X = torch.rand(n, 2, generator=g, dtype=torch.float64)
    y = -((X - 0.3) ** 2).sum(-1, keepdim=True)
    torch.manual_seed(0)
    model = GPFitter(SPACE).fit("objective", X, y)
    return LogExpectedImprovement(model, best_f=float(y.max()))


def test_effort_is_unchanged_up_to_the_threshold_and_capped_above() -> None:
    opts = AcqOptions()
    assert FULL_EFFORT_UP_TO == 2_000
    assert opts.for_data(None) is opts and opts.for_data(FULL_EFFORT_UP_TO) is opts
    big = opts.for_data(FULL_EFFORT_UP_TO + 1)
    assert (big.num_restarts, big.raw_samples, big.maxiter) == (4, 256, 100) == (
        LARGE_N_EFFORT.num_restarts, LARGE_N_EFFORT.raw_samples, LARGE_N_EFFORT.maxiter)
    assert big.sample_around_best
    cheap = AcqOptions(num_restarts=2, raw_samples=64, maxiter=30).for_data(10_000)
    assert (cheap.num_restarts, cheap.raw_samples, cheap.maxiter) == (2, 64, 30)  # never raised


def test_train_size_reads_the_gp_under_the_acquisition() -> None:
    from autotune.strategies._acquisitions import FeasibilityWeighted

    acqf = log_ei(12)
    assert train_size(acqf) == 12
    weighted = FeasibilityWeighted(acqf, lambda X: torch.zeros(X.shape[:-2], dtype=X.dtype), acqf.model)
    assert train_size(weighted) == 12
    assert train_size(object()) is None  # type: ignore[arg-type]


def test_optimize_acquisition_applies_the_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[AcqOptions] = []
    real = optimize_module._initial_conditions

    def spy(acqf: Any, bounds: Any, q: int, opts: AcqOptions) -> Any:
        seen.append(opts)
        return real(acqf, bounds, q, opts)

    monkeypatch.setattr(optimize_module, "_initial_conditions", spy)
    acqf = log_ei(12)
    optimize_acquisition(acqf, SPACE, 1, AcqOptions())
    monkeypatch.setattr(optimize_module, "FULL_EFFORT_UP_TO", 10)
    optimize_acquisition(acqf, SPACE, 1, AcqOptions())
    assert [(o.num_restarts, o.raw_samples, o.maxiter) for o in seen] == [(8, 512, 200), (4, 256, 100)]


def test_points_around_the_incumbents_need_only_the_mean() -> None:
    """``sample_points_around_best`` reads the mean: skipping the variances changes nothing."""
    from botorch.optim.initializers import sample_points_around_best

    acqf = log_ei(30)
    bounds = SPACE.bounds()
    torch.manual_seed(1)
    plain = sample_points_around_best(acqf, 16, sigma=1e-3, bounds=bounds)
    torch.manual_seed(1)
    with optimize_module._mean_only():
        fast = sample_points_around_best(acqf, 16, sigma=1e-3, bounds=bounds)
    assert plain is not None and fast is not None and torch.equal(plain, fast)


def test_starts_around_the_incumbents_rank_only_the_best_observed_points() -> None:
    """Above the limit, the baseline ranked for incumbent starts is the best observed points."""
    from autotune.strategies._optimize import _with_fewer_baseline

    acqf = log_ei(60)
    assert _with_fewer_baseline(acqf, limit=60) is acqf
    view = _with_fewer_baseline(acqf, limit=10)
    targets = acqf.model.train_targets
    X = acqf.model.train_inputs[0]
    best10 = set(targets.topk(10).indices.tolist())
    kept = {int((X == x).all(-1).nonzero()) for x in view.X_baseline}
    assert kept == best10
    assert view.model is acqf.model and view.best_f is acqf.best_f  # everything else is the acquisition's
    # the view works where BoTorch expects the acquisition
    from botorch.optim.initializers import sample_points_around_best

    near = sample_points_around_best(view, 8, sigma=1e-3, bounds=SPACE.bounds())
    assert near is not None and near.shape == (8, 2)
    best = X[targets.argmax()]
    assert float((near - best).abs().max()) < 0.05  # around the incumbent (5 % of 10 points: the best)
