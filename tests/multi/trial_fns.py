"""Trial functions of the multi-objective study tests (imported by the trial processes)."""

from __future__ import annotations

from typing import Any


def two_objectives(params: dict[str, Any], report: Any) -> dict[str, float]:
    """``f1`` wants x = 0, ``f2`` wants x = 1 (y = 0 for both): a front along y = 0."""
    x, y = float(params["x"]), float(params["y"])
    return {"f1": x**2 + y**2, "f2": (1 - x) ** 2 + y**2, "n_params": 10.0}


def only_f1(params: dict[str, Any], report: Any) -> dict[str, float]:
    """Forgets the second objective."""
    return {"f1": float(params["x"])}
