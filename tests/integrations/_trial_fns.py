"""Trial functions of the integration tests (imported by the in-process executor)."""

from __future__ import annotations

from typing import Any


def quadratic(params: dict[str, Any], report: Any) -> dict[str, float]:
    """``(x - 0.3)^2 + (y + 0.2)^2``, with one report."""
    value = (float(params["x"]) - 0.3) ** 2 + (float(params["y"]) + 0.2) ** 2
    report(step=0, loss=value)
    return {"loss": value}
