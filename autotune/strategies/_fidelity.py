"""Multi-fidelity BO from learning curves: ``mobster``.

MOBSTER (Klein, Tiao, Lienart, Archambeau and Seeger, "Model-based Asynchronous Hyperparameter
and Neural Architecture Search", arXiv:2003.10865, 2020) pairs asynchronous successive halving
(the study's ``early_stopping: {rule: asha}``) with a GP over (configuration, resource) fitted
on every value the trials report at the rung levels, so a trial stopped at epoch 3 is a
low-fidelity observation rather than a failure or a lost run. Its new configurations maximise
expected improvement at one resource level, chosen as BOHB does (Falkner, Klein and Hutter,
"BOHB: Robust and Efficient Hyperparameter Optimization at Scale", ICML 2018): the highest
level at which at least ``d + 2`` configurations have been observed (the full training length
once enough trials finished), with the incumbent taken at that level.

What is followed and what is chosen here:

* **Kernel.** Matérn-5/2 ARD over the configuration columns and the resource, the ``matern52``
  resource kernel of MOBSTER's implementation (Syne Tune), with the resource warped to
  ``log(step / min_step) / log(max_step / min_step)`` in ``[0, 1]`` (learning curves move on a
  log scale of epochs). Categorical and conditional columns are modelled as by every other
  GP here (:func:`autotune.models.make_gp`).
* **Data.** For each trial and each level ``min_step * eta^k`` (and ``max_step``) it reached,
  its value at the last reported step at or below that level: at most ``log_eta(max/min) + 2``
  points per trial, whatever its reporting frequency. A trial that completed without
  reporting at ``max_step`` enters there with its final value. Running trials count with
  what they reported so far.
* **Pending points** are conditioned on at the acquisition level with the posterior mean as
  the lie (the kriging believer, as for ``ei``), and outcome constraints and crashes weight
  the acquisition by the probability of feasibility, as for every model-based strategy.
* Without curves (no reports yet, or no early stopping) it is ``ei`` on the final values.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import torch
from botorch.models.model import Model
from torch import Tensor

from autotune.exceptions import ConfigError
from autotune.strategies._base import Candidate, Context, register
from autotune.strategies._optimize import int_option, optimize_acquisition
from autotune.strategies._sequential import ExpectedImprovement, condition

if TYPE_CHECKING:
    from botorch.posteriors import Posterior

    from autotune.models import GPFitter
    from autotune.space import SearchSpace

#: The name of the resource column appended to the configuration columns of the joint GP.
FIDELITY = "__fidelity__"


def levels(min_step: int, max_step: int, eta: int) -> list[int]:
    """The rung levels ``min_step * eta^k`` below ``max_step``, then ``max_step``."""
    lo = max(int(min_step), 1)
    out: list[int] = []
    r = lo
    while r < max_step:
        out.append(r)
        r *= eta
    return [*out, int(max_step)]


def fidelity_of(steps: Tensor, min_step: int, max_step: int) -> Tensor:
    """Steps mapped to ``[0, 1]`` on a log scale (``min_step`` to 0, ``max_step`` to 1)."""
    lo = max(int(min_step), 1)
    if max_step <= lo:
        return torch.ones_like(steps)
    return (steps.clamp(lo, max_step).log() - math.log(lo)) / (math.log(max_step) - math.log(lo))


class AtFidelity(Model):
    """A joint (configuration, fidelity) GP seen at one fidelity: a model over configurations.

    It is what an acquisition and the acquisition optimiser need of a BoTorch model:
    ``posterior`` (the joint posterior with the fidelity column appended), conditioning on
    fake observations (for pending points), and ``train_inputs`` (the configurations seen,
    so the optimiser skips them and starts some restarts near the best of them).

    Args:
        joint: The GP over `d + 1` columns (the last is the fidelity).
        fidelity: The fidelity in ``[0, 1]`` to predict at.
        seen: A `k x d` tensor of configurations already evaluated at some fidelity.
    """

    def __init__(self, joint: Any, fidelity: float, seen: Tensor) -> None:
        super().__init__()
        self.joint = joint
        self.fidelity = float(fidelity)
        self.train_inputs = (seen,)

    @property
    def num_outputs(self) -> int:
        return 1

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size([])

    def append(self, X: Tensor) -> Tensor:
        """``X`` (`... x d`) with the fidelity column appended."""
        return torch.cat([X, X.new_full((*X.shape[:-1], 1), self.fidelity)], dim=-1)

    def posterior(self, X: Tensor, output_indices: Any = None, observation_noise: Any = False,
                  posterior_transform: Any = None, **kwargs: Any) -> Posterior:
        """The joint GP's posterior at ``X`` and this fidelity."""
        return self.joint.posterior(self.append(X), observation_noise=observation_noise,
                                    posterior_transform=posterior_transform, **kwargs)

    def transform_inputs(self, X: Tensor, input_transform: torch.nn.Module | None = None) -> Tensor:
        """The identity: the joint GP transforms its own inputs (see :meth:`condition_on_observations`)."""
        return X

    def condition_on_observations(self, X: Tensor, Y: Tensor, **kwargs: Any) -> AtFidelity:
        """The view of the joint GP conditioned on ``Y`` at ``X`` (this fidelity)."""
        Xf = self.joint.transform_inputs(self.append(X))
        return AtFidelity(self.joint.condition_on_observations(X=Xf, Y=Y, **kwargs), self.fidelity,
                          self.train_inputs[0])


