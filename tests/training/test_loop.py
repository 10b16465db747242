"""The training loop and early stopping, on small synthetic problems (real PyTorch, CPU)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from autotune.exceptions import ConfigError, UnknownNameError
from autotune.training import (
    EarlyStopping,
    build_mlp,
    build_rnn,
    make_windows,
    seed_everything,
    train_model,
)

Data = tuple[torch.Tensor, torch.Tensor]


class Recorder:
    """A ``report`` callable that keeps every call."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, **metrics: Any) -> None:
        self.calls.append(metrics)


def _linear_data(
    n: int = 640, d: int = 8, noise: float = 0.05, seed: int = 0
) -> tuple[Data, Data, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    w = torch.randn(d, generator=gen)
    y = x @ w + noise * torch.randn(n, generator=gen)  # `n`, while the model gives `n x 1`
    split = n * 4 // 5
    return (x[:split], y[:split]), (x[split:], y[split:]), w


def _mse(model: nn.Module, data: Data) -> float:
    model.eval()
    with torch.no_grad():
        return nn.functional.mse_loss(model(data[0]).squeeze(-1), data[1]).item()


FAST = {"n_layers": 1, "width_1": 32, "optimizer": "adam", "lr": 1e-2, "batch_size": 32}
FROZEN = {
    "n_layers": 1,
    "width_1": 8,
    "optimizer": "sgd",
    "lr": 1e-30,
    "batch_size": 64,
}  # weights never move


# --- EarlyStopping -------------------------------------------------------------------------


def test_early_stopping_counts_updates_without_improvement() -> None:
    stopper = EarlyStopping(patience=3)
    flags = [stopper.update(v) for v in [1.0, 0.8, 0.9, 0.85, 0.7, 0.75, 0.8]]
    assert flags == [True, True, False, False, True, False, False]
    assert stopper.best == 0.7 and not stopper.should_stop
    stopper.update(0.71)
    assert stopper.should_stop


def test_early_stopping_min_delta_and_max_mode() -> None:
    stopper = EarlyStopping(patience=1, min_delta=0.1)
    assert stopper.update(1.0) and not stopper.update(0.95) and stopper.should_stop
    accuracy = EarlyStopping(patience=2, mode="max")
    assert accuracy.update(0.5) and accuracy.update(0.6) and not accuracy.update(0.55)


def test_early_stopping_never_counts_nan_as_best() -> None:
    stopper = EarlyStopping(patience=2)
    assert not stopper.update(math.nan) and stopper.best is None
    assert stopper.update(3.0) and not stopper.update(math.nan)


def test_early_stopping_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="must be >= 1"):
        EarlyStopping(patience=0)
    with pytest.raises(UnknownNameError, match="max, min"):
        EarlyStopping(mode="lowest")  # type: ignore[arg-type]


# --- train_model ---------------------------------------------------------------------------


def test_mlp_learns_linear_regression() -> None:
    seed_everything(0)
    train, val, _ = _linear_data()
    model = build_mlp(FAST, in_features=8, out_features=1)
    before = _mse(model, val)
    result = train_model(model, train, val, {**FAST, "epochs": 15}, device="cpu")
    baseline = val[1].var().item()  # predicting the mean
    assert result["val_loss"] < 0.05 * baseline and result["val_loss"] < 0.05 * before
    assert result["val_rmse"] == pytest.approx(math.sqrt(result["val_loss"]))
    assert result["n_params"] == (8 * 32 + 32) + (32 + 1)
    assert result["train_seconds"] > 0 and 1 <= result["best_epoch"] <= result["epochs"] <= 15


def test_report_once_per_epoch_with_increasing_steps() -> None:
    seed_everything(0)
    train, val, _ = _linear_data()
    report = Recorder()
    result = train_model(
        build_mlp(FAST, 8, 1), train, val, {**FAST, "epochs": 6}, report=report, device="cpu"
    )
    assert [call["step"] for call in report.calls] == [1, 2, 3, 4, 5, 6]
    assert all(
        set(call) == {"step", "train_loss", "val_loss", "val_rmse", "lr"} for call in report.calls
    )
    assert result["epochs"] == 6
    val_losses = [call["val_loss"] for call in report.calls]
    assert result["val_loss"] == min(val_losses)
    assert result["best_epoch"] == 1 + val_losses.index(min(val_losses))


def test_schedule_reaches_the_report() -> None:
    seed_everything(0)
    train, val, _ = _linear_data(n=200)
    report = Recorder()
    params = {**FAST, "epochs": 6, "lr_schedule": "step", "lr": 0.01}
    train_model(
        build_mlp(FAST, 8, 1), train, val, params, report=report, device="cpu", patience=100
    )
    assert [c["lr"] for c in report.calls] == pytest.approx([1e-2, 1e-2, 1e-3, 1e-3, 1e-4, 1e-4])


def test_early_stopping_stops_after_patience_epochs() -> None:
    seed_everything(0)
    train, val, _ = _linear_data(n=200)
    report = Recorder()
    result = train_model(
        build_mlp(FROZEN, 8, 1),
        train,
        val,
        {**FROZEN, "epochs": 50},
        report=report,
        patience=3,
        device="cpu",
    )
    # epoch 1 sets the best; epochs 2, 3, 4 cannot beat it; training stops after epoch 4
    assert result["epochs"] == 4 and len(report.calls) == 4 and result["best_epoch"] == 1


