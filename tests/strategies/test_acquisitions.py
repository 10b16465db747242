"""The acquisition maths, checked against its definition on fixed, fitted posteriors.

Each test states the defining property of a method (see ``METHODS.md``) and checks it by an
independent computation: a Monte Carlo estimate from posterior samples, a closed form, or an
asymptotic expansion. Nothing is compared with stored outputs.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from botorch.acquisition.analytic import ExpectedImprovement as PlainEI
from botorch.fit import fit_gpytorch_mll
from botorch.utils.testing import MockModel, MockPosterior
from torch import Tensor

from autotune.models import GPFitter
from autotune.space import Float, SearchSpace
from autotune.strategies import Context, OutcomeConstraint, get_strategy
from autotune.strategies._acquisitions import LogLocalPenalization, estimate_lipschitz
from autotune.strategies._optimize import candidate_pool
from autotune.strategies._sequential import condition, srinivas_beta

pytestmark = [
    pytest.mark.filterwarnings("ignore:ExpectedImprovement has known numerical issues"),
    pytest.mark.filterwarnings("ignore:A not p.d., added jitter"),
]

N_MC = 200_000
SPACE_1D = SearchSpace([Float("x", low=0.0, high=1.0)])
X_OBS = [0.1, 0.4, 0.6, 0.9]
Y_OBS = [0.2, 1.0, 0.9, 0.1]
X_TEST = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0], dtype=torch.float64).reshape(-1, 1)


class QuietFitter(GPFitter):
    """Fits the GP, then pins the observation noise near zero (a noise-free posterior)."""

    def fit(self, name: str, X: Tensor, Y: Tensor, fit_fn: Any = None) -> Any:
        def fit_quiet(mll: Any) -> None:
            fit_gpytorch_mll(mll)
            mll.model.likelihood.noise = 1e-6

        return super().fit(name, X, Y, fit_fn=fit_quiet)


def make_ctx(X: Any, y: Any, space: SearchSpace = SPACE_1D, fitter: GPFitter | None = None, **kw: Any) -> Context:
    Xt = torch.as_tensor(X, dtype=torch.float64).reshape(len(X), -1)
    yt = torch.as_tensor(y, dtype=torch.float64)
    return Context(space=space, X=Xt, y=yt, failed=torch.zeros(len(Xt), dtype=torch.bool),
                   fitter=fitter or GPFitter(space), **kw)


@pytest.fixture(scope="module")
def fitted() -> tuple[Context, Any]:
    """A GP with learned noise on four 1-D points."""
    ctx = make_ctx(X_OBS, Y_OBS)
    return ctx, ctx.objective_model()


@pytest.fixture(scope="module")
def quiet() -> tuple[Context, Any]:
    """The same data with the noise pinned near zero."""
    ctx = make_ctx(X_OBS, Y_OBS, fitter=QuietFitter(SPACE_1D))
    return ctx, ctx.objective_model()


def posterior_samples(model: Any, X: Tensor, n: int = N_MC) -> Tensor:
    """`n x len(X)` joint posterior samples (seeded)."""
    with torch.no_grad():
        post = model.posterior(X)
        g = torch.Generator().manual_seed(0)
        L = torch.linalg.cholesky(post.covariance_matrix + 1e-12 * torch.eye(len(X), dtype=X.dtype))
        z = torch.randn(n, len(X), generator=g, dtype=X.dtype)
        return post.mean.squeeze(-1) + z @ L.T


def acq_values(acqf: Any, X: Tensor) -> Tensor:
    """Acquisition values at each row of a `n x d` tensor (q = 1 each)."""
    with torch.no_grad():
        return acqf(X.unsqueeze(-2))


# -- EI and PI --------------------------------------------------------------------------------
def test_ei_equals_the_monte_carlo_mean_improvement(fitted: tuple[Context, Any]) -> None:
    ctx, model = fitted
    best = ctx.best_f()
    assert best == max(Y_OBS)
    ei = acq_values(get_strategy("ei").acquisition(model, ctx, best), X_TEST).exp()
    imp = (posterior_samples(model, X_TEST) - best).clamp_min(0)
    mc, se = imp.mean(0), imp.std(0) / math.sqrt(N_MC)
    assert bool((ei > 1e-5).all())  # every test point carries a measurable improvement
    assert torch.all((ei - mc).abs() <= 5 * se + 1e-7), (ei, mc, se)


@pytest.mark.parametrize("xi", [0.0, 0.1, 0.5])
def test_pi_equals_the_monte_carlo_probability_of_improving_by_xi(fitted: tuple[Context, Any], xi: float) -> None:
    ctx, model = fitted
    best = ctx.best_f()
    assert best is not None
    acqf = get_strategy("pi", xi=xi).acquisition(model, ctx, best)
    threshold = best + xi * float(torch.tensor(Y_OBS, dtype=torch.float64).std())  # xi in units of sd(y)
    pi = acq_values(acqf, X_TEST).exp()
    hit = (posterior_samples(model, X_TEST) > threshold).double()
    mc = hit.mean(0)
    se = (mc * (1 - mc) / N_MC).sqrt()
    assert torch.all((pi - mc).abs() <= 5 * se + 2e-5), (pi, mc)


def test_pi_decreases_as_xi_grows(fitted: tuple[Context, Any]) -> None:
    ctx, model = fitted
    vals = [acq_values(get_strategy("pi", xi=xi).acquisition(model, ctx, ctx.best_f()), X_TEST) for xi in (0, 0.1, 1)]
    assert torch.all(vals[0] > vals[1]) and torch.all(vals[1] > vals[2])


def test_log_ei_stays_finite_where_ei_underflows(quiet: tuple[Context, Any]) -> None:
    """Deep in the tail (far below the incumbent in posterior sd), EI underflows to 0; LogEI does not."""
    ctx, model = quiet
    best = ctx.best_f()
    assert best is not None
    x = torch.tensor([[X_OBS[0]]], dtype=torch.float64)  # an observed poor point: mean 0.2, tiny sd
    with torch.no_grad():
        post = model.posterior(x)
    mu, sd = float(post.mean), float(post.variance.sqrt())
    z = (mu - best) / sd
    assert z < -100
    log_ei = get_strategy("ei").acquisition(model, ctx, best)
    value = acq_values(log_ei, x)
    assert float(PlainEI(model, best_f=best)(x.unsqueeze(-2))) == 0.0  # plain EI underflows
    assert float(value.exp()) == 0.0
    assert math.isfinite(float(value))
    # EI = sd (phi(z) + z Phi(z)) ~ sd phi(z) (1/z^2 - 3/z^4) as z -> -inf (Mills ratio).
    asymptotic = math.log(sd) - 0.5 * z * z - 0.5 * math.log(2 * math.pi) - 2 * math.log(-z) + math.log1p(-3 / z**2)
    assert float(value) == pytest.approx(asymptotic, rel=1e-4)
    # Its gradient still points back towards the data's better region.
    xg = x.clone().unsqueeze(-2).requires_grad_(True)
    (g,) = torch.autograd.grad(log_ei(xg).sum(), xg)
    assert math.isfinite(float(g)) and float(g) > 0


def test_log_ei_decreases_smoothly_with_the_incumbent(quiet: tuple[Context, Any]) -> None:
    ctx, model = quiet
    x = torch.tensor([[0.5]], dtype=torch.float64)
    vals = [float(acq_values(get_strategy("ei").acquisition(model, ctx, b), x)) for b in (1.0, 2.0, 5.0, 20.0, 100.0)]
    assert all(math.isfinite(v) for v in vals)
    assert all(a > b for a, b in zip(vals, vals[1:]))


# -- UCB ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("beta", [0.5, 4.0, 25.0])
def test_ucb_is_mean_plus_sqrt_beta_sd(fitted: tuple[Context, Any], beta: float) -> None:
    ctx, model = fitted
    acqf = get_strategy("ucb", beta=beta).acquisition(model, ctx, ctx.best_f())
    with torch.no_grad():
        post = model.posterior(X_TEST)
    expected = post.mean.squeeze(-1) + math.sqrt(beta) * post.variance.sqrt().squeeze(-1)
    assert torch.allclose(acq_values(acqf, X_TEST), expected, rtol=1e-10, atol=1e-12)


def test_srinivas_beta_grows_with_t_and_dimension() -> None:
    ts = [1, 2, 5, 10, 100, 1000]
    betas = [srinivas_beta(t, 3) for t in ts]
    assert all(a < b for a, b in zip(betas, betas[1:]))
    assert srinivas_beta(10, 1) < srinivas_beta(10, 5) < srinivas_beta(10, 20)
    assert srinivas_beta(10, 3, delta=0.5) < srinivas_beta(10, 3, delta=0.01)  # more confidence, more exploration
    # Logarithmic growth: doubling t adds 4 log 2 whatever t is.
    for t in (3, 30, 300):
        assert srinivas_beta(2 * t, 3) - srinivas_beta(t, 3) == pytest.approx(4 * math.log(2))


def test_ucb_strategy_schedules_beta_by_the_number_of_observations(fitted: tuple[Context, Any]) -> None:
    ctx, model = fitted
    ucb = get_strategy("ucb", beta_schedule="srinivas", beta_scale=0.2, delta=0.1)
    acqf = ucb.acquisition(model, ctx, ctx.best_f())
    assert float(acqf.beta) == pytest.approx(0.2 * srinivas_beta(len(X_OBS) + 1, 1, 0.1))
    more = make_ctx(X_OBS + [0.2, 0.3], Y_OBS + [0.5, 0.7])
    assert float(ucb.acquisition(model, more, 1.0).beta) > float(acqf.beta)


# -- qEI -----------------------------------------------------------------------------------------
def test_qei_at_q1_equals_analytic_ei(quiet: tuple[Context, Any]) -> None:
    ctx, model = quiet
    best = ctx.best_f()
    X = torch.linspace(0, 1, 41, dtype=torch.float64).reshape(-1, 1)
    ei = acq_values(get_strategy("ei").acquisition(model, ctx, best), X).exp()
    qei = acq_values(get_strategy("qei", mc_samples=4096).build(ctx), X).exp()
    sel = ei > 1e-3  # where the improvement is measurable by MC
    assert int(sel.sum()) >= 10
    assert torch.allclose(qei[sel], ei[sel], rtol=0.02), torch.stack([ei[sel], qei[sel]])


def test_qei_joint_value_is_at_least_every_single_points_ei(quiet: tuple[Context, Any]) -> None:
    ctx, model = quiet
    acqf = get_strategy("qei", mc_samples=4096).build(ctx)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        batch = torch.rand(3, 1, generator=g, dtype=torch.float64)
        with torch.no_grad():
            joint = float(acqf(batch.unsqueeze(0)).exp())
            singles = acq_values(acqf, batch).exp()
        assert joint >= float(singles.max()) * (1 - 1e-2), (joint, singles)
    # A repeated point adds nothing; two separate good points add to each other.
    a, b = torch.tensor([[0.3]], dtype=torch.float64), torch.tensor([[0.5]], dtype=torch.float64)
    with torch.no_grad():
        ea, eb = float(acqf(a.unsqueeze(0)).exp()), float(acqf(b.unsqueeze(0)).exp())
        assert float(acqf(torch.cat([a, a]).unsqueeze(0)).exp()) == pytest.approx(ea, rel=2e-2)
        assert float(acqf(torch.cat([a, b]).unsqueeze(0)).exp()) > max(ea, eb) * 1.05


# -- local penalisation ------------------------------------------------------------------------
class _ZeroAcq(torch.nn.Module):
    def forward(self, X: Tensor) -> Tensor:
        return torch.zeros(X.shape[:-2], dtype=X.dtype)


def penaliser(mu: float, sd: float, M: float, L: float, centre: float = 0.5) -> LogLocalPenalization:
    """A penaliser around one busy point whose posterior there is N(mu, sd^2)."""
    model = MockModel(MockPosterior(mean=torch.tensor([[mu]], dtype=torch.float64),
                                    variance=torch.tensor([[sd**2]], dtype=torch.float64)))
    centres = torch.tensor([[centre]], dtype=torch.float64)
    return LogLocalPenalization(_ZeroAcq(), model, centres, L, M)  # type: ignore[arg-type]


def log_penalty_at(lp: LogLocalPenalization, xs: list[float]) -> Tensor:
    X = torch.tensor(xs, dtype=torch.float64).reshape(-1, 1, 1)
    with torch.no_grad():
        return lp.log_penalty(X).reshape(-1)


def test_penalty_is_the_probability_of_lying_outside_the_ball() -> None:
    """phi(x; x_j) = P(||x - x_j|| >= (M - f(x_j)) / L), f(x_j) ~ N(mu_j, sd_j^2), by Monte Carlo."""
    mu, sd, M, L = 0.8, 0.1, 1.0, 2.0
    lp = penaliser(mu, sd, M, L)
    dists = [0.0, 0.05, 0.1, 0.15, 0.2]
    phi = log_penalty_at(lp, [0.5 + d for d in dists]).exp()
    f = mu + sd * torch.randn(N_MC, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    for d, p in zip(dists, phi):
        mc = float((d >= (M - f) / L).double().mean())
        assert float(p) == pytest.approx(mc, abs=5 * math.sqrt(mc * (1 - mc) / N_MC) + 1e-4)


def test_penalty_is_very_negative_at_a_busy_point_and_vanishes_outside_its_ball() -> None:
    mu, sd, M, L = 0.5, 0.05, 1.0, 2.0  # the busy point's mean is 10 sd below the best
    lp = penaliser(mu, sd, M, L)
    radius = (M - mu) / L
    near, far, farther = log_penalty_at(lp, [0.5, 0.5 + radius + 6 * sd / L, 0.5 - 2 * radius])
    assert float(near) < -20
    assert float(far) > -1e-3 and float(farther) > -1e-3
    assert float(log_penalty_at(lp, [0.5 + radius])) == pytest.approx(math.log(0.5))  # the ball's edge: phi = 1/2


def test_penalty_is_monotone_in_distance_and_symmetric() -> None:
    lp = penaliser(0.7, 0.1, 1.0, 3.0)
    d = torch.linspace(0, 0.5, 51).tolist()
    right = log_penalty_at(lp, [0.5 + x for x in d])
    left = log_penalty_at(lp, [0.5 - x for x in d])
    assert torch.all(right[1:] >= right[:-1])
    assert torch.allclose(right, left)


def test_penalty_multiplies_the_acquisition_and_adds_over_busy_points(fitted: tuple[Context, Any]) -> None:
    ctx, model = fitted
    base = get_strategy("ei").acquisition(model, ctx, ctx.best_f())
    centres = torch.tensor([[0.3], [0.7]], dtype=torch.float64)
    both = LogLocalPenalization(base, model, centres, 2.0, 1.0)
    one = LogLocalPenalization(base, model, centres[:1], 2.0, 1.0)
    two = LogLocalPenalization(base, model, centres[1:], 2.0, 1.0)
    X = X_TEST.unsqueeze(-2)
    with torch.no_grad():
        assert torch.allclose(both(X), base(X) + both.log_penalty(X).sum(-1))
        assert torch.allclose(both.log_penalty(X), one.log_penalty(X) + two.log_penalty(X))
        assert torch.all(both(X) <= base(X))


def test_lipschitz_estimate_matches_the_slope_of_a_linear_function() -> None:
    space = SearchSpace([Float("a", low=0.0, high=1.0), Float("b", low=0.0, high=1.0)])
    X = torch.rand(12, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    y = 3 * X[:, 0] - 2 * X[:, 1]
    model = make_ctx(X, y, space=space).objective_model()
    probe = torch.cat([candidate_pool(space, 256, 1), X])
    assert estimate_lipschitz(model, probe) == pytest.approx(math.sqrt(13), rel=0.15)
    # Restricted to one column it is that column's slope.
    assert estimate_lipschitz(model, probe, cols=[1]) == pytest.approx(2.0, rel=0.15)


def test_lipschitz_estimate_is_tiny_but_positive_for_a_flat_mean() -> None:
    from botorch.models.deterministic import GenericDeterministicModel

    flat = GenericDeterministicModel(lambda X: 0.0 * X.sum(-1, keepdim=True))
    X = torch.rand(4, 2, dtype=torch.float64)
    assert estimate_lipschitz(flat, X) == 1e-7
    steep = GenericDeterministicModel(lambda X: 5.0 * X[..., :1] ** 2)  # max slope 10 at x = 1
    assert estimate_lipschitz(steep, torch.tensor([[0.0, 0.0], [0.5, 1.0], [1.0, 0.3]], dtype=torch.float64)) == 10.0


# -- lies --------------------------------------------------------------------------------------
@pytest.mark.parametrize("minimize", [True, False])
@pytest.mark.parametrize("kind", ["min", "mean", "max"])
def test_constant_lie_is_min_mean_or_max_in_the_users_units(minimize: bool, kind: str) -> None:
    user = torch.tensor([3.0, -1.0, 2.5, 7.0], dtype=torch.float64)
    internal = -user if minimize else user  # strategies maximise
    ctx = make_ctx([0.1, 0.3, 0.5, 0.7], internal, minimize=minimize)
    busy = torch.rand(3, 1, dtype=torch.float64)
    lie = get_strategy("constant_liar", lie=kind).lie(None, ctx, busy)  # type: ignore[arg-type]
    assert lie.shape == (3, 1)
    in_user_units = -lie if minimize else lie
    expected = {"min": user.min(), "mean": user.mean(), "max": user.max()}[kind]
    assert torch.allclose(in_user_units, expected.expand(3, 1))


def test_constant_lie_ignores_failed_trials() -> None:
    ctx = make_ctx([0.1, 0.3, 0.5], [1.0, float("nan"), 3.0])
    ctx.failed[1] = True
    busy = torch.zeros(1, 1, dtype=torch.float64)
    lie = get_strategy("constant_liar", lie="mean").lie(None, ctx, busy)  # type: ignore[arg-type]
    assert float(lie) == 2.0


def test_kriging_believer_lie_keeps_the_mean_and_collapses_the_variance(fitted: tuple[Context, Any]) -> None:
    ctx, model = fitted
    busy = torch.tensor([[0.25], [0.75]], dtype=torch.float64)
    lie = get_strategy("kriging_believer").lie(model, ctx, busy)
    with torch.no_grad():
        before = model.posterior(busy)
        after = condition(model, busy, lie).posterior(busy)
    assert torch.allclose(lie, before.mean)
    assert torch.allclose(after.mean, before.mean, atol=1e-6)
    assert torch.all(after.variance < 0.25 * before.variance)


# -- cost --------------------------------------------------------------------------------------
def cost_fn(X: Tensor) -> Tensor:
    return 1.0 + 9.0 * X[..., 0]


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
def test_ei_per_cost_divides_ei_by_cost_to_the_alpha(fitted: tuple[Context, Any], alpha: float) -> None:
    ctx, model = fitted
    ctx_cost = make_ctx(X_OBS, Y_OBS, known_cost=cost_fn)
    ctx_cost.models.memo["objective"] = model
    best = ctx.best_f()
    ei = acq_values(get_strategy("ei").acquisition(model, ctx, best), X_TEST).exp()
    per_cost = acq_values(get_strategy("ei_per_cost", alpha=alpha).acquisition(model, ctx_cost, best), X_TEST).exp()
    assert torch.allclose(per_cost, ei / cost_fn(X_TEST) ** alpha, rtol=1e-9)


def test_cost_cooling_decays_the_exponent_from_one_to_zero() -> None:
    strat = get_strategy("ei_per_cost", cooling=True)
    ctx = make_ctx(X_OBS, Y_OBS, budget_fraction_initial=0.2)
    fractions = torch.linspace(0.2, 1.0, 17).tolist()
    alphas = []
    for used in fractions:
        ctx.budget_fraction_used = used
        alphas.append(strat.exponent_at(ctx))
    assert alphas[0] == pytest.approx(1.0) and alphas[-1] == pytest.approx(0.0, abs=1e-12)
    assert all(a > b for a, b in zip(alphas, alphas[1:]))
    # EI-cool (Lee et al. 2020): alpha = (B - spent) / (B - spent_initial), linear in the spend.
    for used, a in zip(fractions, alphas):
        assert a == pytest.approx((1 - used) / (1 - 0.2))
    ctx.budget_fraction_used = 1.5  # overspent: cost is ignored, never rewarded
    assert strat.exponent_at(ctx) == 0.0
    assert get_strategy("ei_per_cost", cooling=False).exponent_at(ctx) == 1.0


def test_cost_cooling_turns_ei_per_cost_into_ei_when_the_budget_is_spent(fitted: tuple[Context, Any]) -> None:
    ctx, model = fitted
    spent = make_ctx(X_OBS, Y_OBS, known_cost=cost_fn, budget_fraction_used=1.0, budget_fraction_initial=0.1)
    best = ctx.best_f()
    ei = acq_values(get_strategy("ei").acquisition(model, ctx, best), X_TEST)
    cooled = acq_values(get_strategy("ei_per_cost", cooling=True).acquisition(model, spent, best), X_TEST)
    assert torch.allclose(cooled, ei)


# -- constraints -------------------------------------------------------------------------------
def test_log_feasibility_is_the_posterior_probability_that_the_constraint_holds() -> None:
    X = torch.linspace(0, 1, 9, dtype=torch.float64).reshape(-1, 1)
    c = 2.0 * X.squeeze(-1)  # metric; constraint metric <= 1 holds for x <= 0.5
    ctx = make_ctx(X, -X.squeeze(-1), constraints=[OutcomeConstraint("m", "<=", 1.0)], constraint_values={"m": c})
    ((slack_model, thr),) = ctx.constraint_models()
    assert thr == 0.0
    Xt = torch.tensor([[0.05], [0.45], [0.52], [0.6], [0.95]], dtype=torch.float64)
    with torch.no_grad():
        pof = ctx.log_feasibility(Xt.unsqueeze(-2)).exp()
    mc = (posterior_samples(slack_model, Xt) >= 0).double().mean(0)
    assert torch.allclose(pof, mc, atol=5e-3)
    assert float(pof[0]) > 0.99 and float(pof[-1]) < 1e-3
    # For a batch, the log probabilities add over its points.
    with torch.no_grad():
        joint = ctx.log_feasibility(Xt[[0, 3]].unsqueeze(0))
    assert float(joint) == pytest.approx(float(pof[0].log() + pof[3].log()))


def test_feasibility_weighting_adds_log_pof_to_log_ei() -> None:
    X = torch.linspace(0, 1, 9, dtype=torch.float64).reshape(-1, 1)
    ctx = make_ctx(X, X.squeeze(-1), constraints=[OutcomeConstraint("m", "<=", 0.5)],
                   constraint_values={"m": X.squeeze(-1)})
    model = ctx.objective_model()
    ei = get_strategy("ei")
    empty = torch.empty(0, 1, dtype=torch.float64)
    weighted = ei.acquisition_for(model, ctx, empty, empty)
    plain = ei.acquisition(model, ctx, ctx.best_f())  # type: ignore[arg-type]
    Xt = torch.tensor([[0.2], [0.5], [0.8]], dtype=torch.float64).unsqueeze(-2)
    with torch.no_grad():
        assert torch.allclose(weighted(Xt), plain(Xt) + ctx.log_feasibility(Xt))
    assert ctx.best_f() == pytest.approx(0.5)  # the incumbent is the best *feasible* value
