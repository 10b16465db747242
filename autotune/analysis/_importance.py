"""Parameter importance from the surrogate that made the decisions, with an interval.

First-order Sobol indices of the objective GP (Sobol' 1993; estimators of Saltelli et al.
2010, "Variance based sensitivity analysis of model output", Table 2: Saltelli's first-order
and Jansen's total-order estimator), over the search space's unit cube mapped to the model
space as the initial design maps it (discrete and categorical values equally likely).

* The **point estimate** is the index of the GP's posterior mean: the share of the mean's
  variance over the space explained by each parameter alone.
* The **interval** comes from ``n_paths`` joint draws of the latent function from the GP
  posterior at the same Monte Carlo points, each scored on its own bootstrap resample of the
  Monte Carlo rows, so it holds both the surrogate's uncertainty and the Monte Carlo error.
  Where the joint draw is numerically impossible, a bootstrap of the rows of the posterior
  mean gives the interval (``method`` says which). The interval is widened to contain the
  point estimate when the draws all fall on one side of it (the mean is smoother than any
  draw, so its index can differ from theirs where the surrogate is unsure).

Conditional parameters: an inactive parameter cannot change a prediction (the GP's
:class:`~autotune.models.ConditionalFill` overwrites its column), so its index is its effect
averaged over the space, including where it is inactive; the parent that switches it on gets
the credit for the switch. Categorical parameters are drawn uniformly over their categories.

Alternatives, not used here: the inverse length scales of the ARD kernel (free, but on each
column's own scale, blind to categorical columns under the product kernel and to how much
of the space a parameter is active in, and without an interval); fANOVA on a random forest
(Hutter et al. 2014, as Optuna's default), which scores a different model from the one that
chose the trials; total-order indices (``total_order`` below) for interactions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from autotune.analysis._surface import Surface, unit_to_model

if TYPE_CHECKING:
    import numpy as np
    from torch import Tensor


@dataclass
class Importance:
    """Parameter importance: first-order Sobol indices of the objective GP.

    Attributes:
        names: The tunable parameters, in column order.
        first_order: Per parameter, the first-order index of the GP's posterior mean, in ``[0, 1]``.
        low: Per parameter, the lower end of the interval (``level`` coverage of the draws).
        high: Per parameter, the upper end.
        total_order: Per parameter, the total-order index of the posterior mean (with interactions).
        draws: Per draw, the first-order indices of every parameter (`n_paths x len(names)`).
        method: ``"posterior paths"`` or ``"bootstrap"`` (how the interval was made).
        n_base: Monte Carlo base rows (the GP is evaluated at ``n_base * (d + 2)`` points).
        level: The interval's nominal coverage.
    """

    names: list[str]
    first_order: list[float]
    low: list[float]
    high: list[float]
    total_order: list[float]
    draws: list[list[float]] = field(default_factory=list)
    method: str = "posterior paths"
    n_base: int = 0
    level: float = 0.9

    def ranked(self) -> list[str]:
        """The parameter names, most important first."""
        order = sorted(range(len(self.names)), key=lambda i: -self.first_order[i])
        return [self.names[i] for i in order]

    def as_dict(self) -> dict[str, dict[str, float]]:
        """``{name: {"first_order", "low", "high", "total_order"}}``, e.g. for logging as metrics."""
        return {
            n: {"first_order": s, "low": lo, "high": hi, "total_order": t}
            for n, s, lo, hi, t in zip(self.names, self.first_order, self.low, self.high, self.total_order)
        }


def sobol_indices(fA: np.ndarray, fB: np.ndarray, fAB: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Saltelli's first-order and Jansen's total-order estimators, batched, on centred values.

    Args:
        fA: A `... x N` array: the function at the base rows ``A``.
        fB: A `... x N` array: at the rows ``B``.
        fAB: A `... x d x N` array: at ``A`` with column ``i`` taken from ``B``.

    Returns:
        First-order and total-order indices, each `... x d`, clipped to ``[0, 1]`` (zero where
        the function does not vary).
    """
    import numpy as np

    both = np.concatenate([fA, fB], axis=-1)
    centre = both.mean(axis=-1, keepdims=True)  # centring cuts the estimator's variance (not its mean)
    fA, fB, fAB = fA - centre, fB - centre, fAB - centre[..., None]
    var = both.var(axis=-1)[..., None]  # `... x 1`
    safe = np.where(var > 1e-300, var, 1.0)
    first = (fB[..., None, :] * (fAB - fA[..., None, :])).mean(axis=-1) / safe
    total = 0.5 * ((fA[..., None, :] - fAB) ** 2).mean(axis=-1) / safe
    flat = var <= 1e-300
    first = np.where(flat, 0.0, first)
    total = np.where(flat, 0.0, total)
    return np.clip(first, 0.0, 1.0), np.clip(total, 0.0, 1.0)


