"""The contract every executor that runs real code must pass: each outcome ends in its one state.

Use it for an executor of your own by subclassing :class:`ExecutorContract` in a test module
(the name must start with ``Test``) and building your executor in :meth:`~ExecutorContract.make_executor`::

    from autotune.testing.executors import ExecutorContract

    class TestMyExecutor(ExecutorContract):
        isolated = True  # trials run in processes of their own

        def make_executor(self, root_dir):
            return MyExecutor(4, root_dir=root_dir)

Every case (a completed trial, a dict result, exceptions, each kind of out-of-memory error,
NaN and out-of-range results, a bad entry point, a script, a time limit...) is submitted once
per class, all together, and each test checks one result, so the suite runs in seconds.
With ``isolated = True`` it also checks what only a trial in its own process can survive (a
SIGKILL recorded as ``oom``, a native abort) and that a trial's whole process tree, ``setsid``
grandchildren included, ends with it.

The trial functions live in this module (standard library only), so a child process imports
them without importing pytest; executors that start processes must let children import
``autotune`` (they do when autotune is installed).
"""

from __future__ import annotations

import atexit
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autotune.executors import Executor, Job
from autotune.trial import TrialResult, TrialSpec, TrialState

__all__ = ["CASES", "ISOLATED_CASES", "Case", "ExecutorContract", "is_alive"]

Report = Callable[..., None]
_HERE = "autotune.testing.executors"

# -- trial functions (run by the executors under test) -----------------------------------------


def quadratic(params: dict[str, Any], report: Report, steps: int = 3) -> float:
    """A tiny 'training loop': reports a decreasing loss, returns ``(x - 1)^2``."""
    x = float(params["x"])
    for step in range(steps):
        report(step=step, loss=(x - 1.0) ** 2 + 1.0 / (step + 1))
    print(f"quadratic x={x}")
    return (x - 1.0) ** 2


def with_dict(params: dict[str, Any], report: Report) -> dict[str, float]:
    """Returns a dict merged over the reported values."""
    report(step=0, loss=2.0, acc=0.5)
    report(step=1, loss=1.0)
    return {"objective": 0.25, "n_params": 1000}


def failing(params: dict[str, Any], report: Report) -> float:
    """Raises after one report."""
    report(step=0, loss=1.0)
    raise ValueError("bad batch size")


def memory_error(params: dict[str, Any], report: Report) -> float:
    """A host out-of-memory error."""
    raise MemoryError()


def cuda_oom_message(params: dict[str, Any], report: Report) -> float:
    """The message PyTorch gives when a GPU runs out of memory."""
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


class OutOfMemoryError(RuntimeError):
    """Named like ``torch.cuda.OutOfMemoryError`` (matched by name, torch is not imported)."""


def oom_class(params: dict[str, Any], report: Report) -> float:
    """Raises an exception class named like torch's."""
    raise OutOfMemoryError("allocation failed")


def cpu_alloc_message(params: dict[str, Any], report: Report) -> float:
    """The message torch's CPU allocator gives when host memory runs out."""
    raise RuntimeError(
        "[enforce fail at alloc_cpu.cpp:114] data. DefaultCPUAllocator: can't allocate memory: "
        "you tried to allocate 85899345920 bytes. Error code 12 (Cannot allocate memory)"
    )


def chained_memory_error(params: dict[str, Any], report: Report) -> float:
    """A library wrapping a MemoryError in its own exception."""
    try:
        raise MemoryError
    except MemoryError as exc:
        raise ValueError("batch could not be collated") from exc


def enomem(params: dict[str, Any], report: Report) -> float:
    """``fork()`` or ``mmap()`` refused by the operating system."""
    import errno

    raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))


def nan_objective(params: dict[str, Any], report: Report) -> float:
    """Diverges."""
    report(step=0, loss=float("inf"))
    return math.nan


def bad_return(params: dict[str, Any], report: Report) -> str:
    """Returns something that is not a metric."""
    return "abc"


def huge_int(params: dict[str, Any], report: Report) -> int:
    """Returns an int beyond a float's range."""
    return 10**400


