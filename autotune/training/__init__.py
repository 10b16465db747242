"""Training building blocks for the studies: model builders, optimisers, a training loop.

Each builder reads a trial's ``params`` by the names of the search spaces under
``autotune/search_spaces/`` (MLP, 1-D CNN, RNN, training); a name that is absent (an inactive
conditional parameter, or a smaller user space) takes its entry in :data:`DEFAULTS`::

    from autotune.training import build_mlp, train_model

    def train(params, report):
        model = build_mlp(params, in_features=8, out_features=1)
        return train_model(model, (x_train, y_train), (x_val, y_val), params, report=report)

This package imports torch; ``import autotune`` does not import it.
"""

from autotune.training._builders import (
    RecurrentNet,
    build_cnn1d,
    build_mlp,
    build_rnn,
    init_weights,
)
from autotune.training._loop import EarlyStopping, Loss, TensorPair, train_model
from autotune.training._optim import make_optimizer, make_scheduler
from autotune.training._params import DEFAULTS
from autotune.training._utils import (
    count_params,
    make_windows,
    measure_latency_ms,
    seed_everything,
    select_device,
    set_threads,
)

__all__ = [
    "DEFAULTS",
    "EarlyStopping",
    "Loss",
    "RecurrentNet",
    "TensorPair",
    "build_cnn1d",
    "build_mlp",
    "build_rnn",
    "count_params",
    "init_weights",
    "make_optimizer",
    "make_scheduler",
    "make_windows",
    "measure_latency_ms",
    "seed_everything",
    "select_device",
    "set_threads",
    "train_model",
]
