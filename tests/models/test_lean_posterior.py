"""The lean posterior, marginal likelihood and LogEI compute what BoTorch/GPyTorch compute."""

from __future__ import annotations

import math
from typing import Any

import gpytorch
import pytest
import torch
from botorch.acquisition.analytic import LogExpectedImprovement, _log_ei_helper
from botorch.models.kernels.categorical import CategoricalKernel
from botorch.optim.closures import get_loss_closure_with_grads
from botorch.optim.utils import get_parameters
from gpytorch.kernels import MaternKernel, RBFKernel, ScaleKernel
from gpytorch.mlls import ExactMarginalLogLikelihood

from autotune import Categorical, Float, Int, Optimizer, SearchSpace
from autotune.models import GPFitter, LeanGP, lean_posterior, make_gp
from autotune.models._lean import kernel_functions, lean_fit_closure, lean_mll_loss
from autotune.space import Condition
from autotune.strategies._acquisitions import LeanLogExpectedImprovement, log_ei_helper

SPACES = {
    "continuous": SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(3)]),
    "mixed": SearchSpace([Float("x0", 0.0, 1.0), Int("n", 1, 8), Categorical("c", ["a", "b", "c"])]),
    "categorical": SearchSpace([Categorical("c", ["a", "b", "c"]), Categorical("e", ["u", "v"])]),
    "conditional": SearchSpace([
        Categorical("opt", ["sgd", "adam"]), Float("lr", 1e-4, 1e-1, log=True),
        Float("momentum", 0.0, 0.99, conditions=(Condition("opt", "==", "sgd"),)),
    ]),
}


def _gp(space: SearchSpace, n: int = 40, kernel: str = "matern52", seed: int = 0) -> tuple[object, torch.Tensor]:
    """A GP on a smooth function with hyperparameters moved off their initial values, in eval mode."""
    g = torch.Generator().manual_seed(seed)
    X = torch.tensor([space.encode(p) for p in space.sample(n, "random", seed=seed)], dtype=torch.float64)
    Y = torch.sin(5 * X).sum(-1, keepdim=True) + 0.05 * torch.randn(n, 1, generator=g, dtype=torch.float64)
    model = make_gp(X, Y, space, kernel)  # type: ignore[arg-type]
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "noise" not in name:
                p.add_(0.3 * torch.rand(p.shape, generator=g, dtype=p.dtype))
    model.eval()
    return model, X


def _points(space: SearchSpace, n: int, seed: int) -> torch.Tensor:
    return torch.tensor([space.encode(p) for p in space.sample(n, "random", seed=seed)], dtype=torch.float64)


@pytest.mark.parametrize("kernel", ["matern52", "rbf"])
@pytest.mark.parametrize("name", list(SPACES))
def test_lean_posterior_equals_botorchs_with_gradients(name: str, kernel: str) -> None:
    space = SPACES[name]
    model, _ = _gp(space, kernel=kernel)
    lean = lean_posterior(model)
    assert isinstance(lean, LeanGP)
    X = _points(space, 24, seed=1).reshape(24, 1, -1)
    xa, xb = X.clone().requires_grad_(True), X.clone().requires_grad_(True)
    ref, got = model.posterior(xa), lean.posterior(xb)
    assert torch.allclose(ref.mean, got.mean, atol=1e-10)
    assert torch.allclose(ref.variance, got.variance, rtol=1e-8, atol=1e-12)
    (ga,) = torch.autograd.grad(ref.mean.sum() + ref.variance.sum(), xa, allow_unused=True)
    got_out = got.mean.sum() + got.variance.sum()
    (gb,) = torch.autograd.grad(got_out, xb)
    if ga is None:  # category indices only: piecewise constant, zero derivative in the inputs
        assert torch.equal(gb, torch.zeros_like(gb))
    else:
        assert torch.allclose(ga, gb, atol=1e-8)