def huge_int_in_dict(params: dict[str, Any], report: Report) -> dict[str, Any]:
    """Returns a dict holding an int beyond a float's range."""
    return {"objective": 10**400}


def huge_int_reported(params: dict[str, Any], report: Report) -> float:
    """Reports an int beyond a float's range."""
    report(step=0, loss=10**400)
    return 1.0


class _BadFloat:
    def __float__(self) -> float:
        raise RuntimeError("no float for you")


def bad_float_object(params: dict[str, Any], report: Report) -> Any:
    """Returns an object whose ``__float__`` raises something unexpected."""
    return _BadFloat()


def no_objective(params: dict[str, Any], report: Report) -> None:
    """Reports metrics but never the objective."""
    report(step=0, loss=1.0)


def sleepy(params: dict[str, Any], report: Report) -> float:
    """Reports every 0.1 s for a minute."""
    report(step=0, loss=1.0)
    for step in range(1, 600):
        time.sleep(0.1)
        report(step=step, loss=1.0 / step)
    return 0.0


def killed_by_sigkill(params: dict[str, Any], report: Report) -> float:
    """Dies as the kernel's OOM killer would end it: SIGKILL, no result written (isolated only)."""
    report(step=0, loss=1.0)
    os.kill(os.getpid(), signal.SIGKILL)
    return 0.0


def bad_alloc_abort(params: dict[str, Any], report: Report) -> float:
    """A C++ extension dying after ``std::bad_alloc`` (no Python exception, no result; isolated only)."""
    sys.stderr.write("terminate called after throwing an instance of 'std::bad_alloc'\n  what():  std::bad_alloc\n")
    sys.stderr.flush()
    os._exit(134)


def spawn_escapees(pid_file: str) -> dict[str, int]:
    """Start a ``setsid`` grandchild and a double-forked daemon (both sleep 60 s); write their pids.

    Args:
        pid_file: Where to write ``{"worker": ..., "setsid": ..., "daemon": ...}`` (atomically).

    Returns:
        The pids.
    """
    setsid_child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    daemon_file = pid_file + ".daemon"
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            (
                "import os, subprocess, sys\n"
                "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], start_new_session=True)\n"
                f"open({daemon_file!r}, 'w').write(str(p.pid))\n"
                "os._exit(0)\n"  # the launcher dies at once: its child is orphaned
            ),
        ]
    )
    launcher.wait()
    with open(daemon_file, encoding="utf-8") as file:
        daemon = int(file.read())
    pids = {"worker": os.getpid(), "setsid": setsid_child.pid, "daemon": daemon}
    with open(pid_file + ".tmp", "w", encoding="utf-8") as file:
        json.dump(pids, file)
    os.replace(pid_file + ".tmp", pid_file)
    return pids


def escapees(params: dict[str, Any], report: Report, pid_file: str, then: str = "return") -> float:
    """Leaves processes outside its process group and session, then returns, sleeps or crashes.

    Args:
        params: Unused.
        report: The trial's report callable.
        pid_file: Where :func:`spawn_escapees` writes the pids.
        then: ``"return"`` at once, ``"sleep"`` for a minute (reporting), or ``"crash"``
            (``os._exit(9)`` after 0.6 s).

    Returns:
        1.0.
    """
    spawn_escapees(pid_file)
    report(step=0, loss=1.0)
    if then == "sleep":
        for step in range(1, 600):
            time.sleep(0.1)
            report(step=step, loss=1.0 / step)
    elif then == "crash":
        time.sleep(0.6)  # the driver looks at the tree meanwhile
        os._exit(9)
    return 1.0


def chatty(params: dict[str, Any], report: Report, n_bytes: int = 1024) -> float:
    """Writes about ``n_bytes`` of numbered lines to stdout, then ``LAST LINE``, and one line to stderr."""
    written, i = 0, 0
    while written < n_bytes:
        text = f"{i:08d} {'x' * 90}\n"
        sys.stdout.write(text)
        written += len(text)
        i += 1
    sys.stdout.write("LAST LINE\n")
    sys.stdout.flush()
    print("stderr line", file=sys.stderr)
    return 1.0


