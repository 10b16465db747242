"""Trials on a Ray cluster: each in a Ray actor placed with the trial's CPUs and GPUs.

Hand-written, because Ray has no notion of autotune's trial contract; the trial itself is not
re-implemented: inside its actor a trial runs exactly as under :class:`LocalExecutor` (a one-worker
``LocalExecutor`` in the actor starts the same ``autotune.executors._worker`` child process, pins
the GPUs Ray assigned through the child's environment, enforces ``timeout_s`` by killing the
child's process group, and classifies the outcome). So every state (completed, failed, OOM,
non-finite, timeout, killed) means the same thing on both executors. What this module adds:

* placement: ``num_cpus = resources.cpus`` and ``num_gpus = resources.gpus`` per actor
  (``1 / trials_per_gpu`` for GPU sharing); Ray picks the node and sets ``CUDA_VISIBLE_DEVICES``;
  an actor whose trial ended is kept for the next trial with the same needs (each trial still
  gets a fresh process), so a trial does not wait for a Ray worker to start; with
  ``warm_start`` the actor keeps a warm process (torch and the trial's module imported once)
  that forks each trial, as the local executor does;
* streaming: the driver asks the actor for new ``report(...)`` records, so no shared file
  system is needed;
* failures of the machinery: an actor whose process or node dies ends ``FAILED`` with Ray's
  reason, one killed by Ray's memory monitor ends ``OOM``.

Ray is imported only when the first trial is submitted (``pip install 'autotune[ray]'``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import socket
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ConfigError, MissingExtraError
from autotune.executors._base import (
    Job,
    PolledJob,
    PollingExecutor,
    StudyParallelism,
    check_positive_int,
)
from autotune.executors._paths import trial_pythonpath, with_import_path
from autotune.trial import TrialResult, TrialSpec, TrialState

__all__ = ["RayExecutor"]

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

logger = logging.getLogger(__name__)

_RPC_TIMEOUT_S = 30.0
"""Longest wait for a quick actor call (new reports, cancel) before the actor is given up."""


def _import_ray() -> Any:
    try:
        import ray  # deferred: heavy, and an optional extra
    except ImportError as exc:
        raise MissingExtraError("ray", "ray") from exc
    return ray


class _TrialRunner:
    """The body of a Ray actor that runs trials, one at a time (a threaded actor: ``run`` blocks,
    ``reports`` and ``cancel`` answer meanwhile). An actor is kept for the next trial that needs
    the same resources, so a trial does not wait for a new Ray worker process to start.

    Args:
        env: Extra environment variables of the trial processes.
        kill_grace_s: Seconds between SIGTERM and SIGKILL when a trial is stopped.
        poll_interval_s: How often the actor checks its trial process.
        warm_start: Fork each trial from a warm process the actor keeps (torch and the trial's
            module imported once per actor), as ``LocalExecutor(warm_start=True)`` does.
        preload: Modules the warm process imports besides the trial's.
    """

    def __init__(self, env: dict[str, str], kill_grace_s: float, poll_interval_s: float,
                 warm_start: bool = False, preload: list[str] | None = None) -> None:
        self.env = env
        self.kill_grace_s = kill_grace_s
        self.poll_interval_s = poll_interval_s
        self.warm_start = warm_start
        self.preload = preload
        self._lock = threading.Lock()
        self._job: Job | None = None
        self._cancelled: set[int] = set()
        self._executor: Any = None  # the actor's LocalExecutor, kept for its warm process
        self._executor_key: int | None = None

    def where(self) -> dict[str, Any]:
        """Where the actor runs: host name, node address, process id and the GPUs Ray gave it."""
        import ray

        return {
            "host": socket.gethostname(),
            "node_ip": ray.util.get_node_ip_address(),
            "pid": os.getpid(),
            "gpu_ids": [str(i) for i in ray.get_gpu_ids()],
        }

    def run(self, spec: TrialSpec) -> TrialResult:
        """Run the trial as :class:`LocalExecutor` would, on the GPUs Ray assigned; return its result."""
        executor = self._local(spec.resources.trials_per_gpu)
        with self._lock:
            if spec.trial_id in self._cancelled:
                now = time.time()
                return TrialResult(spec.trial_id, TrialState.KILLED, error="cancelled by the driver",
                                   start_time=now, end_time=now)
            job = self._job = executor.submit(spec)
        while True:
            with self._lock:
                if job.done():
                    return job.result()
            time.sleep(self.poll_interval_s)

    def _local(self, trials_per_gpu: int) -> Any:
        """The actor's one-worker :class:`LocalExecutor` (its GPUs are the actor's, fixed for its life)."""
        import ray

        from autotune.executors._local import LocalExecutor

        if self._executor is None or self._executor_key != trials_per_gpu:
            if self._executor is not None:
                self._executor.shutdown(kill=True)
            self._executor = LocalExecutor(
                1,
                devices=[str(i) for i in ray.get_gpu_ids()],
                trials_per_gpu=trials_per_gpu,
                env=self.env,
                poll_interval_s=self.poll_interval_s,
                kill_grace_s=self.kill_grace_s,
                warm_start=self.warm_start,
                preload=self.preload,
            )
            self._executor_key = trials_per_gpu
        return self._executor

    def warm_pid(self) -> int | None:
        """The process id of the actor's warm process (``None`` when trials start cold or none started yet)."""
        zygote = getattr(self._executor, "_zygote", None)
        return int(zygote.proc.pid) if zygote is not None and zygote.alive() else None

    def close(self) -> None:
        """Stop the warm process (before the actor is killed; it would also exit when the actor dies)."""
        if self._executor is not None:
            self._executor.shutdown(kill=True)
            self._executor = None

    def reports(self, trial_id: int) -> list[dict[str, Any]]:
        """The trial's ``report(...)`` records made since the previous call."""
        with self._lock:
            job = self._job
            return job.new_reports() if job is not None and job.trial_id == trial_id else []

    def cancel(self, trial_id: int) -> bool:
        """Stop the trial's process group (``run`` then returns ``KILLED``), or keep it from starting."""
        with self._lock:
            self._cancelled.add(trial_id)
            job = self._job
            return job.cancel() if job is not None and job.trial_id == trial_id else True


