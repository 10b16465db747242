"""The default store of a study and its one-time creation or migration, with faults injected.

Kills and concurrent first starts run in forked children of this (already-importing) test
process, so a child spends its time creating the store, not importing MLflow. The long sizes
(10 kills, 10 repetitions) run with ``AUTOTUNE_LONG=1``;
``benchmarks/faults/store_faults.py`` measures the same with fresh interpreters.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from autotune.exceptions import TrackingError
from autotune.tracking import default_tracking_uri, ensure_store, record_lock
from autotune.tracking._store import _head_revision, default_artifact_location, sqlite_path


def test_default_tracking_uri_is_an_absolute_sqlite_file_in_the_output_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    uri = default_tracking_uri("runs/solubility")
    assert uri == f"sqlite:///{tmp_path.resolve().as_posix()}/runs/solubility/mlflow.db"
    assert uri.startswith("sqlite:////")
    assert sqlite_path(uri) == tmp_path.resolve() / "runs" / "solubility" / "mlflow.db"


def test_artifacts_default_to_beside_a_sqlite_store_only(tmp_path: Path) -> None:
    uri = default_tracking_uri(tmp_path)
    assert default_artifact_location(uri) == (tmp_path.resolve() / "mlartifacts").as_uri()
    assert default_artifact_location("http://127.0.0.1:5000") is None
    assert sqlite_path("sqlite:///:memory:") is None


def test_ensure_store_creates_directories_and_tables(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = default_tracking_uri(tmp_path / "new" / "study")
    ensure_store(uri)
    assert (tmp_path / "new" / "study" / "mlflow.db").is_file()
    names = [e.name for e in MlflowClient(uri).search_experiments()]
    assert names == ["Default"]


def test_ensure_store_keeps_a_migrated_store(mlflow_sqlite_uri: str) -> None:
    from mlflow import MlflowClient

    MlflowClient(mlflow_sqlite_uri).create_experiment("kept")
    ensure_store(mlflow_sqlite_uri)
    assert MlflowClient(mlflow_sqlite_uri).get_experiment_by_name("kept") is not None


def test_ensure_store_checks_a_tracking_server(mlflow_server_uri: str) -> None:
    ensure_store(mlflow_server_uri)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again below: nothing listens there
    with pytest.raises(TrackingError, match=r"does not answer.*Fix: start it"):
        ensure_store(f"http://127.0.0.1:{port}")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again on return: nothing listens there


def test_a_closed_port_fails_fast_with_the_uri_and_the_fix() -> None:
    uri = f"http://127.0.0.1:{_closed_port()}"
    start = time.monotonic()
    with pytest.raises(TrackingError) as info:
        ensure_store(uri)
    assert time.monotonic() - start < 5.0
    assert str(info.value).startswith(f"{uri}: the MLflow tracking server does not answer")
    assert "Fix: start it (`mlflow server" in str(info.value)


def test_a_server_that_accepts_and_never_answers_fails_within_seconds() -> None:
    with socket.socket() as sock:  # the kernel completes the handshake; nobody reads
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
        start = time.monotonic()
        with pytest.raises(TrackingError, match=r"does not answer .* within 3 s .*Fix: start it"):
            ensure_store(uri)
        assert time.monotonic() - start < 5.0


def test_an_in_memory_store_is_refused() -> None:
    with pytest.raises(TrackingError, match=r"sqlite:///:memory:: an in-memory .*Fix: use a file"):
        ensure_store("sqlite:///:memory:")


# -- faults while the store is created -------------------------------------------------------


def _fork(work: Callable[[], None], log: Path) -> int:
    """Run ``work`` in a forked child (exit 0, or 1 with its traceback in ``log``); its pid."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            work()
            code = 0
        except BaseException:  # noqa: BLE001 - reported through the exit code and the log
            log.write_text(traceback.format_exc())
        finally:
            os._exit(code)
    return pid


def _exit_status(pid: int) -> int:
    """The child's exit code, or minus the signal that ended it."""
    status = os.waitpid(pid, 0)[1]
    return -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)


def _state(db: Path) -> str:
    """``absent``, or ``complete`` for a store at this MLflow's schema; anything else is broken."""
    if not db.exists():
        return "absent"
    with contextlib.closing(sqlite3.connect(db)) as conn:
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        default = conn.execute("SELECT name FROM experiments WHERE experiment_id = 0").fetchall()
    return (
        "complete" if revision == [(_head_revision(),)] and default == [("Default",)] else "broken"
    )


