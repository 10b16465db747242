"""Where the MLflow record lives: the default store of a study and its one-time set-up.

The driver calls :func:`ensure_store` once, before any worker starts, so that no two
processes ever race to create or migrate the same database.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from autotune.exceptions import TrackingError

_DB_FILENAME = "mlflow.db"
_ARTIFACTS_DIRNAME = "mlartifacts"
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_HEALTH_TIMEOUT_S = 10.0


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


def ensure_store(tracking_uri: str) -> None:
    """Create or migrate the tracking store; call it once in the driver before workers start.

    * SQL databases (``sqlite``, ``postgresql``, ``mysql``, ``mssql``): the parent directory
      of a SQLite file is created, the MLflow tables are created on an empty database and
      an out-of-date schema is migrated to this MLflow version.
    * ``http(s)`` tracking servers: the server's ``/health`` endpoint must answer.
    * ``file`` stores and plain paths: the directory is created.

    Args:
        tracking_uri: An MLflow tracking URI.

    Raises:
        TrackingError: The store cannot be reached, created or migrated.
    """
    scheme = urlsplit(tracking_uri).scheme.split("+", 1)[0]
    if scheme in _SQL_SCHEMES:
        _ensure_sql_store(tracking_uri)
    elif scheme in ("http", "https"):
        _check_server(tracking_uri)
    elif scheme in ("", "file"):
        path = tracking_uri.removeprefix("file://") if scheme == "file" else tracking_uri
        Path(path).mkdir(parents=True, exist_ok=True)
    # Other schemes (databricks, plugins) manage their own stores.


def _ensure_sql_store(tracking_uri: str) -> None:
    # MLflow has no public "create or upgrade" call; these (untyped) helpers back
    # `mlflow db upgrade` and the tracking server's start-up, with the same names since 1.x.
    from mlflow.store.db import utils

    db_utils: Any = utils

    db = sqlite_path(tracking_uri)
    if db is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = db_utils.create_sqlalchemy_engine_with_retry(tracking_uri)
    except Exception as exc:
        raise TrackingError(
            f"{tracking_uri}: the tracking database cannot be opened ({exc}). "
            "Fix: check the URI, the database server and your permissions."
        ) from exc
    try:
        if not db_utils._all_tables_exist(engine):
            db_utils._initialize_tables(engine)
        elif db_utils._get_schema_version(engine) != db_utils._get_latest_schema_revision():
            db_utils._upgrade_db(engine)
    except Exception as exc:
        raise TrackingError(
            f"{tracking_uri}: the MLflow tables cannot be created or migrated ({exc}). "
            f"Fix: back up the database and run `mlflow db upgrade {tracking_uri}`."
        ) from exc
    finally:
        engine.dispose()


def _check_server(tracking_uri: str) -> None:
    url = tracking_uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=_HEALTH_TIMEOUT_S) as response:
            status = response.status
    except (urllib.error.URLError, OSError) as exc:
        raise TrackingError(
            f"{tracking_uri}: the MLflow tracking server does not answer at {url} ({exc}). "
            "Fix: start it (`mlflow server --host 127.0.0.1 --port 5000`) or correct the URI."
        ) from exc
    if status != 200:
        raise TrackingError(
            f"{tracking_uri}: the MLflow tracking server is unhealthy ({url} answered {status}). "
            "Fix: look at the server's log."
        )
