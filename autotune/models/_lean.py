"""A lean posterior for acquisition search: an exact GP's prediction from cached factors.

An acquisition search (BoTorch's L-BFGS-B over a few restarts) evaluates the posterior of one
fixed GP some 60-100 times per ask. Through GPyTorch each evaluation builds lazy kernel tensors,
linear operators and a ``MultivariateNormal``, and its backward pass also runs through the
hyperparameters (they are ``requires_grad`` parameters), although the search differentiates with
respect to the inputs only: about 3 ms per evaluation at n = 55 on Ackley-10, where the
arithmetic takes a tenth of that. :func:`lean_posterior` wraps a fitted GP in a :class:`LeanGP`
that computes the same posterior,

    mean(x) = m + k(x, X) K^{-1} (y - m),    var(x) = k(x, x) - k(x, X) K^{-1} k(X, x),

from the training factor ``K = L L^T`` (built once per wrapper) and the hyperparameters as
detached tensors, then undoes the ``Standardize`` outcome transform: the same values to rounding
(``tests/models/test_lean_posterior.py``). Its derivative in the inputs is written out
(``d mean = dk^T alpha``, ``d var = -2 dk^T K^{-1} k``, with each kernel's ``dk/dx`` in closed
form), so a search step's backward pass is one node rather than one per kernel operation.

The hyperparameter fit gets the same treatment: :func:`lean_fit_closure` gives BoTorch's
``fit_gpytorch_mll`` the negative marginal log likelihood with its derivative in closed form
(Rasmussen & Williams, 2006, eq. 5.9: ``d/d theta = tr((K^{-1} - a a^T) dK/d theta) / 2``), the
priors and parameter constraints left to autograd.

It covers the kernels :func:`~autotune.models.make_gp` builds (a ``ScaleKernel`` over a Matérn
or RBF ARD kernel, BoTorch's ``CategoricalKernel`` and their product, on ``active_dims``) and
the ``ConstantMean``; for any other model, a batched one or a model without ``Standardize``,
:func:`lean_posterior` returns the model unchanged, so the caller needs no fallback of its own.
Anything but ``posterior`` (conditioning, fantasies) is delegated to the wrapped model.

Pending points: the kriging believer conditions the GP on a lie at every running trial before
each proposal. :func:`lean_condition` gives that conditioned posterior from one Cholesky factor
of the data and the lies (the noise and hyperparameters of the fit), where GPyTorch's fantasy
update borders the old factor through a pseudo-inverse; at 700 observations and 256 pending
points that took 0.16 s of a 0.5 s ask (``benchmarks/results/utilisation_w256_lean_condition.md``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, cast

import torch
from botorch.models.model import Model
from botorch.posteriors.gpytorch import GPyTorchPosterior
from torch import Tensor

if TYPE_CHECKING:
    from botorch.posteriors import Posterior

KernelFn = Callable[[Tensor, Tensor], Tensor]
"""``(x1: ... x q x d, x2: n x d) -> ... x q x n`` covariances."""
KernelGrad = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]]
"""``(x1, x2) -> (K, dK)``: the covariances and their derivative ``... x q x n x d`` in ``x1``."""


class KernelFunctions(NamedTuple):
    """A kernel as plain functions of its inputs, at fixed or live hyperparameters."""

    cross: KernelFn
    """``cross(x1, x2)``: covariances ``... x q x n``."""
    diag: Callable[[Tensor], Tensor]
    """``diag(x)``: prior variances ``... x q`` (constant for the stationary kernels covered)."""
    grad: KernelGrad
    """``grad(x1, x2)``: the covariances and their analytic derivative with respect to ``x1``."""


def _stationary(kernel: Any, detach: bool) -> KernelFunctions | None:
    """The functions of a GPyTorch/BoTorch base kernel, or ``None`` if unknown."""
    from botorch.models.kernels.categorical import CategoricalKernel
    from gpytorch.kernels import MaternKernel, RBFKernel

    if kernel.batch_shape != torch.Size([]):
        return None
    cols = None if kernel.active_dims is None else kernel.active_dims.clone()
    ls = kernel.lengthscale.reshape(-1)
    ls = ls.detach() if detach else ls

    def pick(x: Tensor) -> Tensor:
        return x if cols is None else x.index_select(-1, cols.to(x.device))

    def ones(x: Tensor) -> Tensor:
        return x.new_ones(x.shape[:-1])

    def spread(x1: Tensor, part: Tensor) -> Tensor:
        """``... x n x m`` derivatives in the kernel's columns as ``... x n x d`` over all of ``x1``'s."""
        if cols is None:
            return part
        out = part.new_zeros(*part.shape[:-1], x1.shape[-1])
        return out.index_copy_(-1, cols.to(x1.device), part)

    if isinstance(kernel, CategoricalKernel):

        def categorical(x1: Tensor, x2: Tensor) -> Tensor:
            delta = pick(x1).unsqueeze(-2) != pick(x2).unsqueeze(-3)
            return torch.exp(-(delta / ls).mean(-1))

        def categorical_grad(x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
            K = categorical(x1, x2)  # piecewise constant in x1: no derivative (as autograd gives)
            return K, K.new_zeros(*K.shape, x1.shape[-1])

        return KernelFunctions(categorical, ones, categorical_grad)
    if type(kernel) is RBFKernel:

        def rbf(x1: Tensor, x2: Tensor) -> Tensor:
            return torch.exp(-0.5 * _sq_dist(pick(x1) / ls, pick(x2) / ls))

        def rbf_grad(x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
            z = (pick(x1).unsqueeze(-2) - pick(x2)) / ls  # ... x q x n x m
            K = torch.exp(-0.5 * z.pow(2).sum(-1))
            return K, spread(x1, -(K.unsqueeze(-1) * z / ls))

        return KernelFunctions(rbf, ones, rbf_grad)
    if type(kernel) is MaternKernel and kernel.nu in (0.5, 1.5, 2.5):
        nu = float(kernel.nu)
        root = math.sqrt(2.0 * nu)

        def matern(x1: Tensor, x2: Tensor) -> Tensor:
            d2 = _sq_dist(pick(x1) / ls, pick(x2) / ls)
            d = d2.clamp_min(1e-30).sqrt()  # the clamp keeps the gradient finite at d = 0
            s = root * d
            poly = 1.0 if nu == 0.5 else (1.0 + s if nu == 1.5 else 1.0 + s + 5.0 / 3.0 * d2)
            return poly * torch.exp(-s)

        def matern_grad(x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
            z = (pick(x1).unsqueeze(-2) - pick(x2)) / ls  # ... x q x n x m
            K, g = _matern_and_slope(z.pow(2).sum(-1), nu)  # dk/dx = f'(d) / d * z / ls
            return K, spread(x1, g.unsqueeze(-1) * z / ls)

        return KernelFunctions(matern, ones, matern_grad)
    return None


def _matern_and_slope(d2: Tensor, nu: float) -> tuple[Tensor, Tensor]:
    """The Matérn kernel ``f(d)`` and ``f'(d) / d`` in closed form at squared scaled distances ``d2``.

    ``f'(d) / d`` is what both derivatives need: in the inputs (times ``z / l``) and in the length
    scales (times ``-z^2 / l``). Distances are clamped at 1e-15 as in the kernel's value, so at
    ``d = 0`` the Matérn-1/2 slope is the clamp's zero.
    """
    root = math.sqrt(2.0 * nu)
    d = d2.clamp_min(1e-30).sqrt()
    e = torch.exp(-root * d)
    if nu == 2.5:
        return (1.0 + root * d + 5.0 / 3.0 * d2) * e, -5.0 / 3.0 * (1.0 + root * d) * e
    if nu == 1.5:
        return (1.0 + root * d) * e, -3.0 * e
    return e, torch.where(d2 > 1e-30, -e / d, torch.zeros_like(e))


def _sq_dist(a: Tensor, b: Tensor) -> Tensor:
    """Squared Euclidean distances ``... x q x n`` between ``... x q x d`` and ``n x d`` points.

    Differences squared where the ``... x n x d`` differences are small (exact to rounding, as
    the tests compare with GPyTorch at 1e-10); GPyTorch's centred ``|a|^2 + |b|^2 - 2 a b^T``
    beyond, so that a large n never holds an ``n x n x d`` tensor.
    """
    if a.numel() * b.shape[-2] <= _DIRECT_LIMIT:
        return (a.unsqueeze(-2) - b).pow(2).sum(-1)
    centre = b.mean(-2, keepdim=True)
    a, b = a - centre, b - centre
    d2 = a.pow(2).sum(-1, keepdim=True) + b.pow(2).sum(-1) - 2.0 * a @ b.mT
    return d2.clamp_min(0.0)


_DIRECT_LIMIT = 1 << 22
"""Elements of the ``... x n x d`` difference tensor up to which distances are taken directly."""


def kernel_functions(kernel: Any, detach: bool = True) -> KernelFunctions | None:
    """The :class:`KernelFunctions` of a kernel built by ``make_gp``, at its current hyperparameters.

    Args:
        kernel: A GPyTorch kernel.
        detach: Hold the hyperparameters as constants (a posterior for acquisition search);
            ``False`` keeps them in the graph (a marginal likelihood to fit them by).

    Returns:
        ``cross``, ``diag`` and ``grad`` functions, or ``None`` for a kernel this module does not
        know (the caller then keeps GPyTorch's prediction).
    """
    from gpytorch.kernels import ProductKernel, ScaleKernel

    if isinstance(kernel, ScaleKernel):
        own, inner = kernel.active_dims, kernel.base_kernel.active_dims
        # GPyTorch copies the base kernel's active_dims onto the ScaleKernel and selects them once
        same = own is None or (inner is not None and torch.equal(own, inner))
        if not same or kernel.batch_shape != torch.Size([]):
            return None
        base = kernel_functions(kernel.base_kernel, detach)
        if base is None:
            return None
        scale = kernel.outputscale.detach() if detach else kernel.outputscale

        def scaled_grad(x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
            K, dK = base.grad(x1, x2)
            return scale * K, scale * dK

        return KernelFunctions(lambda x1, x2: scale * base.cross(x1, x2), lambda x: scale * base.diag(x), scaled_grad)
    if isinstance(kernel, ProductKernel):
        if kernel.active_dims is not None:
            return None
        parts = [kernel_functions(k, detach) for k in kernel.kernels]
        if any(p is None for p in parts):
            return None
        known = [p for p in parts if p is not None]

        def cross_product(x1: Tensor, x2: Tensor) -> Tensor:
            out = known[0].cross(x1, x2)
            for p in known[1:]:
                out = out * p.cross(x1, x2)
            return out

        def diag_product(x: Tensor) -> Tensor:
            out = known[0].diag(x)
            for p in known[1:]:
                out = out * p.diag(x)
            return out

        def grad_product(x1: Tensor, x2: Tensor) -> tuple[Tensor, Tensor]:
            K, dK = known[0].grad(x1, x2)
            for p in known[1:]:  # product rule, one factor at a time
                Ki, dKi = p.grad(x1, x2)
                K, dK = K * Ki, dK * Ki.unsqueeze(-1) + K.unsqueeze(-1) * dKi
            return K, dK

        return KernelFunctions(cross_product, diag_product, grad_product)
    return _stationary(kernel, detach)


class _Hyperparameters(NamedTuple):
    """A kernel's hyperparameters and the derivative of ``sum(W * K(X, X))`` in them."""

    values: Callable[[], list[Tensor]]
    """The live (graph-connected) hyperparameter tensors, in a fixed order."""
    cross: Callable[[Tensor], tuple[Tensor, Any]]
    """``X -> (K(X, X), tape)`` at the current values, without a graph; ``tape`` is what ``vjp`` reads."""
    vjp: Callable[[Any, Tensor], list[Tensor]]
    """``(tape, W) -> [d sum(W * K) / d h for h in values()]`` for a symmetric ``n x n`` ``W``."""


def _weighted_sq_sum(xs: Tensor, M: Tensor) -> Tensor:
    """``sum_ab M_ab (xs_aj - xs_bj)^2`` per column ``j`` for a symmetric ``M``, without an ``n x n x d`` tensor."""
    return 2.0 * (xs.pow(2) * M.sum(-1, keepdim=True)).sum(0) - 2.0 * (xs * (M @ xs)).sum(0)


def _hyperparameters(kernel: Any) -> _Hyperparameters | None:
    """The :class:`_Hyperparameters` of a kernel :func:`kernel_functions` covers, else ``None``."""
    from botorch.models.kernels.categorical import CategoricalKernel
    from gpytorch.kernels import MaternKernel, ProductKernel, RBFKernel, ScaleKernel

    if kernel_functions(kernel) is None:
        return None
    if isinstance(kernel, ScaleKernel):
        base = _hyperparameters(kernel.base_kernel)
        if base is None:
            return None

        def scaled_cross(X: Tensor) -> tuple[Tensor, Any]:
            scale = kernel.outputscale.detach()
            Kb, tape = base.cross(X)
            return scale * Kb, (scale, Kb, tape)

        def scaled(tape: Any, W: Tensor) -> list[Tensor]:
            scale, Kb, inner = tape
            return [(W * Kb).sum().reshape(scale.shape), *base.vjp(inner, W * scale)]

        return _Hyperparameters(lambda: [kernel.outputscale, *base.values()], scaled_cross, scaled)
    if isinstance(kernel, ProductKernel):
        parts = [_hyperparameters(k) for k in kernel.kernels]
        if any(p is None for p in parts):
            return None
        known = [p for p in parts if p is not None]

        def product_cross(X: Tensor) -> tuple[Tensor, Any]:
            each = [p.cross(X) for p in known]
            K = each[0][0]
            for Ki, _ in each[1:]:
                K = K * Ki
            return K, each

        def product(tape: Any, W: Tensor) -> list[Tensor]:
            out: list[Tensor] = []
            for i, p in enumerate(known):  # d sum(W * K1 * K2) / d h1 = d sum((W * K2) * K1) / d h1
                Wi = W
                for j, (Kj, _) in enumerate(tape):
                    Wi = Wi * Kj if j != i else Wi
                out.extend(p.vjp(tape[i][1], Wi))
            return out

        return _Hyperparameters(lambda: [v for p in known for v in p.values()], product_cross, product)
    cols = None if kernel.active_dims is None else kernel.active_dims.clone()

    def picked(X: Tensor) -> Tensor:
        return X if cols is None else X.index_select(-1, cols.to(X.device))

    if isinstance(kernel, CategoricalKernel):

        def categorical_cross(X: Tensor) -> tuple[Tensor, Any]:
            ls = kernel.lengthscale.detach()
            x = picked(X)
            delta = (x.unsqueeze(-2) != x.unsqueeze(-3)).to(X)  # n x n x m (category indices: small m)
            K = torch.exp(-(delta / ls.reshape(-1)).mean(-1))
            return K, (ls, delta, K)

        def categorical(tape: Any, W: Tensor) -> list[Tensor]:
            ls, delta, K = tape  # d K / d l_j = K delta_j / (m l_j^2)
            grad = ((W * K).unsqueeze(-1) * delta).sum((0, 1)) / (delta.shape[-1] * ls.reshape(-1).pow(2))
            return [grad.reshape(ls.shape)]

        return _Hyperparameters(lambda: [kernel.lengthscale], categorical_cross, categorical)
    nu = float(getattr(kernel, "nu", 0.0))
    rbf = type(kernel) is RBFKernel

    def stationary_cross(X: Tensor) -> tuple[Tensor, Any]:
        # k = f(d), d^2 = sum_j (x_j - x'_j)^2 / l_j^2; g = f'(d) / d in closed form per kernel
        ls = kernel.lengthscale.detach()
        xs = picked(X) / ls.reshape(-1)
        d2 = _sq_dist(xs, xs)
        if rbf:
            K = torch.exp(-0.5 * d2)
            return K, (ls, xs, -K)
        K, g = _matern_and_slope(d2, nu)
        return K, (ls, xs, g)

    def stationary(tape: Any, W: Tensor) -> list[Tensor]:
        ls, xs, g = tape  # d k / d l_j = -g (x_j - x'_j)^2 / l_j^3 = -g (xs_j - xs'_j)^2 / l_j
        return [(-_weighted_sq_sum(xs, W * g) / ls.reshape(-1)).reshape(ls.shape)]

    if rbf or (type(kernel) is MaternKernel and nu in (0.5, 1.5, 2.5)):
        return _Hyperparameters(lambda: [kernel.lengthscale], stationary_cross, stationary)
    return None


class _GaussianFit(torch.autograd.Function):
    """``-log N(y | m, K + noise I)`` with its derivative in the hyperparameters in closed form.

    With ``K_y = K + noise I`` and ``a = K_y^{-1}(y - m)``, the derivative in ``K_y`` is
    ``W = (K_y^{-1} - a a^T) / 2`` (Rasmussen & Williams, 2006, eq. 5.9): the noise gets
    ``trace(W)``, the mean ``-sum(a)`` and each kernel hyperparameter ``sum(W * dK/dh)``.
    """

    @staticmethod
    def forward(ctx: Any, hyper: _Hyperparameters, X: Tensor, y: Tensor, const: Tensor, noise: Tensor,
                *values: Tensor) -> Tensor:  # type: ignore[override]
        from linear_operator.utils.cholesky import psd_safe_cholesky

        K, tape = hyper.cross(X)
        L = psd_safe_cholesky(K + torch.diag_embed(noise.reshape(-1).expand(len(y))))
        r = (y - const.reshape(())).unsqueeze(-1)
        a = torch.cholesky_solve(r, L)
        ctx.save_for_backward(L, a)
        ctx.hyper, ctx.tape, ctx.shapes = hyper, tape, (const.shape, noise.shape)
        return 0.5 * (r * a).sum() + L.diagonal().log().sum() + 0.5 * len(y) * math.log(2.0 * math.pi)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        L, a = ctx.saved_tensors
        W = 0.5 * g * (torch.cholesky_inverse(L) - a @ a.mT)
        const_shape, noise_shape = ctx.shapes
        grads = ctx.hyper.vjp(ctx.tape, W)
        d_const = (-g * a.sum()).reshape(const_shape)
        d_noise = W.diagonal().sum().reshape(noise_shape)
        return (None, None, None, d_const, d_noise, *grads)


class _MeanVariance:
    """The marginal posterior at single points: what analytic acquisitions read."""

    def __init__(self, mean: Tensor, variance: Tensor) -> None:
        self.mean = mean
        self.variance = variance
        self.device = mean.device
        self.dtype = mean.dtype


class _LazyJointPosterior(GPyTorchPosterior):
    """A ``GPyTorchPosterior`` whose distribution is built on first use (its mean is known).

    Built by :meth:`LeanGP._joint_posterior`; it is one in every respect once anything but
    ``mean`` is read.

    Args:
        mean: The posterior mean, `batch x q`.
        build: Builds the joint distribution (the `q x q` covariance).
    """

    def __init__(self, mean: Tensor, build: Callable[[], Any]) -> None:
        # GPyTorchPosterior's __init__ would need the distribution: it is built in __getattr__.
        self._mean, self._build = mean, build
        self._is_mt = False
        self._device, self._dtype = mean.device, mean.dtype

    def __getattr__(self, name: str) -> Any:  # only for what normal lookup does not find
        if name == "distribution":
            try:
                self.distribution = self._build()
            except AttributeError as exc:  # not to be mistaken for a missing attribute
                raise RuntimeError(f"the joint posterior could not be built: {exc}") from exc
            return self.distribution
        return getattr(self.distribution, name)

    @property
    def mean(self) -> Tensor:
        return self._mean.unsqueeze(-1)


def lean_posterior(model: Model) -> Model:
    """``model`` wrapped in a :class:`LeanGP` where that applies, else ``model`` itself.

    Args:
        model: A fitted single-output exact GP in eval mode (e.g. from ``GPFitter.fit``, or
            conditioned on fantasies by ``condition_on_observations``).
    """
    if isinstance(model, LeanGP):
        return model
    fns = _lean_kernel(model)
    return model if fns is None else LeanGP(model, fns)


def lean_condition(model: Model, X: Tensor, Y: Tensor) -> Model | None:
    """``model`` conditioned on fake observations ``Y`` at ``X``, as a :class:`LeanGP`; ``None``
    where the lean path does not apply (the caller then conditions through GPyTorch).

    The same posterior as ``model.condition_on_observations`` (hyperparameters unchanged, the
    homoskedastic noise at the new points) from one Cholesky factor of all the points, instead
    of GPyTorch's fantasy update, whose bordered factor and pseudo-inverse cost 0.16 s at 700
    observations and 256 pending points, against 0.03 s here.

    Args:
        model: A fitted single-output exact GP in eval mode, without an input transform.
        X: A `m x d` tensor of points.
        Y: A `m x 1` tensor of values in the objective's units (e.g. the kriging believer's lies).
    """
    from gpytorch.likelihoods import GaussianLikelihood

    if isinstance(model, LeanGP) or getattr(model, "input_transform", None) is not None:
        return None
    if type(getattr(model, "likelihood", None)) is not GaussianLikelihood:
        return None
    fns = _lean_kernel(model)
    if fns is None or X.dim() != 2 or Y.shape != (len(X), 1):
        return None
    return LeanGP(model, fns, extra=(X, Y))


def _lean_kernel(model: Model) -> KernelFunctions | None:
    """The kernel functions of ``model`` if :class:`LeanGP` can stand for it, else ``None``."""
    from botorch.models import SingleTaskGP
    from botorch.models.transforms.outcome import Standardize
    from gpytorch.means import ConstantMean

    if not isinstance(model, SingleTaskGP) or model.training or model.num_outputs != 1:
        return None
    train = model.train_inputs[0] if model.train_inputs else None
    outcome = getattr(model, "outcome_transform", None)
    if train is None or train.dim() != 2 or not isinstance(outcome, Standardize) or outcome._m != 1:
        return None
    if type(model.mean_module) is not ConstantMean or model.mean_module.constant.numel() != 1:
        return None
    return kernel_functions(model.covar_module)


class LeanGP(Model):
    """An exact GP's posterior from its training factor, with detached hyperparameters.

    Build it with :func:`lean_posterior`. ``posterior`` of single points (``q = 1``, no
    observation noise, no posterior transform) returns the mean and variance only (what analytic
    acquisitions use), of several points the joint posterior from the factor (covariance built
    on first use); a request with options, or on a GP with an input transform, is answered by
    the wrapped model.

    Args:
        model: The fitted ``SingleTaskGP`` (eval mode, ``Standardize`` outcome transform).
        kernel: Its kernel's functions (:func:`kernel_functions`).
        extra: Fake observations to condition on (:func:`lean_condition`): `m x d` points in
            the GP's input space and `m x 1` values in the objective's units.
    """

    def __init__(self, model: Model, kernel: KernelFunctions, extra: tuple[Tensor, Tensor] | None = None) -> None:
        from linear_operator.utils.cholesky import psd_safe_cholesky

        super().__init__()
        # Not a registered submodule: BoTorch's analytic acquisitions call ``self.to(X)`` on every
        # evaluation, which walks every submodule (0.4 ms a call through a GP's tree).
        object.__setattr__(self, "_gp", model)
        object.__setattr__(self, "_conditioned", None)
        self._kernel = kernel
        self._extra = extra
        gp: Any = model
        ot = gp.outcome_transform
        self._loc, self._scale = ot.means.detach().reshape(()), ot.stdvs.detach().reshape(())
        X, targets = gp.train_inputs[0].detach(), gp.train_targets.detach()
        if extra is not None:  # fake observations, e.g. the lies at pending points
            X = torch.cat([X, extra[0].detach().to(X)])
            targets = torch.cat([targets, ((extra[1].detach().to(X) - self._loc) / self._scale).reshape(-1)])
        with torch.no_grad():
            L = None if extra is not None else getattr(getattr(gp, "prediction_strategy", None), "cholesky", None)
            if not (isinstance(L, Tensor) and L.shape == (len(X), len(X))):
                joint = gp.likelihood(gp.forward(X), [X]).lazy_covariance_matrix.to_dense()
                L = psd_safe_cholesky(joint)
            self._const = gp.mean_module.constant.detach().reshape(())
            self._alpha = torch.cholesky_solve((targets - self._const).unsqueeze(-1), L).squeeze(-1)  # K^{-1}(y - m)
        self._X, self._L, self._targets = X, L, targets
        self._min_var = 1e-10 if X.dtype == torch.float64 else 1e-6  # GPyTorch's ``min_variance``

    @property
    def model(self) -> Model:
        """The wrapped GP (conditioned on the fake observations, built on first use, if there are any)."""
        if self._extra is None:
            return cast("Model", self.__dict__["_gp"])
        if self.__dict__["_conditioned"] is None:
            from botorch.models.utils.assorted import fantasize as fantasize_flag

            with fantasize_flag(False):
                conditioned = self.__dict__["_gp"].condition_on_observations(X=self._extra[0], Y=self._extra[1])
            object.__setattr__(self, "_conditioned", conditioned)
        return cast("Model", self.__dict__["_conditioned"])

    @property
    def num_outputs(self) -> int:
        return 1

    # The wrapped GP's data, where BoTorch and autotune look for it: ``get_X_baseline`` (the
    # incumbent starts of the acquisition search) and ``train_size`` (the effort for large n).
    # Without them the lean path silently lost the incumbent starts (stop 29).
    # Conditioned on fake observations, these are the data with them appended, as a GPyTorch
    # fantasy model's would be.
    @property
    def train_inputs(self) -> tuple[Tensor, ...]:
        if self._extra is not None:
            return (self._X,)
        return cast("tuple[Tensor, ...]", cast("Any", self.model).train_inputs)

    @property
    def train_targets(self) -> Tensor:
        if self._extra is not None:
            return self._targets
        return cast("Tensor", cast("Any", self.model).train_targets)

    @property
    def _has_transformed_inputs(self) -> bool:  # type: ignore[override]
        return bool(self.__dict__["_gp"]._has_transformed_inputs)

    @property
    def _original_train_inputs(self) -> Tensor | None:  # type: ignore[override]
        return self.model._original_train_inputs

    @property
    def batch_shape(self) -> torch.Size:
        return torch.Size([])

    def posterior(
        self,
        X: Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | Tensor = False,
        posterior_transform: Any = None,
        **kwargs: Any,
    ) -> Posterior:
        """The posterior at ``X`` (`batch x q x d`): mean and variance for ``q = 1``, the joint
        posterior from the factor for ``q > 1`` (the wrapped model's with an input transform, and
        for observation noise, a posterior transform or other options)."""
        plain = X.dim() >= 2 and observation_noise is False and posterior_transform is None and not kwargs
        if plain and X.shape[-2] == 1:
            mean, var = self.mean_and_variance(X)
            return _MeanVariance(mean.unsqueeze(-1), var.unsqueeze(-1))  # type: ignore[return-value]
        if plain and (self._extra is not None or getattr(self.__dict__["_gp"], "input_transform", None) is None):
            # not worth building the conditioned GPyTorch model for; and, unconditioned, the mean
            # at the data is all BoTorch reads to start searches near the best (GPyTorch's
            # posterior of those n points cost a few ms of every ask)
            return self._joint_posterior(X)
        return self.model.posterior(X, output_indices=output_indices, observation_noise=observation_noise,
                                    posterior_transform=posterior_transform, **kwargs)

    def _joint_posterior(self, X: Tensor) -> Posterior:
        """The joint posterior at `batch x q x d` points ``X`` from the factor, as GPyTorch's would be.

        The mean is computed now; the `q x q` covariance only if something other than the mean
        is read (BoTorch reads only the mean of the data, ``n x d``, to start searches near the best).
        """
        from gpytorch.distributions import MultivariateNormal
        from linear_operator.operators import DenseLinearOperator

        Xt = self.model_transform(X)
        k = self._kernel.cross(Xt, self._X)  # batch x q x n
        mean = (self._const + k @ self._alpha) * self._scale + self._loc  # the objective's units

        def joint() -> MultivariateNormal:
            U = torch.linalg.solve_triangular(self._L, k.mT, upper=False)  # batch x n x q
            covar = self.__dict__["_gp"].covar_module(Xt).to_dense() - U.mT @ U
            return MultivariateNormal(mean, DenseLinearOperator(covar * self._scale.pow(2)))  # factored lazily

        return _LazyJointPosterior(mean, joint)

    def model_transform(self, X: Tensor) -> Tensor:
        """``X`` in the wrapped GP's input space."""
        return cast("Tensor", self.__dict__["_gp"].transform_inputs(X))

    def mean_and_variance(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and variance in the objective's units at `... x d` points ``X``.

        Differentiable in ``X``: the derivative comes from the kernel's closed form
        (:attr:`KernelFunctions.grad`), one backward node instead of autograd through every
        kernel operation (about a third of the time of a search step).
        """
        mean, var = _Posterior.apply(self.model_transform(X), self)
        return mean, var

    def _predict(self, Xt: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(mean, variance, U = L^{-1} k(X, x) as n x (...), unclamped)`` without a graph."""
        k = self._kernel.cross(Xt, self._X)  # ... x n
        mean = self._const + k @ self._alpha
        U = torch.linalg.solve_triangular(self._L, k.reshape(-1, k.shape[-1]).mT, upper=False)  # n x (...)
        var = self._kernel.diag(Xt) - U.pow(2).sum(0).reshape(k.shape[:-1])
        kept = var >= self._min_var  # where the clamp passes the derivative through
        var = var.clamp_min(self._min_var)
        return mean * self._scale + self._loc, var * self._scale.pow(2), U, kept

    def _input_grad(self, Xt: Tensor, U: Tensor, kept: Tensor, g_mean: Tensor, g_var: Tensor) -> Tensor:
        """The derivative in ``Xt`` of ``sum(g_mean * mean + g_var * var)``, from :meth:`_predict`'s ``U`` and ``kept``."""
        _, dk = self._kernel.grad(Xt, self._X)  # ... x n x d
        v = torch.linalg.solve_triangular(self._L.mT, U, upper=True).mT.reshape(dk.shape[:-1])  # K^{-1} k
        w = (self._scale * g_mean).unsqueeze(-1) * self._alpha
        w = w - (2.0 * self._scale.pow(2) * g_var * kept).unsqueeze(-1) * v
        return (dk * w.unsqueeze(-1)).sum(-2)

    def condition_on_observations(self, X: Tensor, Y: Tensor, **kwargs: Any) -> Model:
        return self.model.condition_on_observations(X, Y, **kwargs)

    def transform_inputs(self, X: Tensor, input_transform: Any = None) -> Tensor:
        return self.model_transform(X)


class _Posterior(torch.autograd.Function):
    """:meth:`LeanGP.mean_and_variance` with its derivative in closed form.

    With ``k = k(X, x)``, ``alpha = K^{-1}(y - m)`` and ``v = K^{-1} k``, the standardised mean
    ``m + k^T alpha`` and variance ``k(x, x) - k^T v`` have ``d mean / dx = dk^T alpha`` and
    ``d var / dx = -2 dk^T v`` (the prior variance of the stationary kernels covered is constant).
    """

    @staticmethod
    def forward(ctx: Any, Xt: Tensor, gp: LeanGP) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        mean, var, U, kept = gp._predict(Xt)
        ctx.save_for_backward(Xt, U, kept)
        ctx.gp = gp
        return mean, var

    @staticmethod
    def backward(ctx: Any, g_mean: Tensor, g_var: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        Xt, U, kept = ctx.saved_tensors
        return ctx.gp._input_grad(Xt, U, kept, g_mean, g_var), None


def lean_mll_loss(mll: Any) -> Callable[[], Tensor] | None:
    """The negative marginal log likelihood of ``mll`` per data point, as BoTorch's fit minimises it.

    The same value as BoTorch's loss closure (``-mll(model(*train_inputs), train_targets)``: the
    Gaussian log density of the standardised targets plus the log densities of the priors,
    divided by n), computed from the kernel's own functions (:func:`kernel_functions`) instead
    of GPyTorch's lazy tensors: about a third of the time per L-BFGS-B step at n = 50.

    Args:
        mll: An ``ExactMarginalLogLikelihood`` of a ``SingleTaskGP`` (evaluated in training
            mode, as BoTorch's fit puts it).

    Returns:
        A function of no arguments returning the loss, or ``None`` for a model this module
        does not cover (BoTorch's closure is then used).
    """
    from botorch.models import SingleTaskGP
    from gpytorch.likelihoods import GaussianLikelihood
    from gpytorch.means import ConstantMean

    model: Any = mll.model
    lik = mll.likelihood
    if not isinstance(model, SingleTaskGP) or type(lik) is not GaussianLikelihood:
        return None
    if type(model.mean_module) is not ConstantMean or list(model.added_loss_terms()):  # type: ignore[operator]
        return None
    if model.train_inputs is None or model.train_inputs[0].dim() != 2 or kernel_functions(model.covar_module) is None:
        return None
    hyper = _hyperparameters(model.covar_module)
    assert hyper is not None  # kernel_functions covers it
    # GPyTorch: the model's priors, not the mll's (which lists the likelihood's noise prior twice);
    # listed once, as walking the module tree costs a tenth of a step
    priors = [(module, prior, closure) for _, module, prior, closure, _ in model.named_priors()]  # type: ignore[operator]

    def loss() -> Tensor:
        X = model.transform_inputs(model.train_inputs[0])
        if X.requires_grad:  # a learned input transform: let autograd differentiate the whole
            return _autograd_loss(model, lik, X)
        value = _GaussianFit.apply(hyper, X, model.train_targets, model.mean_module.constant, lik.noise,
                                   *hyper.values())
        return (value - _log_priors(priors, X.dtype)) / len(X)

    return loss


def _log_priors(priors: list[tuple[Any, Any, Any]], dtype: torch.dtype) -> Tensor:
    """The sum of the log densities of ``(module, prior, closure)`` priors at the current hyperparameters."""
    out = torch.zeros((), dtype=dtype)
    for module, prior, closure in priors:
        out = out + prior.log_prob(closure(module)).sum()
    return out


def _autograd_loss(model: Any, lik: Any, X: Tensor) -> Tensor:
    """:func:`lean_mll_loss`'s value through autograd (inputs that depend on parameters)."""
    from linear_operator.utils.cholesky import psd_safe_cholesky

    fns = kernel_functions(model.covar_module, detach=False)
    assert fns is not None
    y = model.train_targets
    L = psd_safe_cholesky(fns.cross(X, X) + torch.diag_embed(lik.noise.reshape(-1).expand(len(y))))
    r = (y - model.mean_module.constant.reshape(())).unsqueeze(-1)
    w = torch.linalg.solve_triangular(L, r, upper=False)
    value = 0.5 * (w.pow(2).sum() + len(y) * math.log(2.0 * math.pi)) + L.diagonal().log().sum()
    priors = [(module, prior, closure) for _, module, prior, closure, _ in model.named_priors()]
    return (value - _log_priors(priors, y.dtype)) / len(y)


def lean_fit_closure(mll: Any) -> Any | None:
    """A BoTorch ``ForwardBackwardClosure`` of :func:`lean_mll_loss` over the trainable parameters.

    Pass it as ``fit_gpytorch_mll(mll, closure=...)``; ``None`` where :func:`lean_mll_loss` does not apply.
    """
    from botorch.optim.closures import ForwardBackwardClosure
    from botorch.optim.utils import get_parameters

    loss = lean_mll_loss(mll)
    if loss is None:
        return None
    return ForwardBackwardClosure(forward=loss, parameters=get_parameters(mll, requires_grad=True))
