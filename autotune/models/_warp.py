"""Output warping: a monotone power transform of the objective before the GP sees it.

A stationary GP with a Gaussian likelihood fits a heavy-tailed or badly scaled objective
(Rosenbrock's valley, an ill-conditioned ellipsoid, a validation loss that explodes in part of
the space) poorly: the few very bad values set the output scale, the standardised values near the
optimum all look alike, and expected improvement explores where it should refine. HEBO
(Cowen-Rivers et al. 2022, "HEBO: Pushing the Limits of Sample-Efficient Hyperparameter
Optimisation", JAIR 74) fits the GP to power-transformed outputs instead; autotune follows it
with the Yeo-Johnson transform (Yeo & Johnson 2000), whose exponent is chosen by maximum
likelihood (``scipy.stats.yeojohnson_normmax``) on the robustly standardised observations
(median and interquartile range, so that the bulk of the values lies where the transform bends).

Normality of the values alone is the wrong target for a GP: a smooth function (a quadratic bowl)
has skewed values that the GP models perfectly. So after the first warp the exponent is chosen as
in the warped GP of Snelson, Rasmussen & Ghahramani (2004): by the marginal likelihood of the raw
values, Jacobian included, under the kernel just fitted (:func:`evidence_exponent`), with the
identity among the choices; each ask fits the GP on the exponent the previous ask chose.

The transform is strictly increasing, so the incumbent, every improvement-based acquisition's
ranking of observed points and the constraint bookkeeping are unchanged; only the model's view of
the objective's shape changes. Predictions are mapped back with :meth:`PowerWarp.inverse`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

if TYPE_CHECKING:
    from botorch.models.model import Model

LAMBDA_RANGE = (-2.0, 4.0)
"""Bounds of the fitted exponent (1 is the identity): outside them the transform is so strong
that a handful of outliers decide it."""

LAMBDA_GRID = torch.linspace(LAMBDA_RANGE[0], LAMBDA_RANGE[1], 25, dtype=torch.float64)
"""The exponents :func:`evidence_exponent` chooses among (steps of 0.25; ``1`` is the identity)."""

IQR_TO_SD = 1.349
"""The interquartile range of a normal distribution in standard deviations."""

MIN_POINTS = 4
"""Fewer finite observations than this are left unwarped (the exponent is not identifiable)."""


@dataclass(frozen=True)
class PowerWarp:
    """``z = yeojohnson((y - loc) / scale, lam)``: a fitted, invertible output warp.

    Attributes:
        loc: The centre subtracted first (the median of the fitted values).
        scale: The divisor applied next (their interquartile range / 1.349, a robust standard
            deviation; the plain one where the quartiles coincide).
        lam: The Yeo-Johnson exponent (``1``: the identity up to ``loc``/``scale``).
    """

    loc: float
    scale: float
    lam: float

    @classmethod
    def fit(cls, y: Tensor, lam: float | None = None) -> PowerWarp | None:
        """Fit the warp to the finite values of ``y``; ``None`` where there is nothing to fit.

        Args:
            y: A `n` tensor of observations (non-finite entries are ignored).
            lam: The exponent to use; ``None``: the one that makes ``y`` most nearly normal.

        Returns:
            The warp, or ``None`` with fewer than :data:`MIN_POINTS` finite values or a constant ``y``.
        """
        from scipy import stats

        v = y[torch.isfinite(y)].double()
        if len(v) < MIN_POINTS:
            return None
        q1, loc, q3 = (float(q) for q in torch.quantile(v, torch.tensor([0.25, 0.5, 0.75], dtype=v.dtype)))
        scale = (q3 - q1) / IQR_TO_SD  # robust: a few extreme values do not squash the bulk onto 0
        if not scale > 0:
            scale = float(v.std())
        if not math.isfinite(scale) or scale <= 0:
            return None
        if lam is not None:
            return cls(loc, scale, lam)
        z = ((v - loc) / scale).numpy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                lam = float(stats.yeojohnson_normmax(z))
            except (ValueError, FloatingPointError, RuntimeError):
                return None
        if not math.isfinite(lam):
            return None
        return cls(loc, scale, min(max(lam, LAMBDA_RANGE[0]), LAMBDA_RANGE[1]))

    def __call__(self, y: Tensor) -> Tensor:
        """Warp ``y`` (any shape; NaN stays NaN)."""
        x = (y - self.loc) / self.scale
        lam = self.lam
        pos = x >= 0
        xp = x.clamp_min(0)
        xn = x.clamp_max(0)
        up = torch.log1p(xp) if abs(lam) < 1e-8 else (torch.pow(1 + xp, lam) - 1) / lam
        lo = -torch.log1p(-xn) if abs(lam - 2) < 1e-8 else -(torch.pow(1 - xn, 2 - lam) - 1) / (2 - lam)
        return torch.where(pos, up, lo)

    def unwarp_moments(self, mean: Tensor, sd: Tensor) -> tuple[Tensor, Tensor]:
        """A warped Gaussian's mean and standard deviation, in the objective's units.

        The mean maps back to the predictive median; the standard deviation is half the width of
        the mapped-back ``mean ± sd`` interval (the delta method at a finite step).
        """
        return self.inverse(mean), (self.inverse(mean + sd) - self.inverse(mean - sd)) / 2

    def inverse(self, z: Tensor) -> Tensor:
        """Map warped values back to the objective's units (clamped where the inverse has no value)."""
        lam = self.lam
        pos = z >= 0
        zp = z.clamp_min(0)
        zn = z.clamp_max(0)
        if abs(lam) < 1e-8:
            up = torch.expm1(zp)
        else:  # lam < 0: defined for z < -1/lam only
            up = torch.pow((zp * lam + 1).clamp_min(1e-12), 1 / lam) - 1
        if abs(lam - 2) < 1e-8:
            lo = -torch.expm1(-zn)
        else:  # lam > 2: defined for z > -1/(lam - 2) only
            lo = 1 - torch.pow((1 - (2 - lam) * zn).clamp_min(1e-12), 1 / (2 - lam))
        return torch.where(pos, up, lo) * self.scale + self.loc


