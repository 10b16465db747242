"""The fault suite's trial: sleeps 0.2-2 s, reports a few steps, logs each execution.

Every execution appends two lines to the file named by ``executions_log`` (outside the
study, so a resumed or re-run trial cannot hide it)::

    start <trial_id> <token> <pid>
    end <trial_id> <token> <loss>

``token`` is unique per execution, so a trial id with two ``end`` lines, or a ``start`` after
its ``end``, was executed again. Standard library only (a trial process stays light).
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

STEPS = 4
"""Reports per trial (``step`` 0..3, each with ``loss`` and ``progress``)."""


def trial_id_of_process() -> str:
    """The trial id: the name of the trial's workdir (``<output_dir>/trials/<id>``)."""
    params_file = os.environ.get("AUTOTUNE_PARAMS_FILE")
    folder = Path(params_file).parent if params_file else Path.cwd()
    return folder.name


def _append(path: str, line: str) -> None:
    """Append one line with a single ``write`` on an ``O_APPEND`` descriptor (atomic for short lines)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


def train(
    params: Mapping[str, Any],
    report: Callable[..., object],
    executions_log: str = "",
    min_s: float = 0.2,
    max_s: float = 2.0,
) -> dict[str, float]:
    """Sleep a random ``min_s..max_s`` seconds in :data:`STEPS` reports; return ``loss``.

    Args:
        params: ``x`` and ``y`` in ``[0, 1]``.
        report: The reports channel.
        executions_log: Where to append the execution lines (nothing when empty).
        min_s: Shortest duration.
        max_s: Longest duration.

    Returns:
        ``loss`` (the objective, ``(x - 0.3)^2 + (y - 0.7)^2``) and ``duration_s``.
    """
    trial_id = trial_id_of_process()
    token = uuid.uuid4().hex
    if executions_log:
        _append(executions_log, f"start {trial_id} {token} {os.getpid()}")
    duration_s = random.Random(token).uniform(min_s, max_s)
    x, y = float(params["x"]), float(params["y"])
    loss = (x - 0.3) ** 2 + (y - 0.7) ** 2
    for step in range(STEPS):
        time.sleep(duration_s / STEPS)
        try:
            report(step=step, loss=loss + 0.1 * (STEPS - 1 - step), progress=(step + 1) / STEPS)
        except Exception:  # TrialStopped (early stopping): this execution ends here, counted as returned
            if executions_log:
                _append(executions_log, f"end {trial_id} {token} nan")
            raise
    if executions_log:
        _append(executions_log, f"end {trial_id} {token} {loss!r}")
    return {"loss": loss, "duration_s": duration_s}
