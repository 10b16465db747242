"""Optimisers and learning-rate schedules from a trial's parameters."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, StepLR

from autotune.training._params import get_bool, get_choice, get_float, require

_Factory = Callable[
    [Iterable[nn.Parameter], float, float, Mapping[str, Any]], torch.optim.Optimizer
]


def _sgd(
    parameters: Iterable[nn.Parameter], lr: float, weight_decay: float, params: Mapping[str, Any]
) -> torch.optim.Optimizer:
    momentum = get_float(params, "momentum")
    require(0.0 <= momentum < 1.0, "momentum", "must be in [0, 1)", momentum)
    # Nesterov momentum needs momentum > 0 (PyTorch raises otherwise). The search space can
    # propose nesterov=true with momentum=0; that point is plain SGD, not a failed trial.
    nesterov = get_bool(params, "nesterov") and momentum > 0.0
    return torch.optim.SGD(
        parameters, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
    )


_OPTIMIZERS: dict[str, _Factory] = {
    "sgd": _sgd,
    "adam": lambda ps, lr, wd, _: torch.optim.Adam(ps, lr=lr, weight_decay=wd),
    "rmsprop": lambda ps, lr, wd, _: torch.optim.RMSprop(ps, lr=lr, weight_decay=wd),
    "adagrad": lambda ps, lr, wd, _: torch.optim.Adagrad(ps, lr=lr, weight_decay=wd),
}
_SCHEDULES = ("none", "cosine", "step")


def make_optimizer(params: Mapping[str, Any], model: nn.Module) -> torch.optim.Optimizer:
    """The optimiser named by ``params["optimizer"]`` over ``model``'s parameters.

    ``weight_decay`` is the optimiser's own (an L2 penalty added to the gradient). For
    ``sgd``, ``momentum`` and ``nesterov`` apply; ``nesterov`` with ``momentum == 0`` falls
    back to plain SGD, since Nesterov momentum needs a momentum.

    Args:
        params: ``optimizer`` (sgd, adam, rmsprop, adagrad), ``lr``, ``weight_decay``,
            ``momentum``, ``nesterov``; absent keys take :data:`~autotune.training.DEFAULTS`.
        model: The model; move it to its device first.

    Returns:
        The optimiser.
    """
    name = get_choice(params, "optimizer", _OPTIMIZERS)
    lr = get_float(params, "lr")
    require(lr > 0.0, "lr", "must be > 0", lr)
    weight_decay = get_float(params, "weight_decay")
    require(weight_decay >= 0.0, "weight_decay", "must be >= 0", weight_decay)
    return _OPTIMIZERS[name](model.parameters(), lr, weight_decay, params)


def make_scheduler(
    params: Mapping[str, Any], optimizer: torch.optim.Optimizer, epochs: int
) -> LRScheduler | None:
    """The per-epoch learning-rate schedule named by ``params["lr_schedule"]``.

    ``cosine`` anneals to 0 over ``epochs``; ``step`` divides the rate by 10 every
    ``epochs // 3`` epochs (twice over a run); ``none`` gives ``None``. Call ``step()`` once
    per epoch.

    Args:
        params: ``lr_schedule``; absent takes :data:`~autotune.training.DEFAULTS`.
        optimizer: The optimiser whose rate is scheduled.
        epochs: The planned number of epochs.

    Returns:
        The scheduler, or ``None`` for a constant rate.
    """
    name = get_choice(params, "lr_schedule", _SCHEDULES)
    if name == "cosine":
        return CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "step":
        return StepLR(optimizer, step_size=max(1, epochs // 3), gamma=0.1)
    return None