class _RayJob(PolledJob):
    executor: RayExecutor

    def __init__(self, executor: RayExecutor, spec: TrialSpec) -> None:
        super().__init__(executor, spec)
        self.actor: Any = None
        self.actor_key: tuple[int, float] = (0, 0.0)
        self.run_ref: Any = None
        self.where_ref: Any = None
        self.where: dict[str, Any] | None = None
        self.reuse_actor = False
        """Whether the actor may run the next trial once this one has ended."""

    def _started(self) -> bool:
        if self.where is None and self.where_ref is not None:
            ray = _import_ray()
            ready, _ = ray.wait([self.where_ref], timeout=0)
            if ready:
                try:
                    self.where = ray.get(self.where_ref)
                except ray.exceptions.RayError:
                    self.where = {}
                self.start_mono = time.monotonic()
                gpus = ",".join(f"cuda:{i}" for i in self.where.get("gpu_ids", [])) or "cpu"
                self.device = f"{gpus}@{self.where.get('host', '?')}"
        return self.where is not None

    def _all_reports(self) -> list[dict[str, Any]]:
        if self._result is None and self._started():
            ray = _import_ray()
            try:
                self._reports.extend(ray.get(self.actor.reports.remote(self.trial_id), timeout=_RPC_TIMEOUT_S))
            except ray.exceptions.RayError:  # the actor died: wait() reports how
                pass
        return list(self._reports)


