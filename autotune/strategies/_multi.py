"""Multi-objective strategies: qLogNEHVI, qNParEGO and multi-objective Thompson sampling.

All three see the objectives as ``Context.Y`` (`n x M`, maximised) with one GP per objective
(a :class:`~botorch.models.ModelListGP` of the project's fitted GPs, :func:`objective_models`),
the outcome constraints and the crash model as the single-objective strategies do, and the
running points as ``Context.X_pending``. The model-free baselines (``random``, ``sobol``, ...)
ignore the objectives and work unchanged.

* ``qlognehvi``: q log noisy expected hypervolume improvement, optimised jointly over the batch
  with the running points as ``X_pending`` (Daulton, Balandat & Bakshy 2020, "Differentiable
  Expected Hypervolume Improvement for Parallel Multi-Objective Bayesian Optimization";
  Daulton, Balandat & Bakshy 2021, "Parallel Bayesian Optimization of Multiple Noisy Objectives
  with Expected Hypervolume Improvement"; the log form of Ament et al. 2023, "Unexpected
  Improvements to Expected Improvement"). The default for several objectives, as in BoTorch and Ax.
  Constraints and crashes enter as BoTorch constraint callables (feasibility-weighted).
* ``qnparego``: each batch point maximises qLogNEI of a random augmented Chebyshev
  scalarisation, weights drawn uniformly from the simplex (Knowles 2006, "ParEGO: a hybrid
  algorithm with on-line landscape approximation for expensive multiobjective optimization
  problems"; the parallel noisy form of Daulton et al. 2020), greedily conditioned on the
  points already chosen and the running ones.
* ``mo_thompson``: each batch point is drawn from one joint posterior sample of all objectives
  over a candidate set: the candidate whose sampled values add the most hypervolume to the
  front of the observed values, the running points' sampled values and the points already
  chosen (TSEMO, Bradford, Schweidtmann & Lapkin 2018, "Efficient multiobjective optimization
  employing Gaussian processes, spectral sampling and a genetic algorithm", with the candidate
  set in place of NSGA-II on the sample and hypervolume improvement as the selection rule).
  Constraint and crash GPs are sampled too; a candidate is kept only where every sampled
  constraint holds.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, ClassVar, cast

import torch
from torch import Tensor

from autotune.exceptions import ModelFitError
from autotune.models import gp_posterior
from autotune.strategies._base import Candidate, Context, Strategy, register
from autotune.strategies._optimize import AcqOptions, int_option, optimize_acquisition

if TYPE_CHECKING:
    from botorch.acquisition import AcquisitionFunction
    from botorch.models import ModelListGP
    from botorch.models.gpytorch import GPyTorchModel


def _Y(ctx: Context) -> Tensor:
    if ctx.Y is None:
        raise ModelFitError("a multi-objective strategy needs several objectives (Context.Y is None).")
    return ctx.Y


def objective_mask(ctx: Context) -> Tensor:
    """A `n` mask of observations with every objective finite (and not failed)."""
    return ctx.ok & torch.isfinite(_Y(ctx)).all(-1)


def objective_models(ctx: Context) -> ModelListGP:
    """One GP per objective over the successful points, fitted once per ask (:class:`ModelListGP`).

    As for a single objective (:class:`autotune.models.Surrogates`), with ``model_failures`` each
    failed point the crash model places in a crash region enters every objective at its worst
    observed value.
    """
    from botorch.models import ModelListGP

    def build() -> ModelListGP:
        Y = _Y(ctx)
        ok = objective_mask(ctx)
        X, Yok = ctx.X[ok], Y[ok]
        if ctx.model_failures and bool(ok.any()) and bool(ctx.failed.any()):
            crash = ctx.constraint_models()[-1][0]
            Xf = ctx.X[ctx.failed]
            with torch.no_grad():
                Xf = Xf[gp_posterior(crash, Xf).mean.reshape(-1) < 0.5]
            X = torch.cat([X, Xf])
            Yok = torch.cat([Yok, Yok.min(0).values.expand(len(Xf), Yok.shape[-1])])
        models = [ctx.fitter.fit(f"objective:{j}", X, Yok[:, j: j + 1]) for j in range(Yok.shape[-1])]
        return ModelListGP(*cast("list[GPyTorchModel]", models))

    return cast("ModelListGP", ctx.models.cached("objectives", build))


def reference_point(ctx: Context) -> Tensor:
    """The `M` reference point (maximised): the optimiser's, else inferred from the successes."""
    if ctx.ref_point is not None:
        return ctx.ref_point
    from autotune.objectives import infer_reference_point

    return infer_reference_point(_Y(ctx)[objective_mask(ctx)])


