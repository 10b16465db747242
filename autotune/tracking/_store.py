"""Where the MLflow record lives: the default store of a study and its one-time set-up.

The driver calls :func:`ensure_store` once, before any worker starts. Creating or migrating a
SQLite store is atomic and serialised across processes: under an exclusive lock beside the
database (``mlflow.db.lock``) a temporary copy in the same directory is created or migrated
and then renamed over ``mlflow.db``, so a process killed at any moment leaves either no store
or a complete one, and any number of drivers may first-start one store at once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import sqlite3
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from autotune.exceptions import TrackingError
from autotune.tracking._lock import hold_lock, user_lock_dir

_DB_FILENAME = "mlflow.db"
_ARTIFACTS_DIRNAME = "mlartifacts"
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_HEALTH_TIMEOUT_S = 3.0
_STORE_LOCK_TIMEOUT_S = 600.0
# Rows a freshly created store holds; any other row is data that must never be deleted.
_SEED_TABLES = frozenset({"alembic_version", "workspaces", "experiments"})


def default_tracking_uri(output_dir: str | Path) -> str:
    """The SQLite store of a study: ``mlflow.db`` in the study's output directory.

    Args:
        output_dir: The study output directory (relative paths are resolved against the
            current directory, so the URI stays valid if the driver changes directory).

    Returns:
        An absolute SQLAlchemy URI, e.g. ``sqlite:////abs/runs/solubility/mlflow.db``.
    """
    return "sqlite:///" + (Path(output_dir).resolve() / _DB_FILENAME).as_posix()


def sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI, or ``None`` for any other store.

    Args:
        tracking_uri: An MLflow tracking URI.

    Returns:
        The path of the database file (relative if the URI is), or ``None`` for other
        schemes and for in-memory databases.
    """
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


def default_artifact_location(tracking_uri: str) -> str | None:
    """Where a new experiment stores its artifacts when none is given.

    MLflow's own default for a database store is ``./mlruns`` under the *current*
    directory; for SQLite autotune keeps artifacts beside the database instead, so a study
    directory is self-contained and can be moved or served with ``mlflow ui``.

    Args:
        tracking_uri: An MLflow tracking URI.

    Returns:
        A ``file://`` URI of ``mlartifacts/`` next to the SQLite file, or ``None`` to let
        MLflow (or the tracking server) decide.
    """
    db = sqlite_path(tracking_uri)
    return (db.resolve().parent / _ARTIFACTS_DIRNAME).as_uri() if db is not None else None


def ensure_store(tracking_uri: str, *, lock_timeout_s: float = _STORE_LOCK_TIMEOUT_S) -> None:
    """Create or migrate the tracking store; call it once in the driver before workers start.

    * SQLite (``sqlite:///path``): under an exclusive lock beside the file
      (``<db>.lock``, ``flock``, opened with ``O_NOFOLLOW``), a store that is absent or not at
      this MLflow's schema revision is built in a temporary file in the same directory (a
      fresh store, or a migrated copy of the old one) and renamed over the database
      (``os.replace``, fsynced). A store an older autotune left half-made when it was killed
      is rebuilt if it holds no data (no runs, no experiment but ``Default``), and refused
      otherwise; data is never deleted. A store at the current revision is left untouched.
      Every process that may create the store must go through this function.
    * Other SQL databases (``postgresql``, ``mysql``, ``mssql``): created or migrated in
      place, as ``mlflow db upgrade`` does, serialised only among processes of this machine
      (a lock in :func:`~autotune.tracking.user_lock_dir`). Back up before upgrading MLflow.
    * ``http(s)`` tracking servers: the server's ``/health`` endpoint must answer within
      3 seconds.
    * ``file`` stores and plain paths: the directory is created.

    Args:
        tracking_uri: An MLflow tracking URI.
        lock_timeout_s: How long to wait for another process creating the same store.

    Raises:
        TrackingError: The store cannot be reached, created or migrated, holds data at an
            unusable schema, or is an in-memory database (which loses the record).
    """
    scheme = urlsplit(tracking_uri).scheme.split("+", 1)[0]
    if scheme == "sqlite":
        db = sqlite_path(tracking_uri)
        if db is None:
            raise TrackingError(
                f"{tracking_uri}: an in-memory (or path-less) SQLite store loses the record when "
                "the process exits. Fix: use a file, e.g. sqlite:////abs/path/mlflow.db, or "
                "leave tracking_uri unset for mlflow.db in the output directory."
            )
        _ensure_sqlite_store(tracking_uri, db, lock_timeout_s)
    elif scheme in _SQL_SCHEMES:
        _ensure_sql_server_store(tracking_uri, lock_timeout_s)
    elif scheme in ("http", "https"):
        check_tracking_server(tracking_uri)
    elif scheme in ("", "file"):
        path = urlsplit(tracking_uri).path if scheme == "file" else tracking_uri
        Path(path).mkdir(parents=True, exist_ok=True)
    # Other schemes (databricks, plugins) manage their own stores.