def test_lean_posterior_of_a_conditioned_model_and_at_the_data() -> None:
    space = SPACES["continuous"]
    model, X = _gp(space)
    with torch.no_grad():
        model.posterior(X[:1])  # GPyTorch conditions only a model that has predicted
    lies_at = _points(space, 5, seed=2)
    conditioned = model.condition_on_observations(X=lies_at, Y=torch.zeros(5, 1, dtype=torch.float64))
    lean = lean_posterior(conditioned)
    assert isinstance(lean, LeanGP)
    at = torch.cat([X[:5], lies_at, _points(space, 5, seed=3)]).unsqueeze(-2)  # data, lies, elsewhere
    ref, got = conditioned.posterior(at), lean.posterior(at)
    assert torch.allclose(ref.mean, got.mean, atol=1e-9)
    assert torch.allclose(ref.variance, got.variance, rtol=1e-6, atol=1e-9)
    before = model.posterior(lies_at.unsqueeze(-2)).variance
    assert bool((got.variance[5:10] < 0.5 * before).all())  # the variance drops at the conditioned points


@pytest.mark.parametrize("name", list(SPACES))
def test_joint_posteriors_equal_the_wrapped_models(name: str) -> None:
    space = SPACES[name]
    model, data = _gp(space)
    lean = lean_posterior(model)
    assert isinstance(lean, LeanGP)
    X = _points(space, 6, seed=4).reshape(2, 3, -1)  # q = 3: a joint posterior
    post, ref = lean.posterior(X), model.posterior(X)
    assert torch.allclose(post.mean, ref.mean, atol=1e-10)
    assert torch.allclose(post.mvn.covariance_matrix, ref.mvn.covariance_matrix, atol=1e-10)
    # the n x d request of the acquisition search's incumbent starts (the mean at the data)
    assert torch.allclose(lean.posterior(data).mean, model.posterior(data).mean, atol=1e-10)
    noisy = lean.posterior(X[:, :1], observation_noise=True)  # observation noise: the model's
    assert torch.allclose(noisy.variance, model.posterior(X[:, :1], observation_noise=True).variance)
    assert lean_posterior(lean) is lean


def test_models_it_does_not_cover_are_returned_unchanged() -> None:
    from botorch.models import SingleTaskGP

    space = SPACES["continuous"]
    model, X = _gp(space)
    model.train()
    assert lean_posterior(model) is model  # training mode
    plain = SingleTaskGP(X, torch.rand(len(X), 1, dtype=torch.float64), outcome_transform=None).eval()
    assert lean_posterior(plain) is plain  # no Standardize: nothing to undo, left to BoTorch
    batched = SingleTaskGP(X.expand(2, -1, -1), torch.rand(2, len(X), 1, dtype=torch.float64)).eval()
    assert lean_posterior(batched) is batched


@pytest.mark.parametrize("kernel", [MaternKernel(nu=0.5, ard_num_dims=3), MaternKernel(nu=1.5, ard_num_dims=3),
                                    MaternKernel(nu=2.5, ard_num_dims=3), RBFKernel(ard_num_dims=3),
                                    ScaleKernel(MaternKernel(nu=2.5, ard_num_dims=2, active_dims=[0, 2])),
                                    ScaleKernel(RBFKernel(ard_num_dims=2, active_dims=[0, 1])
                                                * CategoricalKernel(ard_num_dims=1, active_dims=[2]))],
                         ids=["matern12", "matern32", "matern52", "rbf", "scaled-active", "product"])
def test_kernel_functions_equal_gpytorchs(kernel: gpytorch.kernels.Kernel) -> None:
    kernel = kernel.to(torch.float64)
    with torch.no_grad():
        for p in kernel.parameters():
            p.add_(torch.rand_like(p))
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.rand(4, 5, 3, generator=g, dtype=torch.float64), torch.rand(7, 3, generator=g, dtype=torch.float64)
    x1[..., 2], x2[..., 2] = x1[..., 2].mul(3).floor(), x2[..., 2].mul(3).floor()  # a category index column
    fns = kernel_functions(kernel)
    assert fns is not None
    assert torch.allclose(fns.cross(x1, x2), kernel(x1, x2).to_dense(), atol=1e-10)
    assert torch.allclose(fns.diag(x1), kernel(x1, x1, diag=True), atol=1e-12)
    # the closed-form derivative in x1 equals autograd's through GPyTorch's kernel
    K, dK = fns.grad(x1, x2)
    assert torch.allclose(K, fns.cross(x1, x2), atol=1e-12)
    x = x1.clone().requires_grad_(True)
    w = torch.rand(4, 5, 7, generator=g, dtype=torch.float64)
    (auto,) = torch.autograd.grad((kernel(x, x2).to_dense() * w).sum(), x)
    assert torch.allclose((dK * w.unsqueeze(-1)).sum(-2), auto, atol=1e-10)
    assert kernel_functions(gpytorch.kernels.PeriodicKernel()) is None  # unknown: GPyTorch keeps it


