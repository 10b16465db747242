"""The GP surrogates: conditional inputs, warm starts and the fit fallbacks."""

from __future__ import annotations

import functools
import math
import warnings
from typing import Any

import gpytorch
import pytest
import torch
from linear_operator.utils.errors import NotPSDError

from autotune.exceptions import ModelFitError
from autotune.models import ConditionalFill, GPFitter, make_gp
from autotune.models._gp import _hyper_state
from autotune.optimizer import Optimizer
from autotune.space import Bool, Categorical, Condition, Float, SearchSpace

DEFAULT_DOUBLE_JITTER = 1e-8


def conditional_space(parent: str) -> SearchSpace:
    """``momentum`` is active only when the parent says so; ``lr`` is always active."""
    if parent == "categorical":
        p = Categorical("optimizer", choices=("sgd", "adam", "rmsprop"))
        cond = Condition("optimizer", "==", "sgd")
    else:
        p = Bool("use_momentum")
        cond = Condition("use_momentum", "==", True)
    return SearchSpace([Float("lr", low=0.0, high=1.0), p, Float("momentum", low=0.0, high=1.0, conditions=(cond,))])


def fitted_conditional_gp(parent: str) -> tuple[Any, SearchSpace]:
    space = conditional_space(parent)
    pts = space.sample(12, "sobol", seed=0)
    X = torch.tensor([space.encode(p) for p in pts], dtype=torch.float64)

    def f(p: dict[str, Any]) -> float:
        return math.sin(4 * p["lr"]) + 2.0 * p.get("momentum", 0.3) ** 2

    Y = torch.tensor([[f(p)] for p in pts], dtype=torch.float64)
    return GPFitter(space, max_fit_iter=50).fit("objective", X, Y), space


# -- conditional spaces -----------------------------------------------------------------------
@pytest.mark.parametrize("parent", ["bool", "categorical"])
def test_inactive_parameters_do_not_change_the_prediction(parent: str) -> None:
    model, space = fitted_conditional_gp(parent)
    on = 1.0 if parent == "bool" else 0.0  # sgd is category 0
    off = 0.0 if parent == "bool" else 1.0
    m = torch.linspace(0, 1, 7, dtype=torch.float64)
    inactive = torch.stack([torch.full_like(m, 0.4), torch.full_like(m, off), m], dim=-1)
    active = torch.stack([torch.full_like(m, 0.4), torch.full_like(m, on), m], dim=-1)
    with torch.no_grad():
        p_in = model.posterior(inactive)
        p_act = model.posterior(active)
    # Changing an inactive column changes nothing, mean or variance.
    assert torch.allclose(p_in.mean, p_in.mean[0].expand_as(p_in.mean), rtol=0, atol=1e-12)
    assert torch.allclose(p_in.variance, p_in.variance[0].expand_as(p_in.variance), rtol=0, atol=1e-12)
    # Changing the same column where it is active does.
    assert float(p_act.mean.max() - p_act.mean.min()) > 0.1


def test_conditional_fill_overwrites_exactly_the_inactive_columns() -> None:
    space = conditional_space("categorical")
    tf = ConditionalFill(space)
    g = torch.Generator().manual_seed(0)
    X = torch.rand(4, 9, 3, generator=g, dtype=torch.float64)
    X[..., 1] = torch.randint(0, 3, (4, 9), generator=g).to(X)
    out = tf.transform(X)
    assert out.shape == X.shape
    mask = space.active_mask(X)
    fill = torch.tensor(space.fill_vector(), dtype=torch.float64).expand_as(X)
    assert torch.equal(out[mask], X[mask])
    assert torch.equal(out[~mask], fill[~mask])
    assert bool((~mask).any()) and bool(mask[..., 2].any())
    assert torch.equal(tf.transform(out), out)  # idempotent


def test_make_gp_attaches_the_conditional_transform_only_to_conditional_spaces() -> None:
    X = torch.rand(6, 3, dtype=torch.float64)
    X[:, 1] = X[:, 1].round()
    Y = X.sum(-1, keepdim=True)
    assert isinstance(make_gp(X, Y, conditional_space("bool")).input_transform, ConditionalFill)
    plain = SearchSpace([Float("a", low=0.0, high=1.0), Bool("b"), Float("c", low=0.0, high=1.0)])
    assert getattr(make_gp(X, Y, plain), "input_transform", None) is None


