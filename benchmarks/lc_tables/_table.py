"""What the learning-curve table builders share: the grid, the per-epoch clock and the file.

A table is one gzip-compressed JSON object: ``grid`` (parameter -> values, every combination
trained), ``epochs``, ``seeds``, ``metric`` (the curve the benchmark replays), ``torch`` (the
version that trained it) and ``rows``, one per configuration: ``config``, the metric per epoch
(mean over seeds), and ``seconds`` per epoch (mean over seeds) so a replay can charge each epoch
its recorded training time.
"""

from __future__ import annotations

import gzip
import itertools
import json
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
