"""Study.optimize end to end with real executors and a real MLflow store (no mocks)."""

from __future__ import annotations

import fcntl
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from autotune.exceptions import ConfigError, StudyConfigError, TrackingError, TrialError
from autotune.executors import SimulatedExecutor, SubmitError
from autotune.strategies import register, strategy_names
from autotune.strategies._baselines import RandomSearch
from autotune.study import Study, StudyConfig, load_study_config
from autotune.tracking import MlflowTracker, record_lock_path
from tests.study.helpers import FNS, study_dict, study_runs, write_study
from tests.study.trial_fns import sim_duration, sim_objective


@pytest.fixture
def sync_strategy(monkeypatch: pytest.MonkeyPatch) -> str:
    """A synchronous strategy (random search that asks for whole batches), registered for one test."""
    from autotune.strategies import _base

    strategy_names()  # load the built-in strategies into the registry before copying it
    monkeypatch.setattr(_base, "_REGISTRY", dict(_base._REGISTRY))

    @register
    class SyncRandom(RandomSearch):
        name = "test_sync_random"
        synchronous = True

    return SyncRandom.name


def test_local_executor_end_to_end_with_a_failing_trial(toy_study: Callable[..., Path]) -> None:
    path = toy_study(trial={"entry_point": f"{FNS}:quadratic", "fixed_args": {"steps": 3, "sleep_s": 0.3, "fail_trials": [2]}},
                     constraints=["n_params <= 2e6"])
    config = load_study_config(path)
    summary = Study(config).optimize(progress=False)

    assert summary.stop_reason == "max_trials" and summary.n_new_trials == 6 and not summary.interrupted
    assert summary.counts["completed"] == 5 and summary.counts["failed"] == 1 and summary.n_trials == 6

    from mlflow import MlflowClient

    client = MlflowClient(config.tracking_uri)
    parent, trials = study_runs(config)
    assert parent.info.status == "FINISHED"
    assert [int(r.data.tags["autotune.trial_id"]) for r in trials] == list(range(6))  # one run per trial
    for run in trials:
        tid = int(run.data.tags["autotune.trial_id"])
        tags = run.data.tags
        assert set(run.data.params) == {"x", "y"}
        assert tags["autotune.strategy"] == "random" and "autotune.batch_id" in tags
        assert tags["autotune.device"] == "cpu" and float(tags["autotune.duration_s"]) > 0.2
        assert Path(tags["autotune.workdir"]) == config.output_dir / "trials" / str(tid)
        history = client.get_metric_history(run.info.run_id, "loss")
        if tid == 2:  # raised after its reports: recorded, and the study went on
            assert run.info.status == "FAILED" and tags["autotune.state"] == "failed"
            assert "ValueError: diverged: a deliberately failing trial" in tags["autotune.failure_reason"]
            assert [m.step for m in history][:3] == [0, 1, 2]
            continue
        assert run.info.status == "FINISHED" and tags["autotune.state"] == "completed"
        x, y = float(run.data.params["x"]), float(run.data.params["y"])
        value = (x - 1.0) ** 2 + y**2
        streamed = {(m.step, round(m.value, 9)) for m in history}
        assert {(0, round(value + 1.0, 9)), (2, round(value + 1 / 3, 9))} <= streamed
        assert run.data.metrics["loss"] == pytest.approx(value) and run.data.metrics["n_params"] == 1000

    # the best so far on the parent run, and the plots
    best_history = client.get_metric_history(parent.info.run_id, "best_loss")
    assert [m.step for m in best_history] == [1, 2, 3, 4, 5, 6]
    assert all(b.value <= a.value for a, b in zip(best_history, best_history[1:]))
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert plots >= {"plots/convergence.png", "plots/posterior_map.png"}  # a 2-D space: the live map too
    assert (config.output_dir / "plots" / "convergence.png").is_file()

    # status and best come from the record alone, and agree with the summary
    study = Study(load_study_config(path))
    status = study.status()
    assert status.counts == summary.counts and status.best == summary.best
    completed = [r for r in trials if r.data.tags["autotune.state"] == "completed"]
    best_run = min(completed, key=lambda r: r.data.metrics["loss"])
    best = study.best()
    assert best is not None and best.run_id == best_run.info.run_id
    assert best.value == pytest.approx(best_run.data.metrics["loss"])
    assert parent.data.tags["autotune.best_trial_id"] == str(best.trial_id)
    assert best_history[-1].value == pytest.approx(best.value)


N_SIM_TRIALS = 20
N_SIM_WORKERS = 4