@pytest.mark.parametrize("kernel", ["matern52", "matern32", "matern12", "rbf"])
@pytest.mark.parametrize("name", list(SPACES))
def test_lean_marginal_likelihood_equals_botorchs_loss_and_gradient(name: str, kernel: str) -> None:
    """The closed-form derivative in every hyperparameter (length scales, output scale,
    categorical length scales, noise, mean) equals autograd's through GPyTorch."""
    from gpytorch.kernels import MaternKernel

    space = SPACES[name]
    model, _ = _gp(space, kernel="rbf" if kernel == "rbf" else "matern52")
    for module in model.covar_module.modules():  # Matérn smoothness other than make_gp's 5/2
        if isinstance(module, MaternKernel) and kernel.startswith("matern"):
            module.nu = {"matern52": 2.5, "matern32": 1.5, "matern12": 0.5}[kernel]
    # GPyTorch takes distances as |a|^2 + |b|^2 - 2ab (rounding ~1e-9 at the kinks of Matérn-1/2)
    tol = 1e-8 if kernel == "matern12" else 1e-12
    _assert_lean_closure_matches_botorchs(model, loss_tol=tol, abs_tol=tol, grad_tol=100 * tol)


def _assert_lean_closure_matches_botorchs(model: Any, loss_tol: float, abs_tol: float,
                                          grad_tol: float) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]:
    """BoTorch's loss closure and :func:`lean_fit_closure` give the same loss and gradients;
    returns the parameters and the lean gradients."""
    model.train()
    mll = ExactMarginalLogLikelihood(model.likelihood, model)
    params = get_parameters(mll, requires_grad=True)
    ref_loss, ref_grads = get_loss_closure_with_grads(mll, parameters=params)()
    ref_grads = tuple(g.clone() for g in ref_grads)
    closure = lean_fit_closure(mll)
    assert closure is not None
    loss, grads = closure()
    assert math.isclose(float(ref_loss), float(loss), rel_tol=loss_tol, abs_tol=abs_tol)
    for a, b in zip(ref_grads, grads, strict=True):
        assert torch.allclose(a, b, atol=grad_tol)
    return params, grads


def test_distances_of_many_points_avoid_the_difference_tensor_and_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from autotune.models import _lean

    g = torch.Generator().manual_seed(3)
    a, b = torch.rand(6, 1, 4, generator=g, dtype=torch.float64), torch.rand(50, 4, generator=g, dtype=torch.float64)
    direct = _lean._sq_dist(a, b)
    monkeypatch.setattr(_lean, "_DIRECT_LIMIT", 0)  # as for n in the thousands
    centred = _lean._sq_dist(a, b)
    assert torch.allclose(direct, centred, atol=1e-12)
    assert bool((_lean._sq_dist(b, b).diagonal() >= 0).all())


def test_a_learned_input_transform_is_differentiated_by_autograd() -> None:
    """Inputs that depend on parameters (a learned warping) keep the whole loss in autograd."""
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.input import Warp

    X = torch.rand(15, 2, dtype=torch.float64)
    model = SingleTaskGP(X, torch.sin(4 * X).sum(-1, keepdim=True), input_transform=Warp(d=2, indices=[0, 1]))
    params, grads = _assert_lean_closure_matches_botorchs(model, loss_tol=1e-10, abs_tol=0.0, grad_tol=1e-8)
    warp = [name for name in params if "input_transform" in name]
    assert warp and all(float(grads[list(params).index(n)].abs().sum()) > 0 for n in warp)


def test_lean_marginal_likelihood_declines_other_likelihoods() -> None:
    from botorch.models import SingleTaskGP

    X = torch.rand(10, 2, dtype=torch.float64)
    fixed = SingleTaskGP(X, X.sum(-1, keepdim=True), train_Yvar=torch.full((10, 1), 0.01, dtype=torch.float64))
    assert lean_mll_loss(ExactMarginalLogLikelihood(fixed.likelihood, fixed)) is None


