"""Parallel strategies, all pending-aware.

Reused from BoTorch: ``qLogNoisyExpectedImprovement`` (joint MC qEI with ``X_pending``),
``PathwiseThompsonSampling`` (Matheron-rule posterior sample paths).
Written here (no PyTorch library has them as pending-aware strategies): constant liar,
local penalisation, and K-means batches. The kriging believer is ``ei`` itself (see
:class:`~autotune.strategies._sequential.ExpectedImprovement`), registered as an alias.

A freed worker asks for one point while others run: the running points arrive as
``ctx.X_pending`` and shape the proposal exactly as already-chosen points of a synchronous
batch do, so asynchronous and synchronous use are the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Literal, cast

import torch
from torch import Tensor

from autotune.exceptions import ConfigError, shown
from autotune.models import lean_posterior
from autotune.strategies._acquisitions import LogLocalPenalization, estimate_lipschitz
from autotune.strategies._base import Candidate, Context, register
from autotune.strategies._cost import log_cost_function, objective_scale
from autotune.strategies._optimize import (
    candidate_pool,
    float_option,
    int_option,
    optimize_acquisition,
    unit_distance,
)
from autotune.strategies._sequential import (
    AcquisitionStrategy,
    ExpectedImprovement,
    condition,
)

if TYPE_CHECKING:
    from botorch.acquisition import AcquisitionFunction
    from botorch.models.gpytorch import GPyTorchModel
    from botorch.models.model import Model


@register
class ConstantLiar(ExpectedImprovement):
    """Sequential EI where each busy point is believed to return a constant lie.

    Args:
        lie: ``min``, ``mean`` or ``max`` of the observed objective values, in the user's units
            (so for a minimised objective ``min`` is the optimistic lie).
    """

    name = "constant_liar"

    def __init__(self, lie: Literal["min", "mean", "max"] = "min", num_restarts: int = 8, raw_samples: int = 512) -> None:
        super().__init__(num_restarts, raw_samples)
        if not isinstance(lie, str) or lie not in ("min", "mean", "max"):
            raise ConfigError("strategy.options.lie", "must be min, mean or max", shown(lie), "use lie: min.")
        self.lie_kind = lie

    def options(self) -> dict[str, object]:
        return {"lie": self.lie_kind, "num_restarts": self.num_restarts, "raw_samples": self.raw_samples}

    def lie(self, model: Model, ctx: Context, X: Tensor) -> Tensor:
        y = ctx.y[ctx.ok]
        user = -y if ctx.minimize else y
        v = {"min": user.min(), "mean": user.mean(), "max": user.max()}[self.lie_kind]
        v = -v if ctx.minimize else v
        return torch.full((len(X), 1), float(v), dtype=torch.float64)


@register
class LocalPenalization(ExpectedImprovement):
    """LogEI multiplied by local penalisers around busy points (González et al. 2016).

    The Lipschitz constant ``L`` is estimated as the largest posterior-mean gradient norm
    over a space-filling set and the data; ``M`` is the best observed value.

    Args:
        lipschitz: A fixed ``L`` instead of the estimate.
    """

    name = "local_penalization"

    def __init__(self, lipschitz: float | None = None, num_restarts: int = 8, raw_samples: int = 512) -> None:
        super().__init__(num_restarts, raw_samples)
        self.lipschitz = None if lipschitz is None else float_option("lipschitz", lipschitz, 1.0, open_low=True)

    def estimate_L(self, model: Model, ctx: Context) -> float:
        """The Lipschitz constant used by the penalisers (cached per ask)."""
        if self.lipschitz is not None:
            return float(self.lipschitz)

        def estimate() -> float:
            probe = torch.cat([candidate_pool(ctx.space, 256, ctx.stable_seed("L")), ctx.X[ctx.ok]])
            ordered = [i for i, k in enumerate(ctx.space.column_kinds()) if k != "categorical"]
            return estimate_lipschitz(model, probe, ordered)

        return float(ctx.models.cached("lipschitz", estimate))

    def acquisition_for(self, model: Model, ctx: Context, busy: Tensor, lies: Tensor) -> AcquisitionFunction:
        best = ctx.best_f()
        if best is None:
            return self.with_feasibility(None, model, ctx)
        base = self.acquisition(lean_posterior(model), ctx, best)
        scale = torch.ones(ctx.d, dtype=torch.float64)
        for i, vals in ctx.space.cat_dims().items():
            scale[i] = 1.0 / max(len(vals) - 1, 1)
        acqf = LogLocalPenalization(base, model, busy, self.estimate_L(model, ctx), best, scale)
        return self.with_feasibility(acqf, model, ctx)


@register
class ThompsonSampling(AcquisitionStrategy):
    """Parallel Thompson sampling: each slot maximises an independent posterior sample.

    (Kandasamy et al. 2018.) Samples are Matheron-rule sample paths (BoTorch's pathwise
    sampling) maximised by gradient ascent; where paths are unsupported (categorical kernels)
    a joint posterior sample over a candidate set is used instead. Busy points condition the
    GP with posterior-mean lies (Desautels-style hallucination), so a draw does not return to
    a running point.

    Args:
        n_candidates: Size of the candidate set of the discrete fallback.
    """

    name = "thompson"
    log_form = False

    def __init__(self, n_candidates: int = 1024, num_restarts: int = 8, raw_samples: int = 512) -> None:
        super().__init__(num_restarts, raw_samples)
        self.n_candidates = int_option("n_candidates", n_candidates, 1024)

    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        model = ctx.objective_model()
        busy = ctx.pending
        lies = self.lie(model, ctx, busy) if len(busy) else torch.empty(0, 1, dtype=torch.float64)
        out: list[Candidate] = []
        for i in range(n):
            m = condition(model, busy, lies, lean=False) if len(busy) else model  # pathwise samples need GPyTorch's
            x, value = self._draw_and_maximise(m, ctx, i)
            out.append(Candidate(x, value))
            busy = torch.cat([busy, x.unsqueeze(0)])
            lies = torch.cat([lies, self.lie(model, ctx, x.unsqueeze(0))])
        return out

    def _draw_and_maximise(self, model: Model, ctx: Context, slot: int) -> tuple[Tensor, float]:
        if not ctx.space.cat_dims() and not ctx.constraint_models():
            try:
                from botorch.acquisition.thompson_sampling import (
                    PathwiseThompsonSampling,
                )

                acqf = self.with_cost(PathwiseThompsonSampling(model), ctx)
                X, value = optimize_acquisition(acqf, ctx.domain, 1, self._opts)
                return X[0], value
            except (NotImplementedError, RuntimeError, TypeError) as e:  # unsupported kernel/transform
                ctx.models.memo.setdefault("ts_fallback", str(e))
        pool = ctx.domain.pool(self.n_candidates, ctx.stable_seed(f"ts{slot}"), around=ctx.X[ctx.ok])
        with torch.no_grad():
            f = model.posterior(pool).rsample().reshape(-1)
            if ctx.constraint_models():
                f = f + ctx.log_feasibility(pool.unsqueeze(-2))
            log_cost = log_cost_function(ctx, self.cost) if self.cost is not None else None
            if log_cost is not None:  # the signed form of weight_by_cost
                f = f - self.cost_exponent * objective_scale(ctx) * log_cost(pool)
        j = int(f.argmax())
        ctx.domain.take(pool[j: j + 1])
        return pool[j], float(f[j])


def _constraint_slack(Z: Tensor, k: int, threshold: float) -> Tensor:
    """``threshold - Z[..., k]``: feasible where negative (BoTorch's outcome-constraint convention)."""
    return threshold - Z[..., k]


def _objective_column(Z: Tensor, X: Tensor | None = None) -> Tensor:
    """The objective model's output, column 0 of the model list's samples."""
    return Z[..., 0]


@register
class QExpectedImprovement(AcquisitionStrategy):
    """Joint Monte Carlo qEI (qLogNEI) over the whole batch, with running points as ``X_pending``.

    (Ginsbourger et al. 2010; Wilson et al. 2018.) Constraints and failures enter as
    BoTorch constraint callables on a model list.

    Args:
        mc_samples: Quasi-MC samples of the joint posterior.
    """

    name = "qei"

    def __init__(self, mc_samples: int = 256, num_restarts: int = 8, raw_samples: int = 512) -> None:
        super().__init__(num_restarts, raw_samples)
        self.mc_samples = int_option("mc_samples", mc_samples, 256, 1, 100_000)

    def build(self, ctx: Context) -> AcquisitionFunction:
        """The qLogNEI acquisition on the objective (and constraint) models."""
        from botorch.acquisition.logei import qLogNoisyExpectedImprovement
        from botorch.acquisition.objective import GenericMCObjective
        from botorch.models import ModelListGP
        from botorch.sampling import SobolQMCNormalSampler

        model = ctx.objective_model()
        cons = ctx.constraint_models()
        sampler = SobolQMCNormalSampler(torch.Size([self.mc_samples]), seed=ctx.stable_seed("qei"))
        pending = ctx.pending if len(ctx.pending) else None
        if not cons:
            return self.with_cost(qLogNoisyExpectedImprovement(
                model, X_baseline=ctx.X[ctx.ok], sampler=sampler, X_pending=pending, prune_baseline=True,
                cache_root=False), ctx)
        # Every model here is a GPyTorch GP (BoTorch types the getters' result as the base Model).
        mlist = ModelListGP(*cast("list[GPyTorchModel]", [model, *(m for m, _ in cons)]))
        constraints: list[Callable[[Tensor], Tensor]] = [
            partial(_constraint_slack, k=k + 1, threshold=t) for k, (_, t) in enumerate(cons)
        ]
        return self.with_cost(qLogNoisyExpectedImprovement(
            mlist, X_baseline=ctx.X[ctx.ok], sampler=sampler, X_pending=pending, prune_baseline=True,
            objective=GenericMCObjective(_objective_column), constraints=constraints, cache_root=False,
        ), ctx)

    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        acqf = self.build(ctx)
        X, value = optimize_acquisition(acqf, ctx.domain, n, self._opts)
        return [Candidate(x, value) for x in X]


@register
class KMeansBatch(ExpectedImprovement):
    """K-means batch BO (Groves & Pyzer-Knapp 2018).

    Candidates are sampled in proportion to EI (sampling-importance-resampling from a
    space-filling pool refined around the data), then clustered by K-means into ``n``
    free clusters; busy points are fixed centres that own their neighbourhood. Each free
    cluster proposes its member nearest the cluster mean.

    Args:
        n_pool: Size of the candidate pool scored by the acquisition.
        n_samples: Points resampled in proportion to the acquisition.
        kmeans_iter: Lloyd iterations.
    """

    name = "kmeans"

    def __init__(self, n_pool: int = 4096, n_samples: int = 512, kmeans_iter: int = 50,
                 num_restarts: int = 8, raw_samples: int = 512) -> None:
        super().__init__(num_restarts, raw_samples)
        self.n_pool = int_option("n_pool", n_pool, 4096)
        self.n_samples = int_option("n_samples", n_samples, 512)
        self.kmeans_iter = int_option("kmeans_iter", kmeans_iter, 50, 1, 10_000)

    def weights(self, acqf: AcquisitionFunction, pool: Tensor) -> Tensor:
        """Normalised sampling weights proportional to the acquisition (in linear space)."""
        with torch.no_grad():
            vals = torch.cat([acqf(chunk.unsqueeze(-2)) for chunk in pool.split(1024)])
        logw = vals if self.log_form else vals.clamp_min(1e-300).log()
        logw = torch.nan_to_num(logw, nan=-torch.inf)
        if not torch.isfinite(logw).any():
            return torch.full((len(pool),), 1.0 / len(pool), dtype=torch.float64)
        w = (logw - logw.max()).exp()
        return w / w.sum()

    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        model = ctx.objective_model()
        best = ctx.best_f()
        acqf = self.with_feasibility(self.acquisition(model, ctx, best) if best is not None else None, model, ctx)
        g = torch.Generator(device=ctx.X.device).manual_seed(ctx.stable_seed("kmeans"))
        ok = ctx.X[ctx.ok]
        pool = ctx.domain.pool(self.n_pool, ctx.stable_seed("pool"), around=ok)
        w = self.weights(acqf, pool)
        top = pool[w.topk(min(32, len(pool))).indices]
        if ctx.domain.candidates is None:
            pool = torch.cat([pool, ctx.domain.pool(16, ctx.stable_seed("refine"), around=top, scale=0.02)])
        w = self.weights(acqf, pool)
        idx = torch.multinomial(w, self.n_samples, replacement=True, generator=g)
        samples = pool[idx]
        fixed = ctx.pending
        centres = kmeans(samples, n, fixed, ctx, g, self.kmeans_iter)
        out: list[Candidate] = []
        for c in centres:
            j = int(unit_distance(c.unsqueeze(0), samples, ctx.space).argmin())
            x = ctx.domain.snap(samples[j: j + 1])[0] if ctx.domain.candidates is not None else samples[j]
            with torch.no_grad():
                out.append(Candidate(x, float(acqf(x.view(1, 1, -1)))))
        return out


def kmeans(samples: Tensor, k: int, fixed: Tensor, ctx: Context, g: torch.Generator, iters: int) -> Tensor:
    """K-means with ``k`` free centres and some fixed ones (k-means++ initialisation).

    Args:
        samples: A `N x d` tensor.
        k: Free centres.
        fixed: A `m x d` tensor of centres that never move (busy points).
        ctx: For the space (unit-cube distances).
        g: Random generator.
        iters: Lloyd iterations.

    Returns:
        A `k x d` tensor of free centres.
    """
    space = ctx.space
    centres = [samples[int(torch.randint(len(samples), (1,), generator=g))]] if len(fixed) == 0 else []
    while len(centres) < k:
        C = torch.cat([fixed, torch.stack(centres)]) if centres else fixed
        d2 = unit_distance(samples, C, space).min(dim=1).values.pow(2)
        p = d2 / d2.sum() if float(d2.sum()) > 0 else torch.full_like(d2, 1.0 / len(d2))
        centres.append(samples[int(torch.multinomial(p, 1, generator=g))])
    free = torch.stack(centres)
    for _ in range(iters):
        C = torch.cat([fixed, free])
        assign = unit_distance(samples, C, space).argmin(dim=1) - len(fixed)
        new = free.clone()
        for j in range(k):
            members = samples[assign == j]
            if len(members):
                new[j] = members.mean(0)
        if torch.allclose(new, free):
            break
        free = new
    return free
