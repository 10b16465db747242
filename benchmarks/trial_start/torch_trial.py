"""A trial that imports torch at module level, as a study's training code does, and trains a tiny step."""

from __future__ import annotations

import time
from typing import Any

import torch


def train(params: dict[str, Any], report: Any) -> dict[str, float]:
    """Report the wall-clock time at once (the trial's start), run one small step, report the end time."""
    report(step=0, t_first_report=time.time())
    x = torch.randn(64, 64)
    loss = float((x @ x).mean())
    end = time.time()
    return {"objective": loss, "t_end": end}