def test_a_fit_with_the_lean_loss_finds_botorchs_hyperparameters() -> None:
    from botorch.fit import fit_gpytorch_mll

    space = SPACES["mixed"]
    _, X = _gp(space)
    Y = torch.cos(4 * X).sum(-1, keepdim=True)
    lean_fit = GPFitter(space).fit("objective", X, Y)
    ref_fit = GPFitter(space).fit("objective", X, Y, fit_fn=lambda mll: fit_gpytorch_mll(
        mll, optimizer_kwargs={"options": {"maxiter": 200}}))

    def loss(model: object) -> float:  # BoTorch's loss at the fitted hyperparameters
        model.train()  # type: ignore[attr-defined]
        mll = ExactMarginalLogLikelihood(model.likelihood, model)  # type: ignore[attr-defined]
        value = float(get_loss_closure_with_grads(mll, parameters=get_parameters(mll, requires_grad=True))()[0])
        model.eval()  # type: ignore[attr-defined]
        return value

    start = make_gp(X, Y, space)
    assert loss(lean_fit) < loss(start) - 0.1  # it fitted
    assert math.isclose(loss(lean_fit), loss(ref_fit), rel_tol=1e-3, abs_tol=1e-3)
    at = _points(space, 20, seed=6).unsqueeze(-2)
    assert torch.allclose(lean_fit.posterior(at).mean, ref_fit.posterior(at).mean, atol=0.02)


@pytest.mark.parametrize("u", [-1e4, -200.0, -30.0, -5.0, -1.0, -0.3, 0.0, 0.7, 3.0, 40.0])
def test_log_ei_helper_has_botorchs_value_and_the_analytic_derivative(u: float) -> None:
    x = torch.tensor([u], dtype=torch.float64, requires_grad=True)
    h = log_ei_helper(x)
    h.backward()
    assert torch.allclose(h.detach(), _log_ei_helper(torch.tensor([u], dtype=torch.float64)))
    # h'(u) = Phi(u) / (phi(u) + u Phi(u)): by high-precision quadrature-free closed forms
    if u > -30:
        phi, Phi = math.exp(-u * u / 2) / math.sqrt(2 * math.pi), 0.5 * math.erfc(-u / math.sqrt(2))
        expected = Phi / (phi + u * Phi)
    else:  # the asymptotic expansion h'(u) = -u - 2/u + O(u^-3) for u -> -inf
        expected = -u - 2 / u
    assert x.grad is not None and math.isclose(float(x.grad), expected, rel_tol=1e-5)


@pytest.mark.parametrize("lean", [True, False], ids=["lean-gp", "gpytorch-gp"])
@pytest.mark.parametrize(("best_f", "maximize"), [(0.5, True), (-0.5, False), (40.0, True), (-40.0, False)])
@pytest.mark.parametrize("name", ["mixed", "conditional"])
def test_lean_log_ei_equals_botorchs_log_ei(name: str, best_f: float, maximize: bool, lean: bool) -> None:
    """Values and input gradients, fused on a LeanGP or through autograd on any other model,
    near the incumbent and far below it (BoTorch's asymptotic branch of log EI)."""
    space = SPACES[name]
    model, _ = _gp(space)
    X = _points(space, 30, seed=5).reshape(30, 1, -1)
    ref_acqf = LogExpectedImprovement(model, best_f=best_f, maximize=maximize)
    acqf = LeanLogExpectedImprovement(lean_posterior(model) if lean else model, best_f=best_f, maximize=maximize)
    xa, xb = X.clone().requires_grad_(True), X.clone().requires_grad_(True)
    ref, got = ref_acqf(xa), acqf(xb)
    assert got.shape == (30,)
    assert torch.allclose(ref, got, rtol=1e-9, atol=1e-9)
    ref.sum().backward()
    got.sum().backward()
    assert xa.grad is not None and xb.grad is not None
    assert torch.allclose(xa.grad, xb.grad, rtol=1e-6, atol=1e-7)


