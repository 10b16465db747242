"""StudyRecord: resume adopts what a dead driver's trials finished, kills only what it started."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autotune.study import Study, StudyConfig, StudyRecord
from autotune.study._record import NEVER_STARTED, TAG_ADOPTED
from autotune.tracking import MlflowTracker
from autotune.trial import TrialResult, TrialState
from tests.study.helpers import CHILD_ENV, FNS, study_dict

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not os.path.isdir("/proc"), reason="needs POSIX and /proc")


def _start_ticks(pid: int) -> str:
    with open(f"/proc/{pid}/stat", encoding="utf-8") as file:
        return file.read().rsplit(")", 1)[1].split()[19]


@pytest.fixture
def sleepers() -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Start ``sleep 60`` processes in their own sessions (as trial processes are); kill them afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["sleep", "60"], start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def _config(tmp_path: Path, store_factory: Callable[[Path], str], **overrides: Any) -> StudyConfig:
    data = study_dict(output_dir=str(tmp_path / "out"), parallelism={"workers": 1})
    data["trial"] = {"entry_point": f"{FNS}:quadratic", "fixed_args": {"steps": 1}}
    data.update(overrides)
    config = StudyConfig(**data)
    store_factory(config.resolved_output_dir)
    return config


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _start_worker(workdir: Path, params: dict[str, Any], fixed_args: dict[str, Any]) -> int:
    """Start a real trial worker in ``workdir`` as a dead driver would have (not our child); its pid."""
    _write(workdir / "params.json", json.dumps(params))
    _write(workdir / "fixed_args.json", json.dumps(fixed_args))
    argv = [sys.executable, "-m", "autotune.executors._worker", str(workdir / "params.json"), "--entry-point",
            f"{FNS}:quadratic", "--fixed-args", str(workdir / "fixed_args.json"), "--reports",
            str(workdir / "reports.jsonl"), "--result", str(workdir / "result.json"), "--objective", "loss"]
    launcher = ("import subprocess, sys\n"
                "with open('stdout.log', 'wb') as out:\n"
                "    p = subprocess.Popen(sys.argv[1:], start_new_session=True, stdout=out, stderr=out)\n"
                "print(p.pid)")
    done = subprocess.run([sys.executable, "-c", launcher, *argv], cwd=workdir, capture_output=True, text=True,
                          check=True, env={**os.environ, **CHILD_ENV})
    pid = int(done.stdout)
    _write(workdir / "worker.pid", f"{pid} {_start_ticks(pid)}\n")
    return pid


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as file:
            return file.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


@pytest.mark.parametrize(("mode", "reattach"), [("fail", True), ("requeue", True), ("fail", False)])
def test_resume_records_what_really_happened_to_a_dead_drivers_trials(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], sleepers: Callable[[], subprocess.Popen[bytes]],
    monkeypatch: pytest.MonkeyPatch, mode: str, reattach: bool,
) -> None:
    config = _config(tmp_path, mlflow_store_factory, on_orphans=mode, budget={"max_trials": 4})
    trials = config.resolved_output_dir / "trials"
    # What a SIGKILLed driver leaves: trial 0 recorded; 1 finished after the driver died (result
    # file, reports it never sent); 2 opened but never started; 3 started and died; 4 still running
    # (its pid file under this study's folder); 5 never started, its record tag naming someone else's
    # process, which resume must not touch.
    tracker = MlflowTracker(config.resolved_tracking_uri, config.name)
    tracker.start_study(config.to_dict())
    done = tracker.start_trial(0, {"x": 0.0, "y": 0.0})
    tracker.end_trial(done, TrialResult(0, TrialState.COMPLETED, {"loss": 1.0, "n_params": 1000.0}))
    params = {tid: {"x": 0.1 * tid, "y": 0.0} for tid in (1, 2, 3, 4)}
    runs = {tid: tracker.start_trial(tid, params[tid], {"autotune.workdir": str(trials / str(tid))})
            for tid in (1, 2, 3, 4)}
    victim = sleepers()
    elsewhere = tmp_path / "elsewhere"
    _write(elsewhere / "worker.pid", f"{victim.pid} {_start_ticks(victim.pid)}\n")
    runs[5] = tracker.start_trial(5, {"x": 0.5, "y": 0.0}, {"autotune.workdir": str(elsewhere)})
    _write(trials / "1" / "params.json", json.dumps(params[1]))
    _write(trials / "1" / "stdout.log", "hello\n")
    _write(trials / "1" / "reports.jsonl", '{"step": 0, "loss": 3.0}\n{"step": 1, "loss": 2.5}\n{"step": 2, "lo')
    _write(trials / "1" / "result.json", json.dumps({"state": "completed", "metrics": {"loss": 2.25, "n_params": 1e3}}))
    _write(trials / "3" / "stdout.log", "")
    worker = _start_worker(trials / "4", params[4], {"steps": 2, "sleep_s": 4.0})
    if not reattach:
        monkeypatch.setattr(Study, "_reattacher", lambda self, executor: None)

    summary = Study(config).optimize(progress=False, resume=True)

    assert not _alive(worker)
    assert victim.poll() is None  # named only by the record: untouched
    by_id: dict[int, list[Any]] = {}
    for trial in tracker.load_trials():
        by_id.setdefault(trial.trial_id, []).append(trial)
    assert all(t.status != "RUNNING" for ts in by_id.values() for t in ts)
    adopted = by_id[1]
    assert len(adopted) == 1 and adopted[0].run_id == runs[1]  # not run again
    assert adopted[0].state is TrialState.COMPLETED and adopted[0].metrics == {"loss": 2.25, "n_params": 1000.0}
    from mlflow import MlflowClient

    history = MlflowClient(config.tracking_uri).get_metric_history(runs[1], "loss")
    assert {(m.step, m.value) for m in history} >= {(0, 3.0), (1, 2.5)}  # the unsent reports
    for tid in (2, 5):  # never ran: not learned from, not counted
        assert [t.state for t in by_id[tid]] == [TrialState.KILLED]
        assert by_id[tid][0].tags["autotune.failure_reason"].endswith(NEVER_STARTED)
    if reattach:  # trial 4 waited for: its real result, in its own run
        assert summary.recovered == {"adopted": [], "reattached": [1, 4], "never_started": [2, 5], "lost": [3],
                                     "stopped": []}
        (four,) = by_id[4]
        assert four.run_id == runs[4] and four.state is TrialState.COMPLETED
        assert four.metrics["loss"] == pytest.approx((0.4 - 1.0) ** 2)
    else:  # trial 4 stopped (ours: pid, start time and command line match) and lost
        assert adopted[0].tags[TAG_ADOPTED] == "true"
        assert summary.recovered == {"adopted": [1], "reattached": [], "never_started": [2, 5], "lost": [3, 4],
                                     "stopped": [4]}
        assert [t.state for t in by_id[4]] == [TrialState.FAILED]
    lost = [tid for tid in (3, 4) if tid in summary.recovered["lost"]]
    if mode == "fail":  # learned as failures, counted: the budget of 4 is spent, nothing new runs
        assert all([t.state for t in by_id[tid]] == [TrialState.FAILED] for tid in lost)
        assert summary.n_new_trials == 0 and sorted(by_id) == [0, 1, 2, 3, 4, 5]
        assert summary.counts["completed"] == 4 - len(lost)
    else:  # run again with the same params, once each
        for tid in lost:
            assert [t.state for t in by_id[tid]] == [TrialState.KILLED, TrialState.COMPLETED]
            assert by_id[tid][1].params == params[tid] and by_id[tid][1].tags["autotune.requeued_from"] == runs[tid]
        assert summary.n_new_trials == len(lost) and summary.counts["completed"] == 4


def test_a_stale_result_file_is_not_adopted(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> None:
    config = _config(tmp_path, mlflow_store_factory, budget={"max_trials": 1})
    stale = config.resolved_output_dir / "trials" / "0"
    _write(stale / "stdout.log", "")
    _write(stale / "result.json", json.dumps({"state": "completed", "metrics": {"loss": 0.0}}))
    old = time.time() - 3600
    for path in stale.iterdir():
        os.utime(path, (old, old))  # from an earlier run of trial 0, before this run was opened
    record = StudyRecord(config)
    with record.lock():
        record.open({})
        run_id = record.open_trial(0, {"x": 1.0, "y": 0.0})
        recovery = record.recover()
    assert recovery.adopted == [] and recovery.never_started == [0]  # its files are an earlier run's
    (trial,) = record.trials()
    assert trial.run_id == run_id and trial.state is TrialState.KILLED


def test_record_api_is_shared_by_the_driver_remote_study_and_imports(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    config = _config(tmp_path, mlflow_store_factory, executor={"name": "inprocess"}, budget={"max_trials": 2})
    record = StudyRecord(config)
    assert not record.exists() and record.trials() == [] and not record.status().started
    Study(config).optimize(progress=False)
    record = StudyRecord(config)
    assert record.exists() and [t.trial_id for t in record.trials()] == [0, 1]
    optimizer = record.new_optimizer()
    assert record.rebuild(optimizer) == [] and len(optimizer.observations) == 2
    status = record.status()
    assert status.counts["completed"] == 2 and status.best is not None
    best_tag = record.tracker.client.get_run(record.tracker.parent_run_id).data.tags["autotune.best_trial_id"]
    assert int(best_tag) == status.best.trial_id
    # the lock is per record and not re-entrant: a second writer is refused while one holds it
    from autotune.exceptions import TrackingError

    with record.lock(), pytest.raises(TrackingError, match="is being run by"), StudyRecord(config).lock(wait_s=0.2):
        pass


def test_a_run_whose_end_was_written_but_not_its_status_is_closed_when_others_are_reattached(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    config = _config(tmp_path, mlflow_store_factory)
    record = StudyRecord(config)
    with record.lock():
        tracker = record.open({})
        half = record.open_trial(0, {"x": 0.0, "y": 0.0})  # the driver died inside end_trial:
        tracker.client.set_tag(half, "autotune.state", "completed")  # final tags written, status not
        tracker.client.set_tag(half, "autotune.metrics", json.dumps({"loss": 1.0}))
        running = record.open_trial(1, {"x": 0.5, "y": 0.0})
        job = object()
        recovery = record.recover(reattach=lambda trial, workdir, sent: job if trial.trial_id == 1 else None)
    assert recovery.jobs == {1: (recovery.jobs[1][0], job)} and recovery.lost == []
    by_id = {t.trial_id: t for t in record.trials()}
    assert by_id[0].status == "FINISHED" and by_id[0].state is TrialState.COMPLETED
    assert by_id[1].run_id == running and by_id[1].status == "RUNNING"  # the driver carries on with it