_SCRIPT = """\
import sys
from autotune.report import load_fixed_args, load_params, report

params = load_params()
x = float(params["x"])
for epoch in range(int(load_fixed_args().get("epochs", 2))):
    report(step=epoch, objective=(x - 2.0) ** 2 + 1.0 / (epoch + 1))
if x < 0:
    sys.exit(3)
"""

# -- the cases ---------------------------------------------------------------------------------


def is_alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie (``/proc``; ``False`` where there is none)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as file:
            return file.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def wait_gone(pids: dict[str, int], timeout_s: float = 5.0) -> list[str]:
    """Wait until every process in ``pids`` (name -> pid) has ended.

    Returns:
        The names of the processes still alive after ``timeout_s`` (empty when all ended).
    """
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        alive = [name for name, pid in pids.items() if is_alive(pid)]
        if not alive:
            return []
        time.sleep(0.02)
    return alive


def _error_has(*texts: str) -> Callable[[TrialResult], None]:
    def check(r: TrialResult) -> None:
        for text in texts:
            assert r.error is not None and text in r.error, r.error

    return check


def _completed_with_reports(r: TrialResult) -> None:
    assert math.isclose(r.metrics["objective"], 4.0)
    assert [h["step"] for h in r.history] == [0, 1, 2]
    assert math.isclose(r.metrics["loss"], 4.0 + 1 / 3)  # the last report, merged under the return value
    assert r.error is None and r.end_time >= r.start_time and r.duration_s >= 0


def _dict_merged(r: TrialResult) -> None:
    assert r.metrics == {"loss": 1.0, "acc": 0.5, "objective": 0.25, "n_params": 1000.0}


def _traceback(r: TrialResult) -> None:
    _error_has("Traceback", "ValueError: bad batch size")(r)
    assert r.metrics == {"loss": 1.0}


def _nonfinite(r: TrialResult) -> None:
    assert math.isnan(r.metrics["objective"])


def _script(r: TrialResult) -> None:
    assert math.isclose(r.metrics["objective"], 1.0 + 1 / 3)
    assert [h["step"] for h in r.history] == [0, 1, 2]  # fixed_args reached the script


def _timeout(r: TrialResult) -> None:
    assert 0.5 <= r.duration_s < 5 and "time limit" in (r.error or "")


@dataclass
class Case:
    """One trial of the contract and the state it must end in.

    Attributes:
        entry_point: ``"module:function"``, or ``"<script>"`` for the suite's training script.
        state: The terminal state it must reach.
        params: Its parameters.
        check: More assertions on its result.
        fixed_args: Its fixed arguments.
        timeout_s: Its time limit.
    """

    entry_point: str
    state: TrialState
    params: dict[str, Any] = field(default_factory=dict)
    check: Callable[[TrialResult], None] = lambda r: None
    fixed_args: dict[str, Any] = field(default_factory=dict)
    timeout_s: float | None = None


