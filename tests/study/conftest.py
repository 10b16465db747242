"""Fixtures of the study tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.study.helpers import write_study


@pytest.fixture
def toy_study(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> Callable[..., Path]:
    """Write a toy study file (with overrides) under ``tmp_path`` and pre-create its store."""

    def make(**overrides: object) -> Path:
        return write_study(tmp_path, mlflow_store_factory, **overrides)

    return make
