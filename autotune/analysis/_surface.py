"""The objective GP of an optimiser, in the user's units, for the analysis views.

The views read the surrogate that made the decisions: the objective GP over the
optimiser's history, built as :meth:`autotune.models.Surrogates.objective` builds it
(failed trials at the worst observed value when ``model_failures`` is on), on a *copy* of the
optimiser's :class:`~autotune.models.GPFitter`, so drawing a report never changes the
optimiser's warm-start state (and so never its next suggestions).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ModelFitError

if TYPE_CHECKING:
    from botorch.models.model import Model
    from torch import Tensor

    from autotune.models import PowerWarp
    from autotune.optimizer import Optimizer
    from autotune.space import SearchSpace
    from autotune.trial import Observation

MIN_COMPLETED = 3
"""Completed trials (finite objective) a model-based view needs; below it, it says "not enough data"."""


@dataclass
class Surface:
    """The fitted objective GP of an optimiser and the data it was fitted on.

    Attributes:
        space: The search space.
        model: The fitted objective GP over model-space points (oriented for maximisation).
        sign: ``-1`` for a minimised objective (the GP models the negated values), else ``1``.
        completed: The completed observations (finite objective), in history order.
        failed: The failed observations.
        incumbent: The parameters of the best feasible observation (the slices' anchor).
        warp: The output warp the GP was fitted through (``None``: the raw objective).
    """

    space: SearchSpace
    model: Model
    sign: float
    completed: list[Observation]
    failed: list[Observation]
    incumbent: dict[str, Any]
    warp: PowerWarp | None = None

    def predict(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """The GP's mean and standard deviation of the latent objective, in the user's units.

        Args:
            X: A `n x d` tensor of model-space points.

        Returns:
            Two `n` tensors: mean and standard deviation.
        """
        import gpytorch
        import torch

        with torch.no_grad(), gpytorch.settings.max_cholesky_size(10_000):
            post = self.model.posterior(X)
        mean = post.mean.reshape(-1)  # type: ignore[attr-defined]
        sd = post.variance.clamp_min(0).sqrt().reshape(-1)  # type: ignore[attr-defined]
        if self.warp is not None:
            mean, sd = self.warp.unwarp_moments(mean, sd)
        return self.sign * mean, sd

    def encode(self, params: Mapping[str, Any]) -> list[float]:
        """A parameter assignment as a model-space vector."""
        return self.space.encode(params)


def completed_and_failed(observations: Sequence[Observation]) -> tuple[list[Observation], list[Observation]]:
    """Split a history into completed observations (finite value) and failed ones."""
    done = [o for o in observations if o.value is not None and math.isfinite(o.value) and not o.state.is_failure]
    failed = [o for o in observations if o.state.is_failure]
    return done, failed


def fit_surface(optimizer: Optimizer, seed: int = 0) -> Surface | None:
    """Fit the optimiser's objective GP on its whole history, without touching the optimiser.

    Args:
        optimizer: The optimiser (its space, observations, direction, fitter settings).
        seed: Seed of torch's random state during the fit (restored afterwards).

    Returns:
        The surface, or ``None`` with fewer than :data:`MIN_COMPLETED` completed trials or when
        the GP cannot be fitted (the views then say so).
    """
    import torch

    from autotune.models import Surrogates

    done, failed = completed_and_failed(optimizer.observations)
    if len(done) < MIN_COMPLETED:
        return None
    ctx = optimizer.context()
    fitter = copy.deepcopy(optimizer.fitter)  # never move the optimiser's warm starts
    models = Surrogates(ctx.X, ctx.y, ctx.failed, fitter, model_failures=ctx.model_failures)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        try:
            model = models.objective()
        except ModelFitError:
            return None
    best = optimizer.best()
    if best is None:  # no feasible trial: anchor the slices at the best completed one
        key = (lambda o: o.value) if optimizer.minimize else (lambda o: -o.value)
        best = min(done, key=key)
    sign = -1.0 if optimizer.minimize else 1.0
    return Surface(optimizer.space, model, sign, done, failed, dict(best.params), ctx.warp)


def unit_to_model(space: SearchSpace, U: Sequence[Sequence[float]]) -> list[list[float]]:
    """Map points of ``[0, 1)^d`` to model-space points, column by column.

    Discrete and categorical columns get equal-width bins (every value equally likely), as in
    the initial design (:meth:`SearchSpace.from_unit`). Inactive columns are left as drawn: the
    GP's conditional input transform ignores them, so a prediction does not depend on them.

    Args:
        space: The search space.
        U: Points of the unit cube, `n x d`.

    Returns:
        The model-space points, `n x d`.
    """
    params = [space.parameters[n] for n in space.columns]
    return [[p.from_unit(float(x)) for p, x in zip(params, row)] for row in U]