# -- fitting ----------------------------------------------------------------------------------
SPACE_1D = SearchSpace([Float("x", low=0.0, high=1.0)])


def data(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    X = torch.linspace(0, 1, n, dtype=torch.float64).unsqueeze(-1)
    return X, torch.sin(6 * X) + 0.1 * X


def state_of(mll: Any) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in mll.model.state_dict().items()}


def real_fit(mll: Any) -> Any:
    from botorch.fit import fit_gpytorch_mll

    return fit_gpytorch_mll(mll)


def always_fail(mll: Any) -> Any:
    raise NotPSDError("injected: matrix not positive definite")


def test_first_fit_learns_hyperparameters_and_records_the_outcome() -> None:
    fitter = GPFitter(SPACE_1D)
    X, Y = data(8)
    model = fitter.fit("objective", X, Y)
    assert fitter.last_outcome == {"objective": "fit"}
    assert not model.training
    with torch.no_grad():
        post = model.posterior(X)
    # A smooth function observed without noise is interpolated closely.
    assert float((post.mean - Y).abs().max()) < 0.05


def test_second_fit_starts_from_the_previous_hyperparameters() -> None:
    fitter = GPFitter(SPACE_1D)
    X, Y = data(8)
    first = fitter.fit("objective", X, Y)
    fresh = make_gp(X, Y, SPACE_1D)
    learned = _hyper_state(first)
    # The learned length scale differs from the initial one, so a warm start is observable.
    assert not torch.equal(learned["covar_module.raw_lengthscale"], fresh.state_dict()["covar_module.raw_lengthscale"])

    starts: list[dict[str, torch.Tensor]] = []

    def record(mll: Any) -> Any:
        starts.append(state_of(mll))
        return real_fit(mll)

    X2, Y2 = data(9)
    fitter.fit("objective", X2, Y2, fit_fn=record)
    assert len(starts) == 1
    for k, v in learned.items():
        assert torch.equal(starts[0][k], v), k
    # Other names keep their own state: a new name starts cold.
    fitter.fit("constraint:c", X2, Y2, fit_fn=record)
    assert torch.equal(starts[1]["covar_module.raw_lengthscale"], fresh.state_dict()["covar_module.raw_lengthscale"])