def evidence_exponent(model: Model, X: Tensor, y: Tensor, warp: PowerWarp) -> float:
    """The exponent under which ``y`` is most probable, in its own units, under ``model``'s kernel.

    The warped GP of Snelson, Rasmussen & Ghahramani (2004, "Warped Gaussian Processes", NIPS)
    chooses the warp by the marginal likelihood of the *raw* data: the GP's log density of the
    warped, standardised values plus the log Jacobian of the warp. Here the kernel (length scales,
    output scale, noise, constant mean) of the GP just fitted is held fixed, so its Cholesky factor
    is computed once (or taken from the fitted model when it covers these points) and every
    exponent of :data:`LAMBDA_GRID` costs a triangular solve; ``1``,
    the identity, is on the grid, so a warp is kept only where it explains the data better than
    none. The optimiser alternates: the next ask fits the GP on the data warped with the exponent
    chosen here (a coordinate ascent spread over the asks).

    Args:
        model: A fitted single-output GP with a ``Standardize`` outcome transform.
        X: A `n x d` tensor of the points of ``y`` (model space).
        y: A `n` tensor of finite raw values (maximised).
        warp: The warp whose centre and scale are kept.

    Returns:
        The exponent of largest evidence (``warp.lam`` when the kernel matrix cannot be factored).
    """
    import gpytorch

    n = len(y)
    if n < MIN_POINTS:
        return warp.lam
    gp = cast(Any, model)
    with torch.no_grad(), gpytorch.settings.max_cholesky_size(10_000):
        Xt = gp.transform_inputs(X)
        L = _primed_factor(gp, Xt)
        if L is None:
            noise = gp.likelihood.noise.reshape(-1)[0]
            K = gp.covar_module(Xt).to_dense() + noise * torch.eye(n, dtype=X.dtype, device=X.device)
            L, info = torch.linalg.cholesky_ex(K)
            if int(info) != 0:
                return warp.lam
        lams = LAMBDA_GRID.to(X)
        x = ((y - warp.loc) / warp.scale).to(X)
        Z = torch.stack([PowerWarp(0.0, 1.0, float(lam))(x) for lam in lams], dim=-1)  # `n x G`
        sd = Z.std(dim=0).clamp_min(1e-12)
        Zs = (Z - Z.mean(dim=0)) / sd - gp.mean_module.constant.reshape(-1)[0]
        fit = (Zs * torch.cholesky_solve(Zs, L)).sum(dim=0)  # `G`
        pos = (x >= 0).unsqueeze(-1)
        log_jac = torch.where(pos, (lams - 1) * torch.log1p(x.clamp_min(0)).unsqueeze(-1),
                              (1 - lams) * torch.log1p(-x.clamp_max(0)).unsqueeze(-1)).sum(dim=0)
        evidence = -0.5 * fit - n * torch.log(sd) + log_jac
    best = int(torch.nan_to_num(evidence, nan=-math.inf).argmax())
    return float(lams[best])


def _primed_factor(gp: Any, Xt: Tensor) -> Tensor | None:
    """The Cholesky factor of ``K + noise I`` that :func:`~autotune.models._gp.prime_posterior` left
    on ``gp``, if its training inputs are exactly ``Xt`` (else ``None``: a subsampled fit)."""
    L = getattr(getattr(gp, "prediction_strategy", None), "cholesky", None)
    train = gp.train_inputs[0] if gp.train_inputs else None
    if isinstance(L, Tensor) and isinstance(train, Tensor) and L.shape == (len(Xt), len(Xt)) and torch.equal(train, Xt):
        return L
    return None


OUTPUT_WARPS = ("none", "power")
"""The values of ``Optimizer(output_warp=...)`` and the study file's ``model.output_warp``."""


def fit_output_warp(kind: str, y: Tensor, lam: float | None = None) -> PowerWarp | None:
    """The warp of kind ``kind`` (:data:`OUTPUT_WARPS`) fitted to ``y``, or ``None`` for the identity.

    Args:
        kind: ``power`` or ``none``.
        y: A `n` tensor of observations (maximised; non-finite entries are ignored).
        lam: The exponent to use (e.g. the last :func:`evidence_exponent`); ``None``: the one that
            makes ``y`` most nearly normal.
    """
    if kind != "power":
        return None
    return PowerWarp.fit(y, lam)
