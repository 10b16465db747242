"""The Ray executor against a real local Ray instance (2 CPUs, 2 declared GPUs; one for the module).

Ray takes 10-20 s to start, so every test shares one instance; the executors reuse it (a
process that already called ``ray.init`` is used as it is).
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import ray

from autotune.exceptions import ConfigError, MissingExtraError
from autotune.executors import get_executor
from autotune.executors._ray import RayExecutor
from autotune.study import Study, load_study_config
from autotune.testing.executors import CASES as _CASES
from autotune.testing.executors import ISOLATED_CASES
from autotune.trial import Resources, TrialResult, TrialSpec, TrialState
from tests.executors.helpers import CHILD_ENV, FNS, is_alive
from tests.study.helpers import study_runs, write_study

CASES = {**_CASES, **ISOLATED_CASES}
SAME_AS_LOCAL = ["completed", "failed", "memory_error", "nan", "timeout", "huge_int", "sigkill"]


@pytest.fixture(scope="module")
def ray_instance() -> Iterator[Any]:
    """A local Ray instance with 2 CPUs and 2 fake GPUs, for the whole module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAY_DISABLE_USAGE_STATS", "1")
        ray.init(num_cpus=2, num_gpus=2, object_store_memory=100 * 1024**2, include_dashboard=False,
                 log_to_driver=False)
        try:
            yield ray
        finally:
            ray.shutdown()


@pytest.fixture
def executor(ray_instance: Any, tmp_path: Path) -> Iterator[RayExecutor]:
    ex = RayExecutor(2, env=CHILD_ENV, kill_grace_s=1.0)
    yield ex
    ex.shutdown(kill=True)
    assert ray_instance.is_initialized()  # an instance the executor did not start is left running


def _spec(trial_id: int, entry: str, tmp_path: Path, **kwargs: Any) -> TrialSpec:
    return TrialSpec(trial_id, kwargs.pop("params", {}), entry, workdir=str(tmp_path / f"t{trial_id}"), **kwargs)


def _run_all(executor: RayExecutor, specs: list[TrialSpec]) -> tuple[list[TrialResult], list[Any]]:
    jobs = [executor.submit(spec) for spec in specs]
    pending = list(jobs)
    while pending:
        for job in executor.wait(pending, timeout_s=60):
            pending.remove(job)
    return [job.result() for job in jobs], jobs


def test_outcomes_end_in_the_same_states_as_on_the_local_executor(executor: RayExecutor, tmp_path: Path) -> None:
    specs = [
        _spec(i, CASES[name].entry_point, tmp_path, params=CASES[name].params,
              fixed_args=CASES[name].fixed_args or {}, timeout_s=CASES[name].timeout_s)
        for i, name in enumerate(SAME_AS_LOCAL)
    ]
    specs.append(_spec(len(specs), f"{FNS}:hard_exit", tmp_path))
    results, jobs = _run_all(executor, specs)

    for name, result in zip(SAME_AS_LOCAL, results):
        assert result.state is CASES[name].state, f"{name}: {result.error}"
        CASES[name].check(result)
        assert result.device.startswith("cpu@")
    died = results[-1]
    assert died.state is TrialState.FAILED
    assert died.error is not None and "exited with code 7" in died.error and "about to die" in died.error
    assert Path(results[0].stdout_path or "").read_text().startswith("quadratic x=3.0")
    assert len({job.where["pid"] for job in jobs}) <= 2  # 2 workers: actors are reused, each trial in its own child


def test_gpu_trials_see_the_gpus_ray_assigned(executor: RayExecutor, tmp_path: Path) -> None:
    whole, half = Resources(gpus=1, cpus=1), Resources(gpus=1, cpus=1, trials_per_gpu=2)  # half: num_gpus=0.5
    specs = [_spec(i, f"{FNS}:env_probe", tmp_path, resources=r) for i, r in enumerate([whole, whole, half])]
    results, _ = _run_all(executor, specs)

    seen = [json.loads((tmp_path / f"t{i}" / "env.json").read_text()) for i in range(3)]
    for result, probe in zip(results, seen):
        assert result.state is TrialState.COMPLETED, result.error
        assert probe["CUDA_VISIBLE_DEVICES"] in {"0", "1"} and result.metrics["n_visible"] == 1.0
        assert result.device.startswith(f"cuda:{probe['CUDA_VISIBLE_DEVICES']}@")
        assert probe["OMP_NUM_THREADS"] == "1" and probe["cwd"] == str(tmp_path / f"t{result.trial_id}")
    with pytest.raises(ConfigError, match="must be <= the 2 GPUs of the Ray cluster"):
        executor.submit(_spec(3, f"{FNS}:env_probe", tmp_path, resources=Resources(gpus=3)))