def test_a_failed_fit_is_retried() -> None:
    fitter = GPFitter(SPACE_1D)
    X, Y = data(8)
    calls: list[int] = []

    def fail_once(mll: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise NotPSDError("injected")
        return real_fit(mll)

    model = fitter.fit("objective", X, Y, fit_fn=fail_once)
    assert len(calls) == 2
    assert fitter.last_outcome["objective"] == "jitter"
    with torch.no_grad():
        assert bool(torch.isfinite(model.posterior(X).mean).all())


def test_the_retry_raises_the_jitter_of_the_models_dtype() -> None:
    fitter = GPFitter(SPACE_1D)
    X, Y = data(8)
    jitters: list[float] = []

    def fail_once(mll: Any) -> Any:
        jitters.append(gpytorch.settings.cholesky_jitter.value(X.dtype))
        if len(jitters) == 1:
            raise NotPSDError("injected")
        return real_fit(mll)

    fitter.fit("objective", X, Y, fit_fn=fail_once)
    assert jitters[0] == DEFAULT_DOUBLE_JITTER
    assert jitters[1] > DEFAULT_DOUBLE_JITTER


def test_all_fits_failing_reuses_the_last_good_hyperparameters_with_a_warning() -> None:
    fitter = GPFitter(SPACE_1D)
    X, Y = data(8)
    fitter.fit("objective", X, Y)
    good = _hyper_state(fitter.fit("objective", X, Y))
    X2, Y2 = data(10)
    with pytest.warns(RuntimeWarning, match="reusing the last good hyperparameters"):
        model = fitter.fit("objective", X2, Y2, fit_fn=always_fail)
    assert fitter.last_outcome["objective"] == "reused"
    reused = _hyper_state(model)
    for k, v in good.items():
        assert torch.equal(reused[k], v), k
    # The reused model is conditioned on the new data.
    assert model.train_inputs[0].shape[-2] == 10
    with torch.no_grad():
        assert float((model.posterior(X2).mean - Y2).abs().max()) < 0.1


def test_all_fits_failing_without_a_good_state_raises_model_fit_error() -> None:
    fitter = GPFitter(SPACE_1D)
    X, Y = data(8)
    with pytest.raises(ModelFitError, match="could not be fitted on 8 points: injected"):
        fitter.fit("objective", X, Y, fit_fn=always_fail)
    assert fitter.last_outcome["objective"] == "failed"
    # A later successful fit works normally.
    fitter.fit("objective", X, Y)
    assert fitter.last_outcome["objective"] == "fit"


def test_the_optimizer_turns_a_model_fit_error_into_a_space_filling_proposal() -> None:
    space = SearchSpace([Float("a", low=0.0, high=1.0), Float("b", low=0.0, high=1.0)])
    opt = Optimizer(space, "ei", seed=0, n_initial=2, strategy_options={"num_restarts": 2, "raw_samples": 32})
    opt.fitter.fit = functools.partial(GPFitter.fit, opt.fitter, fit_fn=always_fail)  # type: ignore[method-assign]
    hist = space.sample(5, "sobol", seed=1)
    for p in hist:
        opt.add(p, (p["a"] - 0.2) ** 2 + p["b"])
    with pytest.warns(RuntimeWarning, match="Proposing space-filling points instead"):
        batch = opt.ask(2)
    assert [s.info["fallback"] for s in batch] == ["model_fit_failed"] * 2
    assert [s.info["strategy"] for s in batch] == ["diversity"] * 2
    assert opt.fitter.last_outcome["objective"] == "failed"
    # Space-filling: the proposals keep away from the data and from each other.
    X = torch.tensor([space.encode(p) for p in hist], dtype=torch.float64)
    P = torch.tensor([space.encode(s.params) for s in batch], dtype=torch.float64)
    assert float(torch.cdist(P, X).min()) > 0.1 and float(torch.dist(P[0], P[1])) > 0.1


def test_the_optimizer_keeps_working_once_the_model_fits_again() -> None:
    space = SearchSpace([Float("a", low=0.0, high=1.0)])
    opt = Optimizer(space, "ei", seed=0, n_initial=2, strategy_options={"num_restarts": 2, "raw_samples": 32})
    for p in space.sample(4, "sobol", seed=1):
        opt.add(p, (p["a"] - 0.2) ** 2)
    real = opt.fitter.fit
    opt.fitter.fit = functools.partial(GPFitter.fit, opt.fitter, fit_fn=always_fail)  # type: ignore[method-assign]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        (s,) = opt.ask()
    assert s.info["fallback"] == "model_fit_failed"
    opt.fitter.fit = real  # type: ignore[method-assign]
    (s,) = opt.ask()
    assert "fallback" not in s.info and s.info["strategy"] == "ei" and "pred_mean" in s.info


def test_hyperparameters_are_reoptimised_once_the_data_grow_by_refit_fraction() -> None:
    fitter = GPFitter(SPACE_1D, refit_fraction=0.25)
    X, Y = data(8)
    first = fitter.fit("objective", X, Y)
    learned = _hyper_state(first)
    fits: list[int] = []

    def record(mll: Any) -> Any:
        fits.append(len(mll.model.train_targets))
        return real_fit(mll)

    # 8 points fitted: up to 8 + ceil(0.25 * 8) - 1 = 9 points reuse them, conditioned on all the data.
    X9, Y9 = data(9)
    model = fitter.fit("objective", X9, Y9, fit_fn=record)
    assert fits == [] and fitter.last_outcome["objective"] == "conditioned"
    for k, v in learned.items():
        assert torch.equal(_hyper_state(model)[k], v), k
    with torch.no_grad():  # the new point is in the model, not only the old ones
        assert float((model.posterior(X9[-1:]).mean - Y9[-1:]).abs()) < 0.05
    X10, Y10 = data(10)
    fitter.fit("objective", X10, Y10, fit_fn=record)
    assert fits == [10] and fitter.last_outcome["objective"] == "fit"


def test_refit_fraction_zero_reoptimises_every_call() -> None:
    fitter = GPFitter(SPACE_1D, refit_fraction=0.0)
    X, Y = data(8)
    fitter.fit("objective", X, Y)
    X9, Y9 = data(9)
    fitter.fit("objective", X9, Y9)
    assert fitter.last_outcome["objective"] == "fit"


def test_a_fit_requested_under_no_grad_still_fits() -> None:
    fitter = GPFitter(SPACE_1D)
    X, Y = data(8)
    with torch.no_grad():  # as when a constraint model is first needed while scoring an acquisition
        fitter.fit("constraint:c", X, Y)
    assert fitter.last_outcome["constraint:c"] == "fit"


def test_a_constrained_study_with_no_feasible_point_yet_still_uses_its_strategy() -> None:
    space = SearchSpace([Float("x", low=0.0, high=1.0), Float("y", low=0.0, high=1.0)])
    opt = Optimizer(space, "ei", seed=0, n_initial=4, constraints=["n_params <= 5000"])
    for p in space.sample(7, "sobol", seed=1):
        opt.add(p, (p["x"] - 0.3) ** 2 + p["y"], metrics={"n_params": 6000.0 + 10_000 * p["x"]})
    (s,) = opt.ask(1)
    assert s.info["strategy"] == "ei" and "fallback" not in s.info


@pytest.mark.parametrize("seed", range(3))
def test_the_log_space_fit_reaches_the_optimum_of_botorchs_parametrisation(seed: int) -> None:
    """Length scales and noise are fitted in log space (same bounds and priors): an exact change
    of variables, so the tight optimum of BoTorch's untransformed parameters is reached too."""
    from botorch.fit import fit_gpytorch_mll
    from gpytorch.constraints import GreaterThan
    from gpytorch.mlls import ExactMarginalLogLikelihood

    from autotune.models._gp import NOISE_FLOOR

    space = SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(4)])
    g = torch.Generator().manual_seed(seed)
    X = torch.rand(30, 4, generator=g, dtype=torch.float64)
    y = (torch.sin(6 * X[:, :1]) + 0.3 * X[:, 1:2] ** 2 + 0.05 * torch.randn(30, 1, generator=g, dtype=torch.float64))

    def loss(model: Any) -> float:
        model.train()
        mll = ExactMarginalLogLikelihood(model.likelihood, model)
        with torch.no_grad():
            return -float(mll(model(*model.train_inputs), model.train_targets))

    ours = GPFitter(space).fit("objective", X, y)
    assert ours.covar_module.raw_lengthscale_constraint._transform is torch.exp
    ref = make_gp(X, y, space)
    ref.covar_module.register_constraint("raw_lengthscale", GreaterThan(2.5e-2, transform=None))
    ref.covar_module.lengthscale = ref.covar_module.lengthscale.detach()
    ref.likelihood.noise_covar.register_constraint("raw_noise", GreaterThan(NOISE_FLOOR, transform=None))
    ref.likelihood.noise = torch.tensor([1e-2], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_gpytorch_mll(ExactMarginalLogLikelihood(ref.likelihood, ref), optimizer_kwargs={"options": {"maxiter": 2000}})
    assert loss(ours) <= loss(ref) + 2e-3  # the loss is a mean over the 30 points
    assert (ours.covar_module.lengthscale >= 2.5e-2).all() and float(ours.likelihood.noise.detach()) >= NOISE_FLOOR


@pytest.mark.parametrize("hyper", ["covar_module.raw_lengthscale", "mean_module.raw_constant"])
def test_a_fit_that_leaves_a_non_finite_hyperparameter_is_refused(hyper: str) -> None:
    """A NaN length scale fails the Cholesky factorisation, a NaN mean the check of the mean cache."""

    from botorch.fit import fit_gpytorch_mll

    def nan_fit(mll: Any) -> None:
        fit_gpytorch_mll(mll)
        with torch.no_grad():
            dict(mll.model.named_parameters())[hyper].fill_(float("nan"))

    fitter = GPFitter(SPACE_1D)
    X, Y = data(8)
    why = "cholesky" if "lengthscale" in hyper else "non-finite posterior after fitting"
    with pytest.raises(ModelFitError, match=f"could not be fitted on 8 points: {why}"):
        fitter.fit("objective", X, Y, fit_fn=nan_fit)
    model = fitter.fit("objective", X, Y)  # and a good fit passes the same check
    with torch.no_grad():
        post = model.posterior(X)
    assert bool(torch.isfinite(post.mean).all()) and bool(torch.isfinite(post.variance).all())
