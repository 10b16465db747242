"""GP surrogates over the model space, fitted robustly with warm starts.

Reused from BoTorch/GPyTorch: ``SingleTaskGP``, ``CategoricalKernel`` (for category
indices, multiplied with a Matérn/RBF kernel on the ordered columns), ``Standardize``, the
dimension-scaled length-scale prior of Hvarfner et al. (2024), and ``fit_gpytorch_mll``.

Written here: :class:`ConditionalFill`, the input transform that makes a prediction
independent of inactive parameters (it overwrites their columns with a fixed fill value,
so two points that differ only in inactive parameters are the same input to the kernel),
and :class:`GPFitter`, which warm-starts hyperparameters and falls back on failure.

The likelihood keeps BoTorch's LogNormal(-4, 1) noise prior but lowers the noise floor from
BoTorch's 1e-4 to :data:`NOISE_FLOOR` (standardised units): a deterministic objective (a
simulation, a benchmark function) could not be resolved finer than that floor, and
convergence stalled near the optimum (measured in ``benchmarks/results/compare.md``: median
log10 regret after 60 evaluations on Hartmann-6 -3.21 with 1e-4, -3.80 with 1e-6, 10 seeds).
A noisy objective learns its noise above the floor either way.

Inputs are already normalised: the search-space encoding maps every ordered parameter to
``[0, 1]`` by its known bounds (better than bounds learned from the data), so no ``Normalize``
transform is stacked on top.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, cast

import torch
from botorch.models.transforms.input import InputTransform
from torch import Tensor

from autotune.exceptions import ModelFitError

NOISE_FLOOR = 1e-6
"""Smallest observation-noise variance a GP may infer, in standardised units (BoTorch: 1e-4)."""

FIT_ALL_UP_TO = 1_000
"""Up to this many points a GP's hyperparameters are fitted on all of them (as always)."""

FIT_SUBSAMPLE = 500
"""Above :data:`FIT_ALL_UP_TO` points, the hyperparameters are fitted on this many of them (a
fixed random subsample), then the GP is conditioned on every point with those hyperparameters:
one Cholesky factorisation at size n instead of one per optimiser step. A cold fit from scratch
took 14-33 s at n = 1,000 and 97-198 s at n = 2,000 on a loaded 2-core machine, so fitting on
1,000 points would leave no room for the 30 s an ask may take at n = 10,000
(``benchmarks/results/ask_scaling.md``)."""

if TYPE_CHECKING:
    from botorch.models.model import Model
    from botorch.posteriors.gpytorch import GPyTorchPosterior

    from autotune.models._lengthscale import LengthScaleBounds
    from autotune.space import SearchSpace

logger = logging.getLogger(__name__)


def gp_posterior(model: Model, X: Tensor) -> GPyTorchPosterior:
    """``model.posterior(X)``, typed as the GPyTorch posterior it is.

    Every model here is a single-output GPyTorch GP, whose posterior has ``mean`` and
    ``variance``; BoTorch types ``Model.posterior`` as the base ``Posterior``, which has neither.
    """
    return cast("GPyTorchPosterior", model.posterior(X))

Kernel = Literal["matern52", "rbf"]


