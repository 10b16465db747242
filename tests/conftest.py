"""Fixtures shared by every test folder, and the ``long`` marker.

Tests marked ``long`` are the full sizes of fault-injection and measurement tests (minutes
each); they are skipped unless ``AUTOTUNE_LONG=1``, so the README's test command (and CI) runs
their short sizes only. ``slow`` tests (seconds to a minute) always run.

MLflow stores: migrating a fresh MLflow database takes seconds, so one template store is
migrated per test session and each test gets a copy of the file::

    def test_something(mlflow_sqlite_uri):
        tracker = MlflowTracker(mlflow_sqlite_uri, "my-study")
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

LONG = os.environ.get("AUTOTUNE_LONG", "") not in ("", "0")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the ``long`` tests unless ``AUTOTUNE_LONG=1``."""
    if LONG:
        return
    skip = pytest.mark.skip(reason="long size: run with AUTOTUNE_LONG=1")
    for item in items:
        if item.get_closest_marker("long") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def mlflow_template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated MLflow SQLite database, created once per test session; do not write to it."""
    from autotune.tracking import ensure_store

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    ensure_store(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def mlflow_store_factory(mlflow_template_db: Path) -> Callable[[Path], str]:
    """Make fresh migrated SQLite stores: ``uri = mlflow_store_factory(directory)``.

    The returned function copies the template to ``directory/mlflow.db`` (creating the
    directory) and returns the copy's absolute ``sqlite:///`` tracking URI.
    """

    def make(directory: Path) -> str:
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / "mlflow.db"
        shutil.copyfile(mlflow_template_db, target)
        return f"sqlite:///{target.resolve().as_posix()}"

    return make


@pytest.fixture
def mlflow_sqlite_uri(mlflow_store_factory: Callable[[Path], str], tmp_path: Path) -> str:
    """A fresh, migrated MLflow SQLite store of this test's own (under ``tmp_path/mlruns``)."""
    return mlflow_store_factory(tmp_path / "mlruns")
