"""A tracking store that goes away mid-study: no metric, tag or state is lost.

Two kinds of tests: fast ones where the MLflow client fails with connection errors on demand
(ordering, the memory bound, the spool file, a store that never comes back and the next
start sending what was kept), and one against a real ``mlflow server`` on a loopback port
that is SIGKILLed mid-study and restarted on the same port with the same backend store.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from autotune.exceptions import TrackingError
from autotune.tracking import MlflowTracker
from autotune.trial import TrialResult, TrialState
from tests.tracking.conftest import (
    _free_port,
    _mlflow_cli,
    _stop,
    start_mlflow_server,
    wait_healthy,
)

LOGGER = "autotune.tracking._tracker"
CONFIG = {"strategy": "ei", "seed": 0}
BOOT_TIMEOUT_S = 600.0  # `mlflow server` boots in seconds on an idle machine, minutes on a loaded one
_WRITES = {"log_batch", "set_terminated", "log_text", "log_artifact", "log_artifacts", "update_run",
           "create_run", "set_tag"}


class FlakyClient:
    """An MlflowClient whose writes fail with a connection error while ``down`` is set."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.down = False
        self.failures = 0
        self.sent: list[str] = []  # the writes that reached the store
        self.delay_s = 0.0  # a slow store: each write takes this long

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if name not in _WRITES:
            return attr

        def write(*args: Any, **kwargs: Any) -> Any:
            if self.down:
                import requests

                self.failures += 1
                try:
                    raise requests.exceptions.ConnectionError("[Errno 111] Connection refused")
                except requests.exceptions.ConnectionError as exc:  # MLflow wraps it like this
                    from mlflow.exceptions import MlflowException

                    raise MlflowException(f"API request failed with exception {exc}") from None
            time.sleep(self.delay_s)
            self.sent.append(name)
            return attr(*args, **kwargs)

        return write


def _flaky_tracker(uri: str, spool: Path, **options: Any) -> tuple[MlflowTracker, FlakyClient]:
    tracker = MlflowTracker(uri, "outage", spool_dir=spool, **options)
    flaky = FlakyClient(tracker.client)
    tracker._client = flaky  # type: ignore[assignment]
    return tracker, flaky


def _losses(tracker: MlflowTracker, run_id: str, key: str = "loss") -> list[tuple[int, float]]:
    from mlflow import MlflowClient

    history = MlflowClient(tracker.tracking_uri).get_metric_history(run_id, key)
    return sorted((m.step, m.value) for m in history)