def prime_posterior(model: Model, previous: tuple[Tensor, Tensor] | None = None) -> bool:
    """Build an eval-mode GP's prediction caches from one kernel matrix and one Cholesky factor.

    GPyTorch, under BoTorch's posterior settings (``fast_pred_var``), builds the mean cache and
    the variance cache of an exact GP separately: two evaluations of the `n x n` kernel, two
    Cholesky factorisations, and the explicit inverse factor by a triangular solve against the
    identity (at n = 10,000, 17 s of a 65 s ask). Here ``K = L L^T`` is factorised once, the mean
    cache is ``K^{-1}(y - m)``, and each posterior's variance comes from a triangular solve
    ``L^{-1} K(X, x)`` against that factor (:class:`_OneFactorPrediction`): the same posterior to
    rounding (``tests/models/test_prime_posterior.py``) at the same `n^2` cost per call.

    With ``previous``, the training inputs and Cholesky factor of a GP with the same
    hyperparameters whose inputs are the first rows of this one's (a study between two refits,
    one or a few points later), the factor is extended by the new rows instead of recomputed:
    `O(n^2 k)` for k new points instead of the `n x n` kernel and an `O(n^3)` factorisation.

    Args:
        model: A GPyTorch exact GP in eval mode.
        previous: ``(train_inputs, cholesky)`` of an earlier GP with these hyperparameters.

    Returns:
        Whether the caches were built (``False``: a model in training mode, or with another
        prediction strategy, left to GPyTorch).
    """
    from gpytorch import settings
    from gpytorch.models import ExactGP
    from gpytorch.models.exact_prediction_strategies import DefaultPredictionStrategy, prediction_strategy
    from gpytorch.utils.memoize import add_to_cache
    from linear_operator.operators import RootLinearOperator
    from linear_operator.utils.cholesky import psd_safe_cholesky

    if not isinstance(model, ExactGP) or model.training or model.train_inputs is None:
        return False
    train_inputs = list(model.train_inputs)
    with torch.no_grad():
        prior = model._get_train_prior_distribution(train_inputs)
        kw = {"train_inputs": train_inputs, "train_prior_dist": prior, "train_labels": model.train_targets,
              "likelihood": model.likelihood}
        if type(prediction_strategy(**kw)) is not DefaultPredictionStrategy:
            return False
        strategy = _one_factor_class()(**kw)
        joint = strategy.lik_train_train_covar
        L = _extended_factor(joint, train_inputs[0], previous) if previous is not None else None
        if L is None:
            L = psd_safe_cholesky(joint.to_dense())
        offset = (strategy.train_labels - model.likelihood(prior, train_inputs).loc).unsqueeze(-1)
        mean_cache = torch.cholesky_solve(offset, L).squeeze(-1)
    strategy.cholesky = L
    add_to_cache(joint, "root_decomposition", RootLinearOperator(L))
    add_to_cache(strategy, "mean_cache", mean_cache, settings.observation_nan_policy.value())
    model.prediction_strategy = strategy
    return True


def _extended_factor(joint: Any, inputs: Tensor, previous: tuple[Tensor, Tensor]) -> Tensor | None:
    """The Cholesky factor of ``joint`` from the factor of its leading block, or ``None`` if it does not apply.

    ``[[L, 0], [B^T, C]]`` with ``B = L^-1 K(X, X_new)`` and ``C C^T = K(X_new, X_new) - B^T B``.
    """
    old_inputs, L = previous
    m, n = old_inputs.shape[-2], inputs.shape[-2]
    if L.dim() != 2 or inputs.dim() != 2 or not m < n or L.shape[-1] != m or not torch.equal(inputs[:m], old_inputs):
        return None
    with warnings.catch_warnings():  # slicing the noise diagonal goes through a sparse tensor, which warns
        warnings.simplefilter("ignore", UserWarning)
        cross, new = joint[:m, m:].to_dense(), joint[m:, m:].to_dense()
    B = torch.linalg.solve_triangular(L, cross, upper=False)
    C, info = torch.linalg.cholesky_ex(new - B.mT @ B)
    if int(info) != 0:  # not positive definite (e.g. a duplicate point): factorise afresh
        return None
    top = torch.cat([L, L.new_zeros(m, n - m)], dim=-1)
    return torch.cat([top, torch.cat([B.mT, C], dim=-1)], dim=-2)