CASES: dict[str, Case] = {
    "completed": Case(f"{_HERE}:quadratic", TrialState.COMPLETED, {"x": 3.0}, _completed_with_reports),
    "dict": Case(f"{_HERE}:with_dict", TrialState.COMPLETED, {}, _dict_merged),
    "failed": Case(f"{_HERE}:failing", TrialState.FAILED, {}, _traceback),
    "memory_error": Case(f"{_HERE}:memory_error", TrialState.OOM, {}, _error_has("Traceback", "MemoryError")),
    "cuda_oom_message": Case(f"{_HERE}:cuda_oom_message", TrialState.OOM, {}, _error_has("CUDA out of memory")),
    "oom_class": Case(f"{_HERE}:oom_class", TrialState.OOM, {}, _error_has("OutOfMemoryError")),
    "cpu_alloc_message": Case(f"{_HERE}:cpu_alloc_message", TrialState.OOM, {}, _error_has("can't allocate memory")),
    "chained_memory_error": Case(f"{_HERE}:chained_memory_error", TrialState.OOM, {}, _error_has("collated")),
    "enomem": Case(f"{_HERE}:enomem", TrialState.OOM, {}, _error_has("Cannot allocate memory")),
    "nan": Case(f"{_HERE}:nan_objective", TrialState.NONFINITE, {}, _nonfinite),
    "bad_return": Case(f"{_HERE}:bad_return", TrialState.FAILED, {}, _error_has("must return a number", "'abc'")),
    "huge_int": Case(f"{_HERE}:huge_int", TrialState.FAILED, {}, _error_has("too large for a float")),
    "huge_int_in_dict": Case(f"{_HERE}:huge_int_in_dict", TrialState.FAILED, {}, _error_has("too large for a float")),
    "huge_int_reported": Case(
        f"{_HERE}:huge_int_reported", TrialState.FAILED, {}, _error_has("'loss' is too large for a float")
    ),
    "bad_float_object": Case(f"{_HERE}:bad_float_object", TrialState.FAILED, {}, _error_has("no float for you")),
    "no_objective": Case(f"{_HERE}:no_objective", TrialState.FAILED, {}, _error_has("without a value for the objective")),
    "missing_fn": Case(f"{_HERE}:does_not_exist", TrialState.FAILED, {}, _error_has("AttributeError")),
    "bad_entry_point": Case("no_colon_here", TrialState.FAILED, {}, _error_has("package.module:function")),
    "script": Case("<script>", TrialState.COMPLETED, {"x": 3.0}, _script, fixed_args={"epochs": 3}),
    "script_exit": Case("<script>", TrialState.FAILED, {"x": -1.0}, _error_has("exited with code 3")),
    "timeout": Case(f"{_HERE}:sleepy", TrialState.TIMEOUT, {}, _timeout, timeout_s=0.5),
}
"""Cases every executor must pass."""

ISOLATED_CASES: dict[str, Case] = {
    "sigkill": Case(f"{_HERE}:killed_by_sigkill", TrialState.OOM, {}, _error_has("signal 9", "out of memory")),
    "bad_alloc_abort": Case(f"{_HERE}:bad_alloc_abort", TrialState.OOM, {}, _error_has("std::bad_alloc")),
}
"""Cases only an executor running each trial in its own process must pass."""

_RUNS: dict[type, tuple[dict[str, TrialResult], dict[str, Job]]] = {}


