"""What every fault suite shares: study folders, bounded subprocesses, the record, cleanup.

Everything a suite starts lives under one temporary root folder, and every process it starts
(drivers, the trials they start, an ``mlflow server``) names a path under that root on its
command line or runs there. :func:`processes_under` finds them by that path (``/proc``), so
cleanup ends exactly the processes this run started, by pid, even when a driver was killed
and its trials were re-parented.

Only the public surface is used: the ``autotune`` command (``run``, ``resume``, ``status
--format json``) and MLflow's ``MlflowClient`` for reading the record.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

REPO = Path(__file__).resolve().parents[2]
"""The repository root."""

STUDY_TEMPLATE = Path(__file__).resolve().parent / "study"
"""The suite's study folder (``study.yaml`` + ``train.py``), copied for each run."""

TRIAL_MODULE = "autotune.executors._worker"
"""What a local trial process runs (only used to label processes in the report)."""


def autotune_argv() -> list[str]:
    """The ``autotune`` command: the console script beside this Python, else ``python -m autotune.cli``."""
    script = Path(sys.executable).with_name("autotune")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "autotune.cli"]


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every process a suite starts: one thread, no telemetry, unbuffered."""
    env = dict(os.environ)
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                "PYTHONUNBUFFERED": "1", "FORCE_COLOR": "0",
                # an `mlflow server` without its GenAI job runner (five huey consumers) starts much faster
                "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    env.update(extra or {})
    return env


# -- study folders ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class StudyFiles:
    """One copy of the suite's study.

    Attributes:
        name: The study name (the MLflow experiment).
        folder: The copied study folder (``study.yaml``, ``train.py``).
        study_file: ``folder/study.yaml``.
        output_dir: The study's output folder (trial folders under ``trials/``).
        tracking_uri: The study's MLflow store.
        executions_log: The file every trial execution appends to (outside the study).
        max_trials: The study's budget.
    """

    name: str
    folder: Path
    study_file: Path
    output_dir: Path
    tracking_uri: str
    executions_log: Path
    max_trials: int

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite file of the store, or ``None`` for a server."""
        prefix = "sqlite:///"
        return Path(self.tracking_uri[len(prefix):]) if self.tracking_uri.startswith(prefix) else None


def make_study(
    root: Path,
    name: str,
    *,
    max_trials: int,
    workers: int,
    min_s: float = 0.2,
    max_s: float = 2.0,
    on_orphans: str = "fail",
    tracking_uri: str | None = None,
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
) -> StudyFiles:
    """Copy the suite's study under ``root/name`` with these settings.

    Args:
        root: The run's temporary root.
        name: Study name and folder name.
        max_trials: ``budget.max_trials``.
        workers: ``parallelism.workers``.
        min_s: Shortest trial duration.
        max_s: Longest trial duration.
        on_orphans: ``fail`` or ``requeue``.
        tracking_uri: The store; default: ``sqlite`` in the study's output folder.
        seed: The study's seed.
        overrides: Top-level sections replaced in the study file (e.g. ``early_stopping``).

    Returns:
        The study's paths.
    """
    import yaml

    folder = root / name
    folder.mkdir(parents=True)
    shutil.copy2(STUDY_TEMPLATE / "train.py", folder / "train.py")
    config = yaml.safe_load((STUDY_TEMPLATE / "study.yaml").read_text(encoding="utf-8"))
    output_dir = folder / "out"
    executions_log = root / f"{name}.executions.log"
    uri = tracking_uri or f"sqlite:///{(output_dir / 'mlflow.db').as_posix()}"
    config.update(name=name, seed=seed, on_orphans=on_orphans, output_dir=str(output_dir), tracking_uri=uri)
    config["budget"] = {"max_trials": max_trials}
    config["parallelism"] = {"workers": workers, "cpus_per_trial": 1}
    config["trial"]["fixed_args"] = {"executions_log": str(executions_log), "min_s": min_s, "max_s": max_s}
    config.update(overrides or {})
    study_file = folder / "study.yaml"
    study_file.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return StudyFiles(name, folder, study_file, output_dir, uri, executions_log, max_trials)


# -- processes --------------------------------------------------------------------------------