def test_ei_asks_through_the_lean_posterior_and_proposes_what_botorch_would(monkeypatch: pytest.MonkeyPatch) -> None:
    import autotune.strategies._sequential as seq

    space = SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(3)])

    def proposals() -> list[list[float]]:
        opt = Optimizer(space, seed=3)
        out = []
        for _ in range(14):
            (s,) = opt.ask(1)
            x = [s.params[f"x{i}"] for i in range(3)]
            opt.tell(s, -sum((v - 0.3) ** 2 for v in x))
            out.append(x)
        return out

    used: list[type] = []
    real = seq.lean_posterior

    def spy(model: object) -> object:
        wrapped = real(model)  # type: ignore[arg-type]
        used.append(type(wrapped))
        return wrapped

    monkeypatch.setattr(seq, "lean_posterior", spy)
    lean = proposals()
    assert used and all(t is LeanGP for t in used)
    monkeypatch.setattr(seq, "lean_posterior", lambda model: model)
    monkeypatch.setattr(seq, "LeanLogExpectedImprovement", LogExpectedImprovement)
    plain = proposals()
    assert torch.allclose(torch.tensor(lean), torch.tensor(plain), atol=1e-4)


def test_the_lean_gp_shows_its_data_where_the_acquisition_search_looks_for_it() -> None:
    """BoTorch finds the incumbents (``get_X_baseline``) and autotune the data size (``train_size``)
    on the model of the acquisition; on a ``LeanGP`` both used to come back empty, so a quarter of
    the search's starts (those around the best points) were silently dropped: 30 % of asks on the
    development problems then proposed a point 0.3-4 nats of log EI below the GPyTorch path's."""
    from botorch.optim.utils import get_X_baseline

    from autotune.strategies._optimize import train_size

    model, _ = _gp(SPACES["continuous"])
    acqf = LeanLogExpectedImprovement(lean_posterior(model), best_f=0.5)
    X = model.train_inputs[0]  # type: ignore[attr-defined]
    assert torch.equal(get_X_baseline(acqf), X)
    assert train_size(acqf) == len(X)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_lean_acquisition_search_starts_where_botorchs_would(seed: int) -> None:
    """The same starts from the same random state: the space-filling ones and those around the incumbents."""
    from autotune.strategies._optimize import AcqOptions, _initial_conditions

    model, _ = _gp(SPACES["continuous"], seed=seed)
    best = float(model.train_targets.max())  # type: ignore[attr-defined]
    bounds = torch.tensor([[0.0] * 3, [1.0] * 3], dtype=torch.float64)
    opts = AcqOptions()
    starts = []
    for acqf in (LogExpectedImprovement(model, best_f=best), LeanLogExpectedImprovement(lean_posterior(model), best_f=best)):
        torch.manual_seed(seed)
        starts.append(_initial_conditions(acqf, bounds, 1, opts))
    assert starts[0].shape == starts[1].shape == (opts.num_restarts, 1, 3)
    assert torch.allclose(starts[0], starts[1], atol=1e-9)


def _conditioned_pair(name: str, m: int = 12, seed: int = 0) -> tuple[Any, Any, torch.Tensor, torch.Tensor]:
    """A GP conditioned on ``m`` lies at random points by GPyTorch's fantasy update and by :func:`lean_condition`."""
    from botorch.models.utils.assorted import fantasize as fantasize_flag

    from autotune.models import lean_condition

    space = SPACES[name]
    model, _ = _gp(space, seed=seed)
    busy = _points(space, m, seed=seed + 7)
    with torch.no_grad():
        lies = model.posterior(busy).mean  # the kriging believer's lies
        model.posterior(busy[:1])  # GPyTorch conditions only a model that has predicted
    with fantasize_flag(False):
        reference = model.condition_on_observations(X=model.transform_inputs(busy), Y=lies)
    return reference, lean_condition(model, busy, lies), busy, lies