def check_tracking_server(tracking_uri: str, timeout_s: float = _HEALTH_TIMEOUT_S) -> None:
    """Fail fast, naming the URI and the fix, if an ``http(s)`` tracking server does not answer.

    One ``GET /health`` with a short connect and read timeout and no retries (MLflow's own
    client retries for minutes). Other URIs are not checked. Commands that only read a
    record (``status``) should call this before their first MLflow call.

    Args:
        tracking_uri: An MLflow tracking URI.
        timeout_s: The connect and read timeout, in seconds.

    Raises:
        TrackingError: The server does not answer, or answers with an error.
    """
    if urlsplit(tracking_uri).scheme not in ("http", "https"):
        return
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise TrackingError(
            f"{tracking_uri}: the MLflow tracking server does not answer at {url} "
            f"within {timeout_s:g} s ({reason}). Fix: start it (`mlflow server --host "
            "127.0.0.1 --port 5000`), check the network, or correct tracking_uri."
        ) from None
    if status != 200:
        raise TrackingError(
            f"{tracking_uri}: the MLflow tracking server is unhealthy ({url} answered {status}). "
            "Fix: look at the server's log."
        )


# -- SQLite ----------------------------------------------------------------------------------


def _ensure_sqlite_store(tracking_uri: str, db: Path, lock_timeout_s: float) -> None:
    db = db.resolve()  # rename over the real file, never over a symbolic link to it
    try:
        db.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrackingError(
            f"{tracking_uri}: cannot create the store's directory {db.parent} ({exc.strerror}). "
            "Fix: choose a writable output_dir or tracking_uri."
        ) from exc
    lock = db.with_name(db.name + ".lock")
    with hold_lock(lock, f"{tracking_uri}: the store", blocking=True, timeout_s=lock_timeout_s):
        _remove_leftover_temps(db)
        state = _sqlite_state(db)
        if state == "current":
            return
        if state == "fresh":
            _create_sqlite_store(tracking_uri, db)
            return
        try:  # an older schema: migrate a copy
            _build_sqlite_store(tracking_uri, db, copy_of=db)
        except Exception as exc:
            runs, other = _count_data(db)
            if runs or other:
                raise TrackingError(
                    f"{db}: the MLflow store cannot be migrated to this MLflow's schema "
                    f"({type(exc).__name__}: {_first_line(exc)}) and it holds data ({runs} runs, "
                    f"{other} other rows), so autotune leaves it untouched. Fix: back it up "
                    f"(`cp {db} {db}.bak`) and run `mlflow db upgrade sqlite:///{db}`, or "
                    "move it away to start a new store."
                ) from exc
            # half-made by a process killed while creating it (older autotune): no data, rebuild
            _create_sqlite_store(tracking_uri, db)


def _create_sqlite_store(tracking_uri: str, db: Path) -> None:
    """A new store renamed over ``db``; a failure (disk full, read-only) leaves ``db`` as it was."""
    try:
        _build_sqlite_store(tracking_uri, db, copy_of=None)
    except Exception as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else _first_line(exc)
        raise TrackingError(
            f"{db}: cannot create the MLflow store ({reason}). Fix: free disk space in "
            f"{db.parent} or make it writable (or choose another output_dir), then start again."
        ) from exc


