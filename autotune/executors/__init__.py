"""Executors run trials: ``Executor.submit(spec) -> Job``, then ``wait``, ``result``, ``cancel``.

Built in: ``"inprocess"`` (debugging, in the driver's process), ``"local"`` (one process per
trial, GPUs pinned through the child's environment) and ``"simulated"`` (virtual time).
Others (``"ray"``, ``"slurm"``) come as plugins in the ``autotune.executors`` entry-point
group; see :func:`get_executor`.
"""

from autotune.executors._base import Executor, Job, SubmitError, read_new_reports
from autotune.executors._gpu import (
    GpuAllocator,
    discover_devices,
    parse_visible_devices,
)
from autotune.executors._inprocess import InProcessExecutor
from autotune.executors._local import PID_FILE, LocalExecutor, kill_orphan_trial
from autotune.executors._outcome import is_script
from autotune.executors._registry import (
    available_executors,
    executor_factory,
    get_executor,
    get_executor_class,
    register_executor,
)
from autotune.executors._simulated import SimulatedExecutor

__all__ = [
    "PID_FILE",
    "Executor",
    "GpuAllocator",
    "InProcessExecutor",
    "Job",
    "LocalExecutor",
    "SimulatedExecutor",
    "SubmitError",
    "available_executors",
    "executor_factory",
    "discover_devices",
    "get_executor",
    "get_executor_class",
    "is_script",
    "kill_orphan_trial",
    "parse_visible_devices",
    "read_new_reports",
    "register_executor",
]