def importance_from_surface(
    surface: Surface,
    *,
    n_base: int | None = None,
    n_paths: int = 64,
    level: float = 0.9,
    seed: int = 0,
) -> Importance:
    """Sobol importance of each tunable parameter under a fitted surface (see the module docstring).

    Args:
        surface: The fitted objective GP.
        n_base: Monte Carlo base rows; default ``clip(1024 // (d + 2), 32, 128)`` so a joint
            posterior draw stays near 1,000 points whatever the dimension.
        n_paths: Posterior draws for the interval.
        level: Coverage of the interval (0.9: from the 5th to the 95th percentile of the draws).
        seed: Seed of the Monte Carlo points, the draws and the resamples.

    Returns:
        The importance of each tunable parameter.
    """
    import numpy as np
    import torch

    space = surface.space
    d = space.dim
    tunable = space.tunable
    cols = [space.columns.index(n) for n in tunable]
    N = n_base if n_base is not None else int(min(max(1024 // (d + 2), 32), 128))
    sobol = torch.quasirandom.SobolEngine(2 * d, scramble=True, seed=seed)
    U = sobol.draw(N, dtype=torch.float64).tolist()
    A = np.asarray(unit_to_model(space, [row[:d] for row in U]), dtype=np.float64).reshape(N, d)
    B = np.asarray(unit_to_model(space, [row[d:] for row in U]), dtype=np.float64).reshape(N, d)
    AB = np.repeat(A[None], len(cols), axis=0)  # `k x N x d`
    for j, c in enumerate(cols):
        AB[j, :, c] = B[:, c]
    X = torch.from_numpy(np.concatenate([A, B, AB.reshape(-1, d)]))
    mean, _ = surface.predict(X)
    fA, fB, fAB = _split(mean.numpy(), N, len(cols))
    first, total = sobol_indices(fA, fB, fAB)

    rng = np.random.default_rng(seed)
    boot = rng.integers(0, N, size=(n_paths, N))  # one resample of the Monte Carlo rows per draw
    method = "posterior paths"
    try:
        paths = _draw_paths(surface, X, n_paths, seed)  # `n_paths x M`
        draws, _ = sobol_indices(*_resample(*_split(paths, N, len(cols)), boot))
    except Exception:  # noqa: BLE001 - a joint draw that is not positive definite: bootstrap the mean
        method = "bootstrap"
        draws, _ = sobol_indices(*_resample(fA, fB, fAB, boot))
    tail = (1.0 - level) / 2.0
    low = np.minimum(np.quantile(draws, tail, axis=0), first)
    high = np.maximum(np.quantile(draws, 1.0 - tail, axis=0), first)
    return Importance(
        names=list(tunable), first_order=first.tolist(), low=low.tolist(), high=high.tolist(),
        total_order=total.tolist(), draws=draws.tolist(), method=method, n_base=N, level=level,
    )


def _split(f: np.ndarray, N: int, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split `... x (N (k + 2))` evaluations into ``f(A)``, ``f(B)`` (`... x N`) and ``f(AB)`` (`... x k x N`)."""
    fA = f[..., :N]
    fB = f[..., N: 2 * N]
    fAB = f[..., 2 * N:].reshape(*f.shape[:-1], k, N)
    return fA, fB, fAB


def _resample(
    fA: np.ndarray, fB: np.ndarray, fAB: np.ndarray, boot: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row resamples: ``boot`` (`P x N` indices) applied to `[P x] N` and `[P x] k x N` evaluations."""
    import numpy as np

    P, N = boot.shape
    k = fAB.shape[-2]
    fA = np.broadcast_to(fA, (P, N))
    fB = np.broadcast_to(fB, (P, N))
    fAB = np.broadcast_to(fAB, (P, k, N))
    idx = np.broadcast_to(boot[:, None, :], (P, k, N))
    return (np.take_along_axis(fA, boot, axis=-1), np.take_along_axis(fB, boot, axis=-1),
            np.take_along_axis(fAB, idx, axis=-1))


def _draw_paths(surface: Surface, X: Tensor, n_paths: int, seed: int) -> np.ndarray:
    """Joint draws of the latent objective (user units) at every Monte Carlo point: `n_paths x M`."""
    import gpytorch
    import numpy as np
    import torch

    with torch.no_grad(), gpytorch.settings.max_cholesky_size(10_000), torch.random.fork_rng(), \
            warnings.catch_warnings():
        warnings.simplefilter("ignore")  # jitter added to the joint covariance is expected here
        torch.manual_seed(seed)
        post = surface.model.posterior(X)
        samples = post.rsample(torch.Size([n_paths]))  # `n_paths x M x 1`
        if surface.warp is not None:  # draws of the warped objective, mapped back path by path
            samples = surface.warp.inverse(samples)
    out = surface.sign * samples.reshape(n_paths, -1).numpy()
    if not np.isfinite(out).all():  # NaN from a failed factorisation
        raise FloatingPointError("non-finite posterior draws")
    return out
