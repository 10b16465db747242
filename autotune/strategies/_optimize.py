"""Maximise an acquisition function over the model space of a search space.

A thin dispatch over BoTorch: ``optimize_acqf`` when every column is continuous, and
``optimize_acqf_mixed_alternating`` (continuous L-BFGS-B steps alternating with discrete
and categorical neighbourhood moves) otherwise. Either way the result is snapped to a legal
point with inactive parameters at their fill value.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor

if TYPE_CHECKING:
    from botorch.acquisition import AcquisitionFunction

    from autotune.space import SearchSpace


@dataclass(frozen=True)
class AcqOptions:
    """How hard to optimise an acquisition.

    Attributes:
        num_restarts: Starting points for gradient ascent.
        raw_samples: Random points scored to choose the starts.
        maxiter: L-BFGS-B iterations per restart.
    """

    num_restarts: int = 8
    raw_samples: int = 512
    maxiter: int = 200


def optimize_acquisition(
    acqf: AcquisitionFunction, space: SearchSpace, q: int = 1, opts: AcqOptions | None = None
) -> tuple[Tensor, float]:
    """Maximise ``acqf`` jointly over ``q`` points.

    Args:
        acqf: An acquisition taking `b x q x d` model-space tensors.
        space: The search space.
        q: Points optimised jointly.
        opts: Optimiser effort.

    Returns:
        A `q x d` tensor of legal model-space points and the acquisition value.
    """
    from botorch.optim import optimize_acqf, optimize_acqf_mixed_alternating

    opts = opts or AcqOptions()
    bounds = space.bounds()
    discrete, cat = space.discrete_dims(), space.cat_dims()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not discrete and not cat:
            X, val = optimize_acqf(
                acqf, bounds=bounds, q=q, num_restarts=opts.num_restarts, raw_samples=opts.raw_samples,
                options={"maxiter": opts.maxiter, "batch_limit": opts.num_restarts},
            )
        else:
            X, val = optimize_acqf_mixed_alternating(
                acqf, bounds=bounds, discrete_dims=discrete or None, cat_dims=cat or None, q=q,
                num_restarts=opts.num_restarts, raw_samples=opts.raw_samples,
                options={"maxiter_continuous": opts.maxiter, "maxiter_alternating": 16},
            )
    X = canonicalize(X.detach().reshape(q, -1), space)
    value = float(val.reshape(-1)[0]) if val is not None and val.numel() else float("nan")
    return X, value


def canonicalize(X: Tensor, space: SearchSpace) -> Tensor:
    """Snap each row of a `n x d` tensor to the nearest legal point."""
    rows = [space.canonicalize(r) for r in X.tolist()]
    return torch.tensor(rows, dtype=torch.float64).reshape(len(rows), space.dim)


def candidate_pool(space: SearchSpace, n: int, seed: int, around: Tensor | None = None, scale: float = 0.05) -> Tensor:
    """Legal model-space points: a scrambled Sobol set plus Gaussian steps around ``around``.

    Args:
        space: The search space.
        n: Number of Sobol points.
        seed: Seed.
        around: Optional `m x d` points to perturb (``n // 4`` perturbations spread over them).
        scale: Standard deviation of the steps in the unit cube.

    Returns:
        A `N x d` tensor.
    """
    eng = torch.quasirandom.SobolEngine(max(space.dim, 1), scramble=True, seed=seed)
    U = eng.draw(n, dtype=torch.float64)[:, : space.dim]
    pts = [space.from_unit(u) for u in U.tolist()]
    if around is not None and len(around):
        g = torch.Generator().manual_seed(seed)
        m = max(n // 4, 1)
        idx = torch.randint(len(around), (m,), generator=g)
        base = torch.tensor([space.to_unit(r) for r in around.tolist()], dtype=torch.float64)[idx]
        steps = (base + scale * torch.randn(m, space.dim, generator=g, dtype=torch.float64)).clamp(0, 1 - 1e-9)
        pts += [space.from_unit(u) for u in steps.tolist()]
    return torch.tensor(pts, dtype=torch.float64).reshape(len(pts), space.dim)


def unit_distance(A: Tensor, B: Tensor, space: SearchSpace) -> Tensor:
    """Euclidean distances in the unit cube between rows of `a x d` and `b x d` model-space points.

    Categorical indices are divided by ``k - 1`` so every column spans ``[0, 1]``.

    Returns:
        An `a x b` tensor.
    """
    scale = torch.ones(space.dim, dtype=torch.float64)
    for i, vals in space.cat_dims().items():
        scale[i] = 1.0 / max(len(vals) - 1, 1)
    return torch.cdist(A * scale, B * scale)