def _sqlite_state(db: Path) -> str:
    """``fresh`` (absent or empty), ``current`` (at head), or ``other`` (older or half-made)."""
    if not db.exists() or db.stat().st_size == 0:
        return "fresh"
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=60.0)) as conn:
            tables = {
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
            if not tables - {"alembic_version"}:
                return "fresh"
            if "alembic_version" not in tables:
                return "other"
            revisions = [row[0] for row in conn.execute("SELECT version_num FROM alembic_version")]
    except sqlite3.DatabaseError as exc:
        raise TrackingError(
            f"{db}: is not a readable SQLite database ({exc}); autotune leaves it untouched. "
            "Fix: move it away (or point tracking_uri elsewhere) to start a new store."
        ) from exc
    current = revisions == [_head_revision()] and {"experiments", "runs"} <= tables
    return "current" if current else "other"


def _count_data(db: Path) -> tuple[int, int]:
    """``(runs, other rows)`` of a store: rows a freshly created store does not hold."""
    try:
        with contextlib.closing(sqlite3.connect(db, timeout=60.0)) as conn:
            tables = [
                row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            runs = other = 0
            for table in tables:
                if table in _SEED_TABLES - {"experiments"}:
                    continue
                sql = f'SELECT COUNT(*) FROM "{table}"'
                if table == "experiments":
                    sql += " WHERE experiment_id <> 0"
                n = int(conn.execute(sql).fetchone()[0])
                if table == "runs":
                    runs = n
                else:
                    other += n
            return runs, other
    except sqlite3.DatabaseError:
        return 0, 1  # unreadable: count it as data, never delete it


def _build_sqlite_store(tracking_uri: str, db: Path, copy_of: Path | None) -> None:
    """Create (or migrate a copy of ``copy_of``) in a temporary file, then rename it over ``db``."""
    tmp = db.with_name(f".{db.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    try:
        if copy_of is not None:
            with (
                contextlib.closing(sqlite3.connect(copy_of, timeout=60.0)) as src,
                contextlib.closing(sqlite3.connect(tmp)) as dst,
            ):
                src.backup(dst)
        tmp_uri = "sqlite:///" + tmp.as_posix()
        if copy_of is not None:
            _mlflow_db_upgrade(tmp_uri)
        _open_sql_store(tmp_uri, default_artifact_location(tracking_uri))
        _fsync_path(tmp)
        os.replace(tmp, db)
        _fsync_path(db.parent)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


def _remove_leftover_temps(db: Path) -> None:
    """Temporary stores of creators that were killed (the store lock is held: none is running)."""
    for leftover in db.parent.glob(f".{db.name}.tmp-*"):
        with contextlib.suppress(OSError):
            leftover.unlink()


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- database servers ------------------------------------------------------------------------


def _ensure_sql_server_store(tracking_uri: str, lock_timeout_s: float) -> None:
    import hashlib

    import sqlalchemy
    from alembic.runtime.migration import MigrationContext

    digest = hashlib.sha256(tracking_uri.encode()).hexdigest()[:16]
    lock = user_lock_dir() / f"store-{digest}.lock"
    where = f"{urlsplit(tracking_uri).scheme}://{urlsplit(tracking_uri).hostname}: the store"
    with hold_lock(lock, where, blocking=True, timeout_s=lock_timeout_s, private_dir=True):
        engine = sqlalchemy.create_engine(tracking_uri)
        try:
            with engine.connect() as conn:
                revision = MigrationContext.configure(conn).get_current_revision()
                tables = set(sqlalchemy.inspect(conn).get_table_names())
        except Exception as exc:
            raise TrackingError(
                f"{where}: the tracking database cannot be opened ({_first_line(exc)}). "
                "Fix: check the URI, the database server and your permissions."
            ) from exc
        finally:
            engine.dispose()
        if revision == _head_revision() and "runs" in tables:
            return
        try:  # in place: a database server cannot be copied and renamed
            _mlflow_db_upgrade(tracking_uri)
        except Exception as exc:
            raise TrackingError(
                f"{where}: the MLflow tables cannot be created or migrated ({_first_line(exc)}). "
                "Fix: back up the database and run `mlflow db upgrade <tracking_uri>`."
            ) from exc


# -- the MLflow calls (public API only) -------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _head_revision() -> str:
    """The newest schema revision this MLflow knows.

    Read with alembic's public API from the migration scripts MLflow ships
    (``mlflow/store/db_migrations``); MLflow's own helper for it is private.
    """
    import mlflow.store
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory(str(Path(mlflow.store.__file__).parent / "db_migrations")).get_heads()
    if len(heads) != 1:
        raise TrackingError(
            f"this MLflow installation ships {len(heads)} schema heads ({heads}), expected one. "
            "Fix: reinstall mlflow."
        )
    return str(heads[0])


def _mlflow_db_upgrade(uri: str) -> None:
    """``mlflow db upgrade <uri>``, in this process: creates an empty database's tables too."""
    from mlflow.db import upgrade

    upgrade.main(args=[uri], prog_name="mlflow db upgrade", standalone_mode=False)


def _open_sql_store(uri: str, artifact_root: str | None) -> None:
    """Open the store as MLflow does: it creates missing tables and the Default experiment."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(uri, artifact_root or "./mlruns")
    store.engine.dispose()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__