def _one_factor_class() -> type:
    """:class:`_OneFactorPrediction`, defined on first use (it subclasses a GPyTorch class)."""
    global _OneFactorPrediction
    if _OneFactorPrediction is None:
        from gpytorch import settings
        from gpytorch.models.exact_prediction_strategies import DefaultPredictionStrategy
        from linear_operator import to_dense, to_linear_operator

        class OneFactorPrediction(DefaultPredictionStrategy):  # type: ignore[misc]
            """GPyTorch's exact prediction, the variance by a triangular solve against ``cholesky``.

            Without a factor (e.g. the strategy of a model conditioned on fantasies, which
            GPyTorch builds by this class), it is GPyTorch's own.
            """

            cholesky: Tensor | None = None

            def exact_predictive_covar(self, test_test_covar: Any, test_train_covar: Any) -> Any:
                if self.cholesky is None or settings.skip_posterior_variances.on():
                    return super().exact_predictive_covar(test_test_covar, test_train_covar)
                k = to_dense(test_train_covar)  # ... x q x n
                # one solve for every batch's points (a batched solve would copy L per batch)
                U = torch.linalg.solve_triangular(self.cholesky, k.reshape(-1, k.shape[-1]).mT, upper=False)
                U = U.mT.reshape(k.shape)
                correction = U @ U.mT  # K(x, X) K^{-1} K(X, x)
                if torch.is_tensor(test_test_covar):
                    return to_linear_operator(test_test_covar - correction)
                return test_test_covar + to_linear_operator(-correction)

        _OneFactorPrediction = OneFactorPrediction
    return _OneFactorPrediction


_OneFactorPrediction: type | None = None


class ConditionalFill(InputTransform, torch.nn.Module):
    """Overwrite the columns of inactive parameters with their fill value.

    Args:
        space: The search space whose conditions decide which columns are active.
    """

    fill: Tensor  # a registered buffer (torch types buffers `Tensor | Module`)

    def __init__(self, space: SearchSpace) -> None:
        super().__init__()
        self.transform_on_train = True
        self.transform_on_eval = True
        self.transform_on_fantasize = True
        self._space = space
        self.register_buffer("fill", torch.tensor(space.fill_vector(), dtype=torch.float64))

    def transform(self, X: Tensor) -> Tensor:
        """Args:
            X: A `batch_shape x n x d` tensor of model-space points.

        Returns:
            A `batch_shape x n x d` tensor with inactive columns set to their fill value.
        """
        mask = self._space.active_mask(X)
        return torch.where(mask, X, self.fill.to(X))

    def equals(self, other: InputTransform) -> bool:
        return isinstance(other, ConditionalFill) and other._space is self._space


def make_gp(
    X: Tensor,
    Y: Tensor,
    space: SearchSpace,
    kernel: Kernel = "matern52",
    bounds: LengthScaleBounds | None = None,
) -> Model:
    """Build an unfitted GP for ``Y`` over model-space inputs ``X``.

    Args:
        X: A `n x d` tensor of model-space points.
        Y: A `n x 1` tensor of observations.
        space: The search space (for categorical columns and conditions).
        kernel: ``matern52`` (Matérn-5/2 ARD, the default) or ``rbf``.
        bounds: The user's length-scale bounds (``None``: BoTorch's lower bound 0.025 only).

    Returns:
        A ``SingleTaskGP`` (with a categorical-times-stationary kernel when the space has
        categorical columns), learned homoscedastic noise and a ``Standardize`` outcome transform.
    """
    from botorch.models import SingleTaskGP
    from botorch.models.kernels.categorical import CategoricalKernel
    from botorch.models.transforms.outcome import Standardize
    from botorch.models.utils.gpytorch_modules import (
        get_covar_module_with_dim_scaled_prior,
    )
    from gpytorch.constraints import GreaterThan
    from gpytorch.kernels import ScaleKernel
    from gpytorch.likelihoods import GaussianLikelihood
    from gpytorch.priors import LogNormalPrior

    use_rbf = kernel == "rbf"
    tf = ConditionalFill(space) if space.is_conditional else None
    d = X.shape[-1]
    cat = sorted(space.cat_dims())
    ordered = [i for i in range(d) if i not in cat]
    if not cat:
        covar = get_covar_module_with_dim_scaled_prior(ard_num_dims=d, use_rbf_kernel=use_rbf)
        _log_length_scale(covar)
        _bound_length_scale(covar, bounds, ordered)
    else:
        # Product of a stationary kernel on the ordered columns and a categorical kernel
        # (exp of the mean mismatch over categories, BoTorch's CategoricalKernel) on the
        # category indices, under one output scale. Cheaper to fit than the sum-plus-product
        # of MixedSingleTaskGP with the same expressiveness on our spaces (measured).
        ck = CategoricalKernel(ard_num_dims=len(cat), active_dims=cat, lengthscale_constraint=GreaterThan(1e-6))
        if ordered:
            ok = get_covar_module_with_dim_scaled_prior(
                ard_num_dims=len(ordered), use_rbf_kernel=use_rbf, active_dims=ordered
            )
            _log_length_scale(ok)
            _bound_length_scale(ok, bounds, ordered)
            covar = ScaleKernel(ok * ck)
        else:
            covar = ScaleKernel(ck)
    noise_prior = LogNormalPrior(loc=-4.0, scale=1.0)
    likelihood = GaussianLikelihood(
        noise_prior=noise_prior,
        # noise = floor + exp(raw), as Optuna's GPRegressor: BoTorch's untransformed noise next to
        # its floor made warm refits take the full 50 L-BFGS-B steps (10-20 now; same optimum)
        noise_constraint=GreaterThan(NOISE_FLOOR, transform=torch.exp, inv_transform=torch.log,
                                     initial_value=noise_prior.mode),
    )
    return SingleTaskGP(X, Y, likelihood=likelihood, covar_module=covar, outcome_transform=Standardize(m=1),
                        input_transform=tf)


