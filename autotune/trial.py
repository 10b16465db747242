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
    PRUNED = "pruned"  # stopped early by the study's early-stopping rule (its partial curve is data)

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


@dataclass
class Resources:
    """What one trial needs.

    Attributes:
        gpus: GPUs per trial (0 runs on the CPU).
        cpus: CPU threads per trial (sets ``OMP_NUM_THREADS``/``torch.set_num_threads`` in the child).
        trials_per_gpu: How many trials may share one GPU (only with ``gpus == 1``).
    """

    gpus: int = 0
    cpus: int = 1
    trials_per_gpu: int = 1


@dataclass
class TrialSpec:
    """Everything an executor needs to run one trial.

    Attributes:
        trial_id: The study-wide trial number.
        params: The trial's parameters (the active ones only).
        entry_point: ``"package.module:function"`` or a path to a Python script.
        fixed_args: Extra keyword arguments passed to the function (or in the params file).
        timeout_s: Wall-clock limit; ``None`` for none.
        workdir: A directory of the trial's own (params file, reports, stdout/stderr, checkpoints).
        resources: What the trial needs.
        objective: The name of the objective metric (to detect non-finite results).
    """

    trial_id: int
    params: dict[str, Any]
    entry_point: str
    fixed_args: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None
    workdir: str | None = None
    resources: Resources = field(default_factory=Resources)
    objective: str = "objective"


@dataclass
class TrialResult:
    """How a trial ended.

    Attributes:
        trial_id: The trial number.
        state: The terminal state.
        metrics: Final metrics (the function's returned dict merged over its last reports).
        history: Every ``report(...)`` call, in order, as dicts (with ``step`` when given).
        error: The failure reason (traceback text for exceptions).
        device: Where it ran, e.g. ``"cuda:1"`` or ``"cpu"``.
        duration_s: Wall-clock (or simulated) seconds from start to end.
        start_time: Start, seconds since the epoch (or simulated clock).
        end_time: End, seconds since the epoch (or simulated clock).
        stdout_path: File holding the captured standard output, if any.
        stderr_path: File holding the captured standard error, if any.
        artifacts: Extra files to record (e.g. a model checkpoint).
        log_bytes: The size in bytes each captured stream (``"stdout"``, ``"stderr"``) reached
            before it was capped.
        logs_truncated: The streams whose file was cut to its tail (a first line in the file
            says so and gives the original size).
    """

    trial_id: int
    state: TrialState
    metrics: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    device: str = "cpu"
    duration_s: float = 0.0
    start_time: float = 0.0
    end_time: float = 0.0
    stdout_path: str | None = None
    stderr_path: str | None = None
    artifacts: list[str] = field(default_factory=list)
    log_bytes: dict[str, int] = field(default_factory=dict)
    logs_truncated: list[str] = field(default_factory=list)
