"""Maximise an acquisition function over the model space of a search space.

BoTorch's ``optimize_acqf`` when every column is continuous. Spaces with integer, ordinal,
boolean or categorical columns use :func:`optimize_mixed`, written here because BoTorch's
``optimize_acqf_mixed_alternating`` took 4-10 s per suggestion on our mixed spaces (it makes
hundreds of small acquisition calls, each ~20 ms of GPyTorch overhead). Ours does the same
alternation (L-BFGS-B on the continuous columns, then exhaustive coordinate moves on the
discrete ones) but scores every move of every start in one batched call. Either way the
result is snapped to a legal point with inactive parameters at their fill value.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import torch
from botorch.acquisition import AcquisitionFunction
from torch import Tensor

from autotune.exceptions import ConfigError, shown

if TYPE_CHECKING:
    from autotune.space import SearchSpace
    from autotune.strategies._domain import Domain


def int_option(name: str, value: Any, default: int, low: int = 1, high: int = 1_000_000) -> int:
    """Check an integer strategy option (``true`` and ``8.0`` are refused), as the constructors do.

    Raises:
        ConfigError: Naming ``strategy.options.<name>``, the range, the value and a fix.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"strategy.options.{name}", f"must be an integer in [{low}, {high}]", shown(value),
                          f"use e.g. {name}: {default}.")
    return value


def float_option(name: str, value: Any, default: float, low: float = 0.0, high: float = math.inf,
                 open_low: bool = False, open_high: bool = False) -> float:
    """Check a real strategy option: a finite number (not a bool) in the given interval.

    Raises:
        ConfigError: Naming ``strategy.options.<name>``, the interval, the value and a fix.
    """
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = (value > low if open_low else value >= low) and (value < high if open_high else value <= high)
    if not ok:
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high or high == math.inf else ']'}"
        raise ConfigError(f"strategy.options.{name}", f"must be a finite number in {interval}", shown(value),
                          f"use e.g. {name}: {default}.")
    return float(value)


@dataclass(frozen=True)
class AcqOptions:
    """How hard to optimise an acquisition.

    Attributes:
        num_restarts: Starting points for gradient ascent.
        raw_samples: Random points scored to choose the starts.
        maxiter: L-BFGS-B iterations per restart.
        sample_around_best: Also start from Gaussian steps around the best observed points
            (a quarter of the restarts), so the local optimum of the acquisition next to the
            incumbent is always tried. Without it, EI on Hartmann-6 stalled in a local basin
            while proposing box corners (measured).
        precondition: Run L-BFGS-B in ``z = x / l``, ``l`` the GP's length scales
            (:class:`_Preconditioned`), as Optuna's ``GPSampler`` does; an exact change of
            variables that takes fewer steps on anisotropic models.
        pgtol: L-BFGS-B's projected-gradient tolerance, in those coordinates (Optuna's
            ``sqrt(1e-4)``; the log acquisition's values are in nats).
        straggler_gap: Stop a start that, after ``straggler_after`` iterations, is still this
            many nats below the best start (:func:`_stop_stragglers`); ``None`` never stops one.
        straggler_after: Iterations every start makes before it can be stopped.
    """

    num_restarts: int = 8
    raw_samples: int = 512
    maxiter: int = 200
    sample_around_best: bool = True
    precondition: bool = True
    pgtol: float = 1e-2
    straggler_gap: float | None = 2.0
    straggler_after: int = 10

    def for_data(self, n_train: int | None) -> AcqOptions:
        """The effort for a model on ``n_train`` points: capped above :data:`FULL_EFFORT_UP_TO`.

        Every acquisition value then costs a kernel row and a triangular solve against all the
        points, so the starts and iterations are capped (:data:`LARGE_N_EFFORT`); unchanged
        below, or when the size is unknown (``None``).
        """
        if n_train is None or n_train <= FULL_EFFORT_UP_TO:
            return self
        cap = LARGE_N_EFFORT
        return dataclasses.replace(self, num_restarts=min(self.num_restarts, cap.num_restarts),
                                   raw_samples=min(self.raw_samples, cap.raw_samples), maxiter=min(self.maxiter, cap.maxiter))


FULL_EFFORT_UP_TO = 2_000
"""Acquisitions on models of up to this many points are optimised with the effort asked for."""

LARGE_N_EFFORT = AcqOptions(num_restarts=4, raw_samples=256, maxiter=100)
"""The most effort spent on an acquisition above :data:`FULL_EFFORT_UP_TO` points
(``benchmarks/results/ask_scaling.md``)."""


