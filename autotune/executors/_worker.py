"""The process that runs one trial for :class:`~autotune.executors.LocalExecutor`.

Usage (built by the executor as an argv list, never a shell string)::

    python -m autotune.executors._worker PARAMS_JSON --entry-point EP --result RESULT_JSON
        [--fixed-args FIXED_JSON] [--reports REPORTS_JSONL] [--objective NAME]

It imports the entry point (``package.module:function``, or a script run as ``__main__``),
calls ``fn(params, report, **fixed_args)``, and writes ``{"state", "metrics", "error"}`` to
RESULT_JSON atomically. It exits 0 whenever it could write that file, whatever the trial did;
the driver enforces time limits by killing the process tree. Standard library only.

On Linux the worker first makes itself the subreaper of its descendants, so a grandchild
that called ``setsid`` (or a double-forked daemon) stays in its tree, and once the result is
written it kills every descendant still running: a trial's processes end with the trial.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from autotune.executors._outcome import (
    Outcome,
    outcome_from_exception,
    resolve_entry_point,
    run_entry_point,
    write_json_atomic,
)
from autotune.executors._proctree import descendants, set_subreaper, signal_pids
from autotune.report import Reporter
from autotune.trial import TrialState


def _read_object(path: str | None) -> dict[str, Any]:
    if path is None:
        return {}
    with open(path, encoding="utf-8") as file:
        value = json.load(file)
    if not isinstance(value, dict):
        raise TypeError(f"{path}: must hold a JSON object, got {type(value).__name__}")
    return value


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m autotune.executors._worker", description=__doc__)
    parser.add_argument("params", help="JSON file holding the trial's parameters")
    parser.add_argument("--entry-point", required=True, help="'package.module:function' or a script path")
    parser.add_argument("--result", required=True, help="where to write the result JSON")
    parser.add_argument("--fixed-args", default=None, help="JSON file holding extra keyword arguments")
    parser.add_argument("--reports", default=None, help="reports channel (JSON lines)")
    parser.add_argument("--objective", default="objective", help="name of the objective metric")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> Outcome:
    """Run the trial described by the parsed arguments and return how it ended."""
    reporter = Reporter(args.reports)
    try:
        params = _read_object(args.params)
        fixed_args = _read_object(args.fixed_args)
        target = resolve_entry_point(args.entry_point)
    except Exception as exc:  # noqa: BLE001 (a launch failure is the trial's failure)
        return outcome_from_exception(exc, [])
    if isinstance(target, str):  # behave like `python script.py params.json`
        sys.argv = [target, args.params]
        sys.path.insert(0, os.path.dirname(target))
    try:
        return run_entry_point(target, params, fixed_args, reporter, args.objective)
    except KeyboardInterrupt as exc:
        return outcome_from_exception(exc, reporter.history)
    finally:
        reporter.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the worker process.

    Args:
        argv: The arguments (``sys.argv[1:]`` by default).

    Returns:
        The exit status: 0 once the result file is written.
    """
    args = _parse_args(argv)
    set_subreaper()
    outcome = run(args)
    record = {"state": outcome.state.value, "metrics": outcome.metrics, "error": outcome.error, "pid": os.getpid()}
    try:
        write_json_atomic(args.result, record)
    except (TypeError, ValueError) as exc:  # metrics were converted to floats; keep a readable failure
        write_json_atomic(
            args.result, {"state": TrialState.FAILED.value, "metrics": {}, "error": repr(exc), "pid": os.getpid()}
        )
    sys.stdout.flush()
    sys.stderr.flush()
    end_descendants()
    return 0


def end_descendants(rounds: int = 20) -> None:
    """SIGKILL every process descended from this one (their orphans come back here, the subreaper)."""
    seen: dict[int, str] = {}
    for _ in range(rounds):
        found = {p: t for p, t in descendants(os.getpid()).items() if seen.get(p) != t}
        if not found:
            return
        signal_pids(found, signal.SIGKILL)
        seen.update(found)
        time.sleep(0.005)


if __name__ == "__main__":
    sys.exit(main())