@register
class Mobster(ExpectedImprovement):
    """Expected improvement at the BOHB level of a GP over configuration and training step.

    Args:
        min_step: The first rung level (the study fills it from ``early_stopping``).
        max_step: The full training length (the target fidelity); default the largest step
            reported so far.
        eta: The ratio between rung levels.
        min_points: Configurations a level needs before EI is taken there (default ``d + 2``).
        num_restarts: Gradient-ascent starts when optimising the acquisition.
        raw_samples: Random points scored to pick the starts.
    """

    name = "mobster"
    uses_curves = True

    def __init__(self, min_step: int = 1, max_step: int | None = None, eta: int = 3, min_points: int | None = None,
                 num_restarts: int = 8, raw_samples: int = 512) -> None:
        super().__init__(num_restarts=num_restarts, raw_samples=raw_samples)
        self.min_step = int_option("min_step", min_step, 1, 0, 10_000_000)
        self.max_step = None if max_step is None else int_option("max_step", max_step, 1, 1, 10_000_000)
        self.eta = int_option("eta", eta, 3, 2, 100)
        self.min_points = None if min_points is None else int_option("min_points", min_points, 1, 1, 100_000)
        if self.max_step is not None and self.max_step <= max(self.min_step, 1):
            raise ConfigError("strategy.options.max_step", f"must be above min_step ({self.min_step})", max_step,
                              "set it to the last step a full trial reports, e.g. max_step: 27 for 27 epochs.")
        self._fitter: GPFitter | None = None
        self._base: SearchSpace | None = None  # the space the joint space was built from

    def options(self) -> dict[str, Any]:
        return {"min_step": self.min_step, "max_step": self.max_step, "eta": self.eta, "min_points": self.min_points,
                "num_restarts": self.num_restarts, "raw_samples": self.raw_samples}

    # -- data -------------------------------------------------------------------------------------
    def level_data(self, ctx: Context) -> tuple[Tensor, Tensor, Tensor, list[int]] | None:
        """The GP's data: configurations, their level index, values; and the levels.

        Returns:
            ``(X, level, y, levels)``: a `m x d` tensor, a `m` long tensor of indices into
            ``levels``, a `m` tensor (maximised), the steps of the levels; ``None`` without curves.
        """
        curves = ctx.curves
        if curves is None or not len(curves.step):
            return None
        top = self.max_step or int(curves.step.max())
        if top <= max(self.min_step, 1):
            return None
        lv = levels(self.min_step, top, self.eta)
        rows: dict[tuple[int, int], tuple[Tensor, float]] = {}  # (trial, level) -> (x, value)
        for t in curves.trial.unique().tolist():
            m = curves.trial == t
            steps, ys, x = curves.step[m], curves.y[m], curves.X[m][0]
            reached = float(steps.max())
            for k, r in enumerate(lv):
                below = steps <= r
                if reached >= r and bool(below.any()):
                    i = int(torch.where(below, steps, -1.0).argmax())
                    rows[(t, k)] = (x, float(ys[i]))
        top_k = len(lv) - 1
        full = ctx.ok & ~(ctx.pruned if ctx.pruned is not None else torch.zeros_like(ctx.ok))
        have = {tuple(x.tolist()) for (_, k), (x, _) in rows.items() if k == top_k}
        extra = [(ctx.X[i], float(ctx.y[i])) for i in torch.where(full)[0].tolist()
                 if tuple(ctx.X[i].tolist()) not in have]
        if not rows and not extra:
            return None
        X = torch.stack([x for x, _ in rows.values()] + [x for x, _ in extra])
        level = torch.tensor([k for (_, k) in rows] + [top_k] * len(extra), dtype=torch.long)
        y = torch.tensor([v for _, v in rows.values()] + [v for _, v in extra], dtype=torch.float64)
        return X, level, y, lv

    def acquisition_level(self, level: Tensor, n_levels: int, d: int) -> int:
        """The highest level with at least ``min_points`` distinct points (else the lowest observed)."""
        need = self.min_points or d + 2
        counts = torch.bincount(level, minlength=n_levels)
        ok = [k for k in range(n_levels) if int(counts[k]) >= need]
        return max(ok) if ok else int(level.min())

    # -- proposing -----------------------------------------------------------------------------
    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        data = self.level_data(ctx)
        if data is None:
            return super().ask(ctx, n)
        X, level, y, lv = data
        steps = torch.tensor(lv, dtype=torch.float64)
        s = fidelity_of(steps, self.min_step, lv[-1])
        joint = self._fit(ctx, torch.cat([X, s[level].unsqueeze(-1)], dim=-1), y.unsqueeze(-1))
        k = self.acquisition_level(level, len(lv), ctx.d)
        seen = torch.cat([ctx.X, X]).unique(dim=0)
        model = AtFidelity(joint, float(s[k]), seen)
        best = float(y[level == k].max())
        at_k = {tuple(x.tolist()) for x in X[level == k]}
        keep = [i for i, p in enumerate(ctx.pending) if tuple(p.tolist()) not in at_k]  # not already data at k
        busy = ctx.pending[keep].reshape(-1, ctx.d)
        lies = self.lie(model, ctx, busy) if len(busy) else torch.empty(0, 1, dtype=torch.float64)
        out: list[Candidate] = []
        for _ in range(n):
            conditioned = condition(model, busy, lies) if len(busy) else model
            incumbent = max(best, float(lies.max())) if len(busy) and not ctx.constraints else best
            acqf = self.with_feasibility(self.acquisition(conditioned, ctx, incumbent), conditioned, ctx)
            x, value = optimize_acquisition(acqf, ctx.domain, 1, self._opts)
            out.append(Candidate(x[0], value))
            busy = torch.cat([busy, x])
            lies = torch.cat([lies, self.lie(model, ctx, x)])
        return out

    def _fit(self, ctx: Context, X: Tensor, Y: Tensor) -> Any:
        """The joint GP, warm-started from this strategy's previous fit."""
        from autotune.models import GPFitter
        from autotune.space import Float, SearchSpace

        if self._fitter is None or self._base is not ctx.space:
            joint = SearchSpace([*ctx.space.parameters.values(), Float(FIDELITY, 0.0, 1.0)])
            self._fitter = GPFitter(joint, ctx.fitter.kernel)
            self._base = ctx.space
        return self._fitter.fit("objective@fidelity", X, Y)