def train_size(acqf: AcquisitionFunction) -> int | None:
    """The number of points of the GP under ``acqf`` (``None`` when it has no single GP)."""
    train = getattr(getattr(acqf, "model", None), "train_inputs", None)
    inputs = train[0] if isinstance(train, tuple) and train else None
    return int(inputs.shape[-2]) if isinstance(inputs, Tensor) else None


def optimize_acquisition(
    acqf: AcquisitionFunction, space: SearchSpace | Domain, q: int = 1, opts: AcqOptions | None = None
) -> tuple[Tensor, float]:
    """Maximise ``acqf`` jointly over ``q`` points.

    Args:
        acqf: An acquisition taking `b x q x d` model-space tensors.
        space: The search space, or the :class:`~autotune.strategies.Domain` of the ask
            (``ctx.domain``): its fixed columns are held on every path, and over a candidate
            set the acquisition is scored on the remaining candidates (a batch greedily,
            each point pending for the next: BoTorch's ``optimize_acqf_discrete``).
        q: Points optimised jointly.
        opts: Optimiser effort.

    Returns:
        A `q x d` tensor of legal model-space points and the acquisition value.
    """
    from botorch.optim import optimize_acqf

    from autotune.models._threads import cache_blas_limits
    from autotune.strategies._domain import as_domain

    cache_blas_limits()
    domain = as_domain(space)
    space = domain.space
    opts = (opts or AcqOptions()).for_data(train_size(acqf))
    if domain.candidates is not None:
        return _over_candidates(acqf, domain, q)
    bounds = domain.bounds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if not space.discrete_dims() and not space.cat_dims():
            starts = _initial_conditions(acqf, bounds, q, opts)
            scale = _scales(acqf, space.dim, opts).to(bounds)
            options: dict[str, Any] = {"maxiter": opts.maxiter, "batch_limit": opts.num_restarts, "pgtol": opts.pgtol,
                                       "callback": _stop_stragglers(opts) if q == 1 else None}
            X, val = optimize_acqf(
                _Preconditioned(acqf, scale), bounds=bounds / scale, q=q, num_restarts=len(starts),
                batch_initial_conditions=starts / scale, options=options,
                fixed_features={j: v / float(scale[j]) for j, v in domain.fixed.items()} or None,
            )
            X = domain.apply_fixed((X.detach() * scale).reshape(q, -1))
            return X, float(torch.as_tensor(val).reshape(-1)[0])
        if q == 1:
            return optimize_mixed(acqf, domain, opts)
        # Sequential greedy over the batch for MC acquisitions (BoTorch's own q > 1 strategy).
        chosen: list[Tensor] = []
        base_pending = getattr(acqf, "X_pending", None)
        value = float("nan")
        for _ in range(q):
            x, value = optimize_mixed(acqf, domain, opts)
            chosen.append(x)
            stack = torch.cat(chosen)
            acqf.set_X_pending(stack if base_pending is None else torch.cat([base_pending, stack]))
        acqf.set_X_pending(base_pending)
        return torch.cat(chosen), value


def _over_candidates(acqf: AcquisitionFunction, domain: Domain, q: int) -> tuple[Tensor, float]:
    """The best remaining candidate (``q = 1``) or a greedy batch of them; the chosen ones are taken."""
    C = domain.remaining()
    if len(C) < q:
        raise ValueError(f"{q} points asked of {len(C)} remaining candidates")  # the optimiser checks first
    if q == 1:
        vals = _score(acqf, C)
        i = int(vals.argmax())
        X, value = C[i: i + 1].clone(), float(vals[i])
    else:
        from botorch.optim import optimize_acqf_discrete

        X, vals = optimize_acqf_discrete(acqf, q, C, unique=True)
        value = float(vals.reshape(-1)[0])
    domain.take(X)
    return X, value


class _Preconditioned(AcquisitionFunction):
    """``acqf`` over scaled inputs ``z = x / l``: ``a(z) = acqf(z * l)``.

    With ``l`` the GP's length scales, every direction of ``a`` varies on the same scale, so
    L-BFGS-B converges in fewer steps (Optuna's ``optim_mixed._gradient_ascent_batched``).
    """

    scale: Tensor

    def __init__(self, acqf: AcquisitionFunction, scale: Tensor) -> None:
        super().__init__(model=acqf.model)
        self.acqf = acqf
        self.register_buffer("scale", scale)

    def forward(self, X: Tensor) -> Tensor:
        return cast("Tensor", self.acqf(X * self.scale))