class Proc:
    """A bounded subprocess in its own session, its output in files under ``log_dir``.

    Args:
        argv: The command.
        log_dir: Where ``<label>.out``/``<label>.err`` go.
        label: Names the log files.
        cwd: Working directory.
        env: Environment (:func:`child_env` by default).
    """

    def __init__(self, argv: Sequence[str], log_dir: Path, label: str, cwd: Path | None = None,
                 env: Mapping[str, str] | None = None) -> None:
        self.argv = list(argv)
        self.label = label
        self.out_path = log_dir / f"{label}.out"
        self.err_path = log_dir / f"{label}.err"
        self._out: IO[bytes] = open(self.out_path, "wb")  # noqa: SIM115 (closed in wait/kill)
        self._err: IO[bytes] = open(self.err_path, "wb")  # noqa: SIM115
        self.start_mono = time.monotonic()
        self.popen = subprocess.Popen(self.argv, cwd=cwd, env=dict(env or child_env()), stdout=self._out,
                                      stderr=self._err, stdin=subprocess.DEVNULL, start_new_session=True)
        self.killed = False

    @property
    def pid(self) -> int:
        """The process id."""
        return self.popen.pid

    @property
    def age_s(self) -> float:
        """Seconds since the start."""
        return time.monotonic() - self.start_mono

    def alive(self) -> bool:
        """Whether it still runs."""
        return self.popen.poll() is None

    def kill(self, group: bool = False) -> None:
        """SIGKILL the process (or its whole process group) and reap it."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if group:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                else:
                    self.popen.kill()
            self.killed = True
        self.popen.wait()
        self._close()

    def wait(self, timeout_s: float) -> int | None:
        """Wait for the exit; past ``timeout_s`` kill it (group included) and return ``None``."""
        try:
            rc = self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill(group=True)
            return None
        self._close()
        return rc

    def stderr_tail(self, n_chars: int = 600) -> str:
        """The last characters of its standard error."""
        with contextlib.suppress(OSError):
            return self.err_path.read_text(encoding="utf-8", errors="replace")[-n_chars:]
        return ""

    def stdout_text(self) -> str:
        """Its standard output."""
        with contextlib.suppress(OSError):
            return self.out_path.read_text(encoding="utf-8", errors="replace")
        return ""

    def _close(self) -> None:
        for file in (self._out, self._err):
            with contextlib.suppress(OSError):
                file.close()


def processes_under(root: Path) -> list[tuple[int, str]]:
    """Live processes (not this one) whose command line names, or whose cwd lies under, ``root``.

    Returns:
        ``(pid, command line)`` pairs.
    """
    marker = str(root)
    found = []
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as file:
                cmdline = file.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry.name}/stat", encoding="utf-8") as file:
                if file.read().rsplit(")", 1)[1].split()[0] == "Z":  # a zombie holds nothing
                    continue
            cwd = ""
            with contextlib.suppress(OSError):
                cwd = os.readlink(f"/proc/{entry.name}/cwd")
        except (OSError, IndexError):
            continue
        if marker in cmdline or cwd == marker or cwd.startswith(marker + "/"):
            found.append((int(entry.name), cmdline))
    return found


def kill_processes_under(root: Path) -> int:
    """SIGKILL every process :func:`processes_under` finds (their groups too); return how many."""
    victims = processes_under(root)
    for pid, _ in victims:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and processes_under(root):
        time.sleep(0.05)
    return len(victims)


@contextlib.contextmanager
def cleanup(root: Path, procs: list[Proc]) -> Iterator[None]:
    """On exit (error included): kill the listed processes, then anything left under ``root``.

    While inside, SIGTERM (``timeout``, a CI runner's cancel) raises ``KeyboardInterrupt`` so that
    this cleanup still runs (from the main thread only; elsewhere signals cannot be caught).
    """
    import threading

    previous: Any = None
    if threading.current_thread() is threading.main_thread():
        def stop(signum: int, frame: Any) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.kill(group=True)
        kill_processes_under(root)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def wait_for(predicate: Any, timeout_s: float, interval_s: float = 0.05) -> bool:
    """Poll ``predicate()`` until it is true or ``timeout_s`` passed; return its last value."""
    deadline = time.monotonic() + timeout_s
    while True:
        if predicate():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval_s)


# -- what the trials did ----------------------------------------------------------------------


@dataclasses.dataclass
class Executions:
    """Every execution of every trial, from the executions log.

    Attributes:
        starts: Per trial id, the execution tokens in start order.
        ends: Per trial id, ``token -> loss`` of the executions that returned.
        order: Per trial id, the ``start``/``end`` events in order.
    """

    starts: dict[int, list[str]]
    ends: dict[int, dict[str, float]]
    order: dict[int, list[str]]

    @classmethod
    def read(cls, path: Path) -> Executions:
        """Parse an executions log (a missing file is an empty log)."""
        starts: dict[int, list[str]] = {}
        ends: dict[int, dict[str, float]] = {}
        order: dict[int, list[str]] = {}
        text = path.read_text(encoding="utf-8") if path.is_file() else ""
        for line in text.splitlines():
            parts = line.split()
            if len(parts) < 3 or not parts[1].isdigit():
                continue
            kind, tid, token = parts[0], int(parts[1]), parts[2]
            order.setdefault(tid, []).append(kind)
            if kind == "start":
                starts.setdefault(tid, []).append(token)
            elif kind == "end" and len(parts) >= 4:
                ends.setdefault(tid, {})[token] = float(parts[3])
        return cls(starts, ends, order)

    @property
    def n_executions(self) -> int:
        """Executions started."""
        return sum(len(tokens) for tokens in self.starts.values())

    def finished_trials(self) -> set[int]:
        """Trial ids with at least one execution that returned."""
        return {tid for tid, ends in self.ends.items() if ends}

    def rerun_after_finish(self) -> list[int]:
        """Trial ids started again after one of their executions had returned (a finished trial re-run)."""
        return sorted(tid for tid, kinds in self.order.items() if "end" in kinds and "start" in kinds[kinds.index("end"):])

    def restarted_unfinished(self) -> list[int]:
        """Trial ids started more than once whose earlier executions never returned (re-queued after a kill)."""
        rerun = set(self.rerun_after_finish())
        return sorted(tid for tid, tokens in self.starts.items() if len(tokens) > 1 and tid not in rerun)


def trial_results(output_dir: Path) -> dict[int, dict[str, Any]]:
    """Every trial folder's ``result.json`` (``{trial_id: record}``; unreadable ones skipped)."""
    results: dict[int, dict[str, Any]] = {}
    trials = output_dir / "trials"
    if not trials.is_dir():
        return results
    for folder in trials.iterdir():
        if not folder.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError):
            results[int(folder.name)] = json.loads((folder / "result.json").read_text(encoding="utf-8"))
    return results


