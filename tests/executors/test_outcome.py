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
    says_out_of_memory,
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
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 8 GB."), TrialState.OOM),
        (RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate"), TrialState.OOM),
        (OSError(12, "Cannot allocate memory"), TrialState.OOM),
        (OSError(2, "No such file or directory"), TrialState.FAILED),
        (RuntimeError("memory usage is fine"), TrialState.FAILED),
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


def test_an_oom_wrapped_in_another_exception_is_still_oom() -> None:
    try:
        try:
            raise MemoryError
        except MemoryError as inner:
            raise ValueError("could not collate the batch") from inner
    except ValueError as exc:
        assert classify_exception(exc) is TrialState.OOM
    try:
        try:
            raise RuntimeError("CUDA out of memory")
        except RuntimeError:
            raise KeyError("during handling")  # implicit context, as libraries do
    except KeyError as exc:
        assert classify_exception(exc) is TrialState.OOM


class _BrokenStr(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no")


def test_an_exception_with_a_broken_str_is_classified_not_raised() -> None:
    assert classify_exception(_BrokenStr()) is TrialState.FAILED


@pytest.mark.parametrize(
    ("returned", "state", "text"),
    [
        (10**400, TrialState.FAILED, "too large for a float"),
        ({"objective": 10**400}, TrialState.FAILED, "too large for a float"),
        ("abc", TrialState.FAILED, "got str 'abc'"),
        (b"1.0", TrialState.FAILED, "got bytes"),
        ([1.0, 2.0], TrialState.FAILED, "must return a number"),
        (float("nan"), TrialState.NONFINITE, "is nan"),
        (float("-inf"), TrialState.NONFINITE, "is -inf"),
        (10**300, TrialState.COMPLETED, None),
    ],
)
def test_returns_that_are_not_usable_floats_are_clean_failures(returned: object, state: TrialState, text: str | None) -> None:
    outcome = outcome_from_return(returned, [{"step": 0, "loss": 2.0}], "objective")
    assert outcome.state is state
    if text is None:
        assert outcome.error is None and outcome.metrics["objective"] == 1e300
    else:
        assert text in (outcome.error or "") and outcome.metrics.get("loss") == 2.0
        assert len(outcome.error or "") < 400  # a huge value is not printed in full


def test_says_out_of_memory() -> None:
    assert says_out_of_memory("terminate called after throwing an instance of 'std::bad_alloc'")
    assert says_out_of_memory("Traceback ...\nMemoryError\n")
    assert not says_out_of_memory("loss diverged")
