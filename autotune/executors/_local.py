"""One fresh Python process per trial on this machine, GPUs pinned through the child's env.

POSIX only. Each trial runs in a new session; its worker makes itself the subreaper of its
descendants (Linux), so a time limit, a cancel or the end of the trial ends its whole process
tree, grandchildren that called ``setsid`` included (see :mod:`autotune.executors._proctree`).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import warnings
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ConfigError, TrialError
from autotune.executors._base import (
    Job,
    PolledJob,
    PollingExecutor,
    StudyParallelism,
    SubmitError,
    check_positive_int,
    read_new_reports,
)
from autotune.executors._gpu import GpuAllocator, discover_devices, parse_visible_devices
from autotune.executors._outcome import is_script, says_out_of_memory, write_json_atomic
from autotune.executors._paths import trial_pythonpath, with_import_path
from autotune.executors._proctree import (
    cmdline,
    descendants,
    end_tree,
    is_running,
    oom_kill_count,
    signal_pids,
    start_ticks,
)
from autotune.executors._registry import register_executor
from autotune.executors._zygote import Zygote
from autotune.report import FIXED_ARGS_ENV, PARAMS_ENV, REPORT_ENV
from autotune.trial import TrialResult, TrialSpec, TrialState

__all__ = ["DEFAULT_MAX_LOG_BYTES", "PID_FILE", "LocalExecutor", "cap_log", "kill_orphan_trial"]

if TYPE_CHECKING:
    from typing_extensions import Self  # typing.Self from Python 3.11

logger = logging.getLogger(__name__)

_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding `autotune/`
_STDERR_TAIL_CHARS = 2000
_WORKER_MODULE = "autotune.executors._worker"
_ZYGOTE_MODULE = "autotune.executors._zygote"

DEFAULT_MAX_LOG_BYTES = 1024 * 1024
"""Default cap of a finished trial's ``stdout.log``/``stderr.log``: its last 1 MiB is kept."""


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

_LAUNCHER = f"""\
import os, sys
def _write_pid_file():
    try:
        with open('/proc/self/stat') as f:
            ticks = f.read().rsplit(')', 1)[1].split()[19]
    except (OSError, IndexError):
        ticks = '-'
    folder = os.environ.get('AUTOTUNE_WORKDIR') or os.getcwd()
    tmp = os.path.join(folder, '.{PID_FILE}.%d.tmp' % os.getpid())
    try:
        with open(tmp, 'w') as f:
            f.write('%d %s\\n' % (os.getpid(), ticks))
        os.replace(tmp, os.path.join(folder, '{PID_FILE}'))
    except OSError as exc:
        sys.stderr.write('autotune worker: could not write {PID_FILE}: %s\\n' % exc)
_write_pid_file()
del _write_pid_file
import runpy
sys.argv = sys.argv[1:]
runpy.run_module(sys.argv[0], run_name='__main__', alter_sys=True)
"""
"""The trial process's ``-c`` program: it writes :data:`PID_FILE` (its pid and start ticks,
atomically) before anything else, standard library only, then runs the worker module. A
driver killed right after starting it thus never leaves a trial without a pid file."""


def _start_ticks(pid: int) -> str | None:
    """Kept for callers of the old private name; see :func:`autotune.executors._proctree.start_ticks`."""
    return start_ticks(pid)