def _simulate(
    tmp_path: Path, store_factory: Callable[[Path], str], strategy: str
) -> tuple[SimulatedExecutor, list[Any], list[float]]:
    """Run a simulated study; return the executor, the trial runs and each trial's duration."""
    config = StudyConfig(**study_dict(
        name=f"sim-{strategy}", strategy=strategy, budget={"max_trials": N_SIM_TRIALS},
        parallelism={"workers": N_SIM_WORKERS}, executor={"name": "simulated"}, output_dir=str(tmp_path / strategy),
    ))
    store_factory(config.resolved_output_dir)
    executor = SimulatedExecutor(N_SIM_WORKERS, duration_fn=sim_duration, objective_fn=sim_objective)
    summary = Study(config, executor=executor).optimize(progress=False)
    assert summary.counts["completed"] == N_SIM_TRIALS
    _, trials = study_runs(config)
    durations = [sim_duration({k: float(v) for k, v in run.data.params.items()}) for run in trials]
    assert max(durations) / min(durations) > 3  # varied durations
    # the learning curves were streamed into each trial's run
    from mlflow import MlflowClient

    history = MlflowClient(config.tracking_uri).get_metric_history(trials[0].info.run_id, "loss")
    assert sorted(m.step for m in history)[:4] == [0, 1, 2, 3]
    return executor, trials, durations


