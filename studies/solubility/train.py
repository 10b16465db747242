"""One trial of the solubility study: an MLP on RDKit descriptors predicts log S.

The data, descriptors and preprocessing are in ``data.py`` beside this file. The training
file's 1,025 molecules are split once (``split_seed``) into 820 for training and 205 for
validation; the 257 molecules of the test file are never used for training or selection.
Each trial builds an MLP from the ``autotune/search_spaces/solubility_mlp.yaml`` parameters with
:func:`autotune.training.build_mlp`, trains it on standardised log S with
:func:`autotune.training.train_model` (early stopping on the validation loss) and returns:

- ``val_rmse``: the objective, validation RMSE in log S units (the per-epoch reports carry
  it in the same units; ``train_loss``/``val_loss`` are MSE on standardised log S);
- ``test_rmse``, ``test_mae``: of the same (best-epoch) weights on the test file, reported so
  the best trial's test figure is in the record; the optimiser never sees them;
- ``n_params`` (the constrained variant's constraint), ``epochs``, ``train_seconds``.

Run one trial by hand with::

    python studies/solubility/train.py
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

SIZES: Mapping[str, Mapping[str, int]] = {
    "smoke": {"max_epochs": 3, "patience": 3},  # a few seconds per trial, for tests and CI
    "full": {"max_epochs": 300, "patience": 30},
}
"""Epoch cap and early-stopping patience of each size (the data are the same)."""


def default_cache_dir() -> Path:
    """``<output_dir>/cache`` of the running study (trial folders are ``<output_dir>/trials/<id>``),
    else ``runs/cache`` beside this file."""
    workdir = os.environ.get("AUTOTUNE_WORKDIR")
    if workdir:
        return Path(workdir).resolve().parents[1] / "cache"
    return Path(__file__).resolve().parent / "runs" / "cache"


def train(
    params: Mapping[str, Any],
    report: Callable[..., object],
    size: str = "full",
    seed: int = 0,
    split_seed: int = 0,
    val_fraction: float = 0.2,
    cache_dir: str | None = None,
) -> dict[str, float]:
    """Train one MLP and return its validation and test errors.

    Args:
        params: MLP architecture and training parameters (``autotune/search_spaces/solubility_mlp.yaml``).
        report: Called once per epoch with ``train_loss``, ``val_loss``, ``val_rmse`` (log S), ``lr``.
        size: ``smoke`` or ``full`` (see :data:`SIZES`).
        seed: Weight initialisation and batch order.
        split_seed: The training/validation split (keep it fixed within a study).
        val_fraction: The validation share of the training file.
        cache_dir: Where the descriptor cache lives; ``None`` for :func:`default_cache_dir`.

    Returns:
        ``val_rmse`` (objective), ``test_rmse``, ``test_mae``, ``n_params`` and the loop's metrics.
    """
    import numpy as np
    import torch
    from data import Preprocessor, load_sets, rmse, split_indices

    from autotune.training import build_mlp, seed_everything, train_model

    if size not in SIZES:
        raise ValueError(f"fixed_args.size must be one of {sorted(SIZES)}, got {size!r}")
    sets = load_sets(cache_dir if cache_dir is not None else default_cache_dir())
    train_set, test_set = sets["train"], sets["test"]
    train_idx, val_idx = split_indices(len(train_set), val_fraction, split_seed)
    prep = Preprocessor.fit(train_set.descriptors[train_idx], train_set.descriptor_names)
    y_mean, y_std = float(train_set.log_s[train_idx].mean()), float(train_set.log_s[train_idx].std())

    def tensors(x: np.ndarray, log_s: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        y = (log_s - y_mean) / y_std
        return torch.from_numpy(prep.transform(x)), torch.from_numpy(y.astype(np.float32)).unsqueeze(-1)

    x_train, y_train = tensors(train_set.descriptors[train_idx], train_set.log_s[train_idx])
    x_val, y_val = tensors(train_set.descriptors[val_idx], train_set.log_s[val_idx])
    x_test, _ = tensors(test_set.descriptors, test_set.log_s)

    def report_log_units(**metrics: float) -> object:
        if "val_rmse" in metrics:
            metrics["val_rmse"] *= y_std
        return report(**metrics)

    seed_everything(seed)
    model = build_mlp(params, in_features=x_train.shape[1], out_features=1)
    sizes = SIZES[size]
    result = train_model(model, (x_train, y_train), (x_val, y_val), params, report=report_log_units,
                         max_epochs=sizes["max_epochs"], patience=sizes["patience"])
    if not np.isfinite(result["val_loss"]):
        return {**result, "val_rmse": float("nan")}  # diverged: NONFINITE, the record says so

    model.eval()
    with torch.inference_mode():
        def predict(x: torch.Tensor) -> np.ndarray:
            device = next(model.parameters()).device
            return model(x.to(device)).squeeze(-1).double().cpu().numpy() * y_std + y_mean

        val_pred, test_pred = predict(x_val), predict(x_test)
    return {
        **result,
        "val_rmse": rmse(val_pred, train_set.log_s[val_idx]),
        "test_rmse": rmse(test_pred, test_set.log_s),
        "test_mae": float(np.mean(np.abs(test_pred - test_set.log_s))),
        "n_features": float(x_train.shape[1]),
    }


if __name__ == "__main__":
    from autotune.report import report as print_report

    print(train({"n_layers": 2, "width_1": 128, "lr": 1e-3, "batch_size": 32}, print_report, size="smoke"))
