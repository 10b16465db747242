"""Kill a study's ``mlflow server`` mid-study, restart it, and count the metrics the record lost.

A study (local executor) logs to a real ``mlflow server`` on a loopback port
(``--backend-store-uri sqlite:///...``). Once some trials have finished, the server's whole
process group is SIGKILLed; ``outage_s`` later it is started again on the same port and store.
When the driver has ended (``autotune resume`` once more, if it failed), every point each trial
reported (its ``reports.jsonl``) and every final metric (its ``result.json``) is looked up in the
record with ``MlflowClient``: a point missing there is a lost metric.

Run ``python -m benchmarks.faults.server_outage --size long`` (30 s outage) or ``--size short``
(what ``tests/faults/test_server_outage.py`` runs).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.faults._common import (
    Executions,
    Proc,
    autotune_argv,
    cleanup,
    close,
    make_study,
    metric_history,
    processes_under,
    read_record,
    trial_reports,
    trial_results,
    wait_for,
)

__all__ = ["OutageResult", "mlflow_server_argv", "server_outage"]

SERVER_START_TIMEOUT_S = 600.0
"""Longest the harness waits for ``mlflow server`` to answer ``/health``."""


def free_port() -> int:
    """A loopback TCP port free right now."""
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def mlflow_server_argv(store: Path, port: int) -> list[str]:
    """``mlflow server`` on ``127.0.0.1:port`` with a SQLite backend and artifacts under ``store``."""
    beside = Path(sys.executable).with_name("mlflow")
    mlflow = str(beside) if beside.is_file() else (shutil.which("mlflow") or "mlflow")
    return [mlflow, "server", "--backend-store-uri", f"sqlite:///{(store / 'mlflow.db').as_posix()}",
            "--artifacts-destination", str(store / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1"]


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2.0) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def start_server(store: Path, port: int, log_dir: Path, label: str, timeout_s: float = SERVER_START_TIMEOUT_S) -> Proc:
    """Start ``mlflow server`` and wait until it answers (raises ``RuntimeError`` if it does not)."""
    store.mkdir(parents=True, exist_ok=True)
    proc = Proc(mlflow_server_argv(store, port), log_dir, label, cwd=store)
    if not wait_for(lambda: _healthy(port) or not proc.alive(), timeout_s, interval_s=0.2) or not proc.alive():
        tail = proc.stderr_tail()
        proc.kill(group=True)
        raise RuntimeError(f"mlflow server on port {port} did not start: {tail}")
    return proc


@dataclasses.dataclass
class OutageResult:
    """What a study logging through a killed and restarted ``mlflow server`` recorded.

    Attributes:
        outage_s: Seconds between the kill and the restarted server answering.
        finished_before: Trials finished when the server was killed.
        finished_during: Trials that finished in the first ``outage_s`` seconds after the kill.
        driver_rc: The driver's exit code (``None``: killed at its time limit).
        driver_error: The end of its standard error when it failed.
        resumed_rc: Exit code of ``autotune resume`` when the driver failed, else ``None``.
        trials: Trial folders.
        trials_without_run: Trial folders with no run in the record.
        points: Reported points (one metric at one step) across every trial.
        points_lost: Of those, missing from the record.
        finals: Final metrics of completed trials.
        finals_lost: Of those, not the run's latest value.
        trials_with_loss: Trial ids that lost at least one point or final metric.
        counts: Latest run per trial id, per ``autotune.state``.
        running_runs: Runs left ``RUNNING``.
        orphans: Trial processes alive after the end.
        wall_s: Wall-clock seconds of the measurement.
    """

    outage_s: float = 0.0
    finished_before: int = 0
    finished_during: int = 0
    driver_rc: int | None = None
    driver_error: str = ""
    resumed_rc: int | None = None
    trials: int = 0
    trials_without_run: list[int] = dataclasses.field(default_factory=list)
    points: int = 0
    points_lost: int = 0
    finals: int = 0
    finals_lost: int = 0
    trials_with_loss: list[int] = dataclasses.field(default_factory=list)
    counts: dict[str, int] = dataclasses.field(default_factory=dict)
    running_runs: list[str] = dataclasses.field(default_factory=list)
    orphans: list[str] = dataclasses.field(default_factory=list)
    wall_s: float = 0.0

    @property
    def metrics_lost(self) -> int:
        """Reported points and final metrics missing from the record."""
        return self.points_lost + self.finals_lost


def server_outage(
    root: Path,
    *,
    max_trials: int = 60,
    workers: int = 2,
    min_s: float = 1.0,
    max_s: float = 3.0,
    kill_after: int = 10,
    outage_s: float = 30.0,
    seed: int = 0,
    driver_timeout_s: float = 900.0,
    log: Any = None,
) -> OutageResult:
    """Run a study against ``mlflow server``, kill the server for ``outage_s``, count lost metrics.

    Args:
        root: An empty temporary folder.
        max_trials: The study's budget.
        workers: Parallel trials.
        min_s: Shortest trial.
        max_s: Longest trial.
        kill_after: Kill the server once this many trials have finished.
        outage_s: Seconds the server stays down.
        seed: The study's seed.
        driver_timeout_s: Longest the driver may run.
        log: ``print``-like progress callback.

    Returns:
        The figures.
    """
    say = log or (lambda *a: None)
    wall = time.monotonic()
    result = OutageResult()
    port = free_port()
    store = root / "server"
    uri = f"http://127.0.0.1:{port}"
    procs: list[Proc] = []
    with cleanup(root, procs):
        server = start_server(store, port, root, "server0")
        procs.append(server)
        say(f"mlflow server up on {uri}")
        study = make_study(root, "outage", max_trials=max_trials, workers=workers, min_s=min_s, max_s=max_s,
                           tracking_uri=uri, seed=seed)
        driver = Proc([*autotune_argv(), "run", str(study.study_file), "--no-progress"], root, "driver_run",
                      cwd=study.folder)
        procs.append(driver)

        def finished() -> int:
            return len(Executions.read(study.executions_log).finished_trials())

        wait_for(lambda: finished() >= kill_after or not driver.alive(), driver_timeout_s, interval_s=0.1)
        result.finished_before = finished()
        if driver.alive():
            down = time.monotonic()
            server.kill(group=True)  # the server and its workers
            say(f"server killed after {result.finished_before} finished trials")
            time.sleep(outage_s)
            result.finished_during = finished() - result.finished_before
            server = start_server(store, port, root, "server1")
            procs.append(server)
            result.outage_s = round(time.monotonic() - down, 1)
            say(f"server back after {result.outage_s} s ({result.finished_during} trials finished meanwhile)")
        else:
            say("the driver ended before the outage")
        result.driver_rc = driver.wait(driver_timeout_s)
        if result.driver_rc != 0:
            result.driver_error = driver.stderr_tail(800)
            say(f"driver rc={result.driver_rc}: {result.driver_error[-300:]!r}")
            resume = Proc([*autotune_argv(), "resume", str(study.study_file), "--no-progress"], root, "driver_resume",
                          cwd=study.folder)
            procs.append(resume)
            result.resumed_rc = resume.wait(driver_timeout_s)
        time.sleep(1.0)
        result.orphans = [cmd for _, cmd in processes_under(study.output_dir)]
        _count_lost(uri, study.name, study.output_dir, result)
    result.wall_s = time.monotonic() - wall
    return result


def _count_lost(uri: str, name: str, output_dir: Path, result: OutageResult) -> None:
    """Look every reported point and final metric up in the record."""
    record = read_record(uri, name)
    latest = record.latest()
    result.counts = record.counts()
    result.running_runs = record.running_runs
    reports = trial_reports(output_dir)
    results = trial_results(output_dir)
    result.trials = len(reports)
    lossy: set[int] = set()
    for tid in sorted(reports):
        trial = latest.get(tid)
        expected = [(key, int(r["step"]), float(v)) for r in reports[tid] if isinstance(r.get("step"), int)
                    for key, v in r.items()
                    if key != "step" and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
        res = results.get(tid, {})
        finals = {k: float(v) for k, v in (res.get("metrics") or {}).items()
                  if res.get("state") == "completed" and isinstance(v, (int, float)) and math.isfinite(v)}
        result.points += len(expected)
        result.finals += len(finals)
        if trial is None:
            result.trials_without_run.append(tid)
            result.points_lost += len(expected)
            result.finals_lost += len(finals)
            if expected or finals:
                lossy.add(tid)
            continue
        histories: dict[str, list[tuple[int, float]]] = {}
        for key, step, value in expected:
            if key not in histories:
                histories[key] = metric_history(uri, trial.run_id, key)
            if not any(s == step and close(v, value) for s, v in histories[key]):
                result.points_lost += 1
                lossy.add(tid)
        for key, value in finals.items():
            if key in trial.metrics and close(trial.metrics[key], value):
                continue
            if key not in histories:  # the final value may sit at an earlier step than the last report
                histories[key] = metric_history(uri, trial.run_id, key)
            if not any(close(v, value) for _, v in histories[key]):
                result.finals_lost += 1
                lossy.add(tid)
    result.trials_with_loss = sorted(lossy)


def outage_markdown(r: OutageResult, planned_s: float) -> list[str]:
    """The report's section on a server outage."""
    error = r.driver_error.strip().splitlines()[-1][:300] if r.driver_error.strip() else ""
    lines = [
        "| figure | measured | target |",
        "|---|---|---|",
        (f"| metrics lost (reported points + final metrics missing from the record) | **{r.metrics_lost}** of "
        f"{r.points + r.finals} ({r.points_lost} of {r.points} points, {r.finals_lost} of {r.finals} finals) | 0 |"),
        f"| trials that lost a metric | {len(r.trials_with_loss)} of {r.trials} | 0 |",
        f"| trials with no run in the record | {len(r.trials_without_run)} | 0 |",
        f"| runs left RUNNING | {len(r.running_runs)} | 0 |",
        f"| orphan trial processes | {len(r.orphans)} | 0 |",
        f"| driver exit code | {r.driver_rc} | 0 |",
        "",
        (f"Server down {r.outage_s} s (planned {planned_s:.0f} s) after {r.finished_before} finished trials; "
        f"{r.finished_during} trials finished in its first {planned_s:.0f} s down. Record, latest run per trial: {r.counts}. "
        f"Wall {r.wall_s:.0f} s."),
    ]
    if r.driver_rc != 0:
        lines += ["", f"The driver failed: `{error}`; `autotune resume` afterwards: rc={r.resumed_rc}."]
    return lines


SIZES: dict[str, dict[str, Any]] = {
    "short": {"max_trials": 12, "workers": 2, "min_s": 0.5, "max_s": 1.5, "kill_after": 3, "outage_s": 5.0},
    "long": {"max_trials": 60, "workers": 2, "min_s": 1.0, "max_s": 3.0, "kill_after": 10, "outage_s": 30.0},
}
"""The sizes: ``short`` for tests, ``long`` for the issue's figure."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the outage measurement and print Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="short")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    size = SIZES[args.size]
    with tempfile.TemporaryDirectory(prefix="autotune-outage-") as tmp:
        r = server_outage(Path(tmp), seed=args.seed, log=print, **size)
    print("\n".join([f"## MLflow server killed for {size['outage_s']:.0f} s mid-study", "",
                     *outage_markdown(r, size["outage_s"])]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
