"""Faults the driver must turn into one clear line, a distinct exit code and a consistent record."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autotune.cli import EXIT_ERROR, EXIT_NO_COMPLETED, main
from autotune.exceptions import TrialError
from autotune.study import FAIL_FAST_TRIALS, Study, load_study_config
from autotune.tracking import MlflowTracker
from autotune.trial import TrialState
from tests.study.helpers import FNS, study_runs, write_study


@pytest.fixture
def inprocess(tmp_path: Path, mlflow_store_factory: Callable[[Path], str],
              monkeypatch: pytest.MonkeyPatch) -> Callable[..., Path]:
    """Write an in-process study (fast) under ``tmp_path``, the cwd, with a migrated store."""
    monkeypatch.chdir(tmp_path)

    def make(**overrides: Any) -> Path:
        data: dict[str, Any] = {"executor": {"name": "inprocess"}, "parallelism": {"workers": 1},
                                "budget": {"max_trials": 4}, "trial": {"entry_point": f"{FNS}:quadratic"}}
        data.update(overrides)
        return write_study(tmp_path, mlflow_store_factory, **data)

    return make


def _assert_consistent(study: Path) -> list[Any]:
    """No run is left RUNNING, the study run included; returns the trial runs."""
    parent, trials = study_runs(load_study_config(study))
    assert parent.info.status in ("FAILED", "KILLED", "FINISHED")
    assert [r.info.status for r in trials if r.info.status == "RUNNING"] == []
    return trials


def _one_line(err: str) -> str:
    """The one error line of a command's standard error (the per-trial lines aside), no traceback."""
    errors = [line for line in err.splitlines() if line.startswith("autotune: error:")]
    assert len(errors) == 1 and "Traceback" not in err and err.endswith(errors[0] + "\n"), err
    return errors[0]


def test_a_submit_failure_stops_the_study_with_a_clear_error(
    inprocess: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from autotune.executors import InProcessExecutor

    def refuse(self: Any, spec: Any) -> Any:
        raise RuntimeError("the cluster refused the job")

    study = inprocess()
    monkeypatch.setattr(InProcessExecutor, "submit", refuse)
    assert main(["run", "study.yaml", "--no-progress"]) == EXIT_ERROR
    captured = capsys.readouterr()
    err = _one_line(captured.err)
    assert "trial 0 could not be submitted to the 'inprocess' executor (RuntimeError: the cluster refused" in err
    assert "budget reached" not in captured.out
    (trial,) = _assert_consistent(study)
    assert trial.data.tags["autotune.state"] == "failed"


def test_the_first_trials_failing_alike_stop_the_study(
    inprocess: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    study = inprocess(trial={"entry_point": f"{FNS}:broken"}, budget={"max_trials": 10})
    assert main(["run", "study.yaml", "--no-progress"]) == EXIT_ERROR
    err = _one_line(capsys.readouterr().err)
    assert f"the first {FAIL_FAST_TRIALS} trials all failed with the same error before any completed" in err
    assert "libcuda.so.1" in err and "autotune resume" in err
    trials = _assert_consistent(study)
    assert len(trials) == FAIL_FAST_TRIALS  # stopped at once, not after the whole budget
    assert {r.data.tags["autotune.state"] for r in trials} == {"failed"}


def test_trials_failing_differently_run_on_and_no_completed_trial_exits_3(
    inprocess: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    study = inprocess(trial={"entry_point": f"{FNS}:fails_by_point"}, budget={"max_trials": 4})
    assert main(["run", "study.yaml", "--no-progress"]) == EXIT_NO_COMPLETED
    captured = capsys.readouterr()
    assert "study 'toy' has no completed trial (4 failed)" in captured.err
    assert len(_assert_consistent(study)) == 4


def test_a_full_disk_gives_one_line_and_closes_every_run(
    inprocess: Callable[..., Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    real = MlflowClient.log_text

    def log_text(self: Any, run_id: str, text: str, artifact_file: str) -> Any:
        if artifact_file == "trial/error.txt":  # the first artifact of a failed trial's run
            raise OSError(errno.ENOSPC, "No space left on device", "/data/mlartifacts/1/abc/trial/error.txt")
        return real(self, run_id, text, artifact_file)

    study = inprocess(trial={"entry_point": f"{FNS}:fails_by_point"})
    monkeypatch.setattr(MlflowClient, "log_text", log_text)
    assert main(["run", "study.yaml", "--no-progress"]) == EXIT_ERROR
    err = _one_line(capsys.readouterr().err)
    assert "the study record could not be written (the disk is full)" in err and "Fix: free some space" in err
    (trial,) = _assert_consistent(study)  # closed without its logs: state and reason kept
    assert trial.info.status == "FAILED" and trial.data.tags["autotune.state"] == "failed"


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[None]:
    """Make ``folder`` read-only: a read-only bind mount as root (chmod binds no root), else chmod."""
    if os.geteuid() == 0 and shutil.which("mount"):
        subprocess.run(["mount", "--bind", str(folder), str(folder)], check=True)
        try:
            subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    folder.chmod(0o555)
    try:
        yield
    finally:
        folder.chmod(0o755)


def test_a_read_only_output_dir_gives_one_line_and_a_consistent_record(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    uri = mlflow_store_factory(tmp_path / "store")  # the record lives elsewhere; the trials' folder is read-only
    study = write_study(tmp_path, tracking_uri=uri, output_dir="out", budget={"max_trials": 2})
    out = tmp_path / "out"
    out.mkdir()
    with _read_only(out):
        code = main(["run", "study.yaml", "--no-progress"])
    assert code == EXIT_ERROR
    err = _one_line(capsys.readouterr().err)
    assert "trial 0 could not be submitted" in err and ("Read-only file system" in err or "Permission denied" in err)
    (trial,) = _assert_consistent(study)
    assert trial.data.tags["autotune.state"] == "failed"


def test_study_raises_the_submit_error_for_python_callers(
    inprocess: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotune.executors import InProcessExecutor

    monkeypatch.setattr(InProcessExecutor, "submit", lambda self, spec: (_ for _ in ()).throw(OSError("gone")))
    study = inprocess()
    with pytest.raises(TrialError, match="could not be submitted"):
        Study(load_study_config(study)).optimize(progress=False)
    config = load_study_config(study)
    tracker = MlflowTracker(config.resolved_tracking_uri, config.name)
    assert tracker.find_study() is not None
    assert [t.state for t in tracker.load_trials()] == [TrialState.FAILED]
