"""The quadratic example: an MLP learns a noisy quadratic form of 8 features, in seconds on a CPU.

The data are synthetic (no download, no scikit-learn): ``y = x^T A x + b^T x + noise`` for a
task ``(A, b)`` fixed by ``task_seed``, standardised. Each trial builds an MLP from the
``autotune/search_spaces/mlp.yaml`` parameters plus ``lr``, trains it with Adam and reports the
validation loss every epoch. Run one trial by hand with::

    python studies/quadratic/train.py
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import Tensor

SIZES: Mapping[str, Mapping[str, int]] = {
    "smoke": {"n_train": 256, "n_val": 128, "epochs": 2},  # about a second per trial, for tests
    "full": {"n_train": 4096, "n_val": 1024, "epochs": 10},
}
"""How much data and how many epochs each size trains on."""

N_FEATURES = 8


def make_data(n: int, task_seed: int, sample_seed: int) -> tuple[Tensor, Tensor]:
    """``n`` samples of the task.

    Args:
        n: Samples.
        task_seed: Fixes the task (``A``, ``b``): the same for training and validation.
        sample_seed: Fixes the inputs and the noise.

    Returns:
        `n x 8` inputs and `n x 1` targets (standardised with the task's own scale).
    """
    import torch

    task = torch.Generator().manual_seed(task_seed)
    a = torch.randn(N_FEATURES, N_FEATURES, generator=task) / N_FEATURES
    b = torch.randn(N_FEATURES, generator=task) / N_FEATURES**0.5
    samples = torch.Generator().manual_seed(sample_seed)
    x = torch.randn(n, N_FEATURES, generator=samples)
    y = torch.einsum("ni,ij,nj->n", x, a, x) + x @ b + 0.1 * torch.randn(n, generator=samples)
    scale = float(a.pow(2).sum().mul(2).add(b.pow(2).sum()).sqrt())  # the std of the noiseless y
    return x, (y / scale).unsqueeze(-1)


def train(
    params: Mapping[str, Any], report: Callable[..., object], size: str = "full", task_seed: int = 0, seed: int = 0
) -> dict[str, float]:
    """Train one MLP and return its best validation loss and size.

    Args:
        params: The trial's parameters (MLP architecture and ``lr``).
        report: Called once per epoch with ``train_loss``, ``val_loss``, ``val_rmse``, ``lr``.
        size: ``smoke`` or ``full`` (see :data:`SIZES`).
        task_seed: The task.
        seed: Data sampling and weight initialisation.

    Returns:
        ``val_loss`` (the objective), ``n_params`` (a constraint), ``train_seconds`` and more.
    """
    from autotune.training import build_mlp, seed_everything, train_model

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    sizes = SIZES[size]
    seed_everything(seed)
    train_data = make_data(sizes["n_train"], task_seed, sample_seed=seed + 1)
    val_data = make_data(sizes["n_val"], task_seed, sample_seed=seed + 2)
    model = build_mlp(params, in_features=N_FEATURES, out_features=1)
    return train_model(model, train_data, val_data, params, report=report, max_epochs=sizes["epochs"])


if __name__ == "__main__":
    from autotune.report import report as print_report

    print(train({"n_layers": 2, "width_1": 64, "lr": 3e-3}, print_report, size="smoke"))
