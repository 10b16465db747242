"""Trials as Slurm jobs through submitit: one job per trial, one job array per batch.

Hand-written: the mapping of autotune's Executor/Job contract onto submitit jobs, and the sbatch
parameters taken from the study (partition, time, memory, account... from ``executor.options``;
GPUs and CPUs per trial from ``parallelism``). submitit writes the sbatch script, pickles the job,
calls ``sbatch``/``sacct``/``scancel`` and reads the result back; none of that is redone here.

The trial itself runs as under :class:`LocalExecutor`: the job's function holds a one-worker
``LocalExecutor`` that starts the same ``autotune.executors._worker`` child process, pins the GPUs
Slurm gave the job, enforces ``timeout_s`` by killing the child's process group, and classifies
the outcome, so every state means the same on both executors. The trial's folder
(``spec.workdir``, on the cluster's shared file system) holds its ``reports.jsonl``, which the
driver reads while the job runs. A job Slurm ends itself maps to a state too: ``TIMEOUT`` (past
``--time``) to timeout, ``OUT_OF_MEMORY`` to OOM, ``CANCELLED`` to killed, ``NODE_FAIL`` and
the rest to failed.

Trials submitted between two looks of the driver (e.g. the batch of a synchronous strategy)
go to Slurm as one job array. submitit is imported only when jobs are sent
(``pip install 'autotune[slurm]'``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ConfigError, MissingExtraError
from autotune.executors._base import (
    Job,
    PolledJob,
    PollingExecutor,
    StudyParallelism,
    SubmitError,
    check_positive_int,
    read_new_reports,
)
from autotune.executors._outcome import write_json_atomic
from autotune.executors._paths import trial_pythonpath, with_import_path
from autotune.trial import TrialResult, TrialSpec, TrialState

__all__ = ["SlurmExecutor", "sbatch_parameters"]

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

logger = logging.getLogger(__name__)

_CLUSTERS = ("slurm", "local")
_WHERE_FILE = "slurm_job.json"
_TIME_MARGIN_MIN = 5
"""Minutes of ``--time`` beyond a trial's ``timeout_s``, so the trial's own limit acts first."""
_DEFAULT_TIME_MIN = 60
_LOG_TAIL_CHARS = 2000
_SLURM_STATES = {
    "TIMEOUT": TrialState.TIMEOUT,
    "DEADLINE": TrialState.TIMEOUT,
    "OUT_OF_MEMORY": TrialState.OOM,
    "CANCELLED": TrialState.KILLED,
    "PREEMPTED": TrialState.KILLED,
}


def _import_submitit() -> Any:
    try:
        import submitit  # deferred: an optional extra
    except ImportError as exc:
        raise MissingExtraError("submitit", "slurm") from exc
    return submitit


@contextlib.contextmanager
def _sigint_reaches_local_jobs() -> Iterator[None]:
    """Let local jobs started now be cancelled: submitit cancels a local job with SIGINT.

    A driver started in the background (``cmd &``) inherits SIGINT *ignored*, and its
    children would too, so a local job could never be cancelled. While jobs are started, an
    ignored SIGINT is set to Python's default handler (children then start with the default
    disposition), and restored after.
    """
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) != signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _run_in_job(spec: TrialSpec, env: dict[str, str], kill_grace_s: float, poll_interval_s: float) -> TrialResult:
    """The function a Slurm job runs: the trial under a one-worker :class:`LocalExecutor`.

    It first writes ``slurm_job.json`` (host, job id, visible GPUs) into the trial's folder, which
    tells the driver that the trial has started and where.
    """
    from autotune.executors._local import LocalExecutor

    workdir = Path(spec.workdir or ".")
    workdir.mkdir(parents=True, exist_ok=True)
    where = {
        "host": socket.gethostname(),
        "job_id": os.environ.get("SLURM_JOB_ID") or os.environ.get("SUBMITIT_LOCAL_JOB_ID"),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }
    write_json_atomic(workdir / _WHERE_FILE, where)
    with LocalExecutor(1, env=env, kill_grace_s=kill_grace_s, poll_interval_s=poll_interval_s,
                       trials_per_gpu=spec.resources.trials_per_gpu) as executor:
        return executor.submit(spec).result()


def sbatch_parameters(
    spec: TrialSpec,
    *,
    partition: str | None = None,
    time_min: int | None = None,
    mem_gb: float | None = None,
    account: str | None = None,
    qos: str | None = None,
    constraint: str | None = None,
    setup: Sequence[str] = (),
    additional_parameters: Mapping[str, Any] | None = None,
    job_name: str = "autotune",
    array_parallelism: int = 256,
) -> dict[str, Any]:
    """The submitit ``AutoExecutor.update_parameters`` keywords of one trial's job.

    Args:
        spec: The trial: ``resources.gpus`` become ``--gpus-per-node``, ``resources.cpus``
            ``--cpus-per-task``; without ``time_min``, ``timeout_s`` (plus a margin) sets ``--time``.
        partition: ``--partition``.
        time_min: ``--time`` in minutes (60 when neither it nor ``spec.timeout_s`` is set).
        mem_gb: ``--mem`` in GB (the partition's default when ``None``).
        account: ``--account``.
        qos: ``--qos``.
        constraint: ``--constraint``.
        setup: Shell lines run before the job (``module load ...``, ``source .venv/bin/activate``).
        additional_parameters: Other ``#SBATCH`` flags, e.g. ``{"exclude": "node7"}``.
        job_name: ``--job-name``.
        array_parallelism: Most tasks of one job array running at once.

    Returns:
        The keywords (generic ones, and ``slurm_``-prefixed ones that submitit's local executor ignores).
    """
    if time_min is None:
        time_min = _DEFAULT_TIME_MIN if spec.timeout_s is None else math.ceil(spec.timeout_s / 60) + _TIME_MARGIN_MIN
    params: dict[str, Any] = {
        "name": job_name,
        "timeout_min": int(time_min),
        "cpus_per_task": spec.resources.cpus,
        "gpus_per_node": spec.resources.gpus or None,  # no GPU flag at all for a CPU job
        "mem_gb": mem_gb,
        "slurm_partition": partition,
        "slurm_account": account,
        "slurm_qos": qos,
        "slurm_constraint": constraint,
        "slurm_setup": list(setup) or None,
        "slurm_additional_parameters": dict(additional_parameters) if additional_parameters else None,
        "slurm_array_parallelism": array_parallelism,
    }
    return {key: value for key, value in params.items() if value is not None}


class _SlurmJob(PolledJob):
    executor: SlurmExecutor

    def __init__(self, executor: SlurmExecutor, spec: TrialSpec, workdir: Path) -> None:
        super().__init__(executor, spec)
        self.workdir = workdir
        self.reports_path = workdir / "reports.jsonl"
        self.where_path = workdir / _WHERE_FILE
        self.submitit_job: Any = None
        self.ended_mono: float | None = None
        self.where: dict[str, Any] | None = None
        self._offset = 0

    def remote_spec(self) -> TrialSpec:
        """The spec the job runs: the trial's, with the folder the driver reads made explicit."""
        return dataclasses.replace(self.spec, workdir=str(self.workdir))

    @property
    def job_id(self) -> str | None:
        """The Slurm job id (``"1234"``, ``"1234_0"`` in an array), ``None`` before it is sent."""
        return None if self.submitit_job is None else str(self.submitit_job.job_id)

    def _started(self) -> bool:
        if self.where is None and self.submitit_job is not None and self.where_path.is_file():
            try:
                self.where = json.loads(self.where_path.read_text(encoding="utf-8"))
            except ValueError:
                return False  # being written
            self.start_time = time.time()
            gpus = [g for g in (self.where.get("cuda_visible_devices") or "").split(",") if g]
            devices = ",".join(f"cuda:{g}" for g in gpus[: self.spec.resources.gpus]) or "cpu"
            self.device = f"{devices}@{self.where.get('host', '?')}"
        return self.where is not None

    def _all_reports(self) -> list[dict[str, Any]]:
        if self._result is None and self._started():
            new, self._offset = read_new_reports(self.reports_path, self._offset)
            self._reports.extend(new)
        return list(self._reports)


class SlurmExecutor(PollingExecutor["_SlurmJob"]):
    """Runs each trial as a Slurm job (submitit), or as a local submitit job with ``cluster="local"``.

    At most ``n_workers`` jobs are in the cluster at once; other trials wait in the driver's
    queue. Trials submitted together (before the driver next looks at its jobs) go as one job
    array. A trial's job is ``PENDING`` until it starts on a node.

    The nodes must see the driver's file system at the same paths (trial folders, the submitit
    folder, the Python environment), as on any Slurm cluster; ``setup`` lines can activate the
    environment on the node.

    Args:
        n_workers: How many trials may be in the cluster at once.
        cluster: ``"slurm"`` (``sbatch``), or ``"local"`` (submitit's local executor: real job
            processes on this machine, for tests and for trying a study out).
        partition: ``--partition``.
        time_min: ``--time`` in minutes; by default the trial's ``timeout_s`` plus 5 minutes,
            or 60 minutes.
        mem_gb: ``--mem`` in GB.
        account: ``--account``.
        qos: ``--qos``.
        constraint: ``--constraint``.
        setup: Shell lines run in the job before the trial (e.g. ``["module load cuda/12.4",
            "source /shared/venv/bin/activate"]``).
        additional_parameters: Other ``#SBATCH`` flags, e.g. ``{"exclude": "node7"}``.
        job_name: ``--job-name``.
        folder: submitit's folder (sbatch scripts, pickles, job logs), on the shared file system;
            by default ``submitit/`` beside the first trial's folder (``runs/<study>/trials/``).
        root_dir: Where trials without a ``spec.workdir`` get ``trial_<id>/`` folders (a new
            temporary folder with ``cluster="local"``; must be given for ``cluster="slurm"``).
        python: The interpreter of the jobs (the driver's by default).
        use_arrays: Send trials submitted together as one job array.
        env: Extra environment variables of every trial process.
        kill_grace_s: Seconds between SIGTERM and SIGKILL when a trial is stopped in its job.
        poll_interval_s: How often :meth:`wait` looks at the jobs (a finished job is seen by
            its result file).
        sacct_interval_s: How often ``sacct`` is asked about the jobs, to learn of those
            Slurm ended without a result (time limit, memory, node failure).
        result_wait_s: How long a job Slurm reports ended may take to show its result file (a
            shared file system can lag) before the trial is closed with Slurm's state.
    """

    def __init__(
        self,
        n_workers: int = 1,
        *,
        cluster: str = "slurm",
        partition: str | None = None,
        time_min: int | None = None,
        mem_gb: float | None = None,
        account: str | None = None,
        qos: str | None = None,
        constraint: str | None = None,
        setup: Sequence[str] = (),
        additional_parameters: Mapping[str, Any] | None = None,
        job_name: str = "autotune",
        folder: str | os.PathLike[str] | None = None,
        root_dir: str | os.PathLike[str] | None = None,
        python: str | None = None,
        use_arrays: bool = True,
        env: Mapping[str, str] | None = None,
        kill_grace_s: float = 3.0,
        poll_interval_s: float = 0.1,
        sacct_interval_s: float = 60.0,
        result_wait_s: float = 15.0,
    ) -> None:
        super().__init__(n_workers)
        if importlib.util.find_spec("submitit") is None:
            raise MissingExtraError("submitit", "slurm")
        if cluster not in _CLUSTERS:
            raise ConfigError("SlurmExecutor(cluster=...)", f"must be one of {', '.join(_CLUSTERS)}", cluster,
                              "use cluster: slurm on a Slurm cluster, cluster: local to run the jobs on this machine.")
        if time_min is not None:
            check_positive_int("SlurmExecutor(time_min=...)", time_min)
        if mem_gb is not None and (isinstance(mem_gb, bool) or not isinstance(mem_gb, (int, float)) or mem_gb <= 0):
            raise ConfigError("SlurmExecutor(mem_gb=...)", "must be a number > 0", mem_gb, "write e.g. mem_gb: 16.")
        if isinstance(setup, str):
            raise ConfigError("SlurmExecutor(setup=...)", "must be a list of shell lines", setup,
                              f"write setup: [{setup!r}].")
        self.cluster = cluster
        self.sbatch_options: dict[str, Any] = {
            "partition": partition, "time_min": time_min, "mem_gb": mem_gb, "account": account, "qos": qos,
            "constraint": constraint, "setup": list(setup), "additional_parameters": dict(additional_parameters or {}),
            "job_name": job_name,
        }
        self.folder = None if folder is None else Path(folder).resolve()
        self.root_dir = None if root_dir is None else Path(root_dir).resolve()
        self.python = python
        self.use_arrays = use_arrays
        self.env = dict(env or {})
        self.kill_grace_s = kill_grace_s
        self.poll_interval_s = poll_interval_s
        self.sacct_interval_s = sacct_interval_s
        self.result_wait_s = result_wait_s
        self._last_sacct = float("-inf")
        self._folder: Path | None = None

    @classmethod
    def for_study(cls, study_dir: str | os.PathLike[str], parallelism: StudyParallelism,
                  options: dict[str, Any]) -> Self:
        """See :meth:`Executor.for_study`: trial processes import from ``study_dir`` first."""
        return cls(n_workers=parallelism.workers, **with_import_path(options, os.fspath(study_dir)))

    # -- public API -----------------------------------------------------------------------

    def submit(self, spec: TrialSpec) -> Job:
        """Queue the trial; it is sent to Slurm at the driver's next look (:meth:`wait`, ``done``).

        Raises:
            ConfigError: The trial's resources are invalid, or ask to share a GPU (Slurm gives
                whole GPUs to a job), or Slurm's commands are missing.
        """
        check_positive_int(f"trial {spec.trial_id}: resources.cpus", spec.resources.cpus)
        if spec.resources.gpus < 0:
            raise ConfigError(f"trial {spec.trial_id}: resources.gpus", "must be >= 0", spec.resources.gpus)
        if spec.resources.gpus > 0 and spec.resources.trials_per_gpu > 1:
            raise ConfigError(f"trial {spec.trial_id}: resources.trials_per_gpu",
                              "must be 1 with the slurm executor (Slurm gives whole GPUs to a job)",
                              spec.resources.trials_per_gpu, "set parallelism.trials_per_gpu: 1.")
        job = _SlurmJob(self, spec, self._workdir(spec))
        if self._folder is None:
            self._executor(job)  # fails early when Slurm's commands are missing
        job.workdir.mkdir(parents=True, exist_ok=True)
        for stale in (job.where_path, job.reports_path, job.workdir / "result.json"):
            stale.unlink(missing_ok=True)  # left by an earlier run of the same trial
        self._jobs.append(job)
        self._queue.append(job)
        return job

    # -- internals ------------------------------------------------------------------------

    def _workdir(self, spec: TrialSpec) -> Path:
        if spec.workdir is not None:
            return Path(spec.workdir).resolve()
        if self.root_dir is None:
            if self.cluster == "slurm":
                raise ConfigError(f"trial {spec.trial_id}: workdir", "must be set on a shared file system for "
                                  "Slurm jobs (the trial has none)", None,
                                  "pass SlurmExecutor(root_dir=...) on a shared file system, or give the trial a workdir.")
            self.root_dir = Path(tempfile.mkdtemp(prefix="autotune-slurm-"))
        return self.root_dir / f"trial_{spec.trial_id}"

    def _executor(self, first: _SlurmJob) -> Any:
        """A fresh submitit executor (parameters set per submission never leak into the next).

        Its folder is fixed by the first trial: ``folder``, or ``submitit/`` beside that trial's.
        """
        submitit = _import_submitit()
        folder = self._folder or self.folder or first.workdir.parent / "submitit"
        options = {} if self.python is None else {f"{self.cluster}_python": self.python}
        try:
            executor = submitit.AutoExecutor(folder=folder, cluster=self.cluster, **options)
        except RuntimeError as exc:  # submitit's "Could not detect srun"
            raise ConfigError("SlurmExecutor(cluster='slurm')", f"needs the Slurm commands on PATH ({exc})",
                              None, "run the driver on a Slurm login node, or use cluster: local to run "
                              "the jobs on this machine.") from exc
        self._folder = folder
        return executor

    def _dispatch(self) -> None:
        """Send queued trials while slots are free: one submission (an array) per group of equal needs.

        Raises:
            SubmitError: Slurm (or submitit) refused a submission: the trials of that group end
                ``FAILED`` with the reason, the trials not sent yet stay queued.
        """
        free = self.n_workers - len(self._running)
        if not self._queue or free <= 0:
            return
        batch, self._queue = self._queue[:free], self._queue[free:]
        groups: dict[tuple[int, int, float | None], list[_SlurmJob]] = {}
        for job in batch:
            key = (job.spec.resources.gpus, job.spec.resources.cpus, job.spec.timeout_s)
            groups.setdefault(key, []).append(job)
        ordered = list(groups.values())
        for n, jobs in enumerate(ordered):
            try:
                self._send(jobs)
            except SubmitError:
                unsent = [job for later in ordered[n + 1 :] for job in later]
                self._queue = unsent + self._queue
                raise

    def _launch(self, job: _SlurmJob) -> None:
        """Send one trial as its own Slurm job."""
        self._send([job])

    def _send(self, jobs: list[_SlurmJob]) -> None:
        """Submit trials of equal needs together (a job array when there are several)."""
        env = {**self.env, "PYTHONPATH": trial_pythonpath(self.env)}
        executor = self._executor(jobs[0])
        executor.update_parameters(**sbatch_parameters(jobs[0].spec, array_parallelism=self.n_workers,
                                                       **self.sbatch_options))
        args = (env, self.kill_grace_s, self.poll_interval_s)
        try:
            with _sigint_reaches_local_jobs():
                if self.use_arrays and len(jobs) > 1:
                    with executor.batch():
                        sent = [executor.submit(_run_in_job, job.remote_spec(), *args) for job in jobs]
                else:
                    sent = [executor.submit(_run_in_job, job.remote_spec(), *args) for job in jobs]
        except Exception as exc:  # sbatch refused: no trial of the group runs
            message = f"the Slurm job could not be submitted: {exc}"
            for job in jobs:
                self._finish(job, TrialState.FAILED, message)
            raise SubmitError(
                f"trials {', '.join(str(job.trial_id) for job in jobs)}: {message}. Fix: check the executor "
                "options (partition, account, qos, time_min, mem_gb) and `sbatch` on this machine, then resume."
            ) from exc
        for job, submitted in zip(jobs, sent):
            job.submitit_job = submitted
            self._running.append(job)

    def _update(self) -> None:
        """Collect finished jobs and send queued trials."""
        now = time.monotonic()
        if self.cluster == "slurm" and self._running and now - self._last_sacct >= self.sacct_interval_s:
            self._running[0].submitit_job.get_info(mode="force")  # one sacct call refreshes every job
            self._last_sacct = now
        for job in list(self._running):
            job._started()
            sjob = job.submitit_job
            if sjob.paths.result_pickle.exists():
                self._collect(job)
            elif sjob.done():  # ended (Slurm's word) without a result: maybe still on its way (NFS)
                job.ended_mono = job.ended_mono or now
                if now - job.ended_mono >= self.result_wait_s:
                    self._collect(job)
        self._dispatch()

    def _collect(self, job: _SlurmJob) -> None:
        sjob = job.submitit_job
        if not sjob.paths.result_pickle.exists():
            job._all_reports()
            slurm_state = str(sjob.state).split(" ")[0].upper()
            state = _SLURM_STATES.get(slurm_state, TrialState.FAILED)
            log = (sjob.stderr() or "")[-_LOG_TAIL_CHARS:]
            self._finish(job, state, f"the Slurm job {job.job_id} ended {slurm_state} without a trial result. "
                                     f"End of its log {sjob.paths.stderr}:\n{log}")
            return
        try:
            result: TrialResult = sjob.result()
        except Exception as exc:  # noqa: BLE001 (submitit's FailedJobError: the job's function raised)
            job._all_reports()
            self._finish(job, TrialState.FAILED, f"the Slurm job {job.job_id} failed: {exc}")
            return
        job._accept(result, (job.where or {}).get("host"))

    def _cancel_running(self, job: _SlurmJob) -> bool:
        sjob = job.submitit_job
        if sjob.paths.result_pickle.exists():  # it has already ended: keep how
            self._collect(job)
            if job._result is not None and job._result.state is not TrialState.KILLED:
                return False
        try:
            sjob.cancel(check=False)
        except Exception as exc:  # noqa: BLE001 (scancel failed: the job may be gone already)
            logger.warning("trial %d: could not cancel Slurm job %s: %s", job.trial_id, job.job_id, exc)
        job._all_reports()
        self._finish(job, TrialState.KILLED, "cancelled by the driver")
        return True

    def _release(self, job: _SlurmJob, result: TrialResult) -> None:
        """Name the trial's output files in its result (when the job got as far as writing them)."""
        if result.stdout_path is None and result.stderr_path is None:
            stdout = job.workdir / "stdout.log"
            stderr = job.workdir / "stderr.log"
            result.stdout_path = str(stdout) if stdout.is_file() else None
            result.stderr_path = str(stderr) if stderr.is_file() else None
