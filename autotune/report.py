"""The worker side of a trial: read the parameters, report metrics.

This module uses the standard library only, so training code (and the worker process that
runs it) pays nothing for importing it.

A training function receives a ``report`` callable::

    def train(params: dict, report, epochs: int = 10) -> float:
        for epoch in range(epochs):
            ...
            report(step=epoch, val_loss=val_loss)
        return val_loss

A training script calls the module-level functions instead::

    from autotune.report import load_params, report

    params = load_params()
    ...
    report(step=epoch, val_loss=val_loss)

Each call to :func:`report` records one step. In a subprocess trial the executor names the
channel in the ``AUTOTUNE_REPORT_FILE`` environment variable: one JSON object per line,
flushed at each call, which the driver reads while the trial runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import operator
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "FIXED_ARGS_ENV",
    "PARAMS_ENV",
    "REPORT_ENV",
    "STOP_FILE",
    "Reporter",
    "TrialContext",
    "TrialStopped",
    "active_trial",
    "load_fixed_args",
    "load_params",
    "report",
    "should_stop",
    "to_metrics",
]

PARAMS_ENV = "AUTOTUNE_PARAMS_FILE"
"""Environment variable naming the trial's parameters file (a JSON object)."""

FIXED_ARGS_ENV = "AUTOTUNE_FIXED_ARGS_FILE"
"""Environment variable naming the trial's fixed-arguments file (a JSON object)."""

REPORT_ENV = "AUTOTUNE_REPORT_FILE"
"""Environment variable naming the reports channel (JSON lines, appended)."""


STOP_FILE = "stop_requested"
"""A file of this name beside the reports channel asks the trial to stop (early stopping)."""


class TrialStopped(BaseException):
    """Raised inside :func:`report` when the driver asked the trial to stop.

    It derives from ``BaseException`` so that ``except Exception`` in training code does not
    swallow it. The in-process executor raises it when a trial is cancelled; every trial
    raises it at its next ``report()`` after the study's early-stopping rule stopped it (the
    driver kills a trial that does not report again within ``early_stopping.grace_s``).
    """


def _as_float(name: str, value: Any) -> float:
    """Convert a metric to a Python float (numpy and torch scalars included)."""
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(
            f"report(): metric {name!r} must be a number, got {type(value).__name__} {value!r}. "
            f"Fix: report a float, e.g. report({name}=float(x))."
        )
    try:
        return float(value)
    except OverflowError as exc:
        raise TypeError(
            f"report(): metric {name!r} is too large for a float (beyond about 1.8e308), got "
            f"{type(value).__name__}. Fix: report a float in range, e.g. report({name}=min(x, 1e300))."
        ) from exc
    except (TypeError, ValueError) as exc:
        raise TypeError(
            f"report(): metric {name!r} must be a number (int, float, numpy or torch scalar), "
            f"got {type(value).__name__} {value!r}. Fix: report a float, e.g. "
            f"report({name}=float(x)) for a one-element tensor."
        ) from exc


def _as_step(step: Any) -> int:
    """Convert a step to a Python int."""
    if isinstance(step, bool):
        raise TypeError(f"report(): step must be an integer, got {step!r}.")
    try:
        return operator.index(step)
    except TypeError:
        pass
    if isinstance(step, float) and step.is_integer():
        return int(step)
    raise TypeError(
        f"report(): step must be an integer, got {type(step).__name__} {step!r}. "
        "Fix: pass the epoch or iteration number, e.g. report(step=epoch, ...)."
    )


def to_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    """Convert a mapping of metric values to plain floats.

    Args:
        values: Metric names to numbers (Python, numpy or torch scalars).

    Returns:
        The same names mapped to Python floats.

    Raises:
        TypeError: A value is not a number.
    """
    return {str(name): _as_float(str(name), value) for name, value in values.items()}


