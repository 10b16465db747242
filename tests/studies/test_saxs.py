"""The SAXS classifier study: sasmodels curves, the compiler check, and the smoke study end to end."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from tests.studies.helpers import STUDIES, load_study_module

STUDY_DIR = STUDIES / "saxs"


def _load(name: str) -> ModuleType:
    return load_study_module("saxs", name)


@pytest.fixture(scope="module")
def data() -> ModuleType:
    return _load("data")


def test_curves_have_balanced_labels_and_are_log_scaled(data: ModuleType) -> None:
    spec = data.CurveSpec(n_per_class=5, n_q=64)
    x, y = data.generate(spec, seed=3)
    assert x.shape == (30, 64) and x.dtype == np.float32
    assert np.bincount(y, minlength=6).tolist() == [5] * 6
    assert np.allclose(x.mean(1), 0.0, atol=1e-4) and np.allclose(x.std(1), 1.0, atol=1e-3)  # standardised per curve
    # log scale: a sphere's curve falls by decades, so its standardised log has no huge outliers,
    # while the raw intensities span orders of magnitude.
    assert np.abs(x).max() < 6
    q = data.q_grid(spec)
    assert q[0] == pytest.approx(spec.q_min) and q[-1] == pytest.approx(spec.q_max)
    assert np.all(np.diff(np.log(q)) == pytest.approx(np.log(q[1] / q[0])))
    x2, y2 = data.generate(spec, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)  # the seed fixes the data set
    x3, _ = data.generate(spec, seed=4)
    assert not np.array_equal(x, x3)


def test_measure_is_log_scaled_and_blind_to_the_absolute_intensity(data: ModuleType) -> None:
    q = np.logspace(-2, -0.5, 50)
    intensity = 1e4 * (q / q[0]) ** -4.0  # Porod decay: 6 decades
    curve = data.measure(intensity, np.random.default_rng(0))
    assert curve[:10].mean() > 1.0 > -1.0 > curve[-10:].mean()  # decays with Q
    same = data.measure(1e6 * intensity, np.random.default_rng(0))
    assert np.allclose(curve, same, atol=1e-4)  # log then standardised: the absolute scale is gone
    other = data.measure(intensity, np.random.default_rng(1))
    assert not np.allclose(curve, other, atol=1e-3)  # scale, background and noise are random


def test_cache_writes_once_and_reads_back(data: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = data.CurveSpec(n_per_class=2, n_q=32)
    x, y = data.cached(spec, 0, tmp_path)
    files = list(tmp_path.glob("*.npz"))
    assert len(files) == 1 and not list(tmp_path.glob("*.tmp"))

    def fail(*args: object) -> None:
        raise AssertionError("generated again")

    monkeypatch.setattr(data, "generate", fail)
    x2, y2 = data.cached(spec, 0, tmp_path)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_missing_compiler_is_a_clear_error(data: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CC", raising=False)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(data.CompilerMissingError, match=r"no C compiler \(cc or gcc\).*Fix: install gcc"):
        data.generate(data.CurveSpec(n_per_class=1), seed=0)


def test_smoke_study_end_to_end(tmp_path: Path, mlflow_store_factory: Callable[[Path], str]) -> None:
    from autotune.study import Study
    from autotune.trial import TrialState

    out = tmp_path / "out"
    mlflow_store_factory(out)  # a migrated store where the study's default tracking_uri points
    study = Study.from_file(STUDY_DIR / "smoke.yaml", overrides={"output_dir": str(out)})
    assert study.config.cost_metric == "train_seconds" and study.config.strategy.name == "ei_per_cost"
    summary = study.optimize(progress=False)
    assert summary.counts[TrialState.COMPLETED.value] == 3, summary
    assert list((out / "data").glob("*.npz"))  # the data set was generated once, in the output dir
    trials = study.record.trials()
    assert trials
    for trial in trials:
        assert trial.metrics["train_seconds"] > 0  # the cost the strategy models
        assert 0.0 <= trial.metrics["val_accuracy"] <= 1.0
        assert {"n_conv", "channels_1", "kernel_size", "pool", "dropout", "lr"} <= set(trial.params)
    assert summary.best is not None and summary.best.value == max(t.metrics["val_accuracy"] for t in trials)
    # the third trial came from the cost-sensitive strategy (two initial Sobol points)
    assert trials[-1].tags["autotune.strategy"] == "ei_per_cost"
