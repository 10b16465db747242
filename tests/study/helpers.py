"""Shared helpers of the study tests: study files, a migrated store, child processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from autotune.study import StudyConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
FNS = "tests.study.trial_fns"
SPACE = {
    "parameters": {
        "x": {"type": "float", "low": -2.0, "high": 2.0},
        "y": {"type": "float", "low": -2.0, "high": 2.0},
    }
}
CHILD_ENV = {"PYTHONPATH": str(REPO_ROOT)}  # trial processes import tests.study.trial_fns from any cwd


def study_dict(**overrides: Any) -> dict[str, Any]:
    """A small valid study (local executor, cheap standard-library trials), with overrides."""
    data: dict[str, Any] = {
        "name": "toy",
        "space": SPACE,
        "objective": {"metric": "loss", "direction": "minimize"},
        "strategy": {"name": "random"},
        "budget": {"max_trials": 6},
        "parallelism": {"workers": 2},
        "executor": {"name": "local", "options": {"env": CHILD_ENV, "kill_grace_s": 1.0}},
        "trial": {"entry_point": f"{FNS}:quadratic", "fixed_args": {"steps": 3}},
    }
    data.update(overrides)
    return data


def write_study(folder: Path, store_factory: Callable[[Path], str] | None = None, **overrides: Any) -> Path:
    """Write ``folder/study.yaml``; with ``store_factory``, pre-create its (migrated) store.

    The store goes where the study's default ``tracking_uri`` points (``runs/<name>/mlflow.db``),
    so the driver finds a migrated database and skips the seconds-long migration.
    """
    data = study_dict(**overrides)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    if store_factory is not None:
        store_factory(folder / "runs" / data["name"])
    return path


def driver_env() -> dict[str, str]:
    """The environment of a driver subprocess (``autotune ...``)."""
    return {**os.environ, **CHILD_ENV, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true"}


def autotune_argv(*args: str) -> list[str]:
    """``autotune ARGS`` as run by this interpreter."""
    return [sys.executable, "-m", "autotune.cli", *args]


def run_counts(db: Path) -> dict[str, int]:
    """Trial runs per MLflow status, read straight from the SQLite file (cheap enough to poll)."""
    if not db.is_file():
        return {}
    query = (
        "SELECT status, COUNT(*) FROM runs WHERE run_uuid IN "
        "(SELECT run_uuid FROM tags WHERE key = 'autotune.trial_id') GROUP BY status"
    )
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5.0) as conn:
            return dict(conn.execute(query).fetchall())
    except sqlite3.OperationalError:  # tables not created yet, or busy
        return {}


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``predicate`` every 0.1 s; fail the test after ``timeout_s``."""
    give_up = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > give_up:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def trial_processes(trials_dir: Path) -> list[int]:
    """Live processes (ours) whose working directory is a trial folder under ``trials_dir``."""
    pids = []
    root = str(trials_dir.resolve())
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            with open(f"/proc/{entry}/stat", encoding="utf-8") as file:
                state = file.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if cwd.startswith(root) and state not in ("Z", "X"):
            pids.append(int(entry))
    return pids


def kill_trial_processes(trials_dir: Path) -> None:
    """SIGKILL the trial processes a killed driver left behind (the test started them)."""
    for pid in trial_processes(trials_dir):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def study_runs(config: StudyConfig) -> tuple[Any, list[Any]]:
    """The parent run and the trial runs of a study, straight from MLflow."""
    from mlflow import MlflowClient

    client = MlflowClient(config.tracking_uri)
    experiment = client.get_experiment_by_name(config.name)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("autotune.role") == "study"]
    assert len(parents) == 1
    trials = [r for r in runs if "autotune.trial_id" in r.data.tags]
    assert {r.data.tags["mlflow.parentRunId"] for r in trials} <= {parents[0].info.run_id}
    return parents[0], sorted(trials, key=lambda r: (int(r.data.tags["autotune.trial_id"]), r.info.start_time))
