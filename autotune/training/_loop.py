"""A plain PyTorch training loop over in-memory tensors, with early stopping."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, TensorDataset

from autotune.exceptions import ConfigError, UnknownNameError
from autotune.training._optim import make_optimizer, make_scheduler
from autotune.training._params import get_int
from autotune.training._utils import count_params, select_device

TensorPair = tuple[torch.Tensor, torch.Tensor]
"""``(X, y)``: inputs `n x ...` and targets `n x ...` (class indices `n` for cross-entropy)."""

Loss = Literal["mse", "cross_entropy"]
_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "mse": F.mse_loss,
    "cross_entropy": F.cross_entropy,
}
_EVAL_CHUNK = 4096  # validation rows per forward pass


class EarlyStopping:
    """Tell when a monitored value has stopped improving.

    A value improves on the best so far when it is lower by more than ``min_delta`` (higher,
    with ``mode="max"``); a non-finite value never improves. :attr:`should_stop` turns true
    after ``patience`` updates in a row without improvement.

    Args:
        patience: Updates without improvement to tolerate, at least 1.
        min_delta: The smallest change that counts as an improvement, at least 0.
        mode: ``"min"`` (a loss) or ``"max"`` (an accuracy).
    """

    def __init__(
        self, patience: int = 10, min_delta: float = 0.0, mode: Literal["min", "max"] = "min"
    ) -> None:
        if patience < 1:
            raise ConfigError("EarlyStopping(patience)", "must be >= 1", patience)
        if not min_delta >= 0.0:
            raise ConfigError("EarlyStopping(min_delta)", "must be >= 0", min_delta)
        if mode not in ("min", "max"):
            raise UnknownNameError("mode", str(mode), ["min", "max"], where="EarlyStopping(mode)")
        self.patience = patience
        self.min_delta = min_delta
        self.mode = mode
        self.best: float | None = None
        self.n_bad = 0

    def update(self, value: float) -> bool:
        """Record ``value`` and say whether it is a new best."""
        sign = 1.0 if self.mode == "min" else -1.0
        improved = math.isfinite(value) and (
            self.best is None or sign * (self.best - value) > self.min_delta
        )
        if improved:
            self.best, self.n_bad = value, 0
        else:
            self.n_bad += 1
        return improved

    @property
    def should_stop(self) -> bool:
        """Whether the last ``patience`` updates all failed to improve."""
        return self.n_bad >= self.patience


def _align(pred: torch.Tensor, target: torch.Tensor, loss: str) -> TensorPair:
    """Match regression outputs to their targets: `n x 1` against `n` would broadcast to `n x n`."""
    if loss != "mse":
        return pred, target
    if pred.shape != target.shape:
        if pred.numel() != target.numel():
            raise ConfigError(
                "train_model: targets",
                f"must hold one value per model output; the model gives {tuple(pred.shape)}",
                tuple(target.shape),
                "give the model as many outputs as each target has values.",
            )
        pred = pred.reshape(target.shape)
    return pred, target.to(pred.dtype)


def _train_epoch(
    model: nn.Module,
    loader: DataLoader[Any],
    loss: str,
    optimizer: torch.optim.Optimizer,
    device: torch.device,
) -> float:
    """One pass over ``loader``; returns the mean training loss (non-finite if it diverged)."""
    model.train()
    total, n = torch.zeros((), device=device), 0
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        batch_loss = _LOSSES[loss](*_align(model(x), y, loss))
        batch_loss.backward()
        optimizer.step()
        total += batch_loss.detach() * x.shape[0]  # stays on the device: no sync per batch
        n += x.shape[0]
    return float(total) / n


def _evaluate(
    model: nn.Module, data: TensorPair, loss: str, device: torch.device
) -> dict[str, float]:
    """``val_loss`` and ``val_rmse`` (regression) or ``val_accuracy`` (classification)."""
    model.eval()
    x_all, y_all = data
    total, correct, count = torch.zeros((), device=device), torch.zeros((), device=device), 0
    with torch.inference_mode():
        for start in range(0, x_all.shape[0], _EVAL_CHUNK):
            x = x_all[start : start + _EVAL_CHUNK].to(device)
            y = y_all[start : start + _EVAL_CHUNK].to(device)
            pred, target = _align(model(x), y, loss)
            total += _LOSSES[loss](pred, target, reduction="sum")
            if loss == "mse":
                count += target.numel()
            else:
                labels = target if not target.is_floating_point() else target.argmax(-1)
                correct += (pred.argmax(-1) == labels).sum()
                count += target.shape[0]
    val_loss = float(total) / count
    if loss == "mse":
        return {"val_loss": val_loss, "val_rmse": math.sqrt(val_loss)}
    return {"val_loss": val_loss, "val_accuracy": float(correct) / x_all.shape[0]}


def _loader(data: TensorPair, batch_size: int, device: torch.device) -> DataLoader[Any]:
    """Shuffled batches, each gathered with one indexing call rather than sample by sample."""
    dataset = TensorDataset(*data)
    # A last batch of one sample would break batch norm in training mode: drop it.
    drop_last = len(dataset) > 1 and len(dataset) % batch_size == 1
    sampler = BatchSampler(RandomSampler(dataset), batch_size, drop_last)
    pin = device.type == "cuda" and not data[0].is_cuda
    return DataLoader(dataset, sampler=sampler, batch_size=None, pin_memory=pin)


def _save(state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Write a state dict atomically (a reader never sees a half-written file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({k: v.cpu() for k, v in state.items()}, tmp)
    os.replace(tmp, path)


def train_model(
    model: nn.Module,
    train_data: TensorPair,
    val_data: TensorPair,
    params: Mapping[str, Any],
    *,
    loss: Loss = "mse",
    report: Callable[..., object] | None = None,
    device: str | torch.device | None = None,
    max_epochs: int | None = None,
    patience: int | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
) -> dict[str, float]:
    """Train ``model`` with the optimiser, schedule and batch size of ``params``.

    Each epoch runs one shuffled pass over ``train_data``, evaluates ``val_data``, calls
    ``report(step=epoch, train_loss=..., val_loss=..., val_rmse|val_accuracy=..., lr=...)``
    (``epoch`` counts from 1), then steps the schedule. Training stops after ``epochs``
    epochs, after ``patience`` epochs without a lower validation loss, or as soon as a loss
    is NaN or infinite. The model ends holding its best weights (lowest validation loss).

    Args:
        model: The model; it is moved to ``device``.
        train_data: ``(X, y)`` training tensors.
        val_data: ``(X, y)`` validation tensors.
        params: ``optimizer``, ``lr``, ``weight_decay``, ``momentum``, ``nesterov``,
            ``batch_size``, ``epochs``, ``lr_schedule``, ``patience``; absent keys take
            :data:`~autotune.training.DEFAULTS`.
        loss: ``"mse"`` (regression) or ``"cross_entropy"`` (classification over logits,
            class-index targets).
        report: Called once per epoch as ``report(step=..., **metrics)``.
        device: Where to train; ``None`` picks with :func:`select_device`.
        max_epochs: A cap on ``params["epochs"]`` (and the epoch count when that is absent).
        patience: Overrides ``params["patience"]``.
        checkpoint_path: Where to save the best state dict (on CPU), rewritten at each
            improvement.

    Returns:
        ``val_loss`` (the best), ``val_rmse`` or ``val_accuracy`` and ``train_loss`` at that
        epoch, ``best_epoch``, ``epochs`` (run), ``n_params`` and ``train_seconds``. After a
        non-finite loss, ``val_loss`` and the validation metric are non-finite and
        ``train_loss`` is the last epoch's.
    """
    if loss not in _LOSSES:
        raise UnknownNameError("loss", str(loss), list(_LOSSES), where="train_model(loss)")
    epochs = get_int(params, "epochs", default=max_epochs)
    if max_epochs is not None:
        epochs = min(epochs, max_epochs)
    batch_size = get_int(params, "batch_size")
    stopper = EarlyStopping(patience if patience is not None else get_int(params, "patience"))
    device = select_device(device)
    model.to(device)
    optimizer = make_optimizer(params, model)
    scheduler = make_scheduler(params, optimizer, epochs)
    loader = _loader(train_data, batch_size, device)
    metric = "val_rmse" if loss == "mse" else "val_accuracy"

    best: dict[str, float] = {
        "val_loss": math.nan,
        metric: math.nan,
        "train_loss": math.nan,
        "best_epoch": 0.0,
    }
    best_state: dict[str, torch.Tensor] | None = None
    start = time.perf_counter()
    epoch = 0
    for epoch in range(1, epochs + 1):
        lr = float(optimizer.param_groups[0]["lr"])
        train_loss = _train_epoch(model, loader, loss, optimizer, device)
        if math.isfinite(train_loss):
            val = _evaluate(model, val_data, loss, device)
        else:
            val = {"val_loss": math.nan, metric: math.nan}
        if report is not None:
            report(step=epoch, train_loss=train_loss, **val, lr=lr)
        if not (math.isfinite(train_loss) and math.isfinite(val["val_loss"])):
            best = {**best, **val, "train_loss": train_loss}
            break
        if stopper.update(val["val_loss"]):
            best = {**val, "train_loss": train_loss, "best_epoch": float(epoch)}
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if checkpoint_path is not None:
                _save(best_state, Path(checkpoint_path))
        if stopper.should_stop:
            break
        if scheduler is not None:
            scheduler.step()
    train_seconds = time.perf_counter() - start
    if best_state is not None:
        model.load_state_dict(best_state)
    return {
        **best,
        "epochs": float(epoch),
        "n_params": float(count_params(model)),
        "train_seconds": train_seconds,
    }
