"""Acquisition optimisation in length-scale units and the GP fit in log space: same optima, fewer steps."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from autotune.models import GPFitter
from autotune.models._lean import lean_posterior
from autotune.space import Categorical, Float, Int, SearchSpace
from autotune.strategies._domain import Domain
from autotune.strategies._optimize import (
    AcqOptions,
    _length_scales,
    _Preconditioned,
    optimize_acquisition,
    optimize_mixed,
)

FLOATS = SearchSpace([Float(f"x{i}", low=0.0, high=1.0) for i in range(3)])
MIXED = SearchSpace([Float("a", 0.0, 1.0), Categorical("c", ("p", "q", "r")), Float("b", 0.0, 1.0),
                     Int("n", 0, 500)])  # a long integer range is optimised as a continuous column


def _data(space: SearchSpace, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Points of ``space`` and an anisotropic objective (steep in the first column, flat in the last)."""
    from autotune.strategies._optimize import candidate_pool

    X = candidate_pool(space, n, seed)
    lin = X.clone()
    lin[:, list(space.cat_dims())] = 0.0
    y = -(25 * (lin[:, 0] - 0.3) ** 2 + (lin[:, -1] - 0.6) ** 2 + 0.5 * lin[:, 1:-1].sum(-1))
    return X, y.unsqueeze(-1)


def _log_ei(space: SearchSpace, n: int = 25, seed: int = 0) -> Any:
    from botorch.acquisition.analytic import LogExpectedImprovement

    X, y = _data(space, n, seed)
    torch.manual_seed(seed)
    model = GPFitter(space).fit("objective", X, y)
    return LogExpectedImprovement(lean_posterior(model), best_f=float(y.max()))


def test_the_scale_is_each_columns_length_scale_and_one_on_categoricals() -> None:
    acqf = _log_ei(MIXED)
    scale = _length_scales(acqf, MIXED.dim)
    gp = acqf.model.model
    ls = gp.covar_module.base_kernel.kernels[0].lengthscale.detach().reshape(-1)
    ordered = [0, 2, 3]
    torch.testing.assert_close(scale[ordered], ls.to(scale))
    assert scale[1] == 1.0  # the categorical column
    assert not torch.allclose(scale[ordered], torch.ones(3, dtype=scale.dtype))  # a real scale, not the default
    assert torch.equal(_length_scales(object(), 4), torch.ones(4, dtype=torch.float64))  # type: ignore[arg-type]


def test_preconditioning_is_an_exact_change_of_variables() -> None:
    acqf = _log_ei(FLOATS)
    scale = torch.tensor([0.1, 2.0, 0.5], dtype=torch.float64)
    Z = torch.rand(7, 1, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(_Preconditioned(acqf, scale)(Z), acqf(Z * scale))


@pytest.mark.parametrize("seed", range(3))
def test_the_preconditioned_optimum_is_the_plain_one(seed: int) -> None:
    acqf = _log_ei(FLOATS, seed=seed)
    found = {}
    for pre in (True, False):
        torch.manual_seed(seed)
        x, v = optimize_acquisition(acqf, FLOATS, 1, AcqOptions(precondition=pre, pgtol=1e-6))
        assert ((x >= 0) & (x <= 1)).all()
        assert float(acqf(x.unsqueeze(0))) == pytest.approx(v, abs=1e-9)  # the value is the point's
        found[pre] = (x, v)
    # an exact change of variables: the same maximum (LogEI in nats), whichever coordinates
    assert found[True][1] == pytest.approx(found[False][1], abs=1e-3)
    # and the default tolerance is close to the tight one
    torch.manual_seed(seed)
    _, v = optimize_acquisition(acqf, FLOATS, 1, AcqOptions())
    assert v >= found[False][1] - 0.05


def test_fixed_columns_hold_in_the_scaled_coordinates() -> None:
    acqf = _log_ei(FLOATS)
    domain = Domain(FLOATS, fixed={"x1": 0.7})
    torch.manual_seed(0)
    x, v = optimize_acquisition(acqf, domain, 1, AcqOptions())
    assert float(x[0, 1]) == pytest.approx(0.7, abs=1e-12)
    assert float(acqf(x.unsqueeze(0))) == pytest.approx(v, abs=1e-9)  # optimised at 0.7, not at 0.7 / scale
    torch.manual_seed(0)
    plain, _ = optimize_acquisition(acqf, FLOATS, 1, AcqOptions())
    assert float(plain[0, 1]) != pytest.approx(0.7, abs=1e-3)  # the fixed value is not the free optimum


def test_the_mixed_optimiser_finds_the_same_maximum_with_and_without_it() -> None:
    acqf = _log_ei(MIXED, n=30)
    vals = {}
    for pre in (True, False):
        torch.manual_seed(0)
        x, v = optimize_mixed(acqf, MIXED, AcqOptions(precondition=pre, pgtol=1e-6))
        assert torch.equal(MIXED.canonicalize_tensor(x), x)  # a legal point
        vals[pre] = v
    assert vals[True] == pytest.approx(vals[False], abs=1e-2)


def test_a_start_far_below_the_best_is_stopped_only_after_its_iterations() -> None:
    from types import SimpleNamespace

    from autotune.strategies._optimize import _stop_stragglers

    assert _stop_stragglers(AcqOptions(straggler_gap=None)) is None
    cb = _stop_stragglers(AcqOptions(straggler_gap=2.0, straggler_after=3))
    assert cb is not None
    good, slow, near = (SimpleNamespace(x=object(), fun=f) for f in (6.0, 9.0, 7.5))  # negated log EI
    for _ in range(2):  # two iterations each: nobody is stopped yet
        cb(intermediate_result=good)
        cb(intermediate_result=slow)
        cb(intermediate_result=near)
    cb(intermediate_result=good)
    with pytest.raises(StopIteration):
        cb(intermediate_result=slow)  # third iteration, 3 nats below the best
    cb(intermediate_result=near)  # 1.5 nats below: runs on


@pytest.mark.parametrize("seed", range(3))
def test_stopping_stragglers_keeps_the_maximum(seed: int) -> None:
    acqf = _log_ei(FLOATS, seed=seed)
    vals = []
    for gap in (None, 2.0):
        torch.manual_seed(seed)
        _, v = optimize_acquisition(acqf, FLOATS, 1, AcqOptions(straggler_gap=gap, straggler_after=2))
        vals.append(v)
    assert vals[1] >= vals[0] - 0.05
