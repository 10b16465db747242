"""How a trial function's outcome becomes a terminal state and final metrics.

Shared by the worker process, the in-process executor and the simulated executor, so every
executor classifies outcomes the same way. Standard library only: the worker imports it.
"""

from __future__ import annotations

import errno
import importlib
import json
import math
import os
import runpy
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autotune.exceptions import ConfigError
from autotune.report import (
    Reporter,
    TrialContext,
    TrialStopped,
    active_trial,
    to_metrics,
)
from autotune.trial import TrialState

__all__ = [
    "OOM_MARKERS",
    "Outcome",
    "classify_exception",
    "is_script",
    "latest_values",
    "outcome_from_exception",
    "outcome_from_return",
    "resolve_entry_point",
    "run_entry_point",
    "says_out_of_memory",
    "write_json_atomic",
]


@dataclass
class Outcome:
    """How a trial ended, as seen where it ran.

    Attributes:
        state: The terminal state.
        metrics: The final metrics.
        error: The failure reason (a traceback for exceptions), or ``None``.
    """

    state: TrialState
    metrics: dict[str, float]
    error: str | None = None


def is_script(entry_point: str) -> bool:
    """Whether an entry point names a Python script rather than ``package.module:function``."""
    return entry_point.endswith(".py") or os.sep in entry_point or "/" in entry_point


def resolve_entry_point(entry_point: str) -> Callable[..., Any] | str:
    """Import an entry point.

    Args:
        entry_point: ``"package.module:function"`` or a path to a Python script.

    Returns:
        The function, or the script's absolute path.

    Raises:
        ConfigError: The entry point is malformed, or the script does not exist.
        ImportError: The module cannot be imported.
        AttributeError: The module has no such function.
    """
    if is_script(entry_point):
        path = os.path.abspath(entry_point)
        if not os.path.isfile(path):
            raise ConfigError(
                "trial entry_point",
                "must name an existing Python script",
                entry_point,
                "give a path relative to the driver's working directory, or an absolute one.",
            )
        return path
    module_name, sep, attr = entry_point.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            "trial entry_point",
            "must be 'package.module:function' or a path to a .py script",
            entry_point,
            "write e.g. 'mypkg.train:train' or 'scripts/train.py'.",
        )
    target: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError("trial entry_point", "must name a callable", entry_point)
    function: Callable[..., Any] = target
    return function


OOM_MARKERS = (
    "out of memory",  # CUDA, cuDNN, "DefaultCPUAllocator: ... Out Of Memory", HIP
    "can't allocate memory",  # torch's DefaultCPUAllocator
    "cannot allocate memory",  # ENOMEM from the OS (fork, mmap)
    "std::bad_alloc",
    "cublas_status_alloc_failed",
    "memoryerror",
    "outofmemoryerror",
)
"""Lower-case pieces of text that mark an out-of-memory failure (exception messages, stderr)."""


def says_out_of_memory(text: str) -> bool:
    """Whether an error text (a message, a traceback, the end of stderr) reports running out of memory."""
    lowered = text.lower()
    return any(marker in lowered for marker in OOM_MARKERS)


def _is_oom(exc: BaseException) -> bool:
    if isinstance(exc, MemoryError):
        return True
    if isinstance(exc, OSError) and exc.errno == errno.ENOMEM:
        return True
    if any(cls.__name__ == "OutOfMemoryError" for cls in type(exc).__mro__):
        return True
    try:
        message = str(exc)
    except Exception:  # noqa: BLE001 (a broken __str__ must not hide the failure)
        return False
    return says_out_of_memory(message)


def classify_exception(exc: BaseException) -> TrialState:
    """Map an exception raised by a trial to its terminal state.

    ``MemoryError``, an ``OSError`` with ``errno.ENOMEM``, ``torch.cuda.OutOfMemoryError``
    (matched by name, torch is not imported) and any error whose message contains one of
    :data:`OOM_MARKERS` ("out of memory", "can't allocate memory", ...) are ``OOM``, also when
    they are the cause or context of the exception raised (``raise ... from exc``);
    :class:`TrialStopped` and ``KeyboardInterrupt`` are ``KILLED``; anything else is ``FAILED``.

    Args:
        exc: The exception.

    Returns:
        The terminal state.
    """
    if isinstance(exc, (TrialStopped, KeyboardInterrupt)):
        return TrialState.KILLED
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if _is_oom(current):
            return TrialState.OOM
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return TrialState.FAILED


