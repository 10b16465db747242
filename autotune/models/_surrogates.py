"""The surrogates of one ask: objective, outcome-constraint, crash and cost GPs, built once.

:class:`Surrogates` owns every model a strategy may need and the probability of
feasibility; a strategy receives it already set up (``Context.models``), as a BoTorch
acquisition receives a fitted ``Model``. Each model is fitted on first use and kept for the
rest of the ask, so a strategy that never needs the cost GP never fits it.

Failed trials (crash, OOM, NaN, timeout) enter twice when ``model_failures`` is on, as an
unknown constraint in the sense of Gelbart, Snoek & Adams (2014), "Bayesian Optimization with
Unknown Constraints":

* **the crash model**, a GP on the label 1 = ran, 0 = failed, whose probability of a label
  ``>= 0.5`` multiplies the acquisition with the outcome constraints' probabilities
  (``log_feasibility``), and
* **the objective model**, which sees each failed point that the crash model places in a
  crash region (its predicted label there < 0.5) at the worst objective value observed
  (``FAILED_AT_WORST``): a configuration that crashed is taken to be at least as bad as the
  worst one that ran (the imputation of failed evaluations of Forrester, Sóbester & Keane
  2006, "Optimization with missing data", in its simplest form; SMAC likewise charges a
  crashed run the worst cost). A failure the crash model explains as noise stays out.

Why both: the crash GP alone leaks. Its 0/1 labels change sharply at a region's edge, so
its fitted length scales shrink to the spacing of the crashed points (0.06-0.08 on the unit
square in the measured case) and each crash only dents the feasibility locally; meanwhile
the objective GP, fitted on the successes alone, extrapolates its optimum straight into the
region that crashed, and expected improvement there (log EI -4.0 against -4.6 on the rim)
outweighs a feasibility of 0.3-0.5 between the dents. Seeing crashed points as bad removes
the pull. Measured (``python -m tests.strategies.test_crash``) on a 2-D quadratic whose
optimum lies at the centre of a disc (radius 0.2) where trials crash, 20 model proposals of
``ei`` after a Sobol design, proposals inside the disc: crash GP alone 12-15 of 20 (seeds
0-7, mean 13.75; 17-20 without any crash model); failed points at the worst value, all of
them 1-4 (seeds 0-7, mean 2.9), only those the crash model explains (as shipped) 1-4
(seeds 0-7: 1, 4, 3, 4, 2, 4, 4, 2; mean 3.0, i.e. 15 %). Tried and not adopted: a probit-likelihood GP classifier (variational) as the crash
model (2-4, 3x the cost), the worst of the 3 nearest successes as the imputed value (6-7).
The cost: with flaky failures (25 % at random) on a 2-D two-basin function, the regret after
25 trials was 7e-6, 3e-2, 7e-4 (seeds 0-2) against 7e-6, 7e-4, 1e-5 without imputation;
imputing every failure was worse (7e-6, 3e-2, 6e-3). Three seeds only: to be measured wider.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import torch
from torch import Tensor

from autotune.models._gp import gp_posterior

if TYPE_CHECKING:
    from botorch.models.model import Model

    from autotune.models._gp import GPFitter

FAILED_AT_WORST = True
"""Whether the objective model sees failed points at the worst observed value (with ``model_failures``)."""



class Constraint(Protocol):
    """What the surrogates need of an outcome constraint (``autotune.strategies.OutcomeConstraint``)."""

    @property
    def metric(self) -> str:
        """The name of the constrained metric."""
        ...  # pragma: no cover

    def slack(self, value: Tensor) -> Tensor:
        """Signed slack, ``>= 0`` exactly when satisfied."""
        ...  # pragma: no cover


class Surrogates:
    """Every surrogate of one ask over the model-space data, each fitted on first use.

    The objective is oriented for maximisation (``y`` holds negated values of a minimised one).

    Args:
        X: A `n x d` tensor of finished points.
        y: A `n` tensor of objective values (``nan`` where the trial failed).
        failed: A `n` boolean tensor, ``True`` where the trial failed.
        fitter: Fits (and warm-starts) the GPs by name.
        constraints: The outcome constraints.
        constraint_values: Per constraint metric, a `n` tensor of its values (``nan`` if missing).
        cost: A `n` tensor of the cost metric (``nan`` if missing), or ``None``.
        model_failures: Model failed trials (crash model, and failed points in the objective).
    """

    def __init__(
        self,
        X: Tensor,
        y: Tensor,
        failed: Tensor,
        fitter: GPFitter,
        constraints: Sequence[Constraint] = (),
        constraint_values: dict[str, Tensor] | None = None,
        cost: Tensor | None = None,
        model_failures: bool = True,
    ) -> None:
        self.X = X
        self.y = y
        self.failed = failed
        self.fitter = fitter
        self.constraints = list(constraints)
        self.constraint_values = dict(constraint_values or {})
        self.cost = cost
        self.model_failures = model_failures
        #: Per-ask memo of the built models and quantities derived from them (see :meth:`cached`).
        self.memo: dict[str, Any] = {}

    @property
    def ok(self) -> Tensor:
        """A `n` mask of observations with a finite objective."""
        return torch.isfinite(self.y) & ~self.failed

    def cached(self, key: str, build: Callable[[], Any]) -> Any:
        """``build()`` once per ask under ``key`` (for quantities derived from the models)."""
        if key not in self.memo:
            self.memo[key] = build()
        return self.memo[key]

    def built(self, key: str) -> Any | None:
        """A model already built this ask (``"objective"``, ``"constraints"``, ``"cost"``), else ``None``."""
        return self.memo.get(key)

    def objective_training_data(self) -> tuple[Tensor, Tensor]:
        """The objective GP's data: `m x d` points and `m` values.

        The successful observations, plus, with ``model_failures`` and :data:`FAILED_AT_WORST`,
        each failed point that the crash model places in a crash region (its predicted label
        there is below 0.5), at the worst successful value. A failure the crash model explains
        as noise (a flaky run among successes) stays out of the objective model.
        """
        ok = self.ok
        X, y = self.X[ok], self.y[ok]
        if self.model_failures and FAILED_AT_WORST and bool(ok.any()) and bool(self.failed.any()):
            crash = self.constraint_models()[-1][0]  # the crash model exists: there are failures and successes
            Xf = self.X[self.failed]
            with torch.no_grad():
                Xf = Xf[gp_posterior(crash, Xf).mean.reshape(-1) < 0.5]  # `f x d`, the crashes it explains
            X = torch.cat([X, Xf])
            y = torch.cat([y, y.min().expand(len(Xf))])
        return X, y

    def objective(self) -> Model:
        """The GP of the objective (see :meth:`objective_training_data`)."""

        def build() -> Model:
            X, y = self.objective_training_data()
            return self.fitter.fit("objective", X, y.unsqueeze(-1))

        return self.cached("objective", build)

    def constraint_models(self) -> list[tuple[Model, float]]:
        """GPs of each constraint's slack (feasible when ``>= 0``), plus the crash model.

        Returns:
            ``(model, threshold)`` pairs: feasibility is ``P(model(x) >= threshold)``.
        """
        return self.cached("constraints", self._build_constraints)

    def _build_constraints(self) -> list[tuple[Model, float]]:
        out: list[tuple[Model, float]] = []
        for c in self.constraints:
            v = self.constraint_values[c.metric]
            m = torch.isfinite(v)
            if int(m.sum()) == 0:
                continue
            s = c.slack(v[m])
            out.append((self.fitter.fit(f"constraint:{c.metric}", self.X[m], s.unsqueeze(-1)), 0.0))
        if self.model_failures and bool(self.failed.any()) and bool((~self.failed).any()):
            # The crash model: GP regression on the label 1 = ran, 0 = failed; a point is
            # "feasible" where the label is >= 0.5 (see the module docstring).
            label = (~self.failed).to(self.X).unsqueeze(-1)
            out.append((self.fitter.fit("constraint:crash", self.X, label), 0.5))
        return out

    def log_feasibility(self, X: Tensor) -> Tensor:
        """``sum_k log P(c_k(x) feasible)`` under the constraint and crash GPs.

        Args:
            X: A `batch x q x d` tensor.

        Returns:
            A `batch` tensor (``0`` when there are no constraints), summed over the q points.
        """
        from botorch.utils.probability.utils import log_ndtr

        total = torch.zeros(X.shape[:-2], dtype=X.dtype, device=X.device)
        for model, thr in self.constraint_models():
            post = gp_posterior(model, X)
            mean = post.mean.squeeze(-1)
            sd = post.variance.clamp_min(1e-12).sqrt().squeeze(-1)
            total = total + log_ndtr((mean - thr) / sd).sum(-1)
        return total

    def cost_model(self) -> Model | None:
        """The GP of log cost, or ``None`` without positive cost observations."""

        def build() -> Model | None:
            if self.cost is None:
                return None
            m = torch.isfinite(self.cost) & (self.cost > 0)
            if int(m.sum()) == 0:
                return None
            return self.fitter.fit("cost", self.X[m], self.cost[m].log().unsqueeze(-1))

        return self.cached("cost", build)