def _length_scales(acqf: AcquisitionFunction, d: int) -> Tensor:
    """Per-column scales for :class:`_Preconditioned`: the length scales of the stationary ARD
    kernels (Matern, RBF) under ``acqf``'s GP on their columns, 1 on every other column.

    Any positive scale is an exact change of variables; the length scales make it a well
    conditioned one. Columns of a categorical kernel, model lists and batched hyperparameters
    keep scale 1.
    """
    from gpytorch.kernels import MaternKernel, RBFKernel

    scale = torch.ones(d, dtype=torch.float64)
    model: Any = getattr(acqf, "model", None)
    gp = getattr(model, "model", model)  # a LeanGP wraps the GPyTorch model
    stack = [getattr(gp, "covar_module", None)]
    while stack:
        k = stack.pop()
        if isinstance(k, (MaternKernel, RBFKernel)):
            cols = list(range(d)) if k.active_dims is None else k.active_dims.tolist()
            ls = k.lengthscale.detach().reshape(-1)
            if ls.numel() == len(cols) and cols and max(cols) < d:
                scale[cols] = ls.to(scale).clamp_min(1e-3)
        elif k is not None:
            stack += [getattr(k, "base_kernel", None), *getattr(k, "kernels", [])]
    return scale


def _scales(acqf: AcquisitionFunction, d: int, opts: AcqOptions) -> Tensor:
    """The preconditioning scale of every column (ones when ``opts.precondition`` is off)."""
    return _length_scales(acqf, d) if opts.precondition else torch.ones(d, dtype=torch.float64)


def _stop_stragglers(opts: AcqOptions) -> Callable[..., None] | None:
    """An L-BFGS-B callback for a batch of starts that stops the stragglers.

    The starts run as one batch, so the slowest sets the number of acquisition evaluations. At
    n = 50-60 on Hartmann-6, a few asks took 80-120 evaluations instead of about 20: one or two
    raw starts, beginning at log EI -10 to -12, crossed a low plateau for 50-100 steps to the
    optimum the incumbent starts had reached in 10. A start still ``opts.straggler_gap`` nats
    below the best start after ``opts.straggler_after`` iterations is stopped where it is (it
    stays a candidate). In the spirit of multi-level single linkage (Rinnooy Kan & Timmer 1987),
    which spends no local search where a better one already leads.
    """
    gap = opts.straggler_gap
    if gap is None:
        return None
    best = [math.inf]
    steps: dict[int, int] = {}

    def callback(intermediate_result: Any) -> None:  # scipy passes the result under this name only
        key = id(intermediate_result.x)  # each start's iterate is one array, updated in place
        steps[key] = steps.get(key, 0) + 1
        loss = float(intermediate_result.fun)  # the negated acquisition
        best[0] = min(best[0], loss)
        if steps[key] >= opts.straggler_after and loss > best[0] + gap:
            raise StopIteration

    return callback


def _initial_conditions(acqf: AcquisitionFunction, bounds: Tensor, q: int, opts: AcqOptions) -> Tensor:
    """`b x q x d` starts: BoTorch's (from ``raw_samples`` space-filling points) plus, for q = 1
    with ``sample_around_best``, the best-scoring steps around the incumbents.

    Incumbent starts are a quarter of the restarts, kept apart from the rest: mixed into one
    pool (BoTorch's own ``sample_around_best``) they crowd out every other start once the
    acquisition near the incumbent is high, and a better basin elsewhere is missed (measured in
    ``benchmarks/results/acq_effort.md``).
    """
    from botorch.optim.initializers import (
        gen_batch_initial_conditions,
        sample_points_around_best,
    )

    n_near = max(1, opts.num_restarts // 4) if opts.sample_around_best and q == 1 else 0
    starts = gen_batch_initial_conditions(
        acqf, bounds, q=q, num_restarts=max(opts.num_restarts - n_near, 1), raw_samples=opts.raw_samples,
        options={"sample_around_best": opts.sample_around_best and q > 1},
    )
    if n_near:
        with _mean_only():
            near = sample_points_around_best(_with_fewer_baseline(acqf), max(opts.raw_samples // 4, n_near),
                                             sigma=1e-3, bounds=bounds)
        if near is not None and len(near):
            best = _score(acqf, near).topk(min(n_near, len(near))).indices
            starts = torch.cat([starts, near[best].unsqueeze(-2)])
    return starts


class _BaselineView:
    """An acquisition seen with another ``X_baseline`` (everything else is the acquisition's own)."""

    def __init__(self, acqf: AcquisitionFunction, X_baseline: Tensor) -> None:
        self._acqf = acqf
        self.X_baseline = X_baseline

    def __getattr__(self, name: str) -> Any:
        return getattr(self._acqf, name)


def _with_fewer_baseline(acqf: AcquisitionFunction, limit: int = FULL_EFFORT_UP_TO) -> Any:
    """``acqf``, or above ``limit`` observed points a view of it with only ``limit`` of them as baseline.

    BoTorch's ``sample_points_around_best`` ranks the baseline by the posterior mean, which at
    n points evaluates two `n x n` kernel matrices (10 of 42 s of an ask at n = 10,000). Above
    ``limit`` it ranks the ``limit`` best observed points instead (by the model's training
    targets when they line up with the baseline, else a fixed random subset).
    """
    from botorch.optim.utils.acquisition_utils import get_X_baseline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        X = get_X_baseline(acqf)
    if X is None or len(X) <= limit:
        return acqf
    targets = getattr(getattr(acqf, "model", None), "train_targets", None)
    if isinstance(targets, Tensor) and targets.shape == X.shape[:1]:
        keep = targets.argsort(descending=bool(getattr(acqf, "maximize", True)))[:limit]
    else:
        keep = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))[:limit].to(X.device)
    return _BaselineView(acqf, X[keep.sort().values])


