"""A real driver process killed mid-study: SIGKILL then ``autotune resume``; SIGTERM's graceful stop."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autotune.cli import EXIT_INTERRUPTED, EXIT_TERMINATED, main
from autotune.study import load_study_config
from autotune.study._record import NEVER_STARTED
from autotune.tracking import MlflowTracker
from autotune.trial import TrialState
from tests.study.helpers import (
    FNS,
    autotune_argv,
    driver_env,
    kill_trial_processes,
    run_counts,
    study_runs,
    trial_processes,
    wait_until,
)

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not os.path.isdir("/proc"), reason="needs POSIX and /proc")

DRIVER_TIMEOUT_S = 180


@pytest.fixture
def trials_dir(tmp_path: Path) -> Iterator[Path]:
    """The trial folders of the test's study; trial processes left there are killed afterwards."""
    folder = tmp_path / "runs" / "toy" / "trials"
    yield folder
    kill_trial_processes(folder)


def _start_driver(study: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(autotune_argv(*args, str(study), "--no-progress"), cwd=study.parent, env=driver_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=DRIVER_TIMEOUT_S)
    return proc.returncode, out, err


def _trials(study: Path) -> list:  # type: ignore[type-arg]
    config = load_study_config(study)
    tracker = MlflowTracker(config.resolved_tracking_uri, config.name)
    assert tracker.find_study() is not None
    return tracker.load_trials()


def _resume(study: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """``autotune resume STUDY`` in this process (it has paid for the imports already)."""
    monkeypatch.chdir(study.parent)
    assert main(["resume", str(study), "--no-progress"]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_resume_after_sigkill_loses_nothing_and_reruns_nothing(
    toy_study: Callable[..., Path], trials_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    study = toy_study(trial={"entry_point": f"{FNS}:quadratic", "fixed_args": {"steps": 4, "sleep_s": 4.0}},
                      budget={"max_trials": 6})
    db = study.parent / "runs" / "toy" / "mlflow.db"
    driver = _start_driver(study, "run")
    try:
        # kill -9 once some trials are recorded finished and others are running
        wait_until(lambda: run_counts(db).get("FINISHED", 0) >= 2 and run_counts(db).get("RUNNING", 0) >= 1
                   and len(trial_processes(trials_dir)) >= 1,
                   DRIVER_TIMEOUT_S, "two finished trials and a running one")
        driver.send_signal(signal.SIGKILL)
        driver.communicate(timeout=30)
        orphan_pids = trial_processes(trials_dir)  # at once: they finish while the record is read
    finally:
        if driver.poll() is None:
            driver.kill()
    assert driver.returncode == -signal.SIGKILL
    before = {t.trial_id: t for t in _trials(study)}
    finished_before = {tid: t.run_id for tid, t in before.items() if t.state is TrialState.COMPLETED}
    orphans = {tid for tid, t in before.items() if t.status == "RUNNING"}
    assert len(finished_before) >= 2 and orphans
    assert orphan_pids  # the dead driver's trials run on, unrecorded

    out = _resume(study, capsys, monkeypatch)

    assert trial_processes(trials_dir) == []  # re-attached and waited for (none left behind)
    after = _trials(study)
    ids = [t.trial_id for t in after]
    assert len(set(ids)) == len(ids)  # one run per trial: none re-run
    by_id = {t.trial_id: t for t in after}
    for tid, run_id in finished_before.items():
        assert by_id[tid].run_id == run_id and by_id[tid].state is TrialState.COMPLETED
    for tid in orphans:  # finished in the run the dead driver opened, or (opened, never started) closed killed
        trial = by_id[tid]
        assert trial.run_id == before[tid].run_id and trial.status != "RUNNING"
        assert trial.state is TrialState.COMPLETED or trial.tags["autotune.failure_reason"].endswith(NEVER_STARTED)
    assert run_counts(db).get("RUNNING", 0) == 0
    assert sum(t.state is TrialState.COMPLETED for t in after) == 6  # the budget counts only trials that ran
    new = [t for t in after if t.trial_id not in before]
    assert min(t.trial_id for t in new) > max(before)  # ids continue after the record
    assert "Resumed after a dead driver: " in out and "running trials re-attached" in out


@pytest.mark.long
def test_driver_sigkill_at_random_moments_loses_and_reruns_nothing(
    toy_study: Callable[..., Path], trials_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The short in-CI version of the fault-injection suite: kill -9 the driver at random moments, resume."""
    n_kills = int(os.environ.get("AUTOTUNE_FAULT_KILLS", "2"))
    n_trials = int(os.environ.get("AUTOTUNE_FAULT_TRIALS", "8"))
    rng = random.Random(int(os.environ.get("AUTOTUNE_FAULT_SEED", "0")))
    study = toy_study(trial={"entry_point": f"{FNS}:quadratic", "fixed_args": {"steps": 3, "sleep_s": 1.5}},
                      budget={"max_trials": n_trials})
    db = study.parent / "runs" / "toy" / "mlflow.db"
    kills = 0
    recoveries: list[str] = []
    for round_ in range(n_kills):
        runs_before = sum(run_counts(db).values())
        driver = _start_driver(study, "run" if round_ == 0 else "resume")
        try:  # this driver has recovered the record and started a trial of its own (or has finished)
            wait_until(lambda d=driver, n=runs_before: sum(run_counts(db).values()) > n  # type: ignore[misc]
                       or d.poll() is not None, DRIVER_TIMEOUT_S, "a new trial")
            time.sleep(rng.uniform(0.0, 3.0))
            if driver.poll() is None:
                driver.send_signal(signal.SIGKILL)
                kills += 1
            _, err = driver.communicate(timeout=30)
            recoveries += [line for line in err.splitlines() if "a dead driver left trials running" in line]
        finally:
            if driver.poll() is None:
                driver.kill()
    assert kills >= 1

    out = _resume(study, capsys, monkeypatch)
    print(f"{kills} kills; recoveries: {recoveries}; last resume: {out.splitlines()[:2]}")  # shown with -s

    after = _trials(study)
    ids = [t.trial_id for t in after]
    assert len(set(ids)) == len(ids)  # 0 re-run: one run per trial id (on_orphans: fail re-queues nothing)
    assert run_counts(db).get("RUNNING", 0) == 0  # 0 runs left RUNNING
    assert trial_processes(trials_dir) == []  # 0 orphan processes
    by_id = {t.trial_id: t for t in after}
    finished = 0
    for workdir in trials_dir.iterdir():  # 0 lost: every trial that wrote a result has it in the record
        result = workdir / "result.json"
        if result.is_file():
            finished += 1
            recorded = by_id[int(workdir.name)]
            assert recorded.state is TrialState.COMPLETED, recorded
            assert recorded.metrics["loss"] == json.loads(result.read_text())["metrics"]["loss"]
    lost = [t for t in after if t.state is TrialState.FAILED]
    assert lost == [], [t.tags.get("autotune.failure_reason") for t in lost]
    assert finished == n_trials and sum(t.state is TrialState.COMPLETED for t in after) == n_trials
    # what is not completed never started (killed between opening its run and starting it): not counted
    assert all(t.tags["autotune.failure_reason"].endswith(NEVER_STARTED) for t in after
               if t.state is not TrialState.COMPLETED)


def test_a_second_ctrl_c_still_closes_every_run(toy_study: Callable[..., Path], trials_dir: Path) -> None:
    study = toy_study(trial={"entry_point": f"{FNS}:quadratic", "fixed_args": {"steps": 20, "sleep_s": 30.0}},
                      budget={"max_trials": 4}, parallelism={"workers": 2})
    db = study.parent / "runs" / "toy" / "mlflow.db"
    driver = _start_driver(study, "run")
    try:
        wait_until(lambda: run_counts(db).get("RUNNING", 0) >= 2 and len(trial_processes(trials_dir)) >= 2,
                   DRIVER_TIMEOUT_S, "two running trials")
        driver.send_signal(signal.SIGINT)
        time.sleep(0.3)
        driver.send_signal(signal.SIGINT)
        code, _, err = _finish(driver)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert code == EXIT_INTERRUPTED, err
    assert "Traceback" not in err
    assert run_counts(db).get("RUNNING", 0) == 0  # every trial's run closed
    assert trial_processes(trials_dir) == []
    assert {t.state for t in _trials(study)} == {TrialState.KILLED}
    config = load_study_config(study)
    parent, _ = study_runs(config)
    assert parent.info.status == "KILLED"


def test_sigterm_stops_gracefully_and_resume_finishes_the_budget(
    toy_study: Callable[..., Path], trials_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    study = toy_study(trial={"entry_point": f"{FNS}:quadratic", "fixed_args": {"steps": 20, "sleep_s": 4.0}},
                      budget={"max_trials": 3}, parallelism={"workers": 2})
    db = study.parent / "runs" / "toy" / "mlflow.db"
    driver = _start_driver(study, "run")
    try:
        wait_until(lambda: run_counts(db).get("RUNNING", 0) >= 2 and len(trial_processes(trials_dir)) >= 2
                   and all((trials_dir / str(t) / "reports.jsonl").is_file() for t in (0, 1)),
                   DRIVER_TIMEOUT_S, "two running trials that reported")
        driver.send_signal(signal.SIGTERM)
        code, out, err = _finish(driver)
    finally:
        if driver.poll() is None:
            driver.kill()
    assert code == EXIT_TERMINATED, err  # 128 + SIGTERM: a stop, not a success
    assert "stopped by SIGTERM" in out and "autotune resume" in out and "Traceback" not in err
    assert trial_processes(trials_dir) == []  # the running trials were cancelled
    stopped = _trials(study)
    assert stopped and all(t.state is TrialState.KILLED and t.status == "KILLED" for t in stopped)
    assert run_counts(db).get("RUNNING", 0) == 0
    from mlflow import MlflowClient

    config = load_study_config(study)
    tracker = MlflowTracker(config.resolved_tracking_uri, config.name)
    tracker.find_study()
    assert MlflowClient(config.tracking_uri).get_run(tracker.parent_run_id).info.status == "KILLED"
    steps = MlflowClient(config.tracking_uri).get_metric_history(stopped[0].run_id, "loss")
    assert steps  # reports made before the stop were flushed

    # killed trials produced nothing: they do not count against max_trials
    study.write_text(study.read_text().replace("sleep_s: 4.0", "sleep_s: 0.1"), encoding="utf-8")
    _resume(study, capsys, monkeypatch)
    done = [t for t in _trials(study) if t.state is TrialState.COMPLETED]
    assert len(done) == 3 and min(t.trial_id for t in done) > max(t.trial_id for t in stopped)
