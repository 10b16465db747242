"""Real MLflow stores for the tracking tests: a SQLite file and a local ``mlflow server``."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autotune.tracking import MlflowTracker

SERVER_START_TIMEOUT_S = 120.0
# A write slower than this counts as an outage (it is then sent in the background); the tests
# that read the record through the raw MlflowClient right after writing need every write
# synchronous, even on a loaded machine. tests/tracking/test_outage.py tests the outages.
SLOW_WRITE_S = 300.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mlflow_cli() -> str | None:
    """The ``mlflow`` command of this interpreter's environment, else the one on PATH."""
    here = Path(sys.executable).parent
    return shutil.which("mlflow", path=os.pathsep.join([str(here), os.environ.get("PATH", "")]))


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop the server process group this fixture started (its id is the server's pid).

    A first SIGTERM asks uvicorn to shut down gracefully, which waits for idle keep-alive
    connections; a second one makes it exit at once; SIGKILL is the last resort.
    """
    for sig, wait_s in ((signal.SIGTERM, 2.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        os.killpg(proc.pid, sig)
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue


def start_mlflow_server(
    cli: str, backend_uri: str, artifacts: Path, port: int, log_path: Path
) -> subprocess.Popen[bytes]:
    """Start ``mlflow server`` on ``127.0.0.1:port`` in a process group of its own (appends to the log)."""
    argv = [
        cli,
        "server",
        "--backend-store-uri",
        backend_uri,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    # No job runner: MLflow 3.17 starts five huey consumers for GenAI jobs, which only slow the start here.
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )


def wait_healthy(
    proc: subprocess.Popen[bytes],
    uri: str,
    log_path: Path,
    timeout_s: float = SERVER_START_TIMEOUT_S,
) -> None:
    """Return once ``uri/health`` answers; fail the test if the server exits or never does."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log_path.read_text(errors="replace")[-3000:]
            pytest.fail(f"`{' '.join(map(str, proc.args))}` did not become healthy:\n{tail}")
        time.sleep(0.25)


@pytest.fixture(scope="session", autouse=True)
def mlflow_server_process(
    tmp_path_factory: pytest.TempPathFactory, mlflow_store_factory: Callable[[Path], str]
) -> Iterator[tuple[subprocess.Popen[bytes], str, Path] | None]:
    """Start ``mlflow server`` on 127.0.0.1 as the session begins (it takes seconds to boot).

    Its backend is a copy of the migrated template store and it serves artifacts from a
    temporary directory; the tests against SQLite run while it boots. ``None`` without
    the ``mlflow`` command.
    """
    cli = _mlflow_cli()
    if cli is None:
        yield None
        return
    root = tmp_path_factory.mktemp("mlflow-server")
    log_path = root / "server.log"
    port = _free_port()
    proc = start_mlflow_server(
        cli, mlflow_store_factory(root), root / "artifacts", port, log_path
    )
    try:
        yield proc, f"http://127.0.0.1:{port}", log_path
    finally:
        _stop(proc)


@pytest.fixture(scope="session")
def mlflow_server_uri(
    mlflow_server_process: tuple[subprocess.Popen[bytes], str, Path] | None,
) -> str:
    """The URI of the session's ``mlflow server``, once its ``/health`` answers."""
    if mlflow_server_process is None:
        pytest.skip(
            "the `mlflow` command-line tool is not on PATH: install mlflow to run the server tests"
        )
    proc, uri, log_path = mlflow_server_process
    wait_healthy(proc, uri, log_path)
    return uri


@pytest.fixture(scope="session", params=["sqlite", "server"])
def backend(request: pytest.FixtureRequest) -> str:
    """The kind of store; session-scoped so pytest runs every SQLite case before the server's."""
    return str(request.param)


@pytest.fixture
def tracking_uri(backend: str, request: pytest.FixtureRequest) -> str:
    """Each tracking test runs against a fresh SQLite store and against the shared server."""
    if backend == "sqlite":
        return str(request.getfixturevalue("mlflow_sqlite_uri"))
    return str(request.getfixturevalue("mlflow_server_uri"))


@pytest.fixture
def tracker(tracking_uri: str) -> MlflowTracker:
    """A tracker of a study of its own (unique name), not started yet."""
    return MlflowTracker(tracking_uri, f"study-{uuid.uuid4().hex[:8]}", write_timeout_s=SLOW_WRITE_S)


@pytest.fixture
def sqlite_tracker(mlflow_sqlite_uri: str) -> MlflowTracker:
    """A tracker on a fresh SQLite store, for checks that do not depend on the backend."""
    return MlflowTracker(mlflow_sqlite_uri, "study", write_timeout_s=SLOW_WRITE_S)