def trial_reports(output_dir: Path) -> dict[int, list[dict[str, Any]]]:
    """Every trial folder's reports channel (complete JSON lines only)."""
    reports: dict[int, list[dict[str, Any]]] = {}
    trials = output_dir / "trials"
    if not trials.is_dir():
        return reports
    for folder in trials.iterdir():
        if not folder.name.isdigit():
            continue
        lines: list[dict[str, Any]] = []
        with contextlib.suppress(OSError):
            for line in (folder / "reports.jsonl").read_text(encoding="utf-8").splitlines():
                with contextlib.suppress(ValueError):
                    value = json.loads(line)
                    if isinstance(value, dict):
                        lines.append(value)
        reports[int(folder.name)] = lines
    return reports


# -- the record -------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class RecordedTrial:
    """One trial run in the MLflow record.

    Attributes:
        trial_id: ``autotune.trial_id``.
        run_id: The MLflow run.
        status: The MLflow run status (``FINISHED``, ``FAILED``, ``RUNNING``...).
        state: ``autotune.state``.
        metrics: The run's latest metric values.
        failure_reason: ``autotune.failure_reason`` (cut).
        start_time: Run start, ms.
    """

    trial_id: int
    run_id: str
    status: str
    state: str
    metrics: dict[str, float]
    failure_reason: str
    start_time: int


@dataclasses.dataclass
class Record:
    """A study's MLflow record as read by ``MlflowClient``.

    Attributes:
        found: Whether the experiment exists.
        trials: Every trial run, by trial id then start time.
        running_runs: Runs (parent included) still ``RUNNING``.
        n_runs: Runs in the experiment.
    """

    found: bool
    trials: list[RecordedTrial]
    running_runs: list[str]
    n_runs: int

    def latest(self) -> dict[int, RecordedTrial]:
        """The latest run of each trial id."""
        latest: dict[int, RecordedTrial] = {}
        for trial in self.trials:
            latest[trial.trial_id] = trial
        return latest

    def counts(self) -> dict[str, int]:
        """Latest runs per ``autotune.state``."""
        counts: dict[str, int] = {}
        for trial in self.latest().values():
            counts[trial.state] = counts.get(trial.state, 0) + 1
        return counts


