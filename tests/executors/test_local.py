"""LocalExecutor with real child processes: time limits, cancel, GPU pinning, parallelism."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from autotune.exceptions import ConfigError, TrialError
from autotune.executors import LocalExecutor
from autotune.trial import Resources, TrialSpec, TrialState
from tests.executors.helpers import CHILD_ENV, FNS, is_alive, live_group_members

pytestmark = pytest.mark.skipif(sys.platform == "win32" or not os.path.isdir("/proc"), reason="needs POSIX and /proc")


def _wait_for_reports(job, n: int, timeout_s: float = 10.0) -> list[dict]:  # type: ignore[no-untyped-def]
    reports: list[dict] = []
    give_up = time.monotonic() + timeout_s
    while len(reports) < n and time.monotonic() < give_up:
        reports += job.new_reports()
        time.sleep(0.02)
    return reports


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    executor = LocalExecutor(1, root_dir=tmp_path, env=CHILD_ENV, kill_grace_s=1.0)
    pid_file = tmp_path / "pids.json"
    job = executor.submit(TrialSpec(0, {}, f"{FNS}:sleepy", fixed_args={"pid_file": str(pid_file)}, timeout_s=1.5))
    first = _wait_for_reports(job, 1)
    assert first[0] == {"step": 0, "loss": 1.0} and job.state is TrialState.RUNNING  # read while it runs
    pids = json.loads(pid_file.read_text())
    assert is_alive(pids["grandchild"])
    result = job.result()
    assert result.state is TrialState.TIMEOUT and "time limit" in (result.error or "")
    assert 1.5 <= result.duration_s < 5.0
    assert not is_alive(pids["worker"]) and not is_alive(pids["grandchild"])
    assert live_group_members(pids["worker"]) == []  # the worker led its own group
    assert result.history[: len(first)] == first and len(result.history) >= len(first)


def test_cancel_running_and_queued(tmp_path: Path) -> None:
    executor = LocalExecutor(1, root_dir=tmp_path, env=CHILD_ENV, kill_grace_s=1.0)
    running = executor.submit(TrialSpec(0, {}, f"{FNS}:sleepy"))
    queued = executor.submit(TrialSpec(1, {"x": 1.0}, f"{FNS}:quadratic"))
    assert queued.state is TrialState.PENDING and queued.device is None  # one worker: it waits
    assert queued.cancel() is True
    assert queued.result().state is TrialState.KILLED and queued.result().stdout_path is None
    assert _wait_for_reports(running, 1)
    with pytest.raises(TimeoutError):
        running.result(timeout_s=0.05)
    pid = running.proc.pid  # type: ignore[attr-defined]
    assert running.cancel() is True
    result = running.result()
    assert result.state is TrialState.KILLED and result.history and result.metrics["loss"] > 0
    assert running.cancel() is False and live_group_members(pid) == []


def test_two_workers_run_concurrently(tmp_path: Path) -> None:
    executor = LocalExecutor(2, root_dir=tmp_path, env=CHILD_ENV)
    jobs = [
        executor.submit(TrialSpec(i, {"x": float(i)}, f"{FNS}:timed", fixed_args={"sleep_s": 0.6})) for i in range(2)
    ]
    executor.shutdown()  # waits for both
    metrics = [job.result().metrics for job in jobs]
    assert max(m["t_start"] for m in metrics) < min(m["t_end"] for m in metrics)  # the runs overlap
    assert [m["objective"] for m in metrics] == [0.0, 1.0]


def test_output_is_captured_and_a_dead_worker_is_failed(tmp_path: Path) -> None:
    executor = LocalExecutor(2, root_dir=tmp_path, env=CHILD_ENV, kill_grace_s=0.3)
    ok = executor.submit(TrialSpec(0, {"x": 2.0}, f"{FNS}:quadratic"))
    dead = executor.submit(TrialSpec(1, {}, f"{FNS}:hard_exit"))
    lingering = executor.submit(TrialSpec(2, {}, f"{FNS}:lingering"))
    executor.shutdown()
    result = ok.result()
    assert Path(result.stdout_path or "").read_text() == "quadratic x=2.0\n"
    assert Path(result.stderr_path or "").read_text() == "a warning\n"
    assert Path(result.stdout_path or "").parent == tmp_path / "trial_0"
    assert json.loads((tmp_path / "trial_0" / "params.json").read_text()) == {"x": 2.0}
    failed = dead.result()
    assert failed.state is TrialState.FAILED
    assert "exited with code 7 without writing a result" in (failed.error or "") and "about to die" in (
        failed.error or ""
    )
    assert lingering.result().state is TrialState.COMPLETED  # killed after the grace period, result kept


def test_gpus_are_pinned_through_the_child_env_only(tmp_path: Path) -> None:
    environ_before = dict(os.environ)
    executor = LocalExecutor(3, devices=["2", "5"], root_dir=tmp_path, env=CHILD_ENV)
    gpu = Resources(gpus=1, cpus=2)
    jobs = [executor.submit(TrialSpec(i, {}, f"{FNS}:env_probe", resources=gpu)) for i in range(3)]
    assert [job.state for job in jobs] == [TrialState.RUNNING, TrialState.RUNNING, TrialState.PENDING]  # 2 GPUs
    pair = executor.submit(TrialSpec(3, {}, f"{FNS}:env_probe", resources=Resources(gpus=2)))
    cpu = executor.submit(TrialSpec(4, {}, f"{FNS}:env_probe", resources=Resources(cpus=3)))
    executor.shutdown()
    seen = [json.loads((tmp_path / f"trial_{i}" / "env.json").read_text()) for i in range(5)]
    assert {seen[0]["CUDA_VISIBLE_DEVICES"], seen[1]["CUDA_VISIBLE_DEVICES"]} == {"2", "5"}
    assert seen[2]["CUDA_VISIBLE_DEVICES"] in ("2", "5")  # started once a GPU freed
    assert seen[3]["CUDA_VISIBLE_DEVICES"] in ("2,5", "5,2") and pair.result().metrics["n_visible"] == 2.0
    assert seen[4]["CUDA_VISIBLE_DEVICES"] == "" and cpu.result().device == "cpu"
    for job, env in zip(jobs, seen[:3], strict=True):
        assert job.result().device == f"cuda:{env['CUDA_VISIBLE_DEVICES']}"
        assert env["OMP_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "2"
    assert seen[4]["OMP_NUM_THREADS"] == "3"
    assert seen[0]["cwd"] == str(tmp_path / "trial_0") and seen[0]["AUTOTUNE_TRIAL_ID"] == "0"
    assert not any(env["torch_imported"] for env in seen)  # the worker stays light
    assert executor.allocator.load() == {"2": 0, "5": 0}  # every device released
    assert dict(os.environ) == environ_before


def test_no_gpu_falls_back_to_cpu(tmp_path: Path) -> None:
    executor = LocalExecutor(1, devices=[], root_dir=tmp_path, env=CHILD_ENV)
    job = executor.submit(TrialSpec(0, {}, f"{FNS}:env_probe", resources=Resources(gpus=1)))
    assert job.result().state is TrialState.COMPLETED and job.result().device == "cpu"
    assert json.loads((tmp_path / "trial_0" / "env.json").read_text())["CUDA_VISIBLE_DEVICES"] == ""


def test_submit_rejects_what_cannot_reach_the_child(tmp_path: Path) -> None:
    executor = LocalExecutor(1, devices=["0", "1"], root_dir=tmp_path, trials_per_gpu=2)
    with pytest.raises(TrialError, match="JSON-serialisable"):
        executor.submit(TrialSpec(0, {"x": object()}, f"{FNS}:quadratic"))
    with pytest.raises(ConfigError, match="trials_per_gpu"):
        executor.submit(TrialSpec(1, {}, f"{FNS}:quadratic", resources=Resources(gpus=1, trials_per_gpu=1)))
    with pytest.raises(ConfigError, match="must be <= the 2 GPUs available"):
        executor.submit(TrialSpec(3, {}, f"{FNS}:quadratic", resources=Resources(gpus=3, trials_per_gpu=2)))
    assert executor._queue == []  # nothing refused was queued
    with pytest.raises(ConfigError, match="cpus"):
        executor.submit(TrialSpec(2, {}, f"{FNS}:quadratic", resources=Resources(cpus=0)))
    with pytest.raises(ConfigError, match="n_workers"):
        LocalExecutor(0)


def test_wait_times_out_and_ignores_foreign_jobs(tmp_path: Path) -> None:
    executor = LocalExecutor(1, root_dir=tmp_path, env=CHILD_ENV, kill_grace_s=0.5)
    other = LocalExecutor(1, root_dir=tmp_path / "other")
    job = executor.submit(TrialSpec(0, {}, f"{FNS}:sleepy"))
    started = time.monotonic()
    assert executor.wait([job], timeout_s=0.2) == [] and time.monotonic() - started < 1.0
    assert executor.wait([]) == []
    with pytest.raises(TrialError, match="another executor"):
        other.wait([job])
    executor.shutdown(kill=True)
    assert job.result().state is TrialState.KILLED
