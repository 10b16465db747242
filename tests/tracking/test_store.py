"""The default store of a study and its one-time creation or migration."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest

from autotune.exceptions import TrackingError
from autotune.tracking import default_tracking_uri, ensure_store
from autotune.tracking._store import default_artifact_location, sqlite_path


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
