"""Loading a study's own modules in the tests (each study folder is self-contained, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

STUDIES = Path(__file__).resolve().parents[2] / "studies"


def load_study_module(study: str, name: str) -> ModuleType:
    """``studies/<study>/<name>.py``, imported once under ``autotune_studies_<study>_<name>``.

    Every study has a ``train.py``, so each module gets a name of its own; it is the name the
    studies use when one of their modules imports a sibling, so the tests and the study share
    one module object. It is registered in ``sys.modules`` before it runs (dataclasses look
    their module up there).
    """
    key = f"autotune_studies_{study}_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, STUDIES / study / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def run_smoke_study(study: str, output_dir: Path, store_factory: Callable[[Path], str]) -> tuple[Any, Any, list[Any]]:
    """Run ``studies/<study>/smoke.yaml`` into ``output_dir`` (a migrated store made first).

    Returns:
        The study's summary, a tracker on its record, and its trials as read back from MLflow.
    """
    from autotune.study import Study
    from autotune.tracking import MlflowTracker

    smoke = Study.from_file(STUDIES / study / "smoke.yaml", overrides={"output_dir": str(output_dir)})
    store_factory(output_dir)
    summary = smoke.optimize(progress=False)
    tracker = MlflowTracker(smoke.config.resolved_tracking_uri, smoke.config.name)
    tracker.find_study()
    return summary, tracker, tracker.load_trials()