def _assert_usable(uri: str, name: str = "after-faults") -> None:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    run = client.create_run(client.create_experiment(name))
    client.log_metric(run.info.run_id, "loss", 0.5)
    client.set_terminated(run.info.run_id)
    assert client.get_run(run.info.run_id).data.metrics == {"loss": 0.5}


@pytest.fixture
def head_revision() -> str:
    """Computed once before forking, so children spend their time creating the store."""
    return _head_revision()


@pytest.mark.parametrize("kills", [3, pytest.param(10, marks=pytest.mark.long)])
def test_sigkill_while_creating_a_store_leaves_none_or_a_complete_one(
    kills: int, tmp_path: Path, head_revision: str
) -> None:
    uri = default_tracking_uri(tmp_path / "study")
    db = sqlite_path(uri)
    assert db is not None
    rng = random.Random(13)
    # How long one creation takes on this machine now (it varies with load): the kills land
    # at random points inside that time, so they hit creation instead of a finished store.
    start = time.monotonic()
    assert _exit_status(_fork(lambda: ensure_store(uri), tmp_path / "timing.log")) == 0
    took = time.monotonic() - start
    assert _state(db) == "complete"
    db.unlink()
    mid_creation = 0
    for i in range(kills):
        pid = _fork(lambda: ensure_store(uri), tmp_path / f"child-{i}.log")
        time.sleep(rng.uniform(0.05, 0.9) * took)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        status = _exit_status(pid)
        assert status in (0, -signal.SIGKILL), (tmp_path / f"child-{i}.log").read_text()
        state = _state(db)
        assert state in ("absent", "complete"), f"kill {i}: the store is {state}"
        if status == 0 or state == "complete":  # finished before the kill: start fresh again
            db.unlink()
        else:
            mid_creation += 1
    assert mid_creation >= 1, "no kill landed while the store was being created"
    ensure_store(uri)  # leftovers of the killed creators are cleaned up, the store created
    assert _state(db) == "complete"
    assert not list(db.parent.glob(".mlflow.db.tmp-*"))
    _assert_usable(uri)


@pytest.mark.parametrize("repeats", [2, pytest.param(10, marks=pytest.mark.long)])
def test_concurrent_first_starts_of_one_store_all_succeed(
    repeats: int, tmp_path: Path, head_revision: str
) -> None:
    n_starters = 4
    for rep in range(repeats):
        uri = default_tracking_uri(tmp_path / f"rep{rep}")
        go_r, go_w = os.pipe()

        def first_start(i: int, uri: str = uri, go_r: int = go_r) -> None:
            os.read(go_r, 1)  # all start together
            ensure_store(uri)
            with record_lock(uri, f"study-{i}"):  # four different studies on one store
                _assert_usable(uri, f"study-{i}")

        pids = [
            _fork(lambda i=i: first_start(i), tmp_path / f"rep{rep}-{i}.log")
            for i in range(n_starters)
        ]
        os.write(go_w, b"x" * n_starters)
        statuses = [_exit_status(pid) for pid in pids]
        os.close(go_r)
        os.close(go_w)
        logs = [log.read_text() for log in sorted(tmp_path.glob(f"rep{rep}-*.log"))]
        assert statuses == [0] * n_starters, logs
        from mlflow import MlflowClient

        names = {e.name for e in MlflowClient(uri).search_experiments()}
        assert names == {"Default"} | {f"study-{i}" for i in range(n_starters)}


