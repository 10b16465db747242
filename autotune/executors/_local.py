"""One fresh Python process per trial on this machine, GPUs pinned through the child's env.

POSIX only: each trial runs in a new session, so a time limit or a cancel kills its whole
process group (data-loader workers included).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from autotune.exceptions import ConfigError, TrialError
from autotune.executors._base import Job, PolledJob, PollingExecutor, check_positive_int, read_new_reports
from autotune.executors._gpu import GpuAllocator
from autotune.executors._outcome import is_script, latest_values, write_json_atomic
from autotune.executors._registry import register_executor
from autotune.report import FIXED_ARGS_ENV, PARAMS_ENV, REPORT_ENV
from autotune.trial import TrialResult, TrialSpec, TrialState

__all__ = ["PID_FILE", "LocalExecutor", "kill_orphan_trial"]

logger = logging.getLogger(__name__)

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding `autotune/`
_STDERR_TAIL_CHARS = 2000


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the process has exited, without reaping it (so its pid, the group id, stays taken)."""
    if proc.returncode is not None:
        return True
    if not hasattr(os, "waitid"):
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


PID_FILE = "worker.pid"
"""In a trial's workdir while its process runs: ``"<pid> <start ticks>"``, for :func:`kill_orphan_trial`."""


def _start_ticks(pid: int) -> str | None:
    """When the process started (clock ticks since boot, ``/proc/<pid>/stat`` field 22); ``None`` if unknown."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as file:
            return file.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def kill_orphan_trial(workdir: str | Path) -> bool:
    """Kill the process group of a trial that a dead driver left running.

    A driver killed with SIGKILL cannot stop its trials: they run on in their own sessions.
    :class:`LocalExecutor` leaves :data:`PID_FILE` in each running trial's workdir; this reads
    it and kills that process group, but only if the process still is the trial (same pid
    *and* same start time, so a recycled pid is never hit). Where ``/proc`` is missing the start
    time cannot be checked and nothing is killed.

    Args:
        workdir: The trial's working directory (the ``autotune.workdir`` tag of its run).

    Returns:
        Whether a live trial process was killed.
    """
    path = Path(workdir) / PID_FILE
    try:
        pid_text, ticks = path.read_text(encoding="utf-8").split()
        pid = int(pid_text)
    except (OSError, ValueError):
        return False
    killed = ticks != "-" and _start_ticks(pid) == ticks
    if killed:
        _signal_group(pid, signal.SIGKILL)
        logger.warning("killed the process group %d of an orphaned trial (%s)", pid, workdir)
    with contextlib.suppress(OSError):
        path.unlink()
    return killed


def _kill_groups(procs: dict[int, subprocess.Popen[bytes]]) -> None:
    """Kill the process groups still running (called when the executor is collected or at exit)."""
    for pid, proc in list(procs.items()):
        if proc.returncode is None:
            _signal_group(pid, signal.SIGKILL)
            proc.wait()
        procs.pop(pid, None)


class _LocalJob(PolledJob):
    executor: LocalExecutor

    def __init__(self, executor: LocalExecutor, spec: TrialSpec, workdir: Path, entry_point: str) -> None:
        super().__init__(executor, spec)
        self.workdir = workdir
        self.entry_point = entry_point
        self.params_path = workdir / "params.json"
        self.fixed_args_path = workdir / "fixed_args.json"
        self.reports_path = workdir / "reports.jsonl"
        self.result_path = workdir / "result.json"
        self.stdout_path = workdir / "stdout.log"
        self.stderr_path = workdir / "stderr.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.gpu_ids: list[str] = []
        self.start_time = 0.0
        self.start_mono = 0.0
        self.result_seen_mono: float | None = None
        self._reports: list[dict[str, Any]] = []
        self._reports_offset = 0

    def _started(self) -> bool:
        return self.proc is not None

    def _all_reports(self) -> list[dict[str, Any]]:
        if self._result is None and self.proc is not None:
            self._read_reports()
        return list(self._reports)

    def _read_reports(self) -> None:
        """Read the complete lines appended to the reports channel since the last read."""
        new, self._reports_offset = read_new_reports(self.reports_path, self._reports_offset)
        self._reports.extend(new)

    def argv(self, python: str) -> list[str]:
        """The worker command line."""
        return [
            python,
            "-m",
            "autotune.executors._worker",
            str(self.params_path),
            "--entry-point",
            self.entry_point,
            "--fixed-args",
            str(self.fixed_args_path),
            "--reports",
            str(self.reports_path),
            "--result",
            str(self.result_path),
            "--objective",
            self.spec.objective,
        ]


@register_executor("local")
class LocalExecutor(PollingExecutor):
    """Runs each trial in a fresh Python process on this machine.

    The child is ``[python, "-m", "autotune.executors._worker", params.json, ...]`` started in
    its own session, with the trial's workdir as its working directory, its standard output
    and error in ``stdout.log``/``stderr.log`` there, and an environment that is a copy of the
    driver's plus: ``CUDA_VISIBLE_DEVICES`` (the allocated GPUs, ``""`` for a CPU trial),
    ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` (``spec.resources.cpus``), the report channel and
    parameter files, and a ``PYTHONPATH`` of the autotune package's folder, the executor's own
    ``env["PYTHONPATH"]`` entries (a study puts its folder there), the driver's working
    directory (so ``mypkg.train:train`` imports as it does in the driver), then the inherited ones.
    The driver's ``os.environ`` is never changed.

    A trial with ``spec.resources.gpus == k > 0`` waits in the queue until the
    :class:`GpuAllocator` can give it ``k`` devices; when the machine has no GPU it runs on the
    CPU instead (logged once).

    Args:
        n_workers: How many trials may run at once.
        devices: GPU ids to allocate from (e.g. ``["2", "5"]``); ``None`` discovers them when the
            first GPU trial starts (``CUDA_VISIBLE_DEVICES``, then ``nvidia-smi``, then torch).
        trials_per_gpu: How many trials may share one GPU.
        root_dir: Where trials without a ``spec.workdir`` get ``trial_<id>/`` folders; a new
            temporary folder by default.
        python: The interpreter of the children, the driver's by default.
        env: Extra environment variables for every child.
        poll_interval_s: How often :meth:`wait` checks the children.
        kill_grace_s: Seconds between SIGTERM and SIGKILL when a trial is stopped.
    """

    def __init__(
        self,
        n_workers: int = 1,
        *,
        devices: Sequence[str] | None = None,
        trials_per_gpu: int = 1,
        root_dir: str | os.PathLike[str] | None = None,
        python: str | None = None,
        env: Mapping[str, str] | None = None,
        poll_interval_s: float = 0.05,
        kill_grace_s: float = 3.0,
    ) -> None:
        super().__init__(n_workers)
        self.allocator = GpuAllocator(devices, gpus_per_trial=1, trials_per_gpu=trials_per_gpu)
        self.trials_per_gpu = trials_per_gpu
        self.root_dir = None if root_dir is None else Path(root_dir).resolve()
        self.python = python or sys.executable
        self.env = dict(env or {})
        self.poll_interval_s = poll_interval_s
        self.kill_grace_s = kill_grace_s
        self._queue: list[_LocalJob] = []
        self._running: list[_LocalJob] = []
        self._jobs: list[_LocalJob] = []
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._warned_no_gpu = False
        self._finalizer = weakref.finalize(self, _kill_groups, self._procs)

    # -- public API -----------------------------------------------------------------------

    def submit(self, spec: TrialSpec) -> Job:
        """Write the trial's files and start it (or queue it); see :meth:`Executor.submit`.

        Raises:
            ConfigError: The spec's resources are invalid.
            TrialError: The parameters or fixed arguments are not JSON-serialisable.
        """
        check_positive_int(f"trial {spec.trial_id}: resources.cpus", spec.resources.cpus)
        if spec.resources.gpus < 0:
            raise ConfigError(f"trial {spec.trial_id}: resources.gpus", "must be >= 0", spec.resources.gpus)
        if spec.resources.gpus > 0 and spec.resources.trials_per_gpu != self.trials_per_gpu:
            raise ConfigError(
                f"trial {spec.trial_id}: resources.trials_per_gpu",
                f"must equal the executor's trials_per_gpu={self.trials_per_gpu}",
                spec.resources.trials_per_gpu,
                "build the executor with LocalExecutor(trials_per_gpu=...) from the same setting.",
            )
        if spec.resources.gpus > 0:
            devices = self.allocator.devices
            if devices and spec.resources.gpus > len(devices):
                raise ConfigError(
                    f"trial {spec.trial_id}: resources.gpus",
                    f"must be <= the {len(devices)} GPUs available {devices}",
                    spec.resources.gpus,
                    "ask for fewer GPUs per trial, or make more devices visible (CUDA_VISIBLE_DEVICES).",
                )
        entry_point = os.path.abspath(spec.entry_point) if is_script(spec.entry_point) else spec.entry_point
        job = _LocalJob(self, spec, self._workdir(spec), entry_point)
        job.workdir.mkdir(parents=True, exist_ok=True)
        for stale in (job.result_path, job.reports_path):
            stale.unlink(missing_ok=True)
        for path, value, what in (
            (job.params_path, spec.params, "params"),
            (job.fixed_args_path, spec.fixed_args, "fixed_args"),
        ):
            try:
                write_json_atomic(path, value)
            except (TypeError, ValueError) as exc:
                raise TrialError(
                    f"trial {spec.trial_id}: {what} must be JSON-serialisable to reach the trial process: {exc}. "
                    "Fix: pass numbers, strings, booleans, lists and dicts only."
                ) from exc
        self._jobs.append(job)
        self._queue.append(job)
        self._dispatch()
        return job

    # -- internals ------------------------------------------------------------------------

    def _workdir(self, spec: TrialSpec) -> Path:
        if spec.workdir is not None:
            return Path(spec.workdir).resolve()
        if self.root_dir is None:
            self.root_dir = Path(tempfile.mkdtemp(prefix="autotune-local-"))
        return self.root_dir / f"trial_{spec.trial_id}"

    def _child_env(self, job: _LocalJob) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        threads = str(job.spec.resources.cpus)
        # The executor's own path entries (e.g. the study's folder) first, so a study's
        # ``train.py`` wins over one that happens to lie in the driver's working directory.
        paths = [
            _PACKAGE_ROOT,
            *self.env.get("PYTHONPATH", "").split(os.pathsep),
            os.getcwd(),
            *os.environ.get("PYTHONPATH", "").split(os.pathsep),
        ]
        env.update(
            {
                "CUDA_VISIBLE_DEVICES": ",".join(job.gpu_ids),
                "OMP_NUM_THREADS": threads,
                "MKL_NUM_THREADS": threads,
                "PYTHONPATH": os.pathsep.join(dict.fromkeys(p for p in paths if p)),
                "PYTHONUNBUFFERED": "1",
                PARAMS_ENV: str(job.params_path),
                FIXED_ARGS_ENV: str(job.fixed_args_path),
                REPORT_ENV: str(job.reports_path),
                "AUTOTUNE_TRIAL_ID": str(job.trial_id),
                "AUTOTUNE_WORKDIR": str(job.workdir),
            }
        )
        return env

    def _dispatch(self) -> None:
        """Start queued trials, in order, while workers and devices are free."""
        while self._queue and len(self._running) < self.n_workers:
            job = self._queue[0]
            if not self._reserve_devices(job):
                return
            self._queue.pop(0)
            self._launch(job)

    def _reserve_devices(self, job: _LocalJob) -> bool:
        n_gpus = job.spec.resources.gpus
        if n_gpus == 0:
            return True
        if not self.allocator.devices:
            if not self._warned_no_gpu:
                logger.warning("trials ask for %d GPU(s) but none is visible: running them on the CPU", n_gpus)
                self._warned_no_gpu = True
            return True
        ids = self.allocator.acquire(job.trial_id, n_gpus)
        if ids is None:
            return False
        job.gpu_ids = ids
        return True

    def _launch(self, job: _LocalJob) -> None:
        job.device = ",".join(f"cuda:{i}" for i in job.gpu_ids) or "cpu"
        job.start_time, job.start_mono = time.time(), time.monotonic()
        try:
            with open(job.stdout_path, "wb") as out, open(job.stderr_path, "wb") as err:
                job.proc = subprocess.Popen(
                    job.argv(self.python),
                    cwd=job.workdir,
                    env=self._child_env(job),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
        except OSError as exc:
            self._finish(job, TrialState.FAILED, f"could not start the trial process {job.argv(self.python)}: {exc}")
            return
        self._procs[job.proc.pid] = job.proc
        self._running.append(job)
        with contextlib.suppress(OSError):
            (job.workdir / PID_FILE).write_text(f"{job.proc.pid} {_start_ticks(job.proc.pid) or '-'}\n", encoding="utf-8")

    def _update(self) -> None:
        """Collect finished children, enforce time limits, start queued trials."""
        now = time.monotonic()
        for job in list(self._running):
            assert job.proc is not None  # running jobs have a process
            if _exited(job.proc):
                self._reap(job, stop_reason=None)
            elif job.spec.timeout_s is not None and now - job.start_mono > job.spec.timeout_s:
                self._stop(job, TrialState.TIMEOUT)
            elif job.result_path.exists():  # finished but lingering (non-daemon threads, children)
                if job.result_seen_mono is None:
                    job.result_seen_mono = now
                elif now - job.result_seen_mono > self.kill_grace_s:
                    self._kill_group(job)
                    self._reap(job, stop_reason=None)
        self._dispatch()

    def _cancel(self, job: _LocalJob) -> bool:
        if job._result is not None:
            return False
        if job.proc is None:
            self._queue.remove(job)
            self._finish(job, TrialState.KILLED, "cancelled by the driver before it started")
            return True
        if _exited(job.proc):
            self._reap(job, stop_reason=None)
            return False
        self._stop(job, TrialState.KILLED)
        return True

    def _stop(self, job: _LocalJob, reason: TrialState) -> None:
        self._kill_group(job)
        self._reap(job, stop_reason=reason)

    def _kill_group(self, job: _LocalJob) -> None:
        """SIGTERM the trial's process group, then SIGKILL it after the grace period."""
        assert job.proc is not None  # only called for started jobs
        pgid = job.proc.pid  # the child leads its own session and group
        _signal_group(pgid, signal.SIGTERM)
        give_up = time.monotonic() + self.kill_grace_s
        while not _exited(job.proc) and time.monotonic() < give_up:
            time.sleep(0.01)
        _signal_group(pgid, signal.SIGKILL)  # stragglers too; the unreaped leader keeps the id taken

    def _reap(self, job: _LocalJob, stop_reason: TrialState | None) -> None:
        """Record the end of a started trial whose process has exited or is being killed."""
        assert job.proc is not None  # only called for started jobs
        if stop_reason is None:
            _signal_group(job.proc.pid, signal.SIGKILL)  # leftover grandchildren of a finished trial
        returncode = job.proc.wait()
        self._procs.pop(job.proc.pid, None)
        self._running.remove(job)
        job._read_reports()
        if stop_reason is TrialState.TIMEOUT:
            self._finish(job, stop_reason, f"ran past its time limit of {job.spec.timeout_s} s; process group killed")
        elif stop_reason is TrialState.KILLED:
            self._finish(job, stop_reason, "cancelled by the driver; process group killed")
        else:
            self._finish_from_result_file(job, returncode)

    def _finish_from_result_file(self, job: _LocalJob, returncode: int) -> None:
        try:
            with open(job.result_path, encoding="utf-8") as file:
                record = json.load(file)
            state = TrialState(record["state"])
            metrics = {str(k): float(v) for k, v in record.get("metrics", {}).items()}
        except FileNotFoundError:
            how = f"was killed by signal {-returncode}" if returncode < 0 else f"exited with code {returncode}"
            hint = " (SIGKILL: possibly the kernel's out-of-memory killer)" if returncode == -signal.SIGKILL else ""
            self._finish(
                job,
                TrialState.FAILED,
                f"the trial process {how}{hint} without writing a result. "
                f"End of {job.stderr_path}:\n{self._stderr_tail(job)}",
            )
            return
        except (ValueError, KeyError, TypeError) as exc:
            self._finish(job, TrialState.FAILED, f"{job.result_path}: unreadable result ({exc!r})")
            return
        self._finish(job, state, record.get("error"), metrics)

    @staticmethod
    def _stderr_tail(job: _LocalJob) -> str:
        try:
            with open(job.stderr_path, "rb") as file:
                file.seek(0, os.SEEK_END)
                file.seek(max(0, file.tell() - _STDERR_TAIL_CHARS))
                return file.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _finish(
        self, job: _LocalJob, state: TrialState, error: str | None, metrics: dict[str, float] | None = None
    ) -> None:
        """Record the terminal state (exactly once) and free the trial's devices."""
        if job._result is not None:
            return
        self.allocator.release(job.trial_id)
        started = job.proc is not None
        if started:
            with contextlib.suppress(OSError):
                (job.workdir / PID_FILE).unlink()
        end = time.time()
        start = job.start_time if started else end
        job._result = TrialResult(
            trial_id=job.trial_id,
            state=state,
            metrics=latest_values(job._reports) if metrics is None else metrics,
            history=list(job._reports),
            error=error,
            device=job.device or "",
            duration_s=(time.monotonic() - job.start_mono) if started else 0.0,
            start_time=start,
            end_time=end,
            stdout_path=str(job.stdout_path) if started else None,
            stderr_path=str(job.stderr_path) if started else None,
        )
