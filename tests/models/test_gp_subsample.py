"""Large n: hyperparameters fitted on a fixed subsample, the GP conditioned on every point."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from autotune.models import GPFitter, gp_posterior
from autotune.models._gp import FIT_ALL_UP_TO, FIT_SUBSAMPLE, _hyper_state
from autotune.space import Float, SearchSpace

SPACE = SearchSpace([Float(f"x{i}", low=0.0, high=1.0) for i in range(3)])


def data(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(n, 3, generator=g, dtype=torch.float64)
    y = torch.sin(5 * X[:, 0]) + X[:, 1] ** 2 - 0.5 * X[:, 2]
    return X, y.unsqueeze(-1)


def fit(n: int, fit_subsample: int | None, seen: list[int] | None = None) -> tuple[GPFitter, Any]:
    """Fit on ``n`` points, on all of them up to ``fit_subsample``, else on ``fit_subsample`` (``None``: all)."""
    from botorch.fit import fit_gpytorch_mll

    def fit_fn(mll: Any) -> Any:
        if seen is not None:
            seen.append(len(mll.model.train_inputs[0]))
        return fit_gpytorch_mll(mll, optimizer_kwargs={"options": {"maxiter": 30}})

    fitter = GPFitter(SPACE, fit_all_up_to=fit_subsample, fit_subsample=fit_subsample or 1)
    X, Y = data(n)
    torch.manual_seed(0)
    return fitter, fitter.fit("objective", X, Y, fit_fn=fit_fn)


def test_the_defaults() -> None:
    fitter = GPFitter(SPACE)
    assert (fitter.fit_all_up_to, fitter.fit_subsample) == (FIT_ALL_UP_TO, FIT_SUBSAMPLE) == (1_000, 500)


def test_the_threshold_and_the_subsample_size_are_separate() -> None:
    fitter = GPFitter(SPACE, fit_all_up_to=100, fit_subsample=30)
    X, Y = data(100)
    assert fitter._subsample(X, Y)[0] is X
    Xs, Ys = fitter._subsample(*data(101))
    assert len(Xs) == len(Ys) == 30


def test_at_or_below_the_threshold_nothing_changes() -> None:
    seen: list[int] = []
    _, sub = fit(40, fit_subsample=40, seen=seen)
    _, full = fit(40, fit_subsample=None)
    assert seen == [40]
    a, b = _hyper_state(sub), _hyper_state(full)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_above_it_the_hyperparameters_come_from_the_subsample_and_the_gp_sees_every_point() -> None:
    seen: list[int] = []
    fitter, model = fit(150, fit_subsample=60, seen=seen)
    assert seen == [60]  # the marginal likelihood was optimised on 60 points only
    assert len(model.train_inputs[0]) == 150  # conditioned on all of them
    assert fitter.last_outcome["objective"] == "fit" and fitter._fitted_n["objective"] == 150
    # The same subsample every time (fixed seed): the same hyperparameters.
    _, again = fit(150, fit_subsample=60)
    a, b = _hyper_state(model), _hyper_state(again)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # Every point informs the prediction: the mean at the training points follows the data.
    X, Y = data(150)
    with torch.no_grad():
        mean = gp_posterior(model, X).mean
    assert float((mean - Y).abs().max()) < 0.05


def test_the_subsample_fit_predicts_about_as_well_as_the_full_fit() -> None:
    X_test, Y_test = data(200, seed=1)
    errors = {}
    for m in (60, None):
        _, model = fit(300, fit_subsample=m)
        with torch.no_grad():
            errors[m] = float((gp_posterior(model, X_test).mean - Y_test).pow(2).mean().sqrt())
    # Out-of-sample RMSE on a function of range ~2: 0.0024 (60 of 300) against 0.0008 (all 300).
    assert errors[60] < 0.01 and errors[None] < 0.01, errors


def test_a_failing_fit_still_falls_back_with_a_subsample() -> None:
    from linear_operator.utils.errors import NotPSDError

    calls: list[int] = []

    def flaky(mll: Any) -> None:
        calls.append(len(mll.model.train_inputs[0]))
        if len(calls) == 1:
            raise NotPSDError("injected")

    fitter = GPFitter(SPACE, fit_all_up_to=60, fit_subsample=60)
    X, Y = data(150)
    model = fitter.fit("objective", X, Y, fit_fn=flaky)
    assert calls == [60, 60] and fitter.last_outcome["objective"] == "jitter"
    assert len(model.train_inputs[0]) == 150


@pytest.mark.parametrize("n", [61, 150])
def test_warm_refits_use_the_subsample_too(n: int) -> None:
    seen: list[int] = []
    fitter, _ = fit(n, fit_subsample=60, seen=seen)
    X, Y = data(2 * n)
    fitter.fit("objective", X, Y, fit_fn=lambda mll: seen.append(len(mll.model.train_inputs[0])))
    assert seen == [60, 60]
