"""Training-like functions run by the executor tests (in-process and in child processes).

Standard library only, so a child process starts fast.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

Report = Callable[..., None]


def quadratic(params: dict[str, Any], report: Report, steps: int = 3) -> float:
    """A tiny 'training loop': reports a decreasing loss, returns ``(x - 1)^2``."""
    x = float(params["x"])
    for step in range(steps):
        report(step=step, loss=(x - 1.0) ** 2 + 1.0 / (step + 1))
    print(f"quadratic x={x}")
    print("a warning", file=sys.stderr)
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


def oom_memory_error(params: dict[str, Any], report: Report) -> float:
    """Simulates a host out-of-memory error."""
    raise MemoryError()


def oom_cuda_message(params: dict[str, Any], report: Report) -> float:
    """Simulates the message PyTorch gives when a GPU runs out of memory."""
    raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")


class OutOfMemoryError(RuntimeError):
    """Named like ``torch.cuda.OutOfMemoryError`` (matched by name, torch is not imported)."""


def oom_torch_class(params: dict[str, Any], report: Report) -> float:
    """Raises an exception class named like torch's."""
    raise OutOfMemoryError("allocation failed")


def nan_objective(params: dict[str, Any], report: Report) -> float:
    """Diverges."""
    report(step=0, loss=float("inf"))
    return math.nan


def bad_return(params: dict[str, Any], report: Report) -> str:
    """Returns something that is not a metric."""
    return "done"


def no_objective(params: dict[str, Any], report: Report) -> None:
    """Reports metrics but never the objective."""
    report(step=0, loss=1.0)


def sleepy(params: dict[str, Any], report: Report, pid_file: str | None = None) -> float:
    """Starts a grandchild process (like a data-loader worker), reports, then sleeps 60 s."""
    if pid_file is not None:
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        with open(pid_file, "w", encoding="utf-8") as file:
            json.dump({"worker": os.getpid(), "grandchild": child.pid}, file)
    report(step=0, loss=1.0)
    for step in range(1, 600):
        time.sleep(0.1)
        report(step=step, loss=1.0 / step)
    return 0.0


def timed(params: dict[str, Any], report: Report, sleep_s: float = 0.5) -> dict[str, float]:
    """Sleeps and returns its own start and end time (to check that trials overlap)."""
    start = time.time()
    time.sleep(sleep_s)
    return {"objective": float(params["x"]), "t_start": start, "t_end": time.time()}


def env_probe(params: dict[str, Any], report: Report) -> dict[str, float]:
    """Writes the environment it sees to ``env.json`` in its working directory."""
    keys = ["CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "AUTOTUNE_TRIAL_ID"]
    seen: dict[str, Any] = {key: os.environ.get(key) for key in keys}
    seen["cwd"] = os.getcwd()
    seen["torch_imported"] = "torch" in sys.modules
    with open("env.json", "w", encoding="utf-8") as file:
        json.dump(seen, file)
    return {"objective": 0.0, "n_visible": float(len([d for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d]))}


def hard_exit(params: dict[str, Any], report: Report) -> float:
    """Dies without writing a result (like a segfault or the kernel's OOM killer would)."""
    print("about to die", file=sys.stderr, flush=True)
    os._exit(7)


def lingering(params: dict[str, Any], report: Report) -> float:
    """Returns, but leaves a non-daemon thread that keeps the process alive for a minute."""
    import threading

    threading.Thread(target=time.sleep, args=(60,), daemon=False).start()
    return 1.0


def keyboard_interrupt(params: dict[str, Any], report: Report) -> float:
    """Behaves like Ctrl-C pressed during training."""
    report(step=0, loss=1.0)
    raise KeyboardInterrupt


def self_sigkill(params: dict[str, Any], report: Report) -> float:
    """Dies by a SIGKILL it did not get from the driver (what the kernel's OOM killer does)."""
    import signal

    os.kill(os.getpid(), signal.SIGKILL)
    return 0.0


def set_global(params: dict[str, Any], report: Report) -> dict[str, float]:
    """Changes module state and the environment; returns what it found before changing them."""
    seen = float(os.environ.get("AUTOTUNE_TEST_LEAK", "0")) + float(_STATE.get("count", 0))
    os.environ["AUTOTUNE_TEST_LEAK"] = "1"
    _STATE["count"] = _STATE.get("count", 0) + 1
    return {"objective": seen, "pid": float(os.getpid())}


_STATE: dict[str, int] = {}


def parent_pid(params: dict[str, Any], report: Report) -> dict[str, float]:
    """The trial process's parent: the warm process when forked from one."""
    return {"objective": 0.0, "ppid": float(os.getppid())}