class Reporter:
    """Records the ``report(step=..., **metrics)`` calls of one trial.

    The reporter keeps every record in :attr:`history` and, when given a path, appends each one
    to that file as a JSON line, flushed at once so the driver sees it while the trial runs.

    Args:
        path: The reports channel file, or ``None`` to keep the records in memory only.
        check: Called before each record; the in-process executor uses it to stop a trial that
            was cancelled or ran past its time limit (by raising :class:`TrialStopped`).
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, check: Callable[[], None] | None = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.history: list[dict[str, Any]] = []
        self._check = check
        self._file: TextIO | None = None

    def __call__(self, step: Any = None, **metrics: Any) -> None:
        """Record one step.

        Args:
            step: The step number (epoch, iteration), or ``None``.
            **metrics: Metric names and numeric values.

        Raises:
            TypeError: A value is not a number, or the step is not an integer.
        """
        if self._check is not None:
            self._check()
        if self.stop_requested():
            raise TrialStopped("stopped early by the study's early-stopping rule")
        record: dict[str, Any] = {} if step is None else {"step": _as_step(step)}
        record.update(to_metrics(metrics))
        self.history.append(record)
        if self.path is not None:
            if self._file is None:
                self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (kept open)
            self._file.write(json.dumps(record) + "\n")
            self._file.flush()

    def stop_requested(self) -> bool:
        """Whether the driver asked this trial to stop (a :data:`STOP_FILE` beside the channel)."""
        return self.path is not None and os.path.exists(os.path.join(os.path.dirname(self.path), STOP_FILE))

    def close(self) -> None:
        """Close the channel file (records made later reopen it)."""
        if self._file is not None:
            self._file.close()
            self._file = None


@dataclass
class TrialContext:
    """What the running trial sees through the module-level functions.

    Attributes:
        reporter: Where :func:`report` sends its records.
        params: What :func:`load_params` returns.
        fixed_args: What :func:`load_fixed_args` returns.
    """

    reporter: Reporter
    params: dict[str, Any] = field(default_factory=dict)
    fixed_args: dict[str, Any] = field(default_factory=dict)


_ACTIVE: contextvars.ContextVar[TrialContext | None] = contextvars.ContextVar("autotune_trial", default=None)
_ENV_REPORTER: Reporter | None = None


@contextlib.contextmanager
def active_trial(context: TrialContext) -> Iterator[TrialContext]:
    """Make ``context`` the running trial of this thread (used by the executors).

    Args:
        context: The trial's reporter, parameters and fixed arguments.

    Yields:
        The same context.
    """
    token = _ACTIVE.set(context)
    try:
        yield context
    finally:
        _ACTIVE.reset(token)


def should_stop() -> bool:
    """Whether the study asked the running trial to stop early (its rule pruned it).

    Training code may check it between steps to save a checkpoint before the next
    :func:`report` raises :class:`TrialStopped`. ``False`` outside a trial.
    """
    context = _ACTIVE.get()
    if context is not None:
        return context.reporter.stop_requested()
    path = os.environ.get(REPORT_ENV)
    if not path:
        return False
    return os.path.exists(os.path.join(os.path.dirname(path), STOP_FILE))


def report(step: Any = None, **metrics: Any) -> None:
    """Record one step of the running trial.

    Inside a trial the record goes to the executor's channel (the ``AUTOTUNE_REPORT_FILE`` file
    for subprocess trials). Outside any trial, e.g. when a training script is run by hand, the
    record is printed to standard error so the script still works.

    Args:
        step: The step number (epoch, iteration), or ``None``.
        **metrics: Metric names and numeric values (Python, numpy or torch scalars).

    Raises:
        TypeError: A value is not a number, or the step is not an integer.
    """
    global _ENV_REPORTER
    context = _ACTIVE.get()
    if context is not None:
        context.reporter(step, **metrics)
        return
    path = os.environ.get(REPORT_ENV)
    if path:
        if _ENV_REPORTER is None or _ENV_REPORTER.path != path:
            _ENV_REPORTER = Reporter(path)
        _ENV_REPORTER(step, **metrics)
        return
    record: dict[str, Any] = {} if step is None else {"step": _as_step(step)}
    record.update(to_metrics(metrics))
    print(f"[autotune.report] {json.dumps(record)}", file=sys.stderr, flush=True)


def _read_json_object(path: str, what: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as file:
        value = json.load(file)
    if not isinstance(value, dict):
        raise ValueError(  # noqa: TRY004 (bad file content: callers catch ValueError, as for bad JSON)
            f"{path}: the {what} file must hold a JSON object, got {type(value).__name__}."
        )
    return value


def load_params(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Return the running trial's parameters.

    Looked up in this order: ``path``; the trial run by the in-process executor; the file named
    by ``AUTOTUNE_PARAMS_FILE``; the first command-line argument ending in ``.json``.

    Args:
        path: A JSON file holding the parameters, overriding the lookup.

    Returns:
        The parameter names and values.

    Raises:
        FileNotFoundError: No parameters were found.
    """
    if path is not None:
        return _read_json_object(os.fspath(path), "parameters")
    context = _ACTIVE.get()
    if context is not None:
        return dict(context.params)
    env_path = os.environ.get(PARAMS_ENV)
    if env_path:
        return _read_json_object(env_path, "parameters")
    for arg in sys.argv[1:]:
        if arg.endswith(".json"):
            return _read_json_object(arg, "parameters")
    raise FileNotFoundError(
        f"load_params(): no parameters found: {PARAMS_ENV} is not set and no .json argument was "
        f"given. Fix: run the script through an autotune executor, or pass a parameters file: "
        f"python {sys.argv[0] or 'train.py'} params.json"
    )


def load_fixed_args() -> dict[str, Any]:
    """Return the running trial's fixed arguments (``TrialSpec.fixed_args``), ``{}`` if none.

    Returns:
        The fixed argument names and values.
    """
    context = _ACTIVE.get()
    if context is not None:
        return dict(context.fixed_args)
    env_path = os.environ.get(FIXED_ARGS_ENV)
    if env_path:
        return _read_json_object(env_path, "fixed arguments")
    return {}