@pytest.mark.parametrize("name", ["continuous", "mixed", "categorical"])
def test_lean_conditioning_gives_gpytorchs_conditioned_posterior(name: str) -> None:
    """One factor of data and lies: the same mean, variance and joint covariance as the fantasy update."""
    reference, lean, busy, _ = _conditioned_pair(name)
    assert isinstance(lean, LeanGP)
    space = SPACES[name]
    at = torch.cat([busy[:4], _points(space, 8, seed=11)])
    ref, got = reference.posterior(at.unsqueeze(-2)), lean.posterior(at.unsqueeze(-2))
    assert torch.allclose(got.mean, ref.mean, atol=1e-8)
    assert torch.allclose(got.variance, ref.variance, rtol=1e-5, atol=1e-9)
    joint_ref, joint = reference.posterior(at.reshape(3, 4, -1)), lean.posterior(at.reshape(3, 4, -1))
    assert torch.allclose(joint.mean, joint_ref.mean, atol=1e-8)  # read before the covariance is built
    assert torch.allclose(joint.mvn.covariance_matrix, joint_ref.mvn.covariance_matrix, rtol=1e-5, atol=1e-8)
    assert torch.allclose(joint.variance, joint_ref.variance, rtol=1e-5, atol=1e-9)


def test_lean_conditioning_shows_the_busy_points_as_data() -> None:
    """The incumbent starts (``get_X_baseline``) and the exclusion of seen cells read the data with
    the busy points appended, as on a GPyTorch fantasy model; conditioning again goes to GPyTorch."""
    from botorch.optim.utils import get_X_baseline

    reference, lean, busy, lies = _conditioned_pair("continuous", m=5)
    assert isinstance(lean, LeanGP)
    assert torch.allclose(lean.train_inputs[0], reference.train_inputs[0])
    assert torch.allclose(lean.train_targets, reference.train_targets, atol=1e-12)
    acqf = LeanLogExpectedImprovement(lean, best_f=float(lies.max()))
    assert torch.equal(get_X_baseline(acqf)[-5:], busy)
    more = _points(SPACES["continuous"], 2, seed=5)
    again = lean.condition_on_observations(X=more, Y=torch.zeros(2, 1, dtype=torch.float64))
    assert again.train_inputs[0].shape[0] == reference.train_inputs[0].shape[0] + 2


def test_lean_conditioning_declines_what_it_does_not_cover() -> None:
    """An input transform (conditional spaces), another likelihood or a LeanGP: ``None``, the caller uses GPyTorch."""
    from botorch.models import SingleTaskGP
    from gpytorch.likelihoods import FixedNoiseGaussianLikelihood

    from autotune.models import lean_condition

    busy, lies = _points(SPACES["continuous"], 3, seed=1), torch.zeros(3, 1, dtype=torch.float64)
    conditional, _ = _gp(SPACES["conditional"])
    assert conditional.input_transform is not None  # type: ignore[attr-defined]
    assert lean_condition(conditional, _points(SPACES["conditional"], 3, seed=1), lies) is None  # type: ignore[arg-type]
    model, X = _gp(SPACES["continuous"])
    assert lean_condition(lean_posterior(model), busy, lies) is None  # type: ignore[arg-type]
    fixed = SingleTaskGP(X, torch.rand(len(X), 1, dtype=torch.float64),
                         likelihood=FixedNoiseGaussianLikelihood(torch.full((len(X),), 1e-3, dtype=torch.float64))).eval()
    assert lean_condition(fixed, busy, lies) is None


def test_ei_with_many_pending_points_proposes_what_the_fantasy_update_would(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kriging believer through lean conditioning and through GPyTorch's update: the same batch."""
    import autotune.strategies._sequential as seq

    space = SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(3)])

    def batch() -> list[list[float]]:
        opt = Optimizer(space, seed=4)
        g = torch.Generator().manual_seed(0)
        for i, x in enumerate(torch.rand(30, 3, generator=g, dtype=torch.float64).tolist()):
            s = opt.add_pending({f"x{j}": x[j] for j in range(3)}, i)
            opt.tell(s, -sum((v - 0.3) ** 2 for v in x))
        for i, x in enumerate(torch.rand(12, 3, generator=g, dtype=torch.float64).tolist()):
            opt.add_pending({f"x{j}": x[j] for j in range(3)}, 100 + i)  # running trials
        return [[s.params[f"x{j}"] for j in range(3)] for s in opt.ask(3)]

    calls: list[bool] = []
    real = seq.lean_condition

    def spy(*args: Any) -> Any:
        out = real(*args)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(seq, "lean_condition", spy)
    lean = batch()
    assert calls and all(calls)
    monkeypatch.setattr(seq, "lean_condition", lambda *args: None)
    plain = batch()
    assert torch.allclose(torch.tensor(lean), torch.tensor(plain), atol=1e-4)