def cap_log(path: str | os.PathLike[str], max_bytes: int | None) -> tuple[int, bool]:
    """Cut a finished trial's output file to its last ``max_bytes`` (whole lines where possible).

    The first line of a cut file says so: ``[autotune: stdout.log truncated: the last 1048576
    of 104857600 bytes are kept]``. The file is replaced atomically.

    Args:
        path: The file (``stdout.log``/``stderr.log``).
        max_bytes: The most bytes to keep, ``None`` for no cap.

    Returns:
        The file's original size in bytes (0 if it does not exist), and whether it was cut.
    """
    path = os.fspath(path)
    try:
        size = os.stat(path).st_size
    except OSError:
        return 0, False
    if max_bytes is None or size <= max_bytes:
        return size, False
    try:
        with open(path, "rb") as file:
            file.seek(size - max_bytes)
            tail = file.read(max_bytes)
        newline = tail.find(b"\n", 0, min(len(tail), 4096))
        if 0 <= newline < len(tail) - 1:
            tail = tail[newline + 1 :]  # start at a line boundary when one is near
        header = (
            f"[autotune: {os.path.basename(path)} truncated: the last {len(tail)} of {size} bytes are kept]\n"
        ).encode()
        tmp = f"{path}.tmp{os.getpid()}"
        with open(tmp, "wb") as file:
            file.write(header + tail)
        os.replace(tmp, path)
    except OSError as exc:
        logger.warning("%s: could not cap the log at %d bytes: %s", path, max_bytes, exc)
        return size, False
    return size, True


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _trial_process(workdir: str | os.PathLike[str], root: str | os.PathLike[str] | None) -> tuple[int, str] | None:
    """The live worker process of a trial workdir, from its :data:`PID_FILE`; ``None`` if there is none.

    Checks, all of which must pass: the workdir (symlinks resolved) lies inside ``root``; the
    pid file is a regular file (not a symlink) owned by this user; the process with that pid
    started at the recorded time (a recycled pid never matches); and its command line is the
    autotune worker writing its result into this very workdir, or (a warm trial, forked with the
    warm process's command line) the warm process's, with this workdir as its working directory.
    """
    resolved = Path(workdir).resolve()
    if root is not None:
        root_resolved = Path(root).resolve()
        if not _inside(resolved, root_resolved):
            logger.warning(
                "%s: not inside the study's folder %s (symlinks resolved): its pid file is ignored",
                workdir,
                root_resolved,
            )
            return None
    path = resolved / PID_FILE
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (hasattr(os, "getuid") and info.st_uid != os.getuid()):
            logger.warning("%s: not a regular file of this user: ignored", path)
            return None
        text = os.read(fd, 200).decode("ascii", errors="replace")
    finally:
        os.close(fd)
    try:
        pid_text, ticks = text.split()
        pid = int(pid_text)
    except ValueError:
        return None
    if pid <= 1 or ticks == "-" or not is_running(pid, ticks):
        return None
    argv = cmdline(pid)
    if _ZYGOTE_MODULE in " ".join(argv[:3]) and _cwd(pid) == resolved:
        return pid, ticks  # a warm trial: forked (the zygote's command line) into its own workdir
    if _WORKER_MODULE not in argv or str(resolved / "result.json") not in argv:
        logger.warning("%s: pid %d is not this trial's autotune worker (%s): left alone", path, pid, argv[:3])
        return None
    return pid, ticks


def _cwd(pid: int) -> Path | None:
    try:
        return Path(os.readlink(f"/proc/{pid}/cwd"))
    except OSError:
        return None


def kill_orphan_trial(workdir: str | os.PathLike[str], *, root: str | os.PathLike[str] | None = None) -> bool:
    """Kill the process tree of a trial that a dead driver left running.

    A driver killed with SIGKILL cannot stop its trials: they run on in their own sessions.
    :class:`LocalExecutor` leaves :data:`PID_FILE` in each running trial's workdir; this reads
    it and kills that worker's whole tree (its process group and every descendant, ``setsid``
    ones included), but only when every check of a live trial passes: ``workdir`` lies inside
    ``root`` (symlinks resolved, so no link escapes it), the pid file is a regular file of this
    user, the process still is the trial (same pid *and* same start time, so a recycled pid is
    never hit) and its command line is the autotune worker of this workdir. Where ``/proc`` is
    missing nothing can be checked and nothing is killed.

    Args:
        workdir: The trial's working directory; a driver should build it from its own
            ``output_dir`` (``output_dir/trials/<id>``), never take it from the record.
        root: The folder every trial of the study lies in (the study's ``output_dir``). Give
            it: without it only the process checks apply (a deprecation warning is raised).

    Returns:
        Whether a live trial process was killed.
    """
    if root is None:
        warnings.warn(
            "kill_orphan_trial(workdir) without root= is deprecated: pass root=<the study's output_dir> "
            "so a workdir outside it is refused.",
            DeprecationWarning,
            stacklevel=2,
        )
    found = _trial_process(workdir, root)
    if found is None:
        return False
    pid, ticks = found
    end_tree(pid, ticks)
    logger.warning("killed the process tree %d of an orphaned trial (%s)", pid, workdir)
    with contextlib.suppress(OSError):
        (Path(workdir).resolve() / PID_FILE).unlink()
    return True