def _log_length_scale(kernel: Any) -> None:
    """Fit ``kernel``'s length scales in log space (same lower bound, same prior, same optimum).

    L-BFGS-B converges in fewer steps there than on BoTorch's untransformed scale (Optuna's
    ``GPRegressor`` fits log inverse squared length scales).
    """
    from gpytorch.constraints import GreaterThan

    c = kernel.raw_lengthscale_constraint
    start = kernel.lengthscale.detach()
    kernel.register_constraint("raw_lengthscale",
                               GreaterThan(c.lower_bound, transform=torch.exp, inv_transform=torch.log))
    kernel.lengthscale = start


def _bound_length_scale(kernel: Any, bounds: LengthScaleBounds | None, columns: list[int]) -> None:
    """Replace ``kernel``'s length-scale constraint by the user's bounds on ``columns`` (in place).

    The bounds are box constraints of the L-BFGS-B fit (no transform, as BoTorch's own lower
    bound); the initial length scale is BoTorch's prior mode clipped into them.
    """
    if bounds is None:
        return
    from gpytorch.constraints import Interval

    lo = torch.tensor([bounds.lower[i] for i in columns], dtype=torch.float64).unsqueeze(0)
    hi = torch.tensor([min(bounds.upper[i], 1e4) for i in columns], dtype=torch.float64).unsqueeze(0)  # finite
    start = kernel.lengthscale.detach().to(lo)
    kernel.register_constraint("raw_lengthscale", Interval(lo, hi, transform=None))
    kernel.lengthscale = torch.minimum(torch.maximum(start, lo), hi)


def _hyper_state(model: Model) -> dict[str, Tensor]:
    """The hyperparameters of a model, without data-dependent transform buffers."""
    return {
        k: v.detach().clone()
        for k, v in model.state_dict().items()
        if not k.startswith(("outcome_transform", "input_transform"))
    }


