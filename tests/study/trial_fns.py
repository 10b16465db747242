"""Trial functions run by the study tests (in child processes too): standard library only."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from typing import Any

Report = Callable[..., None]


def quadratic(params: dict[str, Any], report: Report, steps: int = 3, sleep_s: float = 0.0,
              fail_trials: tuple[int, ...] | list[int] = ()) -> dict[str, float]:
    """A cheap 'training': ``steps`` reports of a decreasing loss, then ``(x - 1)^2 + y^2``.

    Trials whose id (``AUTOTUNE_TRIAL_ID``, set by the local executor) is in ``fail_trials`` raise.
    """
    x, y = float(params["x"]), float(params.get("y", 0.0))
    value = (x - 1.0) ** 2 + y**2
    for step in range(steps):
        time.sleep(sleep_s / max(steps, 1))
        report(step=step, loss=value + 1.0 / (step + 1))
    if int(os.environ.get("AUTOTUNE_TRIAL_ID", "-1")) in fail_trials:
        raise ValueError("diverged: a deliberately failing trial")
    return {"loss": value, "n_params": 1000.0}


def sim_objective(params: dict[str, Any]) -> list[dict[str, float]]:
    """A learning curve for the simulated executor: 4 reports ending at ``(x - 1)^2 + y^2``."""
    value = (float(params["x"]) - 1.0) ** 2 + float(params.get("y", 0.0)) ** 2
    return [{"step": k, "loss": value + 1.0 / (k + 1)} for k in range(3)] + [{"step": 3, "loss": value}]


def sim_duration(params: dict[str, Any]) -> float:
    """Varied, deterministic durations between 2 and 20 (virtual) seconds."""
    u = math.modf(abs(float(params["x"])) * 7.31 + abs(float(params.get("y", 0.0))) * 3.17)[0]
    return 2.0 + 18.0 * u


def broken(params: dict[str, Any], report: Report) -> dict[str, float]:
    """A trial that always fails the same way (a broken environment, not a bad point)."""
    raise RuntimeError("libcuda.so.1: cannot open shared object file")


def fails_by_point(params: dict[str, Any], report: Report) -> dict[str, float]:
    """A trial that fails with a different error at each point (a bad region, not broken code)."""
    raise ValueError(f"diverged at x={float(params['x']):.6f}")


def curve(params: dict[str, Any], report: Report, steps: int = 9, sleep_s: float = 0.1) -> dict[str, float]:
    """A learning curve ``final + 2 / step`` over steps 1..steps, ending at ``(x - 1)^2 + y^2``.

    Curves never cross, so a rule that judges early judges right; each step takes ``sleep_s``.
    """
    final = (float(params["x"]) - 1.0) ** 2 + float(params.get("y", 0.0)) ** 2
    for step in range(1, steps + 1):
        time.sleep(sleep_s)
        report(step=step, loss=final + 2.0 / step)
    return {"loss": final}