def _kill_groups(procs: dict[int, subprocess.Popen[bytes]]) -> None:
    """Kill the process trees still running (called when the executor is collected or at exit)."""
    for pid, proc in list(procs.items()):
        if proc.returncode is None:
            end_tree(pid, start_ticks(pid))
            proc.wait()
        procs.pop(pid, None)


def _boot_time() -> float | None:
    """Seconds since the epoch at boot (``btime`` in ``/proc/stat``)."""
    try:
        with open("/proc/stat", encoding="utf-8") as file:
            for line in file:
                if line.startswith("btime "):
                    return float(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _epoch_of_ticks(ticks: str) -> float | None:
    """When a process with these start ticks started, in seconds since the epoch."""
    boot = _boot_time()
    try:
        hz = os.sysconf("SC_CLK_TCK")
        return None if boot is None else boot + int(ticks) / hz
    except (ValueError, OSError):
        return None


def _visible_devices(pid: int) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` a process was started with (its initial environment)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as file:
            entries = file.read().split(b"\0")
    except OSError:
        return []
    for entry in entries:
        if entry.startswith(b"CUDA_VISIBLE_DEVICES="):
            return parse_visible_devices(entry.split(b"=", 1)[1].decode(errors="replace"))
    return []


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
        self.pid: int | None = None
        """The worker's pid (our child, or an adopted trial's), ``None`` before it starts."""
        self.ticks: str | None = None
        """The worker's start ticks (``/proc``), ``None`` where unknown."""
        self.adopted = False
        self.known: dict[int, str] = {}
        """Descendants seen while the trial ran (pid -> start ticks), ended with it."""
        self.oom_kills_at_start: int | None = None
        self.gpu_ids: list[str] = []
        self.warm = False
        """Started by the warm process (:mod:`autotune.executors._zygote`): not our child."""
        self.result_seen_mono: float | None = None
        self._reports_offset = 0

    def _started(self) -> bool:
        return self.pid is not None

    def _all_reports(self) -> list[dict[str, Any]]:
        if self._result is None and self.pid is not None:
            self._read_reports()
        return list(self._reports)

    def _read_reports(self) -> None:
        """Read the complete lines appended to the reports channel since the last read."""
        new, self._reports_offset = read_new_reports(self.reports_path, self._reports_offset)
        self._reports.extend(new)

    def exited(self) -> bool:
        """Whether the worker has exited (an adopted one: is no longer the recorded live process)."""
        if self.proc is not None:
            return _exited(self.proc)
        if self.warm and self.executor._zygote is not None and self.pid in self.executor._zygote.exits:
            return True
        return self.pid is None or not is_running(self.pid, self.ticks)

    def argv(self, python: str) -> list[str]:
        """The worker command line: the launcher (:data:`_LAUNCHER`), then the worker module and its arguments."""
        return [
            python,
            "-c",
            _LAUNCHER,
            _WORKER_MODULE,
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
class LocalExecutor(PollingExecutor["_LocalJob"]):
    """Runs each trial in a fresh Python process on this machine.

    The child is ``[python, "-c", LAUNCHER, "autotune.executors._worker", params.json, ...]``
    (the launcher writes the trial's ``worker.pid`` first thing, then runs the worker) started in
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

    How a trial's processes end: when it finishes, times out or is cancelled, its whole tree
    ends with it: the worker's process group, and every descendant in other sessions (the
    worker is their subreaper on Linux; descendants are also remembered every
    ``tree_scan_interval_s``, for a worker that dies abruptly). Its ``worker.pid`` file (pid
    and start time) lets a later driver kill (:func:`kill_orphan_trial`) or re-attach to
    (:meth:`adopt`) a trial whose driver died.

    How a trial that died without writing its result is recorded: killed by a SIGKILL that
    the executor did not send → ``OOM`` (the kernel's OOM killer sends SIGKILL; the message
    adds the memory cgroup's ``oom_kill`` count when readable); the end of its standard error
    reporting an out-of-memory error (a C++ ``std::bad_alloc`` abort, "CUDA out of memory") →
    ``OOM``; otherwise ``FAILED``.

    Output: ``stdout.log``/``stderr.log`` are cut to their last ``max_log_bytes`` when the
    trial ends (the original size is in :attr:`TrialResult.log_bytes` and on the file's first
    line), so a chatty trial does not fill the record's artifact store.

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
        max_log_bytes: The most bytes of each output file kept once a trial ends (its tail);
            ``None`` keeps everything.
        tree_scan_interval_s: How often the running trials' descendants are listed.
        warm_start: Start trials from a warm process (:mod:`autotune.executors._zygote`) that
            imported ``preload`` once and forks a child per trial, instead of a fresh
            interpreter each time (seconds saved per trial that imports torch). Each trial is
            still a process of its own in its own session, with the same files, environment,
            GPU pinning, time limit and process-tree cleanup. Falls back to a cold start (with a
            warning) when the warm process cannot be started.
        preload: Modules the warm process imports; default ``torch`` (when installed) and the
            module of the first trial's ``module:function`` entry point. A module that starts
            threads when imported must not be preloaded (a fork keeps only one thread).
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
        max_log_bytes: int | None = DEFAULT_MAX_LOG_BYTES,
        tree_scan_interval_s: float = 1.0,
        warm_start: bool = False,
        preload: Sequence[str] | None = None,
    ) -> None:
        super().__init__(n_workers)
        if max_log_bytes is not None:
            check_positive_int("LocalExecutor(max_log_bytes=...)", max_log_bytes)
        self.allocator = GpuAllocator(devices, gpus_per_trial=1, trials_per_gpu=trials_per_gpu)
        self.trials_per_gpu = trials_per_gpu
        self.root_dir = None if root_dir is None else Path(root_dir).resolve()
        self.python = python or sys.executable
        self.env = dict(env or {})
        self.poll_interval_s = poll_interval_s
        self.kill_grace_s = kill_grace_s
        self.max_log_bytes = max_log_bytes
        self.tree_scan_interval_s = tree_scan_interval_s
        self._submitting: _LocalJob | None = None
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._warned_no_gpu = False
        self._last_scan = float("-inf")
        self._finalizer = weakref.finalize(self, _kill_groups, self._procs)
        if not isinstance(warm_start, bool):
            raise ConfigError("LocalExecutor(warm_start=...)", "must be true or false", warm_start,
                              "use warm_start: true (or leave it out).")
        if preload is not None and (isinstance(preload, str) or not all(isinstance(m, str) for m in preload)):
            raise ConfigError("LocalExecutor(preload=...)", "must be a list of module names", preload,
                              "use e.g. preload: [torch, mypkg.train].")
        self.warm_start = warm_start
        self.preload = None if preload is None else list(preload)
        self._zygote: Zygote | None = None
        self._warm_broken = False

    @classmethod
    def for_study(cls, study_dir: str | os.PathLike[str], parallelism: StudyParallelism,
                  options: dict[str, Any]) -> Self:
        """See :meth:`Executor.for_study`: trials import from ``study_dir`` first; GPUs are shared
        ``parallelism.trials_per_gpu`` ways, except ``parallelism.driver_gpu`` (kept for the
        driver's GPs); trials start warm unless ``warm_start: false``."""
        options = {"warm_start": True, **with_import_path(options, os.fspath(study_dir)),
                   "trials_per_gpu": parallelism.trials_per_gpu}
        driver_gpu = getattr(parallelism, "driver_gpu", None)
        if driver_gpu is not None and options.get("devices") is None:
            options["devices"] = [d for i, d in enumerate(discover_devices()) if i != driver_gpu]
        return cls(n_workers=parallelism.workers, **options)

    @property
    def leaves_trial_files(self) -> bool:
        """``True``: trials run on this machine with their output in their workdir."""
        return True

    # -- public API -----------------------------------------------------------------------

    def submit(self, spec: TrialSpec) -> Job:
        """Write the trial's files and start it (or queue it); see :meth:`Executor.submit`.

        Raises:
            ConfigError: The spec's resources are invalid.
            TrialError: The parameters or fixed arguments are not JSON-serialisable.
            SubmitError: No trial can start: the interpreter ``python`` is missing or not
                executable, or the operating system refused to start the process.
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
        self._check_python()
        entry_point = os.path.abspath(spec.entry_point) if is_script(spec.entry_point) else spec.entry_point
        job = _LocalJob(self, spec, self._workdir(spec), entry_point)
        job.workdir.mkdir(parents=True, exist_ok=True)
        for stale in (job.result_path, job.reports_path, job.workdir / PID_FILE):
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
        self._submitting = job  # its failure to start raises SubmitError instead of ending FAILED
        try:
            self._enqueue(job)
        except SubmitError:
            self._jobs.remove(job)
            raise
        finally:
            self._submitting = None
        return job

    def adopt(
        self,
        workdir: str | os.PathLike[str],
        spec: TrialSpec,
        *,
        root: str | os.PathLike[str] | None = None,
        reports_seen: int = 0,
    ) -> Job | None:
        """Re-attach to a trial that a previous driver started in ``workdir``.

        The trial's worker may still be running (its :data:`PID_FILE` names a live autotune
        worker of this workdir, checked as :func:`kill_orphan_trial` checks it) or may have
        finished meanwhile (its ``result.json`` is there). The returned job behaves as one
        this executor started: it reads the trial's reports, ends when its process ends (its
        result read from ``result.json``), is stopped at ``spec.timeout_s`` counted from the
        process's real start, and :meth:`Job.cancel` ends its whole tree. It occupies a worker
        slot, and its GPUs (read from the process's environment) count as taken.

        A worker that vanished without a result is recorded ``FAILED`` (its exit status
        cannot be known to a new driver).

        Args:
            workdir: The trial's folder (build it from the study's own ``output_dir``).
            spec: The trial, as submitted the first time (its ``workdir`` is set to ``workdir``).
            root: The study's folder, which ``workdir`` must lie in (default: this executor's
                ``root_dir``, if any).
            reports_seen: How many of the trial's report records the previous driver already
                handled; :meth:`Job.new_reports` starts after them.

        Returns:
            The job, or ``None`` when there is nothing to adopt (no live worker of this
            workdir and no result file): the trial is lost.
        """
        resolved = Path(workdir).resolve()
        root = self.root_dir if root is None else root
        if root is not None and not _inside(resolved, Path(root).resolve()):
            logger.warning("%s: not inside the study's folder %s: not adopted", workdir, root)
            return None
        found = _trial_process(resolved, root)
        entry_point = os.path.abspath(spec.entry_point) if is_script(spec.entry_point) else spec.entry_point
        job = _LocalJob(self, spec, resolved, entry_point)
        if found is None and not job.result_path.is_file():
            return None
        job.adopted = True
        job._n_reports_seen = max(0, int(reports_seen))
        if found is not None:
            job.pid, job.ticks = found
            started = _epoch_of_ticks(job.ticks)
        else:  # finished meanwhile: the pid file (if any) names a process that is gone
            job.pid, job.ticks = -1, None
            started = None
        job.start_time = started if started is not None else time.time()
        job.start_mono = time.monotonic() - max(0.0, time.time() - job.start_time)
        if found is not None:
            job.gpu_ids = self.allocator.hold(job.trial_id, _visible_devices(job.pid)) if job.pid > 0 else []
            job.oom_kills_at_start = oom_kill_count(os.getpid())
        job.device = ",".join(f"cuda:{i}" for i in job.gpu_ids) or "cpu"
        self._jobs.append(job)
        self._running.append(job)
        self.poll()
        return job

    # -- internals ------------------------------------------------------------------------

    def _check_python(self) -> None:
        """Raise :class:`SubmitError` unless the children's interpreter can be run."""
        found = shutil.which(self.python)
        if found is None or not os.access(found, os.X_OK):
            raise SubmitError(
                f"LocalExecutor(python={self.python!r}): the trial interpreter does not exist or is not "
                "executable, so no trial can start. Fix: install it, or pass the path of an existing Python "
                "(executor.options.python in a study file), or leave python unset to use the driver's."
            )

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
        env.update(
            {
                "CUDA_VISIBLE_DEVICES": ",".join(job.gpu_ids),
                "OMP_NUM_THREADS": threads,
                "MKL_NUM_THREADS": threads,
                "PYTHONPATH": trial_pythonpath(self.env, _PACKAGE_ROOT),
                "PYTHONUNBUFFERED": "1",
                PARAMS_ENV: str(job.params_path),
                FIXED_ARGS_ENV: str(job.fixed_args_path),
                REPORT_ENV: str(job.reports_path),
                "AUTOTUNE_TRIAL_ID": str(job.trial_id),
                "AUTOTUNE_WORKDIR": str(job.workdir),
            }
        )
        return env

    def _can_start(self, job: _LocalJob) -> bool:
        """Reserve the trial's GPUs; ``False`` (it waits) while not enough are free."""
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
        """Start the worker process; a failure raises :class:`SubmitError` for the trial being submitted."""
        raising = job is self._submitting
        job.device = ",".join(f"cuda:{i}" for i in job.gpu_ids) or "cpu"
        job.start_time, job.start_mono = time.time(), time.monotonic()
        if self.warm_start and self._warm_launch(job):
            return
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
            shown = [self.python, "-c", "<launcher>", *job.argv(self.python)[3:]]
            message = f"could not start the trial process {shown}: {exc}"
            if raising or exc.errno in (errno.ENOENT, errno.EACCES, errno.ENOEXEC):
                self.allocator.release(job.trial_id)
                job.device = None
                if raising:
                    raise SubmitError(f"trial {job.trial_id}: {message}. Fix: check LocalExecutor(python=...) "
                                      "and the system's process and memory limits.") from exc
            self._finish(job, TrialState.FAILED, message)
            return
        job.pid = job.proc.pid
        job.ticks = start_ticks(job.pid)
        job.oom_kills_at_start = oom_kill_count(os.getpid())
        self._procs[job.pid] = job.proc
        self._running.append(job)
        if (job.workdir / PID_FILE).exists():  # the launcher wrote it first thing
            return
        try:  # a fallback: the launcher could not write it, or has not run yet
            text = f"{job.pid} {job.ticks or '-'}\n"
            tmp = job.workdir / f".{PID_FILE}.tmp"
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, job.workdir / PID_FILE)
        except OSError as exc:
            logger.warning("trial %d: could not write %s: %s", job.trial_id, PID_FILE, exc)

    def _warm_launch(self, job: _LocalJob) -> bool:
        """Start the trial from the warm process; ``False`` (start it cold) if that cannot be done."""
        if self._warm_broken:
            return False
        try:
            zygote = self._warm_process(job)
            pid = zygote.fork(str(job.workdir), self._child_env(job), str(job.stdout_path), str(job.stderr_path),
                              job.argv(self.python)[3:])
        except OSError as exc:
            logger.warning("warm start failed (%s); trials start cold from now on", exc)
            self._warm_broken = True
            self._close_zygote()
            return False
        job.warm = True
        job.pid = pid
        job.ticks = start_ticks(pid)
        job.oom_kills_at_start = oom_kill_count(os.getpid())
        self._running.append(job)
        return True

    def _warm_process(self, job: _LocalJob) -> Zygote:
        """The running zygote, started (again) when there is none."""
        if self._zygote is not None and self._zygote.alive():
            return self._zygote
        self._close_zygote()
        import importlib.util

        preload = self.preload
        if preload is None:
            preload = ["torch"] if importlib.util.find_spec("torch") is not None else []
            module, sep, _ = job.entry_point.partition(":")
            if sep and not module.endswith(".py"):
                preload.append(module)
        env = dict(os.environ)
        env.update(self.env)
        env.update({"PYTHONPATH": trial_pythonpath(self.env, _PACKAGE_ROOT), "CUDA_VISIBLE_DEVICES": "",
                    "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"})
        folder = job.workdir.parent
        self._zygote = Zygote(self.python, preload, _LAUNCHER, env, cwd=str(folder),
                              log_path=str(folder / "warm_start.log"))
        if self._zygote.failed:
            logger.info("warm start: could not preload %s; each trial imports them itself", self._zygote.failed)
        return self._zygote

    def _close_zygote(self) -> None:
        if self._zygote is not None:
            self._zygote.close()
            self._zygote = None

    def shutdown(self, kill: bool = False) -> None:
        """See :meth:`Executor.shutdown`; also stops the warm-start process."""
        try:
            super().shutdown(kill)
        finally:
            self._close_zygote()

    def _update(self) -> None:
        """Collect finished children, enforce time limits, start queued trials."""
        if self._zygote is not None:
            self._zygote.poll()
        now = time.monotonic()
        if self._running and now - self._last_scan >= self.tree_scan_interval_s:
            self._scan_trees()
        for job in list(self._running):
            if job._result is not None:  # e.g. cancelled from another path
                continue
            if job.exited():
                self._reap(job, stop_reason=None)
            elif job.spec.timeout_s is not None and now - (job.start_mono or now) > job.spec.timeout_s:
                self._stop(job, TrialState.TIMEOUT)
            elif job.result_path.exists():  # finished but lingering (non-daemon threads, children)
                if job.result_seen_mono is None:
                    job.result_seen_mono = now
                elif now - job.result_seen_mono > self.kill_grace_s:
                    self._end_tree(job)
                    self._reap(job, stop_reason=None)
        self._dispatch()

    def _scan_trees(self) -> None:
        """Remember the descendants of every running trial (one scan of ``/proc`` for all)."""
        self._last_scan = time.monotonic()
        for job in self._running:
            if job.pid is None or job.pid <= 0 or job.exited():
                continue
            job.known = {p: t for p, t in job.known.items() if start_ticks(p) == t}  # drop the ended ones
            job.known.update(descendants(job.pid))

    def _cancel_running(self, job: _LocalJob) -> bool:
        if job.exited():
            self._reap(job, stop_reason=None)
            return False
        self._stop(job, TrialState.KILLED)
        return True

    def _stop(self, job: _LocalJob, reason: TrialState) -> None:
        self._terminate(job)
        self._reap(job, stop_reason=reason)

    def _terminate(self, job: _LocalJob) -> None:
        """SIGTERM the trial's process group and descendants, then SIGKILL its whole tree after the grace period."""
        assert job.pid is not None and job.pid > 0  # only called for started jobs
        own = job.proc is not None
        if not job.exited():
            job.known.update(descendants(job.pid))
            if own or is_running(job.pid, job.ticks):
                _signal_group(job.pid, signal.SIGTERM)
        signal_pids(job.known, signal.SIGTERM)
        give_up = time.monotonic() + self.kill_grace_s
        while not job.exited() and time.monotonic() < give_up:
            time.sleep(0.01)
        self._end_tree(job)

    def _end_tree(self, job: _LocalJob) -> None:
        """SIGKILL the trial's whole tree (the unreaped leader of our own child keeps its group id taken)."""
        assert job.pid is not None
        if job.pid <= 0:
            return
        own = job.proc is not None
        if own or is_running(job.pid, job.ticks):
            job.known.update(end_tree(job.pid, job.ticks if not job.exited() else None, job.known))
        else:
            signal_pids(job.known, signal.SIGKILL)

    def _reap(self, job: _LocalJob, stop_reason: TrialState | None) -> None:
        """Record the end of a started trial whose process has exited or is being killed."""
        assert job.pid is not None  # only called for started jobs
        self._end_tree(job)  # leftover descendants of a finished trial
        returncode: int | None = None
        if job.proc is not None:
            returncode = job.proc.wait()
            self._procs.pop(job.pid, None)
        elif job.warm and self._zygote is not None:
            returncode = self._warm_exit_code(job.pid)
        if job in self._running:
            self._running.remove(job)
        job._read_reports()
        if stop_reason is TrialState.TIMEOUT:
            self._finish(job, stop_reason, f"ran past its time limit of {job.spec.timeout_s} s; process tree killed")
        elif stop_reason is TrialState.KILLED:
            self._finish(job, stop_reason, "cancelled by the driver; process tree killed")
        else:
            self._finish_from_result_file(job, returncode)

    def _warm_exit_code(self, pid: int, wait_s: float = 0.5) -> int | None:
        """A warm trial's exit status as its zygote reports it (it reaps within milliseconds)."""
        assert self._zygote is not None
        deadline = time.monotonic() + wait_s
        while pid not in self._zygote.exits and time.monotonic() < deadline and self._zygote.alive():
            time.sleep(0.005)
            self._zygote.poll()
        return self._zygote.exits.pop(pid, None)

    def _finish_from_result_file(self, job: _LocalJob, returncode: int | None) -> None:
        try:
            with open(job.result_path, encoding="utf-8") as file:
                record = json.load(file)
            state = TrialState(record["state"])
            if not state.is_finished:
                raise ValueError(f"state {state.value!r} is not terminal")
            metrics = {str(k): float(v) for k, v in (record.get("metrics") or {}).items()}
            error = record.get("error")
            error = None if error is None else str(error)
        except FileNotFoundError:
            self._finish_without_result(job, returncode)
            return
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
            self._finish(job, TrialState.FAILED, f"{job.result_path}: unreadable result ({exc!r})")
            return
        self._finish(job, state, error, metrics)

    def _finish_without_result(self, job: _LocalJob, returncode: int | None) -> None:
        """Record a worker that died before writing its result: OOM when the evidence says so."""
        tail = self._stderr_tail(job)
        where = f"End of {job.stderr_path}:\n{tail}"
        if returncode is None:
            how = "ended (adopted from an earlier driver: its exit status is unknown)"
        elif returncode < 0:
            how = f"was killed by signal {-returncode}"
        else:
            how = f"exited with code {returncode}"
        if returncode == -signal.SIGKILL:
            before, after = job.oom_kills_at_start, oom_kill_count(os.getpid())
            evidence = (
                f"the memory cgroup's oom_kill count rose from {before} to {after}"
                if before is not None and after is not None and after > before
                else "presumed: the kernel's out-of-memory killer sends SIGKILL, and autotune did not send this one"
            )
            self._finish(job, TrialState.OOM, f"out of memory: the trial process {how} ({evidence}). {where}")
            return
        if says_out_of_memory(tail):
            self._finish(
                job, TrialState.OOM, f"out of memory: the trial process {how} after reporting it on stderr. {where}"
            )
            return
        self._finish(job, TrialState.FAILED, f"the trial process {how} without writing a result. {where}")

    @staticmethod
    def _stderr_tail(job: _LocalJob) -> str:
        try:
            with open(job.stderr_path, "rb") as file:
                file.seek(0, os.SEEK_END)
                file.seek(max(0, file.tell() - _STDERR_TAIL_CHARS))
                return file.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def _release(self, job: _LocalJob, result: TrialResult) -> None:
        """Free the trial's devices and pid file; cap its output files and name them in ``result``."""
        self.allocator.release(job.trial_id)
        if job.pid is None:  # never started
            return
        with contextlib.suppress(OSError):
            (job.workdir / PID_FILE).unlink()
        for name, path in (("stdout", job.stdout_path), ("stderr", job.stderr_path)):
            size, cut = cap_log(path, self.max_log_bytes)
            result.log_bytes[name] = size
            if cut:
                result.logs_truncated.append(name)
        result.stdout_path = str(job.stdout_path) if job.stdout_path.is_file() else None
        result.stderr_path = str(job.stderr_path) if job.stderr_path.is_file() else None