def _slack(Z: Tensor, k: int, threshold: float) -> Tensor:
    """``threshold - Z[..., k]``: feasible where negative (BoTorch's outcome-constraint convention)."""
    return threshold - Z[..., k]


def _with_constraints(ctx: Context) -> tuple[ModelListGP, dict[str, object]]:
    """The model list (objectives, then constraint and crash GPs) and the acquisition's keywords."""
    from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
    from botorch.models import ModelListGP

    objs = objective_models(ctx)
    cons = ctx.constraint_models()
    if not cons:
        return objs, {}
    m = len(objs.models)
    model = ModelListGP(*cast("list[GPyTorchModel]", [*objs.models, *(c for c, _ in cons)]))
    return model, {
        "objective": IdentityMCMultiOutputObjective(outcomes=list(range(m))),
        "constraints": [partial(_slack, k=m + k, threshold=t) for k, (_, t) in enumerate(cons)],
    }


class _MultiStrategy(Strategy):
    multi_objective: ClassVar[bool] = True

    def __init__(self, mc_samples: int = 128, num_restarts: int = 8, raw_samples: int = 512) -> None:
        self.mc_samples = int_option("mc_samples", mc_samples, 128, 1, 100_000)
        self.num_restarts = int_option("num_restarts", num_restarts, 8, 1, 1_000)
        self.raw_samples = int_option("raw_samples", raw_samples, 512, 1, 100_000)

    @property
    def _opts(self) -> AcqOptions:
        return AcqOptions(num_restarts=self.num_restarts, raw_samples=self.raw_samples)


@register
class QLogNEHVI(_MultiStrategy):
    """q log noisy expected hypervolume improvement, joint over the batch (see the module docstring).

    Args:
        mc_samples: Quasi-MC samples of the joint posterior.
        num_restarts: Gradient-ascent starts.
        raw_samples: Space-filling points scored to choose the starts.
    """

    name = "qlognehvi"

    def build(self, ctx: Context) -> AcquisitionFunction:
        """The qLogNEHVI acquisition on the objective (and constraint) models."""
        from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
        from botorch.sampling import SobolQMCNormalSampler

        from autotune.models._compile import skip_fused_kernel_compile

        skip_fused_kernel_compile()
        model, kw = _with_constraints(ctx)
        sampler = SobolQMCNormalSampler(torch.Size([self.mc_samples]), seed=ctx.stable_seed("qnehvi"))
        pending = ctx.pending if len(ctx.pending) else None
        return qLogNoisyExpectedHypervolumeImprovement(
            model, ref_point=reference_point(ctx).tolist(), X_baseline=ctx.X[objective_mask(ctx)], sampler=sampler,
            X_pending=pending, prune_baseline=True, cache_root=False, **kw,  # type: ignore[arg-type]
        )

    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        X, value = optimize_acquisition(self.build(ctx), ctx.domain, n, self._opts)
        return [Candidate(x, value) for x in X]