def _wait_for_reports(job: Any, n: int, timeout_s: float = 30.0) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while len(seen) < n and time.monotonic() < deadline:
        seen += job.new_reports()
        time.sleep(0.05)
    assert len(seen) >= n, f"only {len(seen)} reports after {timeout_s} s"
    return seen


def test_cancel_kills_the_trial_process_group_and_keeps_its_reports(executor: RayExecutor, tmp_path: Path) -> None:
    pid_file = tmp_path / "pids.json"
    job = executor.submit(_spec(0, f"{FNS}:sleepy", tmp_path, fixed_args={"pid_file": str(pid_file)}))
    streamed = _wait_for_reports(job, 2)  # reports stream from the actor while the trial runs
    assert job.state is TrialState.RUNNING and streamed[0] == {"step": 0, "loss": 1.0}
    pids = json.loads(pid_file.read_text())

    assert job.cancel() is True
    result = job.result()
    assert result.state is TrialState.KILLED and len(result.history) >= 2
    deadline = time.monotonic() + 5
    while any(is_alive(p) for p in pids.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(is_alive(p) for p in pids.values())  # the trial and its own child are gone
    assert job.cancel() is False


def test_a_dead_actor_fails_the_trial_with_rays_reason(executor: RayExecutor, tmp_path: Path) -> None:
    job = executor.submit(_spec(0, f"{FNS}:timed", tmp_path, params={"x": 1.0}, fixed_args={"sleep_s": 2.0}))
    deadline = time.monotonic() + 30
    while job.state is TrialState.PENDING and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(job.where["pid"], signal.SIGKILL)  # the actor's process dies, as on a lost node

    result = job.result(timeout_s=30)
    assert result.state is TrialState.FAILED
    assert result.error is not None and "Ray actor running the trial died" in result.error


def test_a_study_file_runs_on_ray_and_records_every_trial(
    ray_instance: Any, tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    path = write_study(tmp_path, mlflow_store_factory, budget={"max_trials": 3},
                       executor={"name": "ray", "options": {"env": CHILD_ENV, "kill_grace_s": 1.0}})
    config = load_study_config(path)
    summary = Study(config).optimize(progress=False)

    assert summary.counts["completed"] == 3 and summary.n_trials == 3 and summary.stop_reason == "max_trials"
    from mlflow import MlflowClient

    client = MlflowClient(config.tracking_uri)
    _, trials = study_runs(config)
    assert len(trials) == 3 and all(r.data.tags["autotune.state"] == "completed" for r in trials)
    assert all(r.data.tags["autotune.device"].startswith("cpu@") for r in trials)
    assert all(len(client.get_metric_history(r.info.run_id, "loss")) == 4 for r in trials)  # 3 reports + final


def test_options_become_ray_init_arguments() -> None:
    local = RayExecutor(num_cpus=4, num_gpus=2, object_store_memory_mb=100, init_options={"log_to_driver": False})
    assert local.init_kwargs() == {"include_dashboard": False, "log_to_driver": False, "num_cpus": 4, "num_gpus": 2,
                                   "object_store_memory": 100 * 1024**2}
    cluster = RayExecutor(address="ray://head:10001", runtime_env={"working_dir": "."})
    assert cluster.init_kwargs() == {"include_dashboard": False, "address": "ray://head:10001",
                                     "runtime_env": {"working_dir": "."}}


def test_options_are_checked_and_a_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match=r"RayExecutor\(num_cpus=...\): only applies to a local instance"):
        get_executor("ray", address="auto", num_cpus=4)
    with pytest.raises(ConfigError, match="must be an int >= 0"):
        RayExecutor(num_gpus=-1)
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"pip install 'autotune\[ray\]'"):
        get_executor("ray")


def test_warm_actors_fork_each_trial_from_one_warm_process(ray_instance: Any, tmp_path: Path) -> None:
    fns = "tests.executors.trial_fns"
    ex = RayExecutor(1, env=CHILD_ENV, kill_grace_s=1.0, warm_start=True, preload=[fns])
    try:
        results = []
        for i in range(3):  # one worker: the same actor runs the three, one after the other
            (r,), _ = _run_all(ex, [_spec(i, f"{fns}:set_global", tmp_path)])
            results.append(r)
        assert [r.state for r in results] == [TrialState.COMPLETED] * 3
        assert [r.metrics["objective"] for r in results] == [0.0] * 3  # no state leaks between forked trials
        assert len({r.metrics["pid"] for r in results}) == 3
        ((_, actor, _),) = ex._idle
        warm = ray_instance.get(actor.warm_pid.remote())
        assert warm is not None
        (probe,), _ = _run_all(ex, [_spec(7, f"{fns}:parent_pid", tmp_path)])
        assert probe.state is TrialState.COMPLETED and int(probe.metrics["ppid"]) == warm  # forked from it
    finally:
        ex.shutdown(kill=True)
    with pytest.raises(ConfigError, match="warm_start"):
        RayExecutor(warm_start="yes")  # type: ignore[arg-type]
