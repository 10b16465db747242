"""What the learning-curve table builders share: the grid, the per-epoch clock, the training loops and the file.

A table is one gzip-compressed JSON object: ``grid`` (parameter -> values, every combination
trained), ``epochs``, ``seeds``, ``metric`` (the curve the benchmark replays), ``torch`` (the
version that trained it) and ``rows``, one per configuration: ``config``, the metric per epoch
(mean over seeds), and ``seconds`` per epoch (mean over seeds) so a replay can charge each epoch
its recorded training time.
"""

from __future__ import annotations

import gzip
import importlib
import itertools
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any


def configurations(grid: Mapping[str, Sequence[Any]]) -> Iterator[dict[str, Any]]:
    """Every combination of ``grid``'s values, the last parameter varying fastest."""
    names = list(grid)
    for values in itertools.product(*grid.values()):
        yield dict(zip(names, values))


class EpochClock:
    """Seconds between successive calls: the per-epoch training time seen by a ``report`` callback."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._last = time.perf_counter()

    def tick(self) -> None:
        """Close the current epoch."""
        now = time.perf_counter()
        self.seconds.append(now - self._last)
        self._last = now


def mean_curves(runs: Sequence[Mapping[str, Sequence[float]]], keys: Sequence[str], epochs: int) -> dict[str, list[float]]:
    """Per key, the epoch-wise mean over ``runs`` (each run holds ``epochs`` values per key), rounded."""
    return {k: [round(sum(r[k][e] for r in runs) / len(runs), 6) for e in range(epochs)] for k in keys}


def build(grid: Mapping[str, Sequence[Any]], train: Callable[[dict[str, Any], int], dict[str, list[float]]],
          seeds: Sequence[int], epochs: int, metric: str, out: Path, **extra: Any) -> None:
    """Train every configuration of ``grid`` with every seed and write the table to ``out``.

    Args:
        grid: Parameter -> values.
        train: ``train(config, seed)`` -> per-epoch lists (``epochs`` values each), including
            ``metric`` and ``seconds``.
        seeds: Training seeds; the table holds the mean over them.
        epochs: Epochs per run.
        metric: The key the benchmark replays.
        out: The ``.json.gz`` to write.
        **extra: More top-level fields (e.g. the dataset's description).
    """
    import torch

    rows = []
    started = time.time()
    configs = list(configurations(grid))
    for i, config in enumerate(configs):
        runs = [train(config, s) for s in seeds]
        rows.append({"config": config, **mean_curves(runs, list(runs[0]), epochs)})
        if i % 50 == 0:
            print(f"{i}/{len(configs)} ({time.time() - started:.0f} s)", flush=True)
    table = {"grid": dict(grid), "epochs": epochs, "seeds": list(seeds), "metric": metric, "torch": torch.__version__,
             **extra, "rows": rows}
    with gzip.open(out, "wt", encoding="utf-8") as f:
        json.dump(table, f)
    print(f"wrote {out} ({len(rows)} configurations, {time.time() - started:.0f} s)")


DIVERGED = 1e3
"""The value recorded for an epoch whose metric is not finite (or, for a classifier's loss, beyond it)."""


def study_module(study_dir: Path) -> Any:
    """The ``train`` module of the study in ``study_dir``.

    Raises:
        RuntimeError: If another study's ``train`` was imported first in this process (the
            studies' modules import each other by name, so one process builds one study's table).
    """
    if str(study_dir) not in sys.path:  # the study's modules import each other by name
        sys.path.insert(0, str(study_dir))
    study = importlib.import_module("train")
    if Path(study.__file__).resolve().parent != Path(study_dir).resolve():
        raise RuntimeError(f"this process already imported {study.__file__} as 'train'; build the table of "
                           f"{study_dir} in a process of its own")
    return study


def study_curves(study_dir: Path, params: dict[str, Any], seed: int, size: str, keys: Sequence[str],
                 epochs: int) -> dict[str, list[float]]:
    """One trial of a study's own ``train(params, report, size=, seed=)``, recorded per epoch.

    Args:
        study_dir: The study's folder (its ``train.py`` is imported from there).
        params: The trial's parameters, ``epochs`` included.
        seed: The training seed.
        size: The study's size preset.
        keys: The reported metrics to record.
        epochs: The table's length: a run that stops early (the study's own patience) is padded
            with :data:`DIVERGED` and its mean epoch time.

    Returns:
        Per key, ``epochs`` values, and ``seconds`` per epoch.
    """
    study = study_module(study_dir)
    curves: dict[str, list[float]] = {k: [] for k in keys}
    clock = EpochClock()

    def report(step: int, **metrics: float) -> None:
        clock.tick()
        for key in curves:
            curves[key].append(metrics[key] if math.isfinite(metrics[key]) else DIVERGED)

    study.train(params, report, size=size, seed=seed)
    missing = epochs - len(clock.seconds)
    mean_seconds = sum(clock.seconds) / len(clock.seconds)
    return {**{k: v + [DIVERGED] * missing for k, v in curves.items()}, "seconds": clock.seconds + [mean_seconds] * missing}


def classifier_curves(model: Any, opt: Any, data: tuple, seed: int, batch_size: int, epochs: int) -> dict[str, list[float]]:
    """Train a ten-class classifier with cross-entropy for ``epochs`` epochs, recording each epoch.

    Args:
        model: A ``torch.nn.Module`` (logits out).
        opt: Its optimiser.
        data: ``(X_train, y_train, X_val, y_val)`` tensors.
        seed: Seeds the minibatch order.
        batch_size: Minibatch size.
        epochs: Epochs to train.

    Returns:
        ``val_loss`` (cross-entropy; :data:`DIVERGED` where it is not finite or larger),
        ``val_error`` and ``seconds``, one value per epoch.
    """
    import torch

    Xtr, ytr, Xva, yva = data
    loss_fn = torch.nn.CrossEntropyLoss()
    g = torch.Generator().manual_seed(seed)
    losses, errors = [], []
    clock = EpochClock()
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(len(Xtr), generator=g).split(batch_size):
            opt.zero_grad()
            loss_fn(model(Xtr[batch]), ytr[batch]).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            out = model(Xva)
            loss = float(loss_fn(out, yva))
            losses.append(loss if math.isfinite(loss) and loss < DIVERGED else DIVERGED)
            errors.append(float((out.argmax(-1) != yva).float().mean()))
        clock.tick()
    return {"val_loss": losses, "val_error": errors, "seconds": clock.seconds}