@register
class QNParEGO(_MultiStrategy):
    """Random augmented Chebyshev scalarisations, one per batch point (see the module docstring).

    Args:
        mc_samples: Quasi-MC samples of the joint posterior.
        num_restarts: Gradient-ascent starts.
        raw_samples: Space-filling points scored to choose the starts.
    """

    name = "qnparego"

    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        from botorch.acquisition.multi_objective.parego import qLogNParEGO
        from botorch.sampling import SobolQMCNormalSampler
        from botorch.utils.sampling import sample_simplex

        model, kw = _with_constraints(ctx)
        m = _Y(ctx).shape[-1]
        busy = ctx.pending
        out: list[Candidate] = []
        for i in range(n):
            w = sample_simplex(m, seed=ctx.stable_seed(f"parego{i}"), dtype=torch.float64).reshape(-1)
            sampler = SobolQMCNormalSampler(torch.Size([self.mc_samples]), seed=ctx.stable_seed(f"parego_s{i}"))
            acqf = qLogNParEGO(model, X_baseline=ctx.X[objective_mask(ctx)], scalarization_weights=w, sampler=sampler,
                               X_pending=busy if len(busy) else None, prune_baseline=True, cache_root=False,
                               **kw)  # type: ignore[arg-type]
            X, value = optimize_acquisition(acqf, ctx.domain, 1, self._opts)
            out.append(Candidate(X[0], value))
            busy = torch.cat([busy, X[:1]])
        return out


@register
class MOThompsonSampling(Strategy):
    """Multi-objective Thompson sampling by hypervolume improvement of posterior samples.

    Args:
        n_candidates: Size of the candidate set each sample is drawn over (half space-filling,
            half around the observed points).
    """

    name = "mo_thompson"
    multi_objective: ClassVar[bool] = True

    def __init__(self, n_candidates: int = 512) -> None:
        self.n_candidates = int_option("n_candidates", n_candidates, 512, 2, 20_000)

    def ask(self, ctx: Context, n: int) -> list[Candidate]:
        from autotune.objectives import hypervolume, non_dominated

        objs = objective_models(ctx)
        cons = ctx.constraint_models()
        ref = reference_point(ctx)
        Y = _Y(ctx)
        front = Y[ctx.feasible() & objective_mask(ctx)]
        n_pend = len(ctx.pending)
        out: list[Candidate] = []
        chosen = torch.empty(0, Y.shape[-1], dtype=torch.float64)
        for slot in range(n):
            pool = ctx.domain.pool(self.n_candidates, ctx.stable_seed(f"mots{slot}"), around=ctx.X[ctx.ok])
            pts = torch.cat([ctx.pending, pool])
            with torch.no_grad():
                f = torch.cat([objs.posterior(pts).rsample().reshape(len(pts), -1)], -1)
                ok = torch.ones(len(pts), dtype=torch.bool)
                for cm, thr in cons:
                    ok &= gp_posterior(cm, pts).rsample().reshape(-1) >= thr
            pend_f, pool_f, pool_ok = f[:n_pend], f[n_pend:], ok[n_pend:]
            base = torch.cat([front, pend_f[ok[:n_pend]], chosen])
            base = base[non_dominated(base)] if len(base) else base
            hv0 = hypervolume(base, ref)
            cand = pool_ok & non_dominated(torch.cat([base, pool_f]))[len(base):]
            idx = cand.nonzero().reshape(-1)
            if not len(idx):  # nothing improves: the sample's best point on a random scalarisation
                idx = torch.arange(len(pool))
                w = torch.rand(Y.shape[-1], dtype=torch.float64)
                score = ((pool_f - ref) * w).min(-1).values + torch.where(pool_ok, 0.0, -1e9)
                j = int(score.argmax())
                value = 0.0
            else:
                gains = torch.tensor([hypervolume(torch.cat([base, pool_f[i: i + 1]]), ref) - hv0 for i in idx.tolist()])
                k = int(gains.argmax())
                j, value = int(idx[k]), float(gains[k])
            out.append(Candidate(pool[j], value))
            ctx.domain.take(pool[j: j + 1])
            chosen = torch.cat([chosen, pool_f[j: j + 1]])
        return out
