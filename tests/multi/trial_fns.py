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


def two_objective_curves(params: dict[str, Any], report: Any, steps: int = 9, sleep_s: float = 0.05) -> dict[str, float]:
    """:func:`two_objectives` plus ``3 y`` in both, reached over ``steps`` reports (both fall as ``1/step``).

    The ``3 y`` term makes most points clearly dominated (by a point of similar ``x`` and smaller ``y``).
    """
    import time

    final = two_objectives(params, report)
    final = {**final, "f1": final["f1"] + 3 * float(params["y"]), "f2": final["f2"] + 3 * float(params["y"])}
    for step in range(1, steps + 1):
        time.sleep(sleep_s)  # the driver judges reports as they stream in
        report(step=step, f1=final["f1"] + 1.0 / step, f2=final["f2"] + 1.0 / step)
    return final
