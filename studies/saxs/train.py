"""The SAXS classifier trial: a 1-D CNN names the scattering model of an ``I(Q)`` curve.

The curves come from ``data.py`` beside this file (sasmodels, six models, random sizes,
polydispersity, background and noise, log-scaled). Each trial builds the CNN of
``autotune/search_spaces/cnn1d.yaml`` plus ``lr`` with :func:`autotune.training.build_cnn1d`, trains it
with cross-entropy and returns ``val_accuracy`` (the objective) and ``train_seconds`` (the
cost the cost-sensitive strategy models). The data set is generated once per size and seed
and cached in ``<output_dir>/data`` (the local executor runs a trial in
``<output_dir>/trials/<id>``). Run one trial with the default architecture by hand::

    python studies/saxs/train.py --size smoke
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

SIZES: Mapping[str, Mapping[str, int]] = {
    "smoke": {"n_train_per_class": 40, "n_val_per_class": 20, "epochs": 3},  # seconds per trial
    "full": {"n_train_per_class": 800, "n_val_per_class": 200, "epochs": 20},
}
"""Curves per class and the epoch cap of each size."""


def _data() -> ModuleType:
    """``data.py`` beside this file, under a name no other study's ``data`` module can shadow."""
    name = "autotune_studies_saxs_data"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("data.py"))
        assert spec is not None and spec.loader is not None  # the file ships beside this one
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def default_cache_dir() -> Path:
    """``<output_dir>/data`` for a trial of a study, else ``./saxs-data``."""
    workdir = os.environ.get("AUTOTUNE_WORKDIR")
    return Path(workdir).resolve().parent.parent / "data" if workdir else Path.cwd() / "saxs-data"


def train(
    params: Mapping[str, Any], report: Callable[..., object], size: str = "full", seed: int = 0,
    cache_dir: str | None = None,
) -> dict[str, float]:
    """Train one CNN classifier and return its validation accuracy and cost.

    Args:
        params: The CNN architecture (``autotune/search_spaces/cnn1d.yaml``) and ``lr``.
        report: Called once per epoch with ``train_loss``, ``val_loss``, ``val_accuracy``, ``lr``.
        size: ``smoke`` or ``full`` (see :data:`SIZES`).
        seed: The data sets (training ``seed``, validation ``seed + 1``) and the weights.
        cache_dir: Where the generated curves are cached (default :func:`default_cache_dir`).

    Returns:
        ``val_accuracy`` (the objective), ``val_loss``, ``train_seconds`` (the cost),
        ``n_params`` and more (see :func:`autotune.training.train_model`).
    """
    import torch

    from autotune.training import build_cnn1d, seed_everything, train_model

    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    data = _data()
    sizes = SIZES[size]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    x_train, y_train = data.cached(data.CurveSpec(sizes["n_train_per_class"]), seed, folder)
    x_val, y_val = data.cached(data.CurveSpec(sizes["n_val_per_class"]), seed + 1, folder)
    seed_everything(seed)
    train_data = (torch.from_numpy(x_train).unsqueeze(1), torch.from_numpy(y_train))
    val_data = (torch.from_numpy(x_val).unsqueeze(1), torch.from_numpy(y_val))
    model = build_cnn1d(params, in_channels=1, length=x_train.shape[1], n_classes=len(data.MODELS))
    return train_model(model, train_data, val_data, params, loss="cross_entropy", report=report,
                       max_epochs=sizes["epochs"], patience=5)


if __name__ == "__main__":
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Train the default CNN once (the baseline of the study).")
    parser.add_argument("--size", choices=sorted(SIZES), default="smoke")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(train({}, lambda **m: print(json.dumps(m)), size=args.size, seed=args.seed), indent=2))