def test_writes_during_an_outage_are_kept_in_order_and_sent_when_it_ends(
    mlflow_sqlite_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker, flaky = _flaky_tracker(mlflow_sqlite_uri, tmp_path, write_timeout_s=5.0)
    tracker.start_study(CONFIG)
    run_id = tracker.start_trial(0, {"x": 0.5})
    tracker.log_reports(run_id, [{"loss": 1.0}])

    flaky.down = True
    start = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        for step in range(1, 41):
            tracker.log_reports(run_id, [{"loss": 1.0 / (step + 1)}])
        tracker.end_trial(run_id, TrialResult(0, TrialState.COMPLETED, metrics={"loss": 0.02}))
        tracker.set_study_tags({"autotune.best_trial_id": 0})
        with pytest.raises(TrackingError, match="record cannot be read yet"):
            tracker.load_trials()  # quickly, instead of a stale record
    assert time.monotonic() - start < 15.0  # the driver was not held up
    warnings = [r for r in caplog.records if "does not answer (" in r.getMessage()]
    assert len(warnings) == 1 and str(tracker.spool_path) in warnings[0].getMessage()
    spooled = [json.loads(line) for line in tracker.spool_path.read_text().splitlines()]
    assert len(spooled) == tracker.unsent_writes >= 43  # everything since the failure, on disk
    assert [op["seq"] for op in spooled] == sorted(op["seq"] for op in spooled)

    flaky.down = False
    flaky.sent.clear()
    tracker.flush(timeout_s=60.0)
    assert tracker.unsent_writes == 0 and not tracker.spool_path.exists()
    assert flaky.sent.count("log_batch") <= 3  # the kept reports went out together, not 40 requests
    assert _losses(tracker, run_id) == sorted([(0, 1.0), *((s, 1.0 / (s + 1)) for s in range(1, 41)), (40, 0.02)])
    assert tracker.client.get_run(run_id).data.metrics["loss"] == 0.02  # the final value is the latest
    [trial] = tracker.load_trials()
    assert (trial.state, trial.status, trial.metrics) == (TrialState.COMPLETED, "FINISHED", {"loss": 0.02})
    assert flaky.failures >= 2  # it did retry


def test_memory_is_bounded_and_the_rest_is_read_back_from_the_spool(
    mlflow_sqlite_uri: str, tmp_path: Path
) -> None:
    tracker, flaky = _flaky_tracker(mlflow_sqlite_uri, tmp_path, write_timeout_s=5.0, max_buffered_writes=4)
    tracker.start_study(CONFIG)
    run_id = tracker.start_trial(0, {"x": 0.5})
    flaky.down = True
    for step in range(60):
        tracker.log_reports(run_id, [{"step": step, "loss": float(step)}])
    writer = tracker._writer
    assert len(writer._queue) <= 4 and tracker.unsent_writes == 60
    flaky.down = False
    tracker.end_study()
    assert _losses(tracker, run_id) == [(s, float(s)) for s in range(60)]
    assert tracker.client.get_run(run_id).data.metrics["loss"] == 59.0


def test_a_store_that_never_comes_back_is_a_clear_error_and_nothing_is_lost(
    mlflow_sqlite_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker, flaky = _flaky_tracker(mlflow_sqlite_uri, tmp_path, write_timeout_s=2.0, server_wait_s=1.0)
    tracker.start_study(CONFIG)
    run_id = tracker.start_trial(0, {"x": 0.5})
    flaky.down = True
    tracker.log_reports(run_id, [{"loss": float(s)} for s in range(5)])
    tracker.end_trial(run_id, TrialResult(0, TrialState.FAILED, error="Traceback (most recent call last):\n  File \"t.py\", line 1\nValueError: x"))
    with pytest.raises(TrackingError, match="cannot open the run of trial 1"):
        tracker.start_trial(1, {"x": 0.25})
    with caplog.at_level(logging.ERROR, logger=LOGGER), pytest.raises(TrackingError) as raised:
        tracker.end_study("FAILED")
    message = str(raised.value)
    assert str(tracker.spool_path) in message and "5 metric values" in message
    assert "autotune resume" in message and message in caplog.text  # logged as well
    assert tracker.spool_path.exists()

    # the driver is gone; the store is back; the next start of the study sends what was kept
    resumed = MlflowTracker(mlflow_sqlite_uri, "outage", spool_dir=tmp_path)
    resumed.start_study(CONFIG)
    assert not list(tmp_path.glob("outage.mlflow-unsent*"))
    assert _losses(resumed, run_id) == [(s, float(s)) for s in range(5)]
    [trial] = resumed.load_trials()
    assert (trial.state, trial.status) == (TrialState.FAILED, "FAILED")
    assert trial.tags["autotune.failure_reason"] == "ValueError: x"


def test_start_trial_waits_for_the_store_and_keeps_the_order(mlflow_sqlite_uri: str, tmp_path: Path) -> None:
    tracker, flaky = _flaky_tracker(mlflow_sqlite_uri, tmp_path, write_timeout_s=2.0, server_wait_s=60.0)
    tracker.start_study(CONFIG)
    first = tracker.start_trial(0, {"x": 0.5})
    flaky.down = True
    tracker.log_reports(first, [{"loss": 3.0}, {"loss": 2.0}])
    threading.Timer(1.5, lambda: setattr(flaky, "down", False)).start()
    start = time.monotonic()
    second = tracker.start_trial(1, {"x": 0.25})
    assert time.monotonic() - start >= 1.0
    assert _losses(tracker, first) == [(0, 3.0), (1, 2.0)]  # sent before the new run was opened
    assert [t.run_id for t in tracker.load_trials()] == [first, second]


# -- a real tracking server, killed and restarted -----------------------------------------------


def _outage_study(uri: str, spool: Path, down_s: float, restart: Any, kill: Any) -> dict[str, Any]:
    """Three trials report every 0.1 s; the server is SIGKILLed for ``down_s`` s in the middle.

    During the outage trial 0 ends (final metrics, state, tags) and the study's best-so-far
    metric is logged; right after the restart a new trial is opened (it waits for the server).
    """
    tracker = MlflowTracker(uri, "outage", spool_dir=spool, write_timeout_s=3.0, server_wait_s=BOOT_TIMEOUT_S)
    tracker.start_study(CONFIG)
    runs = {tid: tracker.start_trial(tid, {"x": tid / 10}) for tid in range(3)}
    expected: dict[str, list[tuple[int, float]]] = {run_id: [] for run_id in runs.values()}
    open_runs = set(runs.values())
    counts = {"during": 0, "step": 0}
    down = threading.Event()

    def tick() -> None:
        step = counts["step"]
        for run_id in sorted(open_runs):
            value = 1.0 / (step + 1)
            tracker.log_reports(run_id, [{"step": step, "loss": value}])
            expected[run_id].append((step, value))
            counts["during"] += down.is_set()
        counts["step"] += 1

    for _ in range(10):
        tick()
    kill()
    down.set()
    start = time.monotonic()
    while time.monotonic() - start < down_s:
        tick()
        if runs[0] in open_runs and time.monotonic() - start > down_s / 2:
            tracker.end_trial(runs[0], TrialResult(0, TrialState.COMPLETED, metrics={"loss": 0.5}))
            expected[runs[0]].append((expected[runs[0]][-1][0], 0.5))  # at its last step
            counts["during"] += 1
            open_runs.discard(runs[0])
            tracker.log_study_metrics({"best_loss": 0.5}, step=1)
        time.sleep(0.1)
    unsent_at_restart = tracker.unsent_writes
    restart()
    down.clear()
    new_run = tracker.start_trial(3, {"x": 0.3})  # waits for the server, after the backlog
    for _ in range(5):
        tick()
    for tid in (1, 2):
        tracker.end_trial(runs[tid], TrialResult(tid, TrialState.COMPLETED, metrics={"loss": 0.1}))
        expected[runs[tid]].append((expected[runs[tid]][-1][0], 0.1))
    tracker.end_trial(new_run, TrialResult(3, TrialState.KILLED))
    tracker.end_study()
    return {"tracker": tracker, "runs": runs, "expected": expected, "during": counts["during"],
            "unsent_at_restart": unsent_at_restart}


@pytest.mark.parametrize(
    "down_s", [pytest.param(6.0, id="6s"), pytest.param(30.0, id="30s", marks=pytest.mark.long)]
)
def test_mlflow_server_killed_mid_study_loses_no_metric(
    down_s: float,
    tmp_path: Path,
    mlflow_store_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cli = _mlflow_cli()
    if cli is None:
        pytest.skip("the `mlflow` command-line tool is not on PATH: install mlflow to run the server tests")
    if down_s < 30:  # the short size: MLflow's own retries off, so the tracker's retry loop does the work
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    backend = mlflow_store_factory(tmp_path / "backend")
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    procs = [start_mlflow_server(cli, backend, tmp_path / "artifacts", port, log_path)]
    try:
        wait_healthy(procs[-1], uri, log_path, BOOT_TIMEOUT_S)

        def kill() -> None:
            os.killpg(procs[-1].pid, signal.SIGKILL)
            procs[-1].wait(10)

        def restart() -> None:
            procs.append(start_mlflow_server(cli, backend, tmp_path / "artifacts", port, log_path))

        with caplog.at_level(logging.WARNING, logger=LOGGER):
            out = _outage_study(uri, tmp_path / "out", down_s, restart, kill)
    finally:
        for proc in procs:
            _stop(proc)

    tracker: MlflowTracker = out["tracker"]
    assert out["unsent_at_restart"] > 0  # the outage was real: writes waited for the server
    # every value arrived: read through the backend store itself, not through the server
    reader = MlflowTracker(backend, "outage")
    reader.find_study()
    trials = {t.trial_id: t for t in reader.load_trials()}
    assert sorted(trials) == [0, 1, 2, 3]
    arrived = 0
    for tid, run_id in out["runs"].items():
        history = _losses(reader, run_id)
        assert history == sorted(out["expected"][run_id])
        arrived += len(history)
        assert trials[tid].state is TrialState.COMPLETED and trials[tid].status == "FINISHED"
    assert trials[0].metrics == {"loss": 0.5}
    assert trials[3].state is TrialState.KILLED
    from mlflow import MlflowClient

    best = MlflowClient(backend).get_metric_history(reader.parent_run_id, "best_loss")
    assert [(m.step, m.value) for m in best] == [(1, 0.5)]
    assert not tracker.spool_path.exists()
    outage_warnings = [r for r in caplog.records if "does not answer (" in r.getMessage()]
    assert len(outage_warnings) == 1
    logged = sum(len(v) for v in out["expected"].values())
    print(f"\nserver down {down_s:.0f} s: {out['during']} metric values logged while it was down "
          f"({out['unsent_at_restart']} writes waiting at the restart); {arrived} of {logged} values "
          "logged in the study arrived")
    assert arrived == logged


def test_a_kept_write_the_store_refuses_is_reported_and_does_not_block_the_rest(
    mlflow_sqlite_uri: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker, flaky = _flaky_tracker(mlflow_sqlite_uri, tmp_path, write_timeout_s=5.0)
    tracker.start_study(CONFIG)
    run_id = tracker.start_trial(0, {"x": 0.5})
    flaky.down = True
    tracker.log_reports(run_id, [{"loss": 1.0}])
    tracker.log_reports("f" * 32, [{"loss": 9.0}])  # a run that does not exist
    tracker.log_reports(run_id, [{"loss": 0.5}])
    flaky.down = False
    with caplog.at_level(logging.ERROR, logger=LOGGER):
        tracker.flush(timeout_s=60.0)
    assert _losses(tracker, run_id) == [(0, 1.0), (1, 0.5)]
    assert "refused a kept write log_batch of run " + "f" * 32 in caplog.text


def test_a_slow_store_is_waited_for_by_readers(mlflow_sqlite_uri: str, tmp_path: Path) -> None:
    tracker, flaky = _flaky_tracker(mlflow_sqlite_uri, tmp_path, write_timeout_s=0.3)
    tracker.start_study(CONFIG)
    run_id = tracker.start_trial(0, {"x": 0.5})
    flaky.delay_s = 1.0
    start = time.monotonic()
    tracker.log_reports(run_id, [{"loss": 2.0}])
    tracker.end_trial(run_id, TrialResult(0, TrialState.COMPLETED, metrics={"loss": 1.0}))
    assert time.monotonic() - start < 1.5  # the driver went on
    [trial] = tracker.load_trials()  # the store answers: the reader waits for the backlog
    assert (trial.state, trial.status, trial.metrics) == (TrialState.COMPLETED, "FINISHED", {"loss": 1.0})