class RayExecutor(PollingExecutor["_RayJob"]):
    """Runs each trial in a Ray actor, on an existing Ray cluster or a local one.

    The actor asks Ray for ``resources.cpus`` CPUs and ``resources.gpus`` GPUs (``1 /
    trials_per_gpu`` of one GPU when trials share devices), so Ray decides where the trial runs
    and which GPUs it sees. Inside the actor the trial runs as under :class:`LocalExecutor`:
    a child process with ``CUDA_VISIBLE_DEVICES`` set to the GPUs Ray assigned, ``OMP_NUM_THREADS``
    set to the CPUs, the working directory ``spec.workdir`` (created on the node) and a
    ``PYTHONPATH`` holding the driver's working directory. At most ``n_workers`` trials run
    at once; others wait in the driver's queue (state ``PENDING``, as does an actor still waiting
    for resources). An actor whose trial ended runs the next trial that needs the same
    resources; idle actors are stopped by :meth:`shutdown`.

    How trials end: as under :class:`LocalExecutor` (the time limit is enforced in the actor), plus
    ``FAILED`` when the actor's process or node dies (Ray's reason in ``error``) and ``OOM`` when
    Ray's memory monitor kills it.

    Ray is connected at the first :meth:`submit`: a process that already called ``ray.init`` is
    reused as it is (and left running by :meth:`shutdown`); otherwise ``ray.init`` connects to
    ``address`` or starts a local instance, which :meth:`shutdown` stops.

    Args:
        n_workers: How many trials may run at once.
        address: A running cluster (``"auto"``, ``"10.0.0.5:6379"``, ``"ray://head:10001"``);
            ``None`` starts a local instance (unless ``RAY_ADDRESS`` is set).
        num_cpus: CPUs of a local instance (all of the machine's by default).
        num_gpus: GPUs of a local instance (those it detects by default; any number may be
            declared, e.g. to run GPU trials through Ray on a machine without one).
        object_store_memory_mb: Object store of a local instance, in MiB (Ray's default share of
            memory by default; trials pass only small results through it).
        runtime_env: Ray's job-wide runtime environment (e.g. ``{"working_dir": "."}`` on a cluster
            without a shared file system).
        init_options: Other ``ray.init`` keyword arguments.
        env: Extra environment variables of every trial process.
        kill_grace_s: Seconds between SIGTERM and SIGKILL when a trial is stopped.
        poll_interval_s: How often trials are checked.
        warm_start: Fork each trial from a warm process kept by its actor, which imported torch
            and the trial's module once (as ``LocalExecutor(warm_start=True)``; each trial is
            still its own process). Studies start trials warm unless ``warm_start: false``.
        preload: Modules the warm process imports (default: torch and the trial's module).
    """

    def __init__(
        self,
        n_workers: int = 1,
        *,
        address: str | None = None,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        object_store_memory_mb: int | None = None,
        runtime_env: Mapping[str, Any] | None = None,
        init_options: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        kill_grace_s: float = 3.0,
        poll_interval_s: float = 0.05,
        warm_start: bool = False,
        preload: list[str] | None = None,
    ) -> None:
        super().__init__(n_workers)
        if importlib.util.find_spec("ray") is None:
            raise MissingExtraError("ray", "ray")
        if address is not None:
            for name, value in (("num_cpus", num_cpus), ("num_gpus", num_gpus),
                                ("object_store_memory_mb", object_store_memory_mb)):
                if value is not None:
                    raise ConfigError(f"RayExecutor({name}=...)", "only applies to a local instance started here, "
                                      f"not to the cluster at address={address!r}", value,
                                      f"remove {name}, or remove address to start a local instance.")
        for name, value in (("num_cpus", num_cpus), ("object_store_memory_mb", object_store_memory_mb)):
            if value is not None:
                check_positive_int(f"RayExecutor({name}=...)", value)
        if num_gpus is not None and (isinstance(num_gpus, bool) or not isinstance(num_gpus, int) or num_gpus < 0):
            raise ConfigError("RayExecutor(num_gpus=...)", "must be an int >= 0", num_gpus)
        self.address = address
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.object_store_memory_mb = object_store_memory_mb
        self.runtime_env = dict(runtime_env or {})
        self.init_options = dict(init_options or {})
        self.env = dict(env or {})
        self.kill_grace_s = kill_grace_s
        self.poll_interval_s = poll_interval_s
        if not isinstance(warm_start, bool):
            raise ConfigError("RayExecutor(warm_start=...)", "must be true or false", warm_start,
                              "use warm_start: true to fork trials from a warm process in each actor.")
        if preload is not None and (not isinstance(preload, (list, tuple))
                                    or not all(isinstance(m, str) and m for m in preload)):
            raise ConfigError("RayExecutor(preload=...)", "must be a list of module names", preload,
                              "use e.g. preload: [torch, my_package.train].")
        self.warm_start = warm_start
        self.preload = list(preload) if preload is not None else None
        self._ray: Any = None
        self._owns_ray = False
        self._actor_class: Any = None
        self._idle: list[tuple[tuple[int, float], Any, Any]] = []  # (resources, actor, where_ref)

    @classmethod
    def for_study(cls, study_dir: str | os.PathLike[str], parallelism: StudyParallelism,
                  options: dict[str, Any]) -> Self:
        """See :meth:`Executor.for_study`: trial processes import from ``study_dir`` first and
        start warm unless ``warm_start: false``."""
        return cls(n_workers=parallelism.workers, **{"warm_start": True, **with_import_path(options, os.fspath(study_dir))})

    # -- public API -----------------------------------------------------------------------

    def submit(self, spec: TrialSpec) -> Job:
        """Queue the trial and start it when a worker is free; see :meth:`Executor.submit`.

        Raises:
            ConfigError: The trial's resources are invalid, or more GPUs (CPUs) than the whole
                cluster has.
        """
        check_positive_int(f"trial {spec.trial_id}: resources.cpus", spec.resources.cpus)
        if spec.resources.gpus < 0:
            raise ConfigError(f"trial {spec.trial_id}: resources.gpus", "must be >= 0", spec.resources.gpus)
        ray = self._connect()
        total = ray.cluster_resources()
        for key, asked in (("GPU", spec.resources.gpus), ("CPU", spec.resources.cpus)):
            if asked > total.get(key, 0):
                raise ConfigError(
                    f"trial {spec.trial_id}: resources.{key.lower()}s",
                    f"must be <= the {total.get(key, 0):g} {key}s of the Ray cluster",
                    asked,
                    f"ask for fewer {key}s per trial (parallelism.{key.lower()}s_per_trial), or add nodes"
                    + (" (a local instance takes num_gpus=... to declare GPUs)." if key == "GPU" else "."),
                )
        job = _RayJob(self, spec)
        self._enqueue(job)
        return job

    def _pause(self, seconds: float) -> None:
        """Wait for a trial to end, at most ``seconds``."""
        refs = [job.run_ref for job in self._running]
        if refs:
            self._ray.wait(refs, num_returns=1, timeout=max(seconds, 0.001))
        else:
            time.sleep(seconds)

    def shutdown(self, kill: bool = False) -> None:
        """See :meth:`Executor.shutdown`; also stops a local Ray instance this executor started."""
        super().shutdown(kill)
        while self._idle:
            self._kill(self._idle.pop()[1])
        if self._owns_ray and self._ray is not None:
            self._ray.shutdown()
            self._ray, self._owns_ray = None, False

    def init_kwargs(self) -> dict[str, Any]:
        """The ``ray.init`` keyword arguments used when this process has not initialised Ray yet."""
        options: dict[str, Any] = {"include_dashboard": False, **self.init_options}
        given = {"address": self.address, "num_cpus": self.num_cpus, "num_gpus": self.num_gpus,
                 "runtime_env": self.runtime_env or None,
                 "object_store_memory": None if self.object_store_memory_mb is None
                 else self.object_store_memory_mb * 1024**2}
        options.update({key: value for key, value in given.items() if value is not None})
        return options

    # -- internals ------------------------------------------------------------------------

    def _connect(self) -> Any:
        """Import Ray and connect (or start) it, once."""
        if self._ray is not None:
            return self._ray
        ray = _import_ray()
        if ray.is_initialized():
            if self.address is not None or self.num_cpus is not None or self.num_gpus is not None:
                logger.info("Ray is already initialised in this process: RayExecutor uses it as it is "
                            "(address/num_cpus/num_gpus are ignored)")
        else:
            try:
                ray.init(**self.init_kwargs())
            except ConnectionError as exc:
                raise ConfigError("RayExecutor(address=...)", f"no Ray cluster answers ({exc})", self.address,
                                  "start one with `ray start --head` (and pass its address), or leave "
                                  "address unset to start a local instance.") from exc
            self._owns_ray = True
        self._ray = ray
        self._actor_class = ray.remote(_TrialRunner)
        return ray

    def _launch(self, job: _RayJob) -> None:
        """Run the trial on an idle actor with the same resources, or on a new one."""
        resources = job.spec.resources
        gpus: float = resources.gpus
        if resources.gpus == 1 and resources.trials_per_gpu > 1:
            gpus = 1.0 / resources.trials_per_gpu
        job.actor_key = (resources.cpus, gpus)
        same = [i for i, (key, _, _) in enumerate(self._idle) if key == job.actor_key]
        if same:
            _, job.actor, job.where_ref = self._idle.pop(same[0])
        else:
            while self._idle:  # free their resources for the new actor
                self._kill(self._idle.pop()[1])
            env = {**self.env, "PYTHONPATH": trial_pythonpath(self.env)}
            job.actor = self._actor_class.options(
                num_cpus=resources.cpus, num_gpus=gpus, max_concurrency=4, max_restarts=0
            ).remote(env, self.kill_grace_s, self.poll_interval_s, self.warm_start, self.preload)
            job.where_ref = job.actor.where.remote()
        job.run_ref = job.actor.run.remote(job.spec)
        self._running.append(job)

    def _update(self) -> None:
        """Collect finished trials and start queued ones."""
        if self._running:
            refs = [job.run_ref for job in self._running]
            ready, _ = self._ray.wait(refs, num_returns=len(refs), timeout=0)
            done = {ref.hex() for ref in ready}
            for job in list(self._running):
                job._started()
                if job.run_ref.hex() in done:
                    self._collect(job)
        self._dispatch()

    def _collect(self, job: _RayJob) -> None:
        """Read the result of a finished actor (or how it died), then free it."""
        ray = self._ray
        try:
            result: TrialResult = ray.get(job.run_ref)
        except ray.exceptions.RayError as exc:
            self._finish(job, *_state_of_ray_error(ray, exc), reuse=False)
        else:
            job.reuse_actor = True
            job._accept(result, (job.where or {}).get("host"))

    def _cancel_running(self, job: _RayJob) -> bool:
        ray = self._ray
        if ray.wait([job.run_ref], timeout=0)[0]:  # it has already ended: keep how
            self._collect(job)
            if job._result is not None and job._result.state is not TrialState.KILLED:
                return False
        stopped = False
        if job._result is None and job._started():
            try:
                ray.get(job.actor.cancel.remote(job.trial_id), timeout=self.kill_grace_s + _RPC_TIMEOUT_S)
                result: TrialResult = ray.get(job.run_ref, timeout=_RPC_TIMEOUT_S)
                job._reports = list(result.history)
                stopped = True
            except (ray.exceptions.RayError, TimeoutError):
                pass  # dead or unresponsive: killing the actor is all that is left
        self._finish(job, TrialState.KILLED, "cancelled by the driver", reuse=stopped)
        return True

    def _finish(
        self,
        job: _RayJob,
        state: TrialState,
        error: str | None,
        metrics: dict[str, float] | None = None,
        reuse: bool = False,
    ) -> None:
        """Record a terminal state decided on the driver's side; ``reuse`` keeps the actor for the next trial."""
        job.reuse_actor = reuse
        super()._finish(job, state, error, metrics)

    def _release(self, job: _RayJob, result: TrialResult) -> None:
        """Take a finished trial's actor back: idle for the next trial (``job.reuse_actor``), or killed."""
        if job.actor is None:
            return
        if job.reuse_actor and len(self._idle) < self.n_workers:
            self._idle.append((job.actor_key, job.actor, job.where_ref))
        else:
            self._kill(job.actor)

    def _kill(self, actor: Any) -> None:
        with contextlib.suppress(Exception):  # the warm process first (it would also exit with the actor)
            self._ray.get(actor.close.remote(), timeout=5.0)
        with contextlib.suppress(Exception):  # already gone
            self._ray.kill(actor, no_restart=True)


def _state_of_ray_error(ray: Any, exc: BaseException) -> tuple[TrialState, str]:
    """The terminal state of a trial whose actor call raised ``exc`` (a ``ray.exceptions.RayError``)."""
    errors = ray.exceptions
    if isinstance(exc, errors.OutOfMemoryError):
        return TrialState.OOM, f"Ray's memory monitor killed the trial's actor: {exc}"
    if isinstance(exc, errors.TaskCancelledError):
        return TrialState.KILLED, f"the trial's Ray actor was cancelled: {exc}"
    if isinstance(exc, (errors.RayActorError, errors.WorkerCrashedError, errors.NodeDiedError)):
        return TrialState.FAILED, (f"the Ray actor running the trial died (its process was killed or crashed, "
                                   f"or its node was lost): {exc}")
    return TrialState.FAILED, f"the trial's Ray actor failed: {exc}"