def _mean_only() -> Any:
    """Posteriors without variances: BoTorch's ``sample_points_around_best`` reads only the mean at
    every observed point, and their variances cost `n^2` each (6 of 20 s of an ask at n = 5,000)."""
    import gpytorch

    return gpytorch.settings.skip_posterior_variances()


def _score(acqf: AcquisitionFunction, X: Tensor, chunk: int = 2048) -> Tensor:
    """Acquisition values of `n x d` points (each its own q = 1 batch), as a `n` tensor."""
    with torch.no_grad():
        return torch.cat([acqf(c.unsqueeze(-2)) for c in X.split(chunk)]).nan_to_num(nan=-torch.inf)


def optimize_mixed(
    acqf: AcquisitionFunction, space: SearchSpace | Domain, opts: AcqOptions, n_rounds: int = 3, max_moves: int = 16
) -> tuple[Tensor, float]:
    """Maximise a q = 1 acquisition over a space with discrete or categorical columns.

    1. Score ``raw_samples`` legal space-filling points (plus, with ``sample_around_best``,
       steps around the best observed points); keep the best ``num_restarts``.
    2. Alternate, for ``n_rounds``: L-BFGS-B on the continuous columns of all starts at once
       (discrete columns held), then for every start and every discrete column, every
       allowed value (the ``max_moves`` nearest for long integer ranges) scored in one call,
       keeping the best move.

    A fixed column of a :class:`~autotune.strategies.Domain` is a grid of one value.

    Returns:
        A `1 x d` legal point and its acquisition value.
    """
    from autotune.strategies._domain import as_domain

    domain = as_domain(space)
    space = domain.space
    grids = {**space.discrete_dims(), **space.cat_dims(), **{j: [v] for j, v in domain.fixed.items()}}
    cont = [i for i in range(space.dim) if i not in grids]  # floats, and integers too long to list (relaxed)
    if not cont and math.prod(len(g) for g in grids.values()) <= EXHAUSTIVE_CELLS:
        return _exhaustive(acqf, space, grids)
    pool = domain.pool(opts.raw_samples, seed=int(torch.randint(0, 2**31 - 1, (1,))))
    if opts.sample_around_best:
        from botorch.optim.initializers import sample_points_around_best

        with _mean_only():
            near = sample_points_around_best(acqf, max(opts.raw_samples // 4, 1), sigma=1e-2, bounds=domain.bounds())
        if near is not None:
            pool = torch.cat([pool, domain.apply_fixed(near)])
    vals = _score(acqf, pool)
    k = min(opts.num_restarts, len(pool))
    starts = pool[vals.topk(k).indices]
    best_vals = vals.topk(k).values
    scale = _scales(acqf, space.dim, opts)
    for _ in range(n_rounds):
        before = starts.clone()
        if cont:
            starts = _lbfgs(acqf, starts, cont, opts, scale)
            starts = domain.apply_fixed(starts)
            best_vals = _score(acqf, starts)
        moves, owner = [], []
        for j, grid in grids.items():
            g = torch.tensor(grid, dtype=torch.float64)
            for s in range(len(starts)):
                vals_j = g
                if len(g) > max_moves:
                    vals_j = g[(g - starts[s, j]).abs().argsort()[:max_moves]]
                cand = starts[s].repeat(len(vals_j), 1)
                cand[:, j] = vals_j
                moves.append(cand)
                owner += [s] * len(vals_j)
        if moves:
            M = domain.apply_fixed(torch.cat(moves))
            mv = _score(acqf, M)
            own = torch.tensor(owner)
            for s in range(len(starts)):
                sel = (own == s).nonzero().squeeze(-1)
                j = int(mv[sel].argmax())
                if mv[sel][j] > best_vals[s]:
                    starts[s], best_vals[s] = M[sel][j], mv[sel][j]
        if torch.equal(before, starts):
            break
    i = int(best_vals.argmax())
    return starts[i: i + 1].clone(), float(best_vals[i])


EXHAUSTIVE_CELLS = 8192
"""A space whose columns are all discrete with at most this many cells is maximised exactly:
every cell scored (a few batched acquisition calls), instead of the local moves above, which
can stall on a categorical plateau (a tabular architecture space: the best cell was missed
where Optuna's GPSampler found it, ``benchmarks/results/compare_dev.md``)."""


def _exhaustive(acqf: AcquisitionFunction, space: SearchSpace, grids: dict[int, list[float]]) -> tuple[Tensor, float]:
    """The exact maximiser over every legal cell, observed cells left out when they can be read.

    Cells that differ only in inactive parameters are scored once (``SearchSpace.canonicalize_tensor``).
    """
    import itertools

    order = sorted(grids)
    cells = torch.tensor(list(itertools.product(*(grids[j] for j in order))), dtype=torch.float64)
    X = torch.empty(len(cells), space.dim, dtype=torch.float64)
    X[:, order] = cells
    X = torch.unique(space.canonicalize_tensor(X), dim=0)
    seen = _observed(acqf, space)
    if seen is not None and len(seen) and len(seen) < len(X):
        fresh = ~(torch.cdist(X, seen) < 1e-9).any(dim=-1)
        if fresh.any():
            X = X[fresh]
    vals = _score(acqf, X)
    i = int(vals.argmax())
    return X[i: i + 1].clone(), float(vals[i])


def _observed(acqf: AcquisitionFunction, space: SearchSpace) -> Tensor | None:
    """The model's training points, canonicalised, when the acquisition exposes a single GP."""
    train = getattr(getattr(acqf, "model", None), "train_inputs", None)
    inputs = train[0] if isinstance(train, tuple) and train else None
    if not isinstance(inputs, Tensor) or inputs.dim() != 2 or inputs.shape[-1] != space.dim:
        return None  # batched (fantasy) models: no exclusion, the optimiser replaces a duplicate
    return space.canonicalize_tensor(inputs)


def _lbfgs(acqf: AcquisitionFunction, starts: Tensor, cols: list[int], opts: AcqOptions, scale: Tensor) -> Tensor:
    """L-BFGS-B on columns ``cols`` of every start, each start its own problem (BoTorch's batched
    L-BFGS-B, as ``optimize_acqf`` runs it), in preconditioned coordinates ``z = x / scale``."""
    from botorch.optim.batched_lbfgs_b import fmin_l_bfgs_b_batched

    base = starts.clone()
    s = scale[cols].to(base)

    def f(z: Any, batch_indices: list[int]) -> tuple[Any, Any]:
        Z = torch.from_numpy(z).to(base).view(len(batch_indices), len(cols)).requires_grad_(True)
        X = base[batch_indices].clone()
        X[:, cols] = Z * s
        v = acqf(X.unsqueeze(-2))
        v = torch.where(torch.isfinite(v), v, torch.full_like(v, -1e6))
        (g,) = torch.autograd.grad(-v.sum(), Z)
        return (-v).detach().cpu().numpy(), g.cpu().numpy()

    z, _, _ = fmin_l_bfgs_b_batched(
        f, x0=(base[:, cols] / s).cpu().numpy(), bounds=[(0.0, float(1.0 / b)) for b in s],
        maxiter=opts.maxiter, pgtol=opts.pgtol, pass_batch_indices=True, callback=_stop_stragglers(opts),
    )
    out = base.clone()
    out[:, cols] = (torch.as_tensor(z, dtype=base.dtype).view(len(base), len(cols)) * s).clamp(0.0, 1.0)
    return out


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
    pts = [space.from_unit_tensor(U)]
    if around is not None and len(around):
        cpu = torch.device("cpu")  # the same draws whatever the default device
        g = torch.Generator().manual_seed(seed)
        m = max(n // 4, 1)
        idx = torch.randint(len(around), (m,), generator=g, device=cpu)
        base = torch.tensor([space.to_unit(r) for r in around.tolist()], dtype=torch.float64, device=cpu)[idx]
        steps = (base + scale * torch.randn(m, space.dim, generator=g, dtype=torch.float64, device=cpu)).clamp(0, 1 - 1e-9)
        pts.append(space.from_unit_tensor(steps))
    return torch.cat(pts)


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
