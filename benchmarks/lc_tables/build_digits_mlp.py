"""Build the learning-curve table of a small MLP search space on scikit-learn's digits (real training).

Every configuration of the grid below is trained for ``EPOCHS`` epochs with each of ``SEEDS``
training seeds (Adam, cross-entropy, a fixed 60/20/20 split of the 1,797 digits); the
validation loss (cross-entropy), error and training seconds of every epoch are recorded,
averaged over the seeds, and written compressed next to this script (``digits_mlp.json.gz``,
format in ``_table.py``). The test split is never used for the table. Run time: about 15
minutes on one CPU core; run it on a quiet machine, the seconds are part of the table.

    OMP_NUM_THREADS=1 python benchmarks/lc_tables/build_digits_mlp.py

The table is what ``benchmarks/bench_early_stopping.py --problem digits_mlp`` looks curves up in:
the true optimum of the space is known, so regret is exact.
"""

from __future__ import annotations

from pathlib import Path

from _table import build, classifier_curves

GRID: dict[str, list] = {
    "lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2],
    "width": [16, 64, 256],
    "depth": [1, 2, 3],
    "activation": ["relu", "tanh"],
    "weight_decay": [0.0, 1e-4, 1e-3],
    "batch_size": [32, 128],
}
EPOCHS = 27
SEEDS = (0, 1)
OUT = Path(__file__).with_name("digits_mlp.json.gz")


def digits_split() -> tuple:
    """Standardised training and validation tensors of the fixed 60/20/20 split (``X, y`` each)."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))
    n_tr, n_va = int(0.6 * len(X)), int(0.2 * len(X))
    tr, va = idx[:n_tr], idx[n_tr:n_tr + n_va]
    mean, std = X[tr].mean(0), X[tr].std(0) + 1e-6
    X = (X - mean) / std
    t = lambda a: torch.tensor(a, dtype=torch.float32)  # noqa: E731
    return t(X[tr]), torch.tensor(y[tr]), t(X[va]), torch.tensor(y[va])


def train(config: dict, seed: int, data: tuple) -> dict[str, list[float]]:
    """Validation loss, error and training seconds of each epoch."""
    import torch

    torch.manual_seed(seed)
    act = {"relu": torch.nn.ReLU, "tanh": torch.nn.Tanh}[config["activation"]]
    layers: list[torch.nn.Module] = []
    d = data[0].shape[1]
    for _ in range(config["depth"]):
        layers += [torch.nn.Linear(d, config["width"]), act()]
        d = config["width"]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(d, 10))
    opt = torch.optim.Adam(model.parameters(), lr=config["lr"], weight_decay=config["weight_decay"])
    return classifier_curves(model, opt, data, seed, config["batch_size"], EPOCHS)


def main() -> None:
    import torch

    torch.set_num_threads(1)
    data = digits_split()
    build(GRID, lambda config, seed: train(config, seed, data), SEEDS, EPOCHS, "val_loss", OUT)


if __name__ == "__main__":
    main()
