"""How a function's outcome becomes a state and final metrics (shared by every executor)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from autotune.exceptions import ConfigError
from autotune.executors._outcome import (
    classify_exception,
    latest_values,
    outcome_from_return,
    resolve_entry_point,
    write_json_atomic,
)
from autotune.report import TrialStopped
from autotune.trial import TrialState


@pytest.mark.parametrize(
    ("exc", "state"),
    [
        (MemoryError(), TrialState.OOM),
        (RuntimeError("CUDA out of memory. Tried"), TrialState.OOM),
        (RuntimeError("DefaultCPUAllocator: can't allocate: Out Of Memory"), TrialState.OOM),
        (ValueError("nope"), TrialState.FAILED),
        (TrialStopped("killed"), TrialState.KILLED),
        (KeyboardInterrupt(), TrialState.KILLED),
    ],
)
def test_classify_exception(exc: BaseException, state: TrialState) -> None:
    assert classify_exception(exc) is state


def test_final_metrics_merge_returns_over_the_latest_reports() -> None:
    history = [{"step": 0, "loss": 3.0, "acc": 0.1}, {"step": 1, "loss": 2.0}]
    assert latest_values(history) == {"loss": 2.0, "acc": 0.1}
    assert outcome_from_return(0.5, history, "loss").metrics == {"loss": 0.5, "acc": 0.1}
    assert outcome_from_return({"acc": 0.9}, history, "acc").metrics == {"loss": 2.0, "acc": 0.9}
    assert outcome_from_return(None, history, "loss").state is TrialState.COMPLETED
    assert outcome_from_return(math.inf, [], "objective").state is TrialState.NONFINITE
    assert outcome_from_return(True, [], "objective").state is TrialState.FAILED


def test_resolve_entry_point(tmp_path: Path) -> None:
    assert resolve_entry_point("os.path:join") is __import__("os").path.join
    script = tmp_path / "train.py"
    script.write_text("")
    assert resolve_entry_point(str(script)) == str(script)
    with pytest.raises(ConfigError, match="existing Python script"):
        resolve_entry_point(str(tmp_path / "missing.py"))
    with pytest.raises(ConfigError, match=r"package\.module:function"):
        resolve_entry_point("module_only")


def test_write_json_atomic_leaves_no_partial_file(tmp_path: Path) -> None:
    target = tmp_path / "result.json"
    write_json_atomic(target, {"state": "completed", "metrics": {"objective": math.nan}})
    assert math.isnan(json.loads(target.read_text())["metrics"]["objective"])
    with pytest.raises(TypeError):
        write_json_atomic(target, {"bad": object()})
    assert json.loads(target.read_text())["state"] == "completed" and sorted(p.name for p in tmp_path.iterdir()) == [
        "result.json"
    ]