def read_record(tracking_uri: str, name: str) -> Record:
    """Read a study's experiment with ``MlflowClient`` (nothing is written)."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return Record(False, [], [], 0)
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment.experiment_id], run_view_type=ViewType.ALL, max_results=1000,
                                  page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            break
    trials = []
    for run in runs:
        tags = run.data.tags
        if "autotune.trial_id" not in tags:
            continue
        trials.append(RecordedTrial(
            trial_id=int(tags["autotune.trial_id"]), run_id=run.info.run_id, status=run.info.status,
            state=tags.get("autotune.state", "?"), metrics=dict(run.data.metrics),
            failure_reason=tags.get("autotune.failure_reason", "")[:200], start_time=run.info.start_time or 0,
        ))
    trials.sort(key=lambda t: (t.trial_id, t.start_time))
    running = [run.info.run_id for run in runs if run.info.status == "RUNNING"]
    return Record(True, trials, running, len(runs))


def metric_history(tracking_uri: str, run_id: str, key: str) -> list[tuple[int, float]]:
    """``(step, value)`` of every logged point of one metric."""
    from mlflow.tracking import MlflowClient

    return [(m.step, m.value) for m in MlflowClient(tracking_uri).get_metric_history(run_id, key)]


def close(a: float, b: float) -> bool:
    """Whether two logged floats are the same value (MLflow stores doubles)."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def sqlite_state(path: Path | None) -> str:
    """A one-word look at a SQLite store file, read-only: ``absent``, ``empty``, ``tables=N alembic=V``."""
    if path is None or not path.exists():
        return "absent"
    if path.stat().st_size == 0:
        return "empty"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=2.0)) as db:
            tables = db.execute("select count(*) from sqlite_master where type='table'").fetchone()[0]
            version = "-"
            with contextlib.suppress(sqlite3.Error):
                row = db.execute("select version_num from alembic_version").fetchone()
                version = row[0] if row else "none"
        return f"tables={tables} alembic={version}"
    except sqlite3.Error as exc:
        return f"unreadable ({exc})"


def status_json(study: StudyFiles, log_dir: Path, label: str, timeout_s: float) -> tuple[int | None, dict[str, Any]]:
    """``autotune status --format json`` of a study: its exit code and parsed output (``{}`` if none)."""
    proc = Proc([*autotune_argv(), "status", str(study.study_file), "--format", "json"], log_dir, label,
                cwd=study.folder)
    rc = proc.wait(timeout_s)
    try:
        data = json.loads(proc.stdout_text())
    except ValueError:
        data = {}
    return rc, data if isinstance(data, dict) else {}


# -- report context ---------------------------------------------------------------------------


def git_commit() -> str:
    """The autotune code the suites run: ``<short hash> <subject>`` of HEAD (noting uncommitted changes).

    When ``autotune`` is imported from outside this repository (``PYTHONPATH`` pointing at a
    ``git archive`` snapshot, so that others' edits cannot change the code mid-measurement),
    the snapshot's ``COMMIT`` file names the commit instead.
    """
    import autotune

    package_root = Path(autotune.__file__).resolve().parents[1]
    if package_root != REPO:
        with contextlib.suppress(OSError):
            return (package_root / "COMMIT").read_text(encoding="utf-8").strip() + f" (snapshot in {package_root})"
        return f"unknown (autotune imported from {package_root})"

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30,
                              check=False).stdout.strip()

    with contextlib.suppress(Exception):
        head = git("log", "-1", "--format=%h %s")
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "autotune")
        return head + (" (+ uncommitted changes under autotune/)" if dirty else "")
    return "unknown"


def machine() -> str:
    """CPU model, cores, memory, OS and Python."""
    model = platform.processor() or "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gb = 0.0
    with contextlib.suppress(OSError, ValueError, IndexError):
        mem_gb = int(Path("/proc/meminfo").read_text().split()[1]) / 2**20
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{model}, {os.cpu_count()} cores, {mem_gb:.0f} GiB, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()} (load average at the end: {load})")


def children_cpu_s() -> float:
    """CPU seconds (user + system) of this process's reaped children so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