class ExecutorContract:
    """The executor contract; subclass it as ``TestSomething`` and implement :meth:`make_executor`.

    Attributes:
        isolated: Whether trials run in processes of their own (adds :data:`ISOLATED_CASES`
            and the process-tree tests).
        queues: Whether :meth:`Executor.submit` returns at once, queueing a trial while every
            worker is busy (``False`` for an executor that runs the trial inside ``submit``).
    """

    isolated: bool = False
    queues: bool = True

    def make_executor(self, root_dir: Path) -> Executor:
        """Build the executor under test.

        Args:
            root_dir: A fresh folder for its trials (trials get ``root_dir/trial_<id>`` workdirs).

        Returns:
            The executor, with at least 2 workers.
        """
        raise NotImplementedError

    def cases(self) -> dict[str, Case]:
        """The cases this executor must pass."""
        return {**CASES, **ISOLATED_CASES} if self.isolated else dict(CASES)

    def pytest_generate_tests(self, metafunc: Any) -> None:
        """Parametrise ``case`` over :meth:`cases` (a pytest hook; no import of pytest at module level)."""
        if "case" in metafunc.fixturenames:
            metafunc.parametrize("case", sorted(self.cases()))

    def run_cases(self) -> tuple[dict[str, TrialResult], dict[str, Job]]:
        """Run every case once for this class (all submitted together); the results and jobs by name."""
        cls = type(self)
        if cls not in _RUNS:
            root = Path(tempfile.mkdtemp(prefix="autotune-contract-"))
            atexit.register(shutil.rmtree, root, True)
            script = root / "train_script.py"
            script.write_text(_SCRIPT, encoding="utf-8")
            executor = self.make_executor(root)
            jobs: dict[str, Job] = {}
            for trial_id, (name, case) in enumerate(sorted(self.cases().items())):
                entry_point = str(script) if case.entry_point == "<script>" else case.entry_point
                spec = TrialSpec(trial_id, dict(case.params), entry_point, fixed_args=dict(case.fixed_args),
                                 timeout_s=case.timeout_s)
                jobs[name] = executor.submit(spec)
            pending = list(jobs.values())
            while pending:
                for job in executor.wait(pending):
                    pending.remove(job)
            executor.shutdown()
            _RUNS[cls] = ({name: job.result() for name, job in jobs.items()}, jobs)
        return _RUNS[cls]

    def test_each_outcome_ends_in_its_state(self, case: str) -> None:
        """Every case ends in its one terminal state, with the details its check asks for."""
        results, _ = self.run_cases()
        result = results[case]
        assert result.state is self.cases()[case].state, f"{type(self).__name__}/{case}: {result.error}"
        assert result.state.is_finished
        self.cases()[case].check(result)

    def test_new_reports_then_nothing_new(self) -> None:
        """A finished job gives its reports once, cannot be cancelled and keeps its state."""
        results, jobs = self.run_cases()
        job = jobs["completed"]
        assert job.done() and job.state is TrialState.COMPLETED
        assert job.new_reports() == results["completed"].history
        assert job.new_reports() == []
        assert job.cancel() is False  # already finished: the state does not change
        assert job.result().state is TrialState.COMPLETED

    def test_cancel_a_queued_trial(self, tmp_path: Path) -> None:
        """A queued trial cancelled before it starts ends ``KILLED`` and never runs."""
        if not self.queues:
            import pytest  # deferred: the module stays importable in a trial process

            pytest.skip("the executor runs each trial inside submit()")
        executor = self.make_executor(tmp_path)
        busy = [executor.submit(TrialSpec(i, {}, f"{_HERE}:sleepy")) for i in range(executor.n_workers)]
        queued = executor.submit(TrialSpec(99, {"x": 1.0}, f"{_HERE}:quadratic"))
        try:
            assert queued.state is TrialState.PENDING
            assert queued.cancel() is True and queued.result().state is TrialState.KILLED
            assert queued.result().history == [] and queued.cancel() is False
        finally:
            executor.shutdown(kill=True)
        assert all(job.result().state is TrialState.KILLED for job in busy)

    def _tree(self, tmp_path: Path, then: str, timeout_s: float | None = None) -> tuple[Job, dict[str, int]]:
        if not self.isolated or not os.path.isdir("/proc"):
            import pytest  # deferred: the module stays importable in a trial process

            pytest.skip("needs trials in processes of their own, and /proc")
        executor = self.make_executor(tmp_path)
        pid_file = tmp_path / f"pids_{then}.json"
        job = executor.submit(TrialSpec(0, {}, f"{_HERE}:escapees", fixed_args={"pid_file": str(pid_file), "then": then},
                                        timeout_s=timeout_s))
        give_up = time.monotonic() + 30
        while not pid_file.exists() and time.monotonic() < give_up and not job.done():
            time.sleep(0.02)
        pids = json.loads(pid_file.read_text(encoding="utf-8")) if pid_file.exists() else {}
        return job, pids

    def test_process_tree_ends_with_a_finished_trial(self, tmp_path: Path) -> None:
        """A trial that returns leaves nothing behind, ``setsid`` grandchildren and daemons included."""
        job, pids = self._tree(tmp_path, "return")
        assert job.result().state is TrialState.COMPLETED and set(pids) == {"worker", "setsid", "daemon"}
        assert wait_gone(pids) == []

    def test_process_tree_ends_with_a_cancelled_trial(self, tmp_path: Path) -> None:
        """Cancelling a trial ends its whole tree."""
        job, pids = self._tree(tmp_path, "sleep")
        assert pids and all(is_alive(pid) for pid in pids.values())
        assert job.cancel() is True and job.result().state is TrialState.KILLED
        assert wait_gone(pids) == []

    def test_process_tree_ends_with_a_timed_out_trial(self, tmp_path: Path) -> None:
        """A trial past its time limit ends with its whole tree."""
        job, pids = self._tree(tmp_path, "sleep", timeout_s=1.5)
        assert job.result().state is TrialState.TIMEOUT
        assert wait_gone(pids) == []