class GPFitter:
    """Fit GPs by name, warm-starting each from its previous hyperparameters.

    On a numerical failure (not positive definite, NaN) it retries with more jitter, then
    reuses the last good hyperparameters without fitting; if even that fails it raises
    :class:`ModelFitError`, which the optimiser turns into a space-filling point.

    Args:
        space: The search space.
        kernel: ``matern52`` or ``rbf``.
        max_fit_iter: L-BFGS-B iterations of a fit from scratch.
        warm_fit_iter: L-BFGS-B iterations of a warm-started fit (one new point moves the
            optimum little; this caps the cost at large n).
        fit_all_up_to: Up to this many points, optimise the hyperparameters on all of them;
            above, on a random subsample of ``fit_subsample`` (seed 0), then condition the GP on
            every point with them. ``None``: always on all of them.
        fit_subsample: The size of that subsample.
        refit_fraction: Re-optimise the hyperparameters of a name only once its data have
            grown by this fraction since they were last optimised (at least one point); in
            between, the GP is conditioned on all the data with the previous
            hyperparameters, which costs one Cholesky factorisation instead of a fit. At the
            default 0.02 that is every call up to 50 points, every 4th at 200, every 20th at
            1,000; the regret cost is measured in ``benchmarks/results/``. 0 re-optimises
            whenever the data grow.
        bounds: The user's length-scale bounds in the model space
            (:func:`autotune.models.length_scale_bounds`), applied to every GP it fits.
        fit_gtol: L-BFGS-B's projected-gradient tolerance on the summed negative log marginal
            likelihood (Optuna's ``fit_kernel_params``: 1e-2), in log length scale and log
            noise; BoTorch's loss is the mean, so the tolerance passed is ``fit_gtol / n``
            (n all the points, also above ``fit_all_up_to``, where the loss averages the
            subsample: a tighter tolerance there than Optuna's, bounded by the iteration caps).
    """

    def __init__(
        self,
        space: SearchSpace,
        kernel: Kernel = "matern52",
        max_fit_iter: int = 200,
        warm_fit_iter: int = 50,
        refit_fraction: float = 0.02,
        bounds: LengthScaleBounds | None = None,
        fit_all_up_to: int | None = FIT_ALL_UP_TO,
        fit_subsample: int = FIT_SUBSAMPLE,
        fit_gtol: float = 1e-2,
    ) -> None:
        self.space = space
        self.fit_gtol = fit_gtol
        self.bounds = bounds
        self.fit_all_up_to = fit_all_up_to
        self.fit_subsample = fit_subsample
        self.kernel: Kernel = kernel
        self.max_fit_iter = max_fit_iter
        self.warm_fit_iter = warm_fit_iter
        self.refit_fraction = refit_fraction
        self._good: dict[str, dict[str, Tensor]] = {}
        # name -> (the hyperparameter state it was computed with, (train inputs, Cholesky factor))
        self._factors: dict[str, tuple[dict[str, Tensor], tuple[Tensor, Tensor]]] = {}
        self._fitted_n: dict[str, int] = {}  # data size when the hyperparameters were last optimised
        #: How the last fit of each name ended: ``fit``, ``jitter``, ``reused`` (for tests and logs).
        self.last_outcome: dict[str, str] = {}

    def fit(self, name: str, X: Tensor, Y: Tensor, fit_fn: Callable[[Any], Any] | None = None) -> Model:
        """Fit (or refit) the GP called ``name`` on ``X``/``Y``.

        Args:
            name: The output's name (e.g. ``"objective"``, ``"constraint:n_params"``).
            X: A `n x d` tensor of model-space points.
            Y: A `n x 1` tensor of finite observations.
            fit_fn: Replaces ``fit_gpytorch_mll`` (tests inject failures through it).

        Returns:
            The fitted model, in eval mode.
        """
        import gpytorch

        from autotune.models._threads import cache_blas_limits

        cache_blas_limits()
        # Exact solves throughout (GPyTorch's default turns iterative above 800 points), and
        # gradients on even when called lazily under ``torch.no_grad()`` (e.g. a constraint
        # model first needed while an acquisition is being scored).
        with gpytorch.settings.max_cholesky_size(10_000), torch.enable_grad():
            return self._fit(name, X, Y, fit_fn)

    def _fit(self, name: str, X: Tensor, Y: Tensor, fit_fn: Callable[[Any], Any] | None) -> Model:
        import gpytorch
        from botorch.fit import fit_gpytorch_mll
        from gpytorch.mlls import ExactMarginalLogLikelihood

        from autotune.models._lean import lean_fit_closure

        warm = self._good.get(name)
        if warm is not None and self._fresh_enough(name, len(X)):
            model = make_gp(X, Y, self.space, self.kernel, self.bounds)
            _load_compatible(model, warm)
            model.eval()
            kept = self._factors.get(name)
            try:
                _check_finite(model, X, kept[1] if kept is not None and kept[0] is warm else None)
                self._keep_factor(name, model)
                self.last_outcome[name] = "conditioned"
                return model
            except Exception as e:  # noqa: BLE001 - fit afresh below
                logger.debug("conditioning %s on the last hyperparameters failed: %s", name, e)
        maxiter = self.max_fit_iter if warm is None else min(self.max_fit_iter, self.warm_fit_iter)
        fit_options = {"maxiter": maxiter, "gtol": self.fit_gtol / max(len(X), 1)}
        fit_fn = fit_fn or (lambda mll: fit_gpytorch_mll(mll, closure=lean_fit_closure(mll),
                                                         optimizer_kwargs={"options": fit_options}))
        attempts: list[tuple[str, float | None]] = [("fit", None), ("jitter", 1e-4), ("jitter", 1e-2)]
        last_err: Exception | None = None
        Xs, Ys = self._subsample(X, Y)
        for outcome, jitter in attempts:
            model = make_gp(Xs, Ys, self.space, self.kernel, self.bounds)
            if warm is not None and outcome == "fit":
                _load_compatible(model, warm)
            try:
                mll = ExactMarginalLogLikelihood(model.likelihood, model)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    if jitter is None:
                        fit_fn(mll)
                    else:
                        with gpytorch.settings.cholesky_jitter(float_value=jitter, double_value=jitter):
                            fit_fn(mll)
                if len(Xs) < len(X):  # the fitted hyperparameters, conditioned on every point
                    full = make_gp(X, Y, self.space, self.kernel, self.bounds)
                    _load_compatible(full, _hyper_state(model))
                    model = full
                if jitter is not None:
                    with gpytorch.settings.cholesky_jitter(float_value=jitter, double_value=jitter):
                        _check_finite(model, X)
                else:
                    _check_finite(model, X)
                self._good[name] = _hyper_state(model)
                self._fitted_n[name] = len(X)
                self._keep_factor(name, model)
                self.last_outcome[name] = outcome
                return model
            except Exception as e:  # noqa: BLE001 - any numerical failure triggers the fallback
                last_err = e
                logger.debug("GP fit of %s failed (%s): %s", name, outcome, e)
        if warm is not None:
            model = make_gp(X, Y, self.space, self.kernel, self.bounds)
            _load_compatible(model, warm)
            model.eval()
            try:
                with gpytorch.settings.cholesky_jitter(float_value=1e-2, double_value=1e-2):
                    _check_finite(model, X)
                warnings.warn(
                    f"GP fit of {name!r} failed ({last_err}); reusing the last good hyperparameters. "
                    "If this repeats, the data may hold duplicates with very different values: "
                    "check the objective for noise or failures.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self.last_outcome[name] = "reused"
                return model
            except Exception as e:  # noqa: BLE001
                last_err = e
        self.last_outcome[name] = "failed"
        raise ModelFitError(
            f"The GP for {name!r} could not be fitted on {len(X)} points: {last_err}. "
            "The kernel matrix is not positive definite even with added jitter: "
            "add noise to the objective or check for non-finite values."
        )


    @property
    def signature(self) -> str:
        """What the hyperparameters depend on (space, kernel, bounds): states of another signature don't load."""
        import hashlib
        import json

        text = json.dumps([self.space.to_dict(), self.kernel, None if self.bounds is None else repr(self.bounds)],
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def export_state(self) -> dict[str, Any]:
        """The last good hyperparameters of every name, JSON-ready, for a later fitter to warm-start from.

        Returns:
            ``{"signature": ..., "names": {name: {"n": data size, "state": {key: nested lists}}}}``.
        """
        names = {name: {"n": self._fitted_n.get(name, 0),
                        "state": {k: v.tolist() for k, v in st.items() if k.rsplit(".", 1)[-1].startswith("raw_")}}
                 for name, st in self._good.items()}  # the learned values only (bounds, priors: from the settings)
        return {"signature": self.signature, "names": names}

    def import_state(self, state: Any) -> int:
        """Warm-start from :meth:`export_state` of an earlier fitter (e.g. in another process).

        A state of another space, kernel or bounds, or a malformed or non-finite entry, is
        ignored (the name is then fitted cold); keys whose shapes differ are skipped at load.

        Returns:
            How many names were loaded.
        """
        if not isinstance(state, dict) or state.get("signature") != self.signature:
            return 0
        loaded = 0
        for name, entry in (state.get("names") or {}).items():
            try:
                tensors = {k: torch.tensor(v, dtype=torch.float64) for k, v in entry["state"].items()}
                n = int(entry["n"])
            except (KeyError, TypeError, ValueError, AttributeError):
                continue
            if name in self._good or not all(bool(torch.isfinite(t).all()) for t in tensors.values()):
                continue
            self._good[name], self._fitted_n[name] = tensors, n
            loaded += 1
        return loaded

    def _keep_factor(self, name: str, model: Model) -> None:
        """Keep ``model``'s inputs and Cholesky factor for the next conditioning on more points."""
        strategy = getattr(model, "prediction_strategy", None)
        L = getattr(strategy, "cholesky", None)
        if isinstance(L, Tensor) and name in self._good:
            self._factors[name] = (self._good[name], (model.train_inputs[0], L))  # type: ignore[attr-defined,index]
        else:
            self._factors.pop(name, None)

    def _subsample(self, X: Tensor, Y: Tensor) -> tuple[Tensor, Tensor]:
        """The points the hyperparameters are optimised on: all, or ``fit_subsample`` of them."""
        if self.fit_all_up_to is None or len(X) <= self.fit_all_up_to:
            return X, Y
        g = torch.Generator().manual_seed(0)
        idx = torch.randperm(len(X), generator=g, device="cpu")[: self.fit_subsample].sort().values.to(X.device)
        return X[idx], Y[idx]

    def _fresh_enough(self, name: str, n: int) -> bool:
        """Whether ``name``'s hyperparameters, optimised on ``m`` points, still serve ``n`` points."""
        m = self._fitted_n.get(name)
        return m is not None and m <= n < m + max(1, math.ceil(self.refit_fraction * m))


def _load_compatible(model: Model, state: dict[str, Tensor]) -> None:
    own = model.state_dict()
    ok = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(ok, strict=False)


def _check_finite(model: Model, X: Tensor, previous: tuple[Tensor, Tensor] | None = None) -> None:
    """Put ``model`` in eval mode with its posterior caches built once, and check its posterior is finite.

    With the caches built here (:func:`prime_posterior`), a finite Cholesky factor of the
    training covariance with a positive diagonal and a finite mean cache are checked (two
    tensors, instead of a posterior: about 1 ms of every ask at n = 55): non-finite
    hyperparameters show in the factor, and with both finite every posterior mean and variance
    is finite. Otherwise the posterior at up to 64 of the points ``X`` is computed and checked.

    Raises:
        ModelFitError: Something non-finite.
    """
    model.eval()
    if prime_posterior(model, previous):
        strategy: Any = cast("Any", model).prediction_strategy
        L, cache = strategy.cholesky, strategy.mean_cache
        finite = (bool(torch.isfinite(L).all()) and bool((L.diagonal(dim1=-2, dim2=-1) > 0).all())
                  and bool(torch.isfinite(cache).all()))
        if not finite:
            raise ModelFitError("non-finite posterior after fitting")
        return
    with torch.no_grad():
        post = gp_posterior(model, X[: min(len(X), 64)])
        if not (torch.isfinite(post.mean).all() and torch.isfinite(post.variance).all()):
            raise ModelFitError("non-finite posterior after fitting")
