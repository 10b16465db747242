"""One factorisation serves a GP's posterior: ``prime_posterior`` against GPyTorch's own caches."""

from __future__ import annotations

import gpytorch
import pytest
import torch

from autotune import Categorical, Float, SearchSpace
from autotune.models._gp import make_gp, prime_posterior


def _pair(n: int, space: SearchSpace, seed: int = 0) -> tuple[object, object, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    X = torch.tensor([space.encode(p) for p in space.sample(n, "random", seed=seed)], dtype=torch.float64)
    Y = (torch.sin(6 * X).sum(-1, keepdim=True) + 0.01 * torch.randn(n, 1, generator=g, dtype=torch.float64))
    plain, primed = make_gp(X, Y, space, "matern52", None), make_gp(X, Y, space, "matern52", None)
    with torch.no_grad():  # hyperparameters away from their initial values, shared by both
        for name, p in plain.named_parameters():
            p.add_(0.3 * torch.rand(p.shape, generator=g, dtype=p.dtype))
    primed.load_state_dict(plain.state_dict())
    plain.eval()
    primed.eval()
    return plain, primed, X


@pytest.mark.parametrize("space", [
    SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(3)]),
    SearchSpace([Float("x0", 0.0, 1.0), Float("x1", 0.0, 1.0), Categorical("c", ["a", "b", "c"])]),
], ids=["continuous", "mixed"])
def test_primed_posterior_equals_gpytorchs(space: SearchSpace) -> None:
    plain, primed, X = _pair(300, space)
    assert prime_posterior(primed)
    points = space.sample(20, "random", seed=1)
    Xt = torch.tensor([space.encode(p) for p in points], dtype=torch.float64).reshape(5, 4, -1)  # b x q x d
    with gpytorch.settings.max_cholesky_size(10_000):
        a = plain.posterior(Xt).mvn
    b = primed.posterior(Xt).mvn
    assert torch.allclose(a.mean, b.mean, atol=1e-9)
    assert torch.allclose(a.covariance_matrix, b.covariance_matrix, atol=1e-9)


def test_primed_posterior_is_differentiable_and_conditions() -> None:
    space = SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(2)])
    plain, primed, X = _pair(100, space)
    prime_posterior(primed)
    x = torch.full((1, 1, 2), 0.3, dtype=torch.float64, requires_grad=True)
    primed.posterior(x).mean.sum().backward()
    assert x.grad is not None and bool(x.grad.abs().sum() > 0)
    # kriging believer and friends condition the primed model on new points through its caches
    new_x, new_y = torch.rand(2, 2, dtype=torch.float64), torch.zeros(2, 1, dtype=torch.float64)
    with gpytorch.settings.max_cholesky_size(10_000):
        plain.posterior(x.detach())  # GPyTorch conditions only a model that has predicted
        ref = plain.condition_on_observations(new_x, new_y).posterior(x.detach()).mean
    got = primed.condition_on_observations(new_x, new_y).posterior(x.detach()).mean
    assert torch.allclose(ref, got, atol=1e-8)


def test_training_mode_and_other_models_are_left_alone() -> None:
    space = SearchSpace([Float("x0", 0.0, 1.0)])
    _, primed, _ = _pair(20, space)
    primed.train()
    assert not prime_posterior(primed)
    assert primed.prediction_strategy is None
    assert not prime_posterior(torch.nn.Linear(1, 1))  # type: ignore[arg-type]



def test_conditioning_on_new_points_extends_the_previous_factor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between two refits the fitter extends the last Cholesky factor by the new rows: the same
    posterior as a factorisation from scratch, without factorising the whole kernel again."""
    import linear_operator.utils.cholesky as chol

    from autotune.models import GPFitter

    space = SearchSpace([Float(f"x{i}", 0.0, 1.0) for i in range(3)])
    g = torch.Generator().manual_seed(0)
    X = torch.rand(203, 3, generator=g, dtype=torch.float64)
    Y = torch.sin(5 * X).sum(-1, keepdim=True)
    fitter = GPFitter(space, refit_fraction=0.5)  # the next asks condition instead of refitting
    fitter.fit("objective", X[:200], Y[:200])
    sizes: list[int] = []
    real = chol.psd_safe_cholesky

    def spy(A: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        sizes.append(A.shape[-1])
        return real(A, *args, **kwargs)

    monkeypatch.setattr(chol, "psd_safe_cholesky", spy)
    Xt = torch.rand(6, 1, 3, generator=g, dtype=torch.float64)
    for n in (201, 203):  # one point, then two more
        model = fitter.fit("objective", X[:n], Y[:n])
        assert fitter.last_outcome["objective"] == "conditioned"
        assert sizes == []  # no factorisation of the n x n kernel
        fresh = make_gp(X[:n], Y[:n], space, "matern52", None)
        fresh.load_state_dict(model.state_dict())
        fresh.eval()
        monkeypatch.setattr(chol, "psd_safe_cholesky", real)
        assert prime_posterior(fresh)
        monkeypatch.setattr(chol, "psd_safe_cholesky", spy)
        a, b = model.posterior(Xt).mvn, fresh.posterior(Xt).mvn
        assert torch.allclose(a.mean, b.mean, atol=1e-8)
        assert torch.allclose(a.variance, b.variance, atol=1e-8)
    # other rows in front (not an extension): factorised afresh
    model = fitter.fit("objective", torch.cat([X[1:203], X[:1]]), torch.cat([Y[1:203], Y[:1]]))
    assert sizes == [203]
