"""Trial states and the record of one evaluated point, shared by every layer."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class TrialState(str, enum.Enum):
    """The state of a trial. Each finished trial ends in exactly one terminal state."""

    PENDING = "pending"  # proposed, not yet started
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"  # raised an exception (traceback recorded)
    OOM = "oom"  # ran out of (GPU or host) memory
    NONFINITE = "nonfinite"  # the objective came back NaN or infinite
    TIMEOUT = "timeout"  # ran past its time limit
    KILLED = "killed"  # stopped by the user or the driver (Ctrl-C, SIGTERM)

    @property
    def is_finished(self) -> bool:
        """Whether the state is terminal."""
        return self not in (TrialState.PENDING, TrialState.RUNNING)

    @property
    def is_failure(self) -> bool:
        """Whether the trial finished without a usable objective value.

        ``KILLED`` is not a failure of the configuration: the optimiser does not learn from it.
        """
        return self in (TrialState.FAILED, TrialState.OOM, TrialState.NONFINITE, TrialState.TIMEOUT)


@dataclass
class Observation:
    """One evaluated point as the optimiser sees it.

    Attributes:
        params: The active parameters of the point (as suggested).
        value: The objective value in the user's units, or ``None`` when the trial failed.
        state: The terminal state of the trial.
        metrics: Other final metrics, e.g. constraint metrics (``n_params``) and the cost metric.
        trial_id: The id of the trial, if it came from :meth:`Optimizer.ask`.
    """

    params: dict[str, Any]
    value: float | None
    state: TrialState = TrialState.COMPLETED
    metrics: dict[str, float] = field(default_factory=dict)
    trial_id: int | None = None
