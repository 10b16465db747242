"""Build the learning-curve table of a small CNN search space on scikit-learn's digits (real training).

Every configuration of the grid below (a convolutional net on the 8 x 8 images: ``n_conv``
blocks of 3 x 3 convolution, batch norm optional, ReLU, the first block's ``channels`` doubled
per block, 2 x 2 max pooling after each block; then dropout and a linear layer to the ten
classes) is trained for ``EPOCHS`` epochs with seed 0 (cross-entropy, the optimiser and learning
rate of the grid, the same fixed 60/20/20 split as ``build_digits_mlp.py``). The validation loss
(cross-entropy), error and training seconds of every epoch are recorded and written compressed
next to this script (``digits_cnn.json.gz``, format in ``_table.py``). A run that diverges is
recorded with a validation loss of 1,000. The test split is never used. Run time: 8 minutes on
one CPU core (0.2 to 3.6 s per configuration; the shipped table was built on a 2-core machine
beside two niced single-threaded benchmarks); run it on a quiet machine, the seconds are part of
the table.

    OMP_NUM_THREADS=1 python benchmarks/lc_tables/build_digits_cnn.py

``benchmarks/bench_early_stopping.py --problem digits_cnn`` replays it.
"""

from __future__ import annotations

from pathlib import Path

from _table import build, classifier_curves
from build_digits_mlp import digits_split

GRID: dict[str, list] = {
    "optimizer": ["adam", "sgd"],
    "lr": [1e-4, 1e-3, 1e-2, 1e-1],
    "channels": [4, 16, 32],
    "n_conv": [1, 2],
    "batch_norm": [False, True],
    "dropout": [0.0, 0.3],
    "batch_size": [32, 128],
}
EPOCHS = 27
SEEDS = (0,)
OUT = Path(__file__).with_name("digits_cnn.json.gz")


def make_cnn(config: dict) -> object:
    """The configuration's network (8 x 8 single-channel images in, ten logits out)."""
    import torch
    from torch import nn

    layers: list[nn.Module] = []
    c_in, c, side = 1, config["channels"], 8
    for _ in range(config["n_conv"]):
        layers.append(nn.Conv2d(c_in, c, 3, padding=1))
        if config["batch_norm"]:
            layers.append(nn.BatchNorm2d(c))
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        c_in, c, side = c, 2 * c, side // 2
    return nn.Sequential(*layers, nn.Flatten(), nn.Dropout(config["dropout"]),
                         nn.Linear(c_in * side * side, 10)).to(torch.float32)


def train(config: dict, seed: int, data: tuple) -> dict[str, list[float]]:
    """Validation loss, error and training seconds of each epoch."""
    import torch

    data = tuple(t.reshape(-1, 1, 8, 8) if t.dim() == 2 else t for t in data)
    torch.manual_seed(seed)
    model = make_cnn(config)
    if config["optimizer"] == "adam":
        opt: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    else:
        opt = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9)
    return classifier_curves(model, opt, data, seed, config["batch_size"], EPOCHS)


def main() -> None:
    import torch

    torch.set_num_threads(1)
    data = digits_split()
    train({"optimizer": "adam", "lr": 1e-3, "channels": 4, "n_conv": 1, "batch_norm": False, "dropout": 0.0,
           "batch_size": 128}, 0, data)  # warm-up
    build(GRID, lambda config, seed: train(config, seed, data), SEEDS, EPOCHS, "val_loss", OUT,
          data="scikit-learn digits, 8 x 8 images, fixed 60/20/20 split (seed 0), standardised per pixel")


if __name__ == "__main__":
    main()
