"""One trial of the forecast study: an LSTM or GRU forecasts yearly sunspot numbers one year ahead.

Data: ``statsmodels.datasets.sunspots`` (yearly mean sunspot numbers, 1700-2008, 309 values,
shipped inside statsmodels). The series is cut by time into three parts and never shuffled
across them:

- train: 1700-1948 (249 years), the years whose value a training window predicts;
- validation: 1949-1978 (30 years), the objective's tail;
- test: 1979-2008 (30 years), the final tail, reported for every trial and read for the best.

A window's target is the year after its last input year; windows are assigned to a part by
their target year, so a validation window may read training years as inputs (they are past
observations at forecast time) but no training target lies in the validation or test years,
and the scaling is fitted on the training years alone. Values enter as ``sqrt`` (it steadies
the variance of the count-like series), standardised; errors are in sunspot numbers.

Baselines on the same targets: seasonal naive with the 11-year solar cycle
(``y[t] = y[t - 11]``), and naive persistence (``y[t] = y[t - 1]``), the harder one for
one-step forecasts.

Each trial builds the net with :func:`autotune.training.build_rnn` from the
``autotune/search_spaces/rnn.yaml`` parameters (cell, hidden size, layers, window, dropout,
bidirectional) plus ``lr``, trains it with :func:`autotune.training.train_model` (Adam, early
stopping on the validation loss) and returns ``val_mae`` (the objective), ``test_mae``, both
baselines and ``n_params``. Run one trial by hand, or print the baselines, with::

    python studies/forecast/train.py
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

SIZES: Mapping[str, Mapping[str, int]] = {
    "smoke": {"max_epochs": 3, "patience": 3},  # a few seconds per trial, for tests and CI
    "full": {"max_epochs": 200, "patience": 20},
}
"""Epoch cap and early-stopping patience of each size (the data are the same)."""

SEASON = 11
"""The seasonal-naive period in years (the solar cycle)."""


@dataclass(frozen=True)
class Series:
    """The yearly series and where its validation and test tails start.

    Attributes:
        years: `n` years.
        values: `n` sunspot numbers.
        val_start: Index of the first validation year.
        test_start: Index of the first test year.
    """

    years: np.ndarray
    values: np.ndarray
    val_start: int
    test_start: int


def load_series(n_val: int = 30, n_test: int = 30) -> Series:
    """The sunspot series with its last ``n_test`` years for test and the ``n_val`` before for validation."""
    from statsmodels.datasets import sunspots

    frame = sunspots.load_pandas().data
    values = frame["SUNACTIVITY"].to_numpy(dtype=np.float64)
    if n_val < 1 or n_test < 1 or n_val + n_test + SEASON >= len(values):
        raise ValueError(f"n_val and n_test must be >= 1 and leave more than {SEASON} training years "
                         f"of the {len(values)}, got n_val={n_val}, n_test={n_test}")
    test_start = len(values) - n_test
    return Series(frame["YEAR"].to_numpy(dtype=np.int64), values, test_start - n_val, test_start)


def seasonal_naive(values: np.ndarray, targets: np.ndarray, season: int) -> np.ndarray:
    """Forecasts ``values[t - season]`` of the target indices ``targets`` (``season=1``: persistence)."""
    if np.any(targets < season):
        raise ValueError(f"a seasonal-naive forecast of index t needs t >= season ({season})")
    return values[targets - season]


@dataclass(frozen=True)
class Windows:
    """Model-ready windows of one part of the series.

    Attributes:
        x: `n x window x 1` standardised inputs.
        y: `n x 1` standardised targets.
        targets: `n` indices into the series of the targets.
    """

    x: torch.Tensor
    y: torch.Tensor
    targets: np.ndarray


def make_parts(series: Series, window: int) -> tuple[dict[str, Windows], float, float]:
    """Cut ``sqrt(values)``, standardised on the training years, into train/val/test windows.

    Returns:
        ``(parts, mean, std)``: the windows of ``train``, ``val`` and ``test`` (by target
        index), and the scaling of ``sqrt(values)``.
    """
    import torch

    from autotune.training import make_windows

    if window >= series.val_start:
        raise ValueError(f"params.window must be < {series.val_start} (the training years), got {window}")
    root = np.sqrt(series.values)
    mean, std = float(root[: series.val_start].mean()), float(root[: series.val_start].std())
    z = torch.from_numpy(((root - mean) / std).astype(np.float32))
    x, y = make_windows(z, window)  # y[i] = z[i + window]
    targets = np.arange(window, len(z))
    bounds = {"train": (0, series.val_start), "val": (series.val_start, series.test_start),
              "test": (series.test_start, len(z))}
    parts = {}
    for name, (low, high) in bounds.items():
        mask = (targets >= low) & (targets < high)
        index = torch.from_numpy(np.flatnonzero(mask))
        parts[name] = Windows(x[index], y[index], targets[mask])
    return parts, mean, std


def baselines(series: Series) -> dict[str, float]:
    """Validation and test MAE of the seasonal-naive (11 years) and persistence forecasts."""
    out = {}
    for label, season in (("seasonal_naive", SEASON), ("naive", 1)):
        for part, (low, high) in (("val", (series.val_start, series.test_start)),
                                  ("test", (series.test_start, len(series.values)))):
            targets = np.arange(low, high)
            pred = seasonal_naive(series.values, targets, season)
            out[f"{label}_{part}_mae"] = float(np.mean(np.abs(pred - series.values[targets])))
    return out


def train(
    params: Mapping[str, Any],
    report: Callable[..., object],
    size: str = "full",
    seed: int = 0,
    batch_size: int = 32,
    n_val: int = 30,
    n_test: int = 30,
) -> dict[str, float]:
    """Train one recurrent forecaster and return its validation and test MAE.

    Args:
        params: ``cell``, ``hidden_size``, ``n_layers``, ``window``, ``dropout``,
            ``bidirectional`` (``autotune/search_spaces/rnn.yaml``) and ``lr``.
        report: Called once per epoch with ``train_loss``, ``val_loss``, ``val_rmse`` (on the
            standardised scale) and ``lr``.
        size: ``smoke`` or ``full`` (see :data:`SIZES`).
        seed: Weight initialisation and batch order.
        batch_size: Windows per batch.
        n_val: Validation years (the tail before the test years).
        n_test: Test years (the end of the series).

    Returns:
        ``val_mae`` (objective, sunspot number), ``test_mae``, the baselines' MAE on the same
        years, ``n_params`` and the loop's metrics.
    """
    import torch

    from autotune.training import build_rnn, seed_everything, train_model

    if size not in SIZES:
        raise ValueError(f"fixed_args.size must be one of {sorted(SIZES)}, got {size!r}")
    series = load_series(n_val, n_test)
    parts, mean, std = make_parts(series, int(params.get("window", 24)))
    seed_everything(seed)
    model = build_rnn(params, in_features=1, out_features=1)
    sizes = SIZES[size]
    result = train_model(
        model,
        (parts["train"].x, parts["train"].y),
        (parts["val"].x, parts["val"].y),
        {**params, "batch_size": batch_size},
        report=report,
        max_epochs=sizes["max_epochs"],
        patience=sizes["patience"],
    )
    if not np.isfinite(result["val_loss"]):
        return {**result, "val_mae": float("nan")}  # diverged: NONFINITE, the record says so

    model.eval()
    device = next(model.parameters()).device
    maes = {}
    with torch.inference_mode():
        for name in ("val", "test"):
            z = model(parts[name].x.to(device)).squeeze(-1).double().cpu().numpy()
            pred = np.maximum(z * std + mean, 0.0) ** 2
            maes[f"{name}_mae"] = float(np.mean(np.abs(pred - series.values[parts[name].targets])))
    return {**result, **maes, **baselines(series), "n_train_windows": float(len(parts["train"].targets))}


if __name__ == "__main__":
    from autotune.report import report as print_report

    print(baselines(load_series()))
    print(train({"cell": "lstm", "hidden_size": 32, "n_layers": 1, "window": 22, "lr": 3e-3}, print_report,
                size="smoke"))
