"""Sequential acquisitions: EI, PI, UCB/LCB, maximum variance, greedy, and EI per unit cost.

Each reuses BoTorch's analytic acquisition (``LogExpectedImprovement``,
``LogProbabilityOfImprovement``, ``UpperConfidenceBound``, ``PosteriorStandardDeviation``,
``PosteriorMean``). :class:`AcquisitionStrategy` makes every one of them pending-aware the same
way: before each point is chosen, the GP is conditioned on the pending and already-chosen
points with a *lie* (by default the posterior mean, the kriging believer of Ginsbourger et
al. 2010). Maximum-variance sampling is exactly right under this rule: the posterior
variance does not depend on the lie.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Literal

import torch
from torch import Tensor

from autotune.exceptions import ConfigError, shown
from autotune.models import gp_posterior, lean_condition, lean_posterior
from autotune.strategies._acquisitions import (
    FeasibilityWeighted,
    LeanLogExpectedImprovement,
    LogPosteriorStandardDeviation,
)
from autotune.strategies._base import Candidate, Context, Strategy, register
from autotune.strategies._cost import weight_by_cost
from autotune.strategies._optimize import (
    AcqOptions,
    float_option,
    int_option,
    optimize_acquisition,
)

if TYPE_CHECKING:
    from botorch.acquisition import AcquisitionFunction
    from botorch.models.model import Model


class AcquisitionStrategy(Strategy):
    """Choose points one at a time by maximising an acquisition on a GP conditioned on lies.

    Subclasses implement :meth:`acquisition`; batch strategies override :meth:`lie` or
    :meth:`acquisition_for`.

    Args:
        num_restarts: Gradient-ascent starts when optimising the acquisition.
        raw_samples: Random points scored to pick the starts.
    """

    #: Whether :meth:`acquisition` is in log form (then feasibility is multiplied in exactly).
    log_form: bool = True
    cost_aware = True
    #: Whether the acquisition needs an incumbent (EI, PI); without a feasible one it
    #: searches for feasibility alone.
    needs_incumbent: bool = True

    def __init__(self, num_restarts: int = 8, raw_samples: int = 512) -> None:
        self.num_restarts = int_option("num_restarts", num_restarts, 8, 1, 1_000)
        self.raw_samples = int_option("raw_samples", raw_samples, 512, 1, 100_000)
        if self.raw_samples < self.num_restarts:
            raise ConfigError("strategy.options.raw_samples", f"must be >= num_restarts ({self.num_restarts}): the "
                              "starts are chosen among the raw samples", raw_samples,
                              f"use raw_samples: {max(512, self.num_restarts)}.")

    @property
    def _opts(self) -> AcqOptions:
        return AcqOptions(num_restarts=self.num_restarts, raw_samples=self.raw_samples)

    def acquisition(self, model: Model, ctx: Context, best_f: float) -> AcquisitionFunction:
        """The acquisition on ``model`` (already conditioned on the lies).

        Args:
            model: The (conditioned) objective GP.
            ctx: The data.
            best_f: The incumbent: the best feasible value among observations and lies.
        """
        raise NotImplementedError

    def lie(self, model: Model, ctx: Context, X: Tensor) -> Tensor:
        """The fake observations at `m x d` points ``X``: the posterior mean (kriging believer).

        Returns:
            A `m x 1` tensor.
        """
        with torch.no_grad():
            return gp_posterior(model, X).mean.detach()

    def acquisition_for(self, model: Model, ctx: Context, busy: Tensor, lies: Tensor) -> AcquisitionFunction:
        """The acquisition to maximise for the next point, given the busy points.

        Args:
            model: The objective GP fitted on the observations.
            ctx: The data.
            busy: A `m x d` tensor of pending and already-chosen points.
            lies: A `m x 1` tensor of their lies.
        """
        best = ctx.best_f()
        if len(busy):
            model = condition(model, busy, lies)
            if best is not None and not ctx.constraints:
                best = max(best, float(lies.max()))
        model = lean_posterior(model)  # the same posterior, a fraction of the cost per evaluation
        if not self.needs_incumbent:
            return self.with_feasibility(self.acquisition(model, ctx, 0.0), model, ctx)
        return self.with_feasibility(self.acquisition(model, ctx, best) if best is not None else None, model, ctx)

    def with_feasibility(self, acqf: AcquisitionFunction | None, model: Model, ctx: Context) -> AcquisitionFunction:
        """Weight ``acqf`` by the cost (the ``cost`` option) and by the probability of feasibility
        when constraints or failures exist."""
        if acqf is not None:
            acqf = self.with_cost(acqf, ctx)
        if acqf is not None and not ctx.constraint_models():
            return acqf
        return FeasibilityWeighted(acqf, ctx.log_feasibility, model)

    def with_cost(self, acqf: AcquisitionFunction, ctx: Context) -> AcquisitionFunction:
        """``acqf`` weighted by the cost when the ``cost`` option is set (:func:`weight_by_cost`)."""
        if self.cost is None:
            return acqf
        return weight_by_cost(acqf, ctx, self.cost, self.cost_exponent, self.cost_log_form())

    def cost_log_form(self) -> bool:
        """Whether the acquisition a cost weights is in log form (divided by the cost) or signed."""
        return self.log_form

    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        model = ctx.objective_model()
        busy = ctx.pending
        lies = self.lie(model, ctx, busy) if len(busy) else torch.empty(0, 1, dtype=torch.float64)
        out: list[Candidate] = []
        for _ in range(n):
            acqf = self.acquisition_for(model, ctx, busy, lies)
            X, value = optimize_acquisition(acqf, ctx.domain, 1, self._opts)
            out.append(Candidate(X[0], value))
            if len(out) < n:  # the next point sees this one as busy
                busy = torch.cat([busy, X])
                lies = torch.cat([lies, self.lie(model, ctx, X)])
        return out


def condition(model: Model, X: Tensor, Y: Tensor, lean: bool = True) -> Model:
    """The GP conditioned on fake observations ``Y`` at ``X``, hyperparameters unchanged.

    Args:
        model: A fitted GP.
        X: A `m x d` tensor.
        Y: A `m x 1` tensor (in the objective's units).
        lean: A :class:`~autotune.models.LeanGP` where it applies (one factor of all points;
            posterior and acquisition search only); ``False``: GPyTorch's conditioned model,
            e.g. for BoTorch's pathwise posterior samples.
    """
    from botorch.models.utils.assorted import fantasize as fantasize_flag

    fast = lean_condition(model, X, Y) if lean else None
    if fast is not None:
        return fast
    with fantasize_flag(False):
        return model.condition_on_observations(X=model.transform_inputs(X), Y=Y)


@register
class ExpectedImprovement(AcquisitionStrategy):
    """Expected improvement in its numerically stable log form (LogEI, Ament et al. 2023).

    With busy points (pending, or chosen earlier in the same batch) it is the kriging believer
    (Ginsbourger, Le Riche & Carraro 2010): the GP is conditioned on its own posterior mean at
    each busy point, hyperparameters unchanged, which collapses the variance there.
    ``kriging_believer`` is another name of this strategy; ``constant_liar`` differs only in
    the lie (a constant), ``qei`` chooses the batch jointly.
    """

    name = "ei"

    def acquisition(self, model: Model, ctx: Context, best_f: float) -> AcquisitionFunction:
        return LeanLogExpectedImprovement(model, best_f=best_f)


@register
class ProbabilityOfImprovement(AcquisitionStrategy):
    """Probability of improving on the incumbent by ``xi`` (Kushner 1964), in log form.

    Args:
        xi: The margin, in units of the observed objective's standard deviation.
    """

    name = "pi"

    def __init__(self, xi: float = 0.01, num_restarts: int = 8, raw_samples: int = 512) -> None:
        super().__init__(num_restarts, raw_samples)
        self.xi = float_option("xi", xi, 0.01)

    def acquisition(self, model: Model, ctx: Context, best_f: float) -> AcquisitionFunction:
        from botorch.acquisition.analytic import LogProbabilityOfImprovement

        y = ctx.y[ctx.ok]
        sd = float(y.std()) if len(y) > 1 else 1.0
        return LogProbabilityOfImprovement(model, best_f=best_f + self.xi * (sd if sd > 0 else 1.0))


def srinivas_beta(t: int, d: int, delta: float = 0.1) -> float:
    """``beta_t = 2 log(d t^2 pi^2 / (6 delta))`` (Srinivas et al. 2010, Theorem 1)."""
    return 2.0 * math.log(max(d, 1) * max(t, 1) ** 2 * math.pi**2 / (6.0 * delta))


@register
class ConfidenceBound(AcquisitionStrategy):
    """Upper confidence bound ``mu + sqrt(beta) sigma`` (the lower bound when minimising).

    ``lcb`` is another name of it: the optimiser negates a minimised objective, so this is
    ``mu - sqrt(beta) sigma`` minimised in the user's units.

    Args:
        beta: The constant ``beta`` (``beta_schedule="constant"``).
        beta_schedule: ``constant`` or ``srinivas`` (``beta_t`` grows with ``log t``).
        delta: Confidence parameter of the Srinivas schedule.
        beta_scale: Multiplies the scheduled ``beta`` (the theory's value is known to over-explore;
            0.2 is the common practical scaling of Kandasamy et al.).
    """

    name = "ucb"
    log_form = False
    needs_incumbent = False

    def __init__(
        self, beta: float = 4.0, beta_schedule: Literal["constant", "srinivas"] = "constant", delta: float = 0.1,
        beta_scale: float = 0.2, num_restarts: int = 8, raw_samples: int = 512,
    ) -> None:
        super().__init__(num_restarts, raw_samples)
        self.beta = float_option("beta", beta, 4.0, open_low=True)
        if not isinstance(beta_schedule, str) or beta_schedule not in ("constant", "srinivas"):
            raise ConfigError("strategy.options.beta_schedule", "must be constant or srinivas", shown(beta_schedule),
                              "use beta_schedule: constant or beta_schedule: srinivas.")
        self.beta_schedule = beta_schedule
        self.delta = float_option("delta", delta, 0.1, 0.0, 1.0, open_low=True, open_high=True)
        self.beta_scale = float_option("beta_scale", beta_scale, 0.2, open_low=True)

    def beta_at(self, t: int, d: int) -> float:
        """The ``beta`` used at iteration ``t`` (number of observations plus one)."""
        if self.beta_schedule == "constant":
            return self.beta
        return self.beta_scale * srinivas_beta(t, d, self.delta)

    def acquisition(self, model: Model, ctx: Context, best_f: float) -> AcquisitionFunction:
        from botorch.acquisition.analytic import UpperConfidenceBound

        return UpperConfidenceBound(model, beta=self.beta_at(len(ctx.X) + 1, ctx.d))


@register
class MaxVariance(AcquisitionStrategy):
    """Maximum-variance (maximum-entropy) sampling: ``argmax sigma(x)`` (Noack et al. 2019).

    It ignores the observed values; pending points reduce the variance around them. It maps
    rather than optimises, so the optimiser's output warp does not apply to its GP.
    """

    name = "max_variance"
    log_form = False
    needs_incumbent = False
    optimizes = False

    def acquisition(self, model: Model, ctx: Context, best_f: float) -> AcquisitionFunction:
        from botorch.acquisition.analytic import PosteriorStandardDeviation

        # With a cost, log sigma, so the cost divides it: the variance per unit cost.
        return LogPosteriorStandardDeviation(model) if self.cost is not None else PosteriorStandardDeviation(model)

    def cost_log_form(self) -> bool:
        return True


@register
class Greedy(AcquisitionStrategy):
    """Pure exploitation: maximise the posterior mean (a baseline; biased by its initial data)."""

    name = "greedy"
    log_form = False
    needs_incumbent = False

    def acquisition(self, model: Model, ctx: Context, best_f: float) -> AcquisitionFunction:
        from botorch.acquisition.analytic import PosteriorMean

        return PosteriorMean(model)


@register
class CostSensitiveEI(ExpectedImprovement):
    """EI per unit of expected cost (Snoek et al. 2012), with optional cost cooling (EI-cool).

    The cost is the known cost function of the optimiser if given, otherwise a GP on log
    cost (e.g. training seconds). With ``cooling``, the cost exponent
    ``alpha = (B - spent) / (B - spent_initial)`` decays from 1 to 0 as the budget is spent
    (Lee et al. 2020), so cheap points are preferred early and EI takes over.

    Args:
        cooling: Decay the cost weight as the budget is spent.
        alpha: The cost exponent without cooling (1: EI per unit cost).
    """

    name = "ei_per_cost"
    cost_aware = False  # weighted by its own cost exponent (with cooling); ei takes the cost option

    def __init__(self, cooling: bool = False, alpha: float = 1.0, num_restarts: int = 8, raw_samples: int = 512) -> None:
        super().__init__(num_restarts, raw_samples)
        if not isinstance(cooling, bool):
            raise ConfigError("strategy.options.cooling", "must be true or false", shown(cooling), "write cooling: true.")
        self.cooling = cooling
        self.alpha = float_option("alpha", alpha, 1.0)

    def exponent_at(self, ctx: Context) -> float:
        """``alpha``, decayed by the budget spent when cooling (at this ask)."""
        if not self.cooling:
            return self.alpha
        used, init = ctx.budget_fraction_used, ctx.budget_fraction_initial
        return self.alpha * min(max((1.0 - used) / max(1.0 - init, 1e-9), 0.0), 1.0)

    def acquisition(self, model: Model, ctx: Context, best_f: float) -> AcquisitionFunction:
        base = super().acquisition(model, ctx, best_f)
        return weight_by_cost(base, ctx, "auto", self.exponent_at(ctx), log_form=True)

    def known_cost_exponent(self, ctx: Context) -> float | None:
        """The cost exponent at this ask when the cost is known (it is then used before a cost model)."""
        return self.exponent_at(ctx) if ctx.known_cost is not None else None