@pytest.fixture
def fresh_store(
    mlflow_store_factory: Callable[[Path], str], tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    uri = mlflow_store_factory(tmp_path / "store")
    db = sqlite_path(uri)
    assert db is not None
    yield uri, db


def _unversion(db: Path) -> None:
    """Make the store look half-made by an old autotune killed during creation."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("DELETE FROM alembic_version")
        conn.commit()


def test_a_half_made_store_without_data_is_rebuilt(fresh_store: tuple[str, Path]) -> None:
    uri, db = fresh_store
    _unversion(db)  # ``mlflow db upgrade`` now fails: "duplicate column name: step"
    ensure_store(uri)
    assert _state(db) == "complete"
    _assert_usable(uri)


def test_a_half_made_store_with_data_is_refused_and_left_untouched(
    fresh_store: tuple[str, Path],
) -> None:
    uri, db = fresh_store
    _assert_usable(uri, "precious")
    _unversion(db)
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    with pytest.raises(TrackingError) as info:
        ensure_store(uri)
    message = str(info.value)
    assert message.startswith(f"{db}: the MLflow store cannot be migrated")
    assert "holds data (1 runs" in message and "autotune leaves it untouched" in message
    assert (
        f"Fix: back it up (`cp {db} {db}.bak`) and run `mlflow db upgrade sqlite:///{db}`"
        in message
    )
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest


def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    db = tmp_path / "mlflow.db"
    db.write_bytes(b"my notes, not a database\n" * 100)
    with pytest.raises(
        TrackingError, match=r"is not a readable SQLite database.*Fix: move it away"
    ):
        ensure_store(f"sqlite:///{db}")
    assert db.read_bytes() == b"my notes, not a database\n" * 100


def _downgrade_one_revision(db: Path) -> None:
    """Take a store back one schema revision, as if an older MLflow had made it."""
    import mlflow.store
    from alembic import command
    from alembic.config import Config

    migrations = Path(mlflow.store.__file__).parent / "db_migrations"
    config = Config(str(migrations / "alembic.ini"))
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{db}")
    command.downgrade(config, "-1")


def test_an_older_schema_is_migrated_on_a_copy_keeping_the_data(
    fresh_store: tuple[str, Path],
) -> None:
    uri, db = fresh_store
    _assert_usable(uri, "kept")
    _downgrade_one_revision(db)
    assert _state(db) == "broken"
    inode = db.stat().st_ino
    ensure_store(uri)
    assert _state(db) == "complete"
    assert db.stat().st_ino != inode  # a migrated copy was renamed into place
    from mlflow import MlflowClient

    experiment = MlflowClient(uri).get_experiment_by_name("kept")
    assert experiment is not None
    assert len(MlflowClient(uri).search_runs([experiment.experiment_id])) == 1


def test_an_unknown_revision_with_data_is_refused(fresh_store: tuple[str, Path]) -> None:
    uri, db = fresh_store
    _assert_usable(uri, "kept")
    inode = db.stat().st_ino
    with contextlib.closing(sqlite3.connect(db)) as conn:  # e.g. made by a newer MLflow
        conn.execute("UPDATE alembic_version SET version_num = 'not-a-revision'")
        conn.commit()
    with pytest.raises(TrackingError, match="holds data"):
        ensure_store(uri)
    assert db.stat().st_ino == inode


def test_a_full_disk_while_creating_gives_one_clear_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from autotune.tracking import _store

    def disk_full(uri: str, artifact_root: str | None) -> None:
        Path(uri.removeprefix("sqlite:///")).write_bytes(b"partial")
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(_store, "_open_sql_store", disk_full)
    uri = default_tracking_uri(tmp_path / "study")
    with pytest.raises(TrackingError) as info:
        ensure_store(uri)
    db = tmp_path / "study" / "mlflow.db"
    assert str(info.value) == (
        f"{db}: cannot create the MLflow store (database or disk is full). Fix: free disk space "
        f"in {db.parent} or make it writable (or choose another output_dir), then start again."
    )
    assert sorted(p.name for p in db.parent.iterdir()) == ["mlflow.db.lock"]


def test_a_symlink_at_the_store_lock_is_refused_and_its_target_untouched(tmp_path: Path) -> None:
    target = tmp_path / "precious.txt"
    target.write_text("keep\n")
    (tmp_path / "study").mkdir()
    (tmp_path / "study" / "mlflow.db.lock").symlink_to(target)
    with pytest.raises(
        TrackingError, match=r"mlflow.db.lock: the lock file of .* is a symbolic link"
    ):
        ensure_store(default_tracking_uri(tmp_path / "study"))
    assert target.read_text() == "keep\n"
    assert not (tmp_path / "study" / "mlflow.db").exists()


def test_importing_tracking_imports_no_mlflow_or_matplotlib() -> None:
    code = (
        "import sys, autotune, autotune.tracking; "
        "print(sorted(m for m in ('mlflow', 'matplotlib', 'torch', 'botorch') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    assert out.stdout.strip() == "[]"
