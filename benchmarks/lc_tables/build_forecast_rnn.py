"""Build the learning-curve table of the forecast study's LSTM/GRU (real training, the study's own code).

Every configuration of the grid below is trained by the forecast study's ``train`` function
(``studies/forecast/train.py``: one-year-ahead forecasts of statsmodels' yearly sunspot number,
trained on 1700-1948, validated on 1949-1978) for ``EPOCHS`` epochs with seed 0. The study's
early-stopping patience is lifted (``size: table``) so every run reports all its epochs. The
validation RMSE (standardised ``sqrt`` scale, what the study's ``early_stopping.yaml`` judges),
validation loss and training seconds of every epoch are recorded and written compressed next to
this script (``forecast_rnn.json.gz``, format in ``_table.py``). A run that diverges keeps a
validation RMSE of 1,000 for its remaining epochs, charged the mean seconds of its finished
epochs. The test years are never read into the table. Training cost spans about fifty-fold
(a one-layer GRU of 8 units on 6-year windows against a two-layer bidirectional LSTM of 128
units on 48-year windows: 0.2 to 16.4 s per configuration), so the table tests rules judged by
training seconds. Run time: 14 minutes on one CPU core (the shipped table was built on a 2-core
machine beside two niced single-threaded benchmarks); run it on a quiet machine, the seconds are
part of the table.

    OMP_NUM_THREADS=1 python benchmarks/lc_tables/build_forecast_rnn.py

``benchmarks/bench_early_stopping.py --problem forecast_rnn`` replays it. The grid spans the
study's search space (``autotune/search_spaces/rnn.yaml`` and the learning rate) at a few values
per parameter; ``dropout`` between stacked layers is left at 0 (it exists only for two layers, and
a grid is a product).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from _table import build, study_curves, study_module

GRID: dict[str, list] = {
    "cell": ["lstm", "gru"],
    "hidden_size": [8, 32, 128],
    "n_layers": [1, 2],
    "window": [6, 12, 24, 48],
    "bidirectional": [False, True],
    "lr": [1e-3, 3e-3, 1e-2, 3e-2],
}
EPOCHS = 27
SEEDS = (0,)
OUT = Path(__file__).with_name("forecast_rnn.json.gz")
STUDY = Path(__file__).resolve().parents[2] / "studies" / "forecast"


def train(config: dict[str, Any], seed: int) -> dict[str, list[float]]:
    """Validation RMSE, loss and training seconds of each epoch of one study trial."""
    study = study_module(STUDY)
    if "table" not in study.SIZES:  # every epoch reported: no patience within the table's length
        study.SIZES = {**study.SIZES, "table": {"max_epochs": EPOCHS, "patience": 10 * EPOCHS}}
    return study_curves(STUDY, {**config, "epochs": EPOCHS}, seed, "table", ["val_rmse", "val_loss"], EPOCHS)


def main() -> None:
    import torch

    torch.set_num_threads(1)
    train({"cell": "gru", "hidden_size": 8, "n_layers": 1, "window": 6, "bidirectional": False, "lr": 1e-2}, 0)  # warm-up
    build(GRID, train, SEEDS, EPOCHS, "val_rmse", OUT,
          data="statsmodels sunspots (yearly), train 1700-1948, validation 1949-1978 (studies/forecast)")


if __name__ == "__main__":
    main()