def test_patience_from_params_and_epoch_cap() -> None:
    seed_everything(0)
    train, val, _ = _linear_data(n=200)
    stopped = train_model(
        build_mlp(FROZEN, 8, 1), train, val, {**FROZEN, "patience": 2}, device="cpu"
    )
    assert stopped["epochs"] == 3
    capped = train_model(
        build_mlp(FAST, 8, 1), train, val, {**FAST, "epochs": 50}, max_epochs=3, device="cpu"
    )
    assert capped["epochs"] == 3
    unset = train_model(build_mlp(FAST, 8, 1), train, val, FAST, max_epochs=2, device="cpu")
    assert unset["epochs"] == 2


def test_best_weights_are_restored_and_checkpointed(tmp_path: Path) -> None:
    seed_everything(0)
    train, val, _ = _linear_data(n=400)
    val = (val[0], -val[1])  # the more the model learns the training task, the worse on this
    report = Recorder()
    path = tmp_path / "ckpt" / "best.pt"
    model = build_mlp(FAST, 8, 1)
    result = train_model(
        model,
        train,
        val,
        {**FAST, "epochs": 20},
        report=report,
        patience=3,
        checkpoint_path=path,
        device="cpu",
    )
    assert result["best_epoch"] == 1 and result["epochs"] == 4
    assert report.calls[-1]["val_loss"] > result["val_loss"]  # the last epoch was worse...
    assert _mse(model, val) == pytest.approx(
        result["val_loss"], rel=1e-5
    )  # ...the model is the best
    fresh = build_mlp(FAST, 8, 1)
    fresh.load_state_dict(torch.load(path))
    assert _mse(fresh, val) == pytest.approx(result["val_loss"], rel=1e-5)
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temporary file left


def test_nan_loss_returns_non_finite_without_raising() -> None:
    train, val, _ = _linear_data(n=200)
    train[1][5] = math.nan
    report = Recorder()
    result = train_model(
        build_mlp(FAST, 8, 1), train, val, {**FAST, "epochs": 10}, report=report, device="cpu"
    )
    assert result["epochs"] == 1 and len(report.calls) == 1
    assert not math.isfinite(result["val_loss"]) and not math.isfinite(result["val_rmse"])
    assert not math.isfinite(report.calls[0]["train_loss"])


def test_divergence_stops_early_with_non_finite_loss() -> None:
    seed_everything(0)
    train, val, _ = _linear_data(n=400)
    params = {**FAST, "optimizer": "sgd", "lr": 1e4, "epochs": 30}
    result = train_model(build_mlp(params, 8, 1), train, val, params, device="cpu")
    assert not math.isfinite(result["val_loss"]) and result["epochs"] < 30


def test_classification_accuracy() -> None:
    seed_everything(0)
    n = 400
    labels = torch.randint(0, 3, (n,))
    centres = torch.tensor([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    x = centres[labels] + 0.5 * torch.randn(n, 2)
    train, val = (x[:300], labels[:300]), (x[300:], labels[300:])
    report = Recorder()
    result = train_model(
        build_mlp(FAST, 2, 3),
        train,
        val,
        {**FAST, "epochs": 10},
        loss="cross_entropy",
        report=report,
        device="cpu",
    )
    assert result["val_accuracy"] > 0.95 and "val_rmse" not in result
    assert set(report.calls[0]) == {"step", "train_loss", "val_loss", "val_accuracy", "lr"}


def test_batch_norm_survives_a_last_batch_of_one() -> None:
    seed_everything(0)
    train, val, _ = _linear_data(n=200)
    train = (train[0][:65], train[1][:65])  # 65 = 64 + 1
    params = {**FAST, "batch_norm": True, "batch_size": 64, "epochs": 2}
    result = train_model(build_mlp(params, 8, 1), train, val, params, device="cpu")
    assert math.isfinite(result["val_loss"])


def test_targets_that_do_not_fit_the_outputs_are_a_config_error() -> None:
    train, val, _ = _linear_data(n=100)
    with pytest.raises(ConfigError, match="one value per model output"):
        train_model(build_mlp(FAST, 8, 3), train, val, {**FAST, "epochs": 1}, device="cpu")


def test_unknown_loss() -> None:
    train, val, _ = _linear_data(n=100)
    with pytest.raises(UnknownNameError, match="cross_entropy, mse"):
        train_model(build_mlp(FAST, 8, 1), train, val, FAST, loss="mae", device="cpu")  # type: ignore[arg-type]


def test_rnn_learns_a_sine_from_windows() -> None:
    seed_everything(0)
    series = torch.sin(torch.arange(600.0) * 0.2)
    x, y = make_windows(series, window=12)
    train, val = (x[:480], y[:480]), (x[480:], y[480:])
    params = {
        "cell": "gru",
        "hidden_size": 16,
        "n_layers": 1,
        "lr": 1e-2,
        "batch_size": 32,
        "epochs": 8,
    }
    result = train_model(build_rnn(params, 1, 1), train, val, params, device="cpu")
    assert result["val_loss"] < 0.05 * val[1].var().item()
