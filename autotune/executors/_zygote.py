"""Warm trial processes: a zygote that imports the heavy modules once and forks a child per trial.

Started by :class:`~autotune.executors.LocalExecutor` with ``warm_start=True`` as
``python -c "from autotune.executors._zygote import main; main()" PRELOAD_JSON LAUNCHER_JSON``.
It imports the modules named in PRELOAD_JSON (``torch``, the study's trial module: what makes a
cold trial take seconds to start), never initialises CUDA or runs a torch operation (so a fork is
safe and each child still picks its own GPUs from ``CUDA_VISIBLE_DEVICES``), writes
``{"ready": ...}`` on its standard output, then serves one JSON request per line on its standard
input:

``{"id": 7, "cwd": ..., "env": {...}, "stdout": path, "stderr": path, "argv": [...]}``
    Fork a child that starts a session of its own (its process group is the trial's, as for a
    cold trial), takes ``env`` as its whole environment, redirects its output, and runs the
    same launcher program a cold trial runs (it writes the trial's pid file first, then the
    worker module) with ``argv``; the zygote answers ``{"started": 7, "pid": pid}``.

A child's exit is reported as ``{"exit": pid, "code": returncode}`` (``-N`` for signal N), so
the driver can tell a kernel OOM kill from a crash as for its own children. The zygote exits
when its standard input closes (the driver is gone); running trials carry on in their own
sessions and a resumed driver re-attaches them from their pid files. Standard library only.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import select
import signal
import sys
import traceback
from typing import Any


def _child(request: dict[str, Any], launcher: str) -> None:
    """In the forked child: become the trial's process, run the launcher, never return."""
    code = 1
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for fd, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(fd, target)
            os.close(fd)
        # Fresh Python streams on the new descriptors (the zygote's may hold buffered text).
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False))
        sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), line_buffering=True)
        sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), line_buffering=True)
        # The trial's import path as a cold process would build it from PYTHONPATH.
        for entry in reversed([p for p in request["env"].get("PYTHONPATH", "").split(os.pathsep) if p]):
            if entry not in sys.path:
                sys.path.insert(0, entry)
        torch = sys.modules.get("torch")
        threads = request["env"].get("OMP_NUM_THREADS")
        if torch is not None and threads and threads.isdigit():
            torch.set_num_threads(int(threads))
        sys.argv = ["-c", *request["argv"]]
        try:
            exec(compile(launcher, "<autotune launcher>", "exec"), {"__name__": "__main__"})  # noqa: S102
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 (reported on the trial's stderr, exit 1)
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _exit_code(status: int) -> int:
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def main() -> None:
    """Serve fork requests until standard input closes."""
    preload = json.loads(sys.argv[1]) if len(sys.argv) > 1 else []
    launcher = json.loads(sys.argv[2]) if len(sys.argv) > 2 else ""
    failed = {}
    for name in preload:
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 (a child then imports it itself, and fails there if it must)
            failed[name] = f"{type(exc).__name__}: {exc}"
    out = sys.stdout

    def send(message: dict[str, Any]) -> None:
        out.write(json.dumps(message) + "\n")
        out.flush()

    send({"ready": os.getpid(), "preloaded": [n for n in preload if n not in failed], "failed": failed})
    stdin = sys.stdin.buffer
    buffer = b""
    while True:
        while True:  # report every child that ended
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            send({"exit": pid, "code": _exit_code(status)})
        ready, _, _ = select.select([stdin], [], [], 0.02)
        if not ready:
            continue
        chunk = os.read(stdin.fileno(), 65536)
        if not chunk:
            return  # the driver is gone
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            request = json.loads(line)
            pid = os.fork()
            if pid == 0:
                _child(request, launcher)
            send({"started": request["id"], "pid": pid})


if __name__ == "__main__":
    main()


class Zygote:
    """The driver's handle on one zygote process (see the module docstring).

    Args:
        python: The interpreter.
        preload: Modules the zygote imports once (those that fail are imported by each child).
        launcher: The program a cold trial runs with ``-c`` (the children run the same).
        env: The zygote's environment (the trials' without per-trial variables).
        cwd: Its working directory.
        log_path: Where its own standard error goes.
        ready_timeout_s: How long its imports may take.
    """

    def __init__(self, python: str, preload: list[str], launcher: str, env: dict[str, str], cwd: str,
                 log_path: str, ready_timeout_s: float = 120.0) -> None:
        import subprocess
        import time

        self.exits: dict[int, int] = {}
        self._next_id = 0
        self._buffer = b""
        with open(log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [python, "-c", "from autotune.executors._zygote import main; main()",
                 json.dumps(preload), json.dumps(launcher)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env, cwd=cwd,
                start_new_session=True,
            )
        deadline = time.monotonic() + ready_timeout_s
        while True:
            message = self._read(max(deadline - time.monotonic(), 0.0))
            if message is None:
                self.close()
                raise OSError(f"the warm-start process did not start within {ready_timeout_s:g} s (see {log_path})")
            if "ready" in message:
                self.preloaded: list[str] = list(message.get("preloaded", []))
                self.failed: dict[str, str] = dict(message.get("failed", {}))
                return

    def alive(self) -> bool:
        """Whether the zygote still runs."""
        return self.proc.poll() is None

    def fork(self, cwd: str, env: dict[str, str], stdout: str, stderr: str, argv: list[str],
             timeout_s: float = 30.0) -> int:
        """Start a trial process; its pid.

        Raises:
            OSError: The zygote is gone or did not answer in time.
        """
        self._next_id += 1
        request = {"id": self._next_id, "cwd": cwd, "env": env, "stdout": stdout, "stderr": stderr, "argv": argv}
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise OSError(f"the warm-start process is gone ({exc})") from exc
        while True:
            message = self._read(timeout_s)
            if message is None:
                raise OSError("the warm-start process did not answer a fork request")
            if message.get("started") == request["id"]:
                return int(message["pid"])

    def poll(self) -> None:
        """Collect the exits reported so far (into :attr:`exits`), without waiting."""
        while self._read(0.0) is not None:
            pass

    def close(self) -> None:
        """Stop the zygote (the trials it started run on, in their own sessions)."""
        import contextlib

        with contextlib.suppress(Exception):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        with contextlib.suppress(Exception):
            self.proc.wait(2.0)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            with contextlib.suppress(Exception):
                self.proc.wait(2.0)
        with contextlib.suppress(Exception):
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def _read(self, timeout_s: float) -> dict[str, Any] | None:
        """The next message that is not an exit report (those are recorded), or ``None`` on timeout/EOF."""
        import time

        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while True:
            while b"\n" in self._buffer:
                line, self._buffer = self._buffer.split(b"\n", 1)
                message = json.loads(line)
                if "exit" in message:
                    self.exits[int(message["exit"])] = int(message["code"])
                    continue
                return dict(message)
            remaining = deadline - time.monotonic()
            ready, _, _ = select.select([fd], [], [], max(remaining, 0.0))
            if not ready:
                return None
            chunk = os.read(fd, 65536)
            if not chunk:
                return None
            self._buffer += chunk