def latest_values(history: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """The most recent value of each metric over the reports (``step`` left out).

    Args:
        history: The report records, oldest first.

    Returns:
        Metric names to their last reported values.
    """
    values: dict[str, float] = {}
    for record in history:
        values.update({name: float(value) for name, value in record.items() if name != "step"})
    return values


def _short(exc: BaseException, limit: int = 300) -> str:
    """``exc`` as one short line (a huge value's repr is cut)."""
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001
        text = type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def _to_float(value: Any) -> float:
    """``float(value)``, with an OverflowError (an int beyond about 1.8e308) turned into a clear TypeError."""
    try:
        return float(value)
    except OverflowError as exc:
        raise TypeError(f"got {type(value).__name__} too large for a float (beyond about 1.8e308)") from exc


def outcome_from_return(returned: Any, history: Sequence[Mapping[str, Any]], objective: str) -> Outcome:
    """Final metrics and state from a trial function's return value.

    A number becomes ``{objective: value}``; a dict is merged over the latest reported values;
    ``None`` keeps the reported values. A missing objective is ``FAILED``, a non-finite one
    ``NONFINITE``.

    Args:
        returned: What the function returned.
        history: The trial's report records.
        objective: The name of the objective metric.

    Returns:
        The outcome.
    """
    metrics = latest_values(history)
    try:
        if isinstance(returned, Mapping):
            metrics.update(to_metrics(returned))
        elif returned is not None:
            if isinstance(returned, (str, bytes, bool)):
                raise TypeError(f"got {type(returned).__name__} {returned!r}")
            metrics[objective] = _to_float(returned)
    except Exception as exc:  # noqa: BLE001 (any conversion failure is the trial's failure, never the driver's)
        return Outcome(
            TrialState.FAILED,
            latest_values(history),
            f"the trial function must return a number, a dict of numbers or None; {_short(exc)}. "
            f"Fix: return float(value) or {{{objective!r}: float(value)}}.",
        )
    if objective not in metrics:
        return Outcome(
            TrialState.FAILED,
            metrics,
            f"the trial finished without a value for the objective {objective!r} "
            f"(metrics: {sorted(metrics)}). Fix: return a float, return a dict holding "
            f"{objective!r}, or call report({objective}=...).",
        )
    if not math.isfinite(metrics[objective]):
        return Outcome(TrialState.NONFINITE, metrics, f"the objective {objective!r} is {metrics[objective]}")
    return Outcome(TrialState.COMPLETED, metrics)


def outcome_from_exception(exc: BaseException, history: Sequence[Mapping[str, Any]]) -> Outcome:
    """The outcome of a trial function that raised ``exc`` (traceback kept in ``error``)."""
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return Outcome(classify_exception(exc), latest_values(history), text)


def run_entry_point(
    target: Callable[..., Any] | str,
    params: dict[str, Any],
    fixed_args: dict[str, Any],
    reporter: Reporter,
    objective: str,
) -> Outcome:
    """Run a trial function (or script) and classify how it ended.

    Exceptions (and :class:`TrialStopped`) are caught and classified. ``KeyboardInterrupt`` is
    left to the caller: the in-process executor records ``KILLED`` and re-raises it so Ctrl-C
    still stops the driver; the worker process records ``KILLED``.

    Args:
        target: The function, or a script path (run as ``__main__``).
        params: The trial's parameters.
        fixed_args: Extra keyword arguments for the function.
        reporter: The trial's ``report`` callable.
        objective: The name of the objective metric.

    Returns:
        The outcome.
    """
    context = TrialContext(reporter=reporter, params=params, fixed_args=fixed_args)
    try:
        with active_trial(context):
            if isinstance(target, str):
                runpy.run_path(target, run_name="__main__")
                returned = None
            else:
                returned = target(params, reporter, **fixed_args)
    except SystemExit as exc:
        if exc.code not in (None, 0):
            return Outcome(
                TrialState.FAILED, latest_values(reporter.history), f"the trial exited with code {exc.code!r}"
            )
        returned = None
    except (Exception, TrialStopped) as exc:  # noqa: BLE001 (classified)
        return outcome_from_exception(exc, reporter.history)
    return outcome_from_return(returned, reporter.history, objective)


def write_json_atomic(path: str | os.PathLike[str], value: Any) -> None:
    """Write ``value`` as JSON to ``path`` atomically (a temporary file, then ``os.replace``).

    Args:
        path: The destination file.
        value: A JSON-serialisable value.

    Raises:
        TypeError: ``value`` is not JSON-serialisable (nothing is written).
    """
    path = os.fspath(path)
    text = json.dumps(value, indent=1)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)