def test_simulated_executor_keeps_every_worker_busy(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    """Asynchronous: a worker that frees gets the next trial at once, whatever the others do.

    That is list scheduling: trial ``i`` starts when the earliest worker frees. The simulated
    clock makes the makespan exact, so it must equal the list schedule's.
    """
    executor, _, durations = _simulate(tmp_path, mlflow_store_factory, "random")
    free_at = [0.0] * N_SIM_WORKERS
    for duration in durations:  # in trial-id order, the order they were asked
        free_at.sort()
        free_at[0] += duration
    assert executor.makespan_s == pytest.approx(max(free_at))
    assert executor.utilisation() > 0.85  # busy throughout but for the tail, once the budget is spent


def test_synchronous_strategy_waits_for_whole_batches(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], sync_strategy: str
) -> None:
    executor, trials, durations = _simulate(tmp_path, mlflow_store_factory, sync_strategy)
    batches: dict[str, list[float]] = {}
    for run, duration in zip(trials, durations):
        batches.setdefault(run.data.tags["autotune.batch_id"], []).append(duration)
    assert [len(b) for b in batches.values()] == [4] * (N_SIM_TRIALS // 4)  # one ask of 4 when all 4 are free
    assert executor.makespan_s == pytest.approx(sum(max(b) for b in batches.values()))  # each batch waits for its slowest
    assert executor.utilisation() < 0.8


def _inprocess_config(tmp_path: Path, store_factory: Callable[[Path], str], **overrides: Any) -> StudyConfig:
    data = study_dict(executor={"name": "inprocess"}, parallelism={"workers": 1}, output_dir=str(tmp_path / "out"))
    data.update(overrides)
    config = StudyConfig(**data)
    store_factory(config.resolved_output_dir)
    return config


def test_requeued_orphans_run_again_with_the_same_params(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    config = _inprocess_config(tmp_path, mlflow_store_factory, on_orphans="requeue", budget={"max_trials": 4})
    # What a driver killed mid-study leaves: trial 0 finished, trial 1 still RUNNING.
    tracker = MlflowTracker(config.resolved_tracking_uri, config.name)
    tracker.start_study(config.to_dict())
    from autotune.trial import TrialResult, TrialState

    done = tracker.start_trial(0, {"x": 0.0, "y": 0.0})
    tracker.end_trial(done, TrialResult(0, TrialState.COMPLETED, {"loss": 1.0, "n_params": 1000.0}))
    orphan = tracker.start_trial(1, {"x": 0.5, "y": -0.5})

    summary = Study(config).optimize(progress=False, resume=True)

    trials = tracker.load_trials()
    by_id: dict[int, list[Any]] = {}
    for trial in trials:
        by_id.setdefault(trial.trial_id, []).append(trial)
    assert sorted(by_id) == [0, 1, 2, 3]  # the budget counts the recorded and the re-queued trial
    assert [t.run_id for t in by_id[0]] == [done]  # finished: never run again
    first, again = by_id[1]
    assert first.run_id == orphan and first.requeue and first.tags["autotune.failure_reason"] == "driver died"
    assert again.params == {"x": 0.5, "y": -0.5} and again.state is TrialState.COMPLETED
    assert again.metrics["loss"] == pytest.approx(0.5**2 + 0.5**2)
    assert again.tags["autotune.requeued_from"] == orphan
    assert summary.n_new_trials == 3 and summary.counts["completed"] == 4 and summary.counts["killed"] == 0


def test_run_and_resume_refuse_the_wrong_record(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> None:
    config = _inprocess_config(tmp_path, mlflow_store_factory, budget={"max_trials": 2})
    study = Study(config)
    assert not study.status().started and study.best() is None
    with pytest.raises(ConfigError, match="has no record to resume"):
        study.optimize(progress=False, resume=True)
    study.optimize(progress=False, resume=False)
    with pytest.raises(ConfigError, match=r"already has 2 trials in sqlite:.*Fix: continue it with `autotune resume"):
        study.optimize(progress=False, resume=False)
    # more budget: resume continues, trial ids go on where the record stops
    more = Study(StudyConfig(**{**study_dict(executor={"name": "inprocess"}, parallelism={"workers": 1}),
                                "output_dir": str(tmp_path / "out"), "budget": {"max_trials": 3}}))
    summary = more.optimize(progress=False, resume=True)
    assert summary.n_new_trials == 1 and summary.n_trials == 3
    tracker = MlflowTracker(config.resolved_tracking_uri, config.name)
    assert tracker.find_study() is not None
    assert sorted(t.trial_id for t in tracker.load_trials()) == [0, 1, 2]


def test_a_record_that_does_not_fit_the_space_is_refused(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    config = _inprocess_config(tmp_path, mlflow_store_factory, budget={"max_trials": 1})
    Study(config).optimize(progress=False)
    changed = StudyConfig(**{**config.to_dict(), "budget": {"max_trials": 2},
                             "space": {"parameters": {"z": {"type": "int", "low": 0, "high": 3}}}})
    with pytest.raises(StudyConfigError, match=r"space: does not fit trial 0 recorded in .*Fix: keep a study's space fixed"):
        Study(changed).optimize(progress=False)


def test_an_injected_executor_must_match_the_parallelism(tmp_path: Path) -> None:
    config = StudyConfig(**study_dict(parallelism={"workers": 4}, output_dir=str(tmp_path / "out")))
    executor = SimulatedExecutor(2, duration_fn=sim_duration, objective_fn=sim_objective)
    with pytest.raises(ConfigError, match=r"must have n_workers == parallelism.workers \(4\), got 2"):
        Study(config, executor=executor).optimize(progress=False)
    assert not (tmp_path / "out").exists()  # refused before touching anything


def test_one_driver_per_study(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> None:
    config = _inprocess_config(tmp_path, mlflow_store_factory)
    lock = record_lock_path(config.resolved_tracking_uri, config.name)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # another driver holds the record's lock
        with pytest.raises(TrackingError, match=f"study {config.name!r} is being run by"):
            Study(config).optimize(progress=False)
    # the lock is per record, not per output_dir: a copy of the study elsewhere on the same store is refused
    copy = StudyConfig(**{**config.to_dict(), "output_dir": str(tmp_path / "elsewhere")})
    assert copy.resolved_tracking_uri == config.resolved_tracking_uri
    with Study(config).record.lock(), pytest.raises(TrackingError, match="is being run by"):
        Study(copy).optimize(progress=False)


def test_the_study_folder_wins_over_the_drivers_cwd_on_the_import_path(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    study_dir, elsewhere = tmp_path / "study", tmp_path / "cwd"
    elsewhere.mkdir()
    for folder, value in ((study_dir, 1.0), (elsewhere, 99.0)):  # two modules of the same name
        folder.mkdir(exist_ok=True)
        (folder / "mytrain.py").write_text(f"def train(params, report):\n    return {{'loss': {value}}}\n")
    path = write_study(study_dir, mlflow_store_factory, budget={"max_trials": 2},
                       trial={"entry_point": "mytrain:train"})
    monkeypatch.chdir(elsewhere)  # a driver started from a folder holding another mytrain.py

    summary = Study(load_study_config(path)).optimize(progress=False)

    assert summary.counts["completed"] == 2
    _, trials = study_runs(load_study_config(path))
    assert [t.data.metrics["loss"] for t in trials] == [1.0, 1.0]


class _RefusingLater(SimulatedExecutor):
    """Sends trials later, like Slurm: once two trials ended, ``wait`` finds the scheduler refusing one."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.refused = False

    def wait(self, jobs: Any, timeout_s: float | None = None) -> list[Any]:
        if not self.refused and sum(job.state.is_finished for job in self._jobs) >= 2:
            self.refused = True
            from autotune.trial import TrialResult, TrialState

            refused = next(job for job in jobs if not job.state.is_finished)
            refused.set_result(TrialResult(refused.trial_id, TrialState.FAILED, error="sbatch: refused"))
            raise SubmitError(f"trial {refused.trial_id}: the Slurm job could not be submitted")
        return super().wait(jobs, timeout_s)


def test_a_submit_error_raised_by_wait_stops_the_study_and_keeps_the_record(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str]
) -> None:
    config = StudyConfig(**study_dict(
        name="refused", budget={"max_trials": 8}, parallelism={"workers": 2}, executor={"name": "simulated"},
        output_dir=str(tmp_path / "out"),
    ))
    mlflow_store_factory(config.resolved_output_dir)
    executor = _RefusingLater(2, duration_fn=sim_duration, objective_fn=sim_objective)
    with pytest.raises(TrialError, match=r"cannot start trials any more .*the Slurm job.*autotune resume"):
        Study(config, executor=executor).optimize(progress=False)
    _, trials = study_runs(config)
    states = sorted((int(r.data.tags["autotune.trial_id"]), r.data.tags["autotune.state"], r.info.status)
                    for r in trials)
    by_state = [s for _, s, _ in states]
    assert by_state.count("completed") == 2 and by_state.count("failed") == 1, states  # nothing recorded was lost
    assert all(status != "RUNNING" for _, _, status in states), states  # every run closed
    failed = next(r for r in trials if r.data.tags["autotune.state"] == "failed")
    assert "sbatch: refused" in failed.data.tags.get("autotune.failure_reason", "") + str(failed.data.params)
