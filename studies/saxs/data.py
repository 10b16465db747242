"""Labelled small-angle scattering curves from sasmodels, for the SAXS classifier study.

Each curve is one of :data:`MODELS` at random sizes (log-uniform), with Gaussian size
polydispersity where the model has one, a random scale, a flat background and
multiplicative noise, measured on a fixed log-spaced ``Q`` grid, then log-scaled and
standardised per curve (the class is in the shape, not in the absolute intensity). This
follows the NIST lecture that trained a CNN on sasmodels outputs.

Hand-written because no package ships such a data set: sasmodels computes each ``I(Q)``
(one C kernel call per curve, compiled with the system C compiler on first use and cached
by sasmodels in ``~/.sasmodels``); this module only draws the parameters, adds background
and noise, and caches the finished arrays as one ``.npz`` per size and seed (written
atomically, under a file lock so parallel trials generate it once).
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

MODELS: tuple[str, ...] = ("sphere", "cylinder", "core_shell_sphere", "ellipsoid", "lamellar", "mass_fractal")
"""The classes, in label order."""


@dataclass(frozen=True)
class CurveSpec:
    """How many curves to make and how they are measured.

    Attributes:
        n_per_class: Curves per model.
        n_q: Points of the log-spaced ``Q`` grid.
        q_min: Smallest ``Q`` (1/Angstrom).
        q_max: Largest ``Q`` (1/Angstrom).
        pd_n: Points of each polydispersity integral (sasmodels' ``*_pd_n``).
    """

    n_per_class: int
    n_q: int = 128
    q_min: float = 2e-3
    q_max: float = 0.5
    pd_n: int = 15


class CompilerMissingError(RuntimeError):
    """sasmodels cannot compile its model kernels: no C compiler on ``PATH``."""


def check_compiler() -> str:
    """The C compiler sasmodels will call (``$CC``, else ``cc``/``gcc``), or a clear error.

    Returns:
        The compiler's path.

    Raises:
        CompilerMissingError: None is installed.
    """
    names = [os.environ["CC"]] if os.environ.get("CC") else ["cc", "gcc"]
    for name in names:
        path = shutil.which(name)
        if path is not None:
            return path
    raise CompilerMissingError(
        f"sasmodels compiles each scattering model's C kernel on first use, but no C compiler "
        f"({' or '.join(names)}) is on PATH. Fix: install gcc (e.g. `apt-get install gcc`, "
        f"`conda install gcc`), or set CC to a C compiler."
    )


def q_grid(spec: CurveSpec) -> np.ndarray:
    """The measurement grid: `n_q` log-spaced ``Q`` values."""
    return np.logspace(math.log10(spec.q_min), math.log10(spec.q_max), spec.n_q)


def _loguniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _pd(rng: np.random.Generator, name: str, pd_n: int) -> dict[str, Any]:
    return {f"{name}_pd": float(rng.uniform(0.0, 0.25)), f"{name}_pd_n": pd_n, f"{name}_pd_type": "gaussian"}


def _sphere(rng: np.random.Generator, pd_n: int) -> dict[str, Any]:
    return {"radius": _loguniform(rng, 10, 300), **_pd(rng, "radius", pd_n)}


def _cylinder(rng: np.random.Generator, pd_n: int) -> dict[str, Any]:
    return {"radius": _loguniform(rng, 10, 100), "length": _loguniform(rng, 100, 1000), **_pd(rng, "radius", pd_n)}


def _core_shell_sphere(rng: np.random.Generator, pd_n: int) -> dict[str, Any]:
    return {
        "radius": _loguniform(rng, 20, 200), "thickness": _loguniform(rng, 5, 50),
        "sld_core": float(rng.uniform(0.0, 2.0)), "sld_shell": float(rng.uniform(3.0, 6.0)),
        "sld_solvent": float(rng.uniform(0.0, 2.0)), **_pd(rng, "radius", pd_n),
    }


def _ellipsoid(rng: np.random.Generator, pd_n: int) -> dict[str, Any]:
    equatorial = _loguniform(rng, 10, 200)
    aspect = _loguniform(rng, 2.0, 6.0) ** (1 if rng.random() < 0.5 else -1)  # prolate or oblate, never a sphere
    return {"radius_equatorial": equatorial, "radius_polar": equatorial * aspect,
            **_pd(rng, "radius_equatorial", pd_n)}


def _lamellar(rng: np.random.Generator, pd_n: int) -> dict[str, Any]:
    return {"thickness": _loguniform(rng, 10, 200), **_pd(rng, "thickness", pd_n)}


def _mass_fractal(rng: np.random.Generator, pd_n: int) -> dict[str, Any]:
    return {"radius": _loguniform(rng, 5, 50), "fractal_dim_mass": float(rng.uniform(1.5, 2.9)),
            "cutoff_length": _loguniform(rng, 100, 2000)}


_DRAW: Mapping[str, Callable[[np.random.Generator, int], dict[str, Any]]] = {
    "sphere": _sphere, "cylinder": _cylinder, "core_shell_sphere": _core_shell_sphere,
    "ellipsoid": _ellipsoid, "lamellar": _lamellar, "mass_fractal": _mass_fractal,
}


def generate(spec: CurveSpec, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labelled, log-scaled, standardised curves.

    Args:
        spec: Sizes and grid.
        seed: Fixes every random draw.

    Returns:
        `N x n_q` float32 inputs (``log10 I``, standardised per curve) and `N` int64 labels
        (indices into :data:`MODELS`), classes interleaved, ``N = 6 n_per_class``.

    Raises:
        CompilerMissingError: No C compiler for sasmodels.
    """
    check_compiler()
    from sasmodels.core import load_model
    from sasmodels.direct_model import call_kernel

    q = q_grid(spec)
    rng = np.random.default_rng(seed)
    kernels = {name: load_model(name).make_kernel([q]) for name in MODELS}
    x = np.empty((spec.n_per_class * len(MODELS), spec.n_q), dtype=np.float32)
    y = np.empty(len(x), dtype=np.int64)
    for i in range(len(x)):
        label = i % len(MODELS)
        name = MODELS[label]
        intensity = np.asarray(call_kernel(kernels[name], _DRAW[name](rng, spec.pd_n)), dtype=np.float64)
        x[i] = measure(intensity, rng)
        y[i] = label
    for kernel in kernels.values():
        kernel.release()
    return x, y


def measure(intensity: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """What an instrument records of a model curve, log-scaled and standardised.

    ``scale * I + background`` with a log-uniform scale, a background 1e-5 to 1e-2 of the
    forward intensity and 1 to 10 % multiplicative Gaussian noise; then ``log10`` and per-curve
    standardisation.

    Args:
        intensity: A `n_q` model curve.
        rng: The random source.

    Returns:
        A `n_q` float32 curve.
    """
    scale = _loguniform(rng, 1e-3, 1e3)
    observed = scale * intensity
    observed = observed + observed.max() * _loguniform(rng, 1e-5, 1e-2)
    observed = observed * (1.0 + rng.uniform(0.01, 0.1) * rng.standard_normal(observed.shape))
    logged = np.log10(np.clip(observed, observed.max() * 1e-9, None))
    return ((logged - logged.mean()) / max(float(logged.std()), 1e-12)).astype(np.float32)


def cached(spec: CurveSpec, seed: int, cache_dir: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`generate`, read from ``cache_dir`` when an earlier call made it.

    The file name holds every setting, so a changed spec or seed never reads stale data.

    Args:
        spec: Sizes and grid.
        seed: The seed.
        cache_dir: The folder of the ``.npz`` files (created).

    Returns:
        As :func:`generate`.
    """
    folder = Path(cache_dir)
    folder.mkdir(parents=True, exist_ok=True)
    key = "-".join(f"{k}{v:g}" if isinstance(v, float) else f"{k}{v}" for k, v in asdict(spec).items())
    path = folder / f"saxs-{key}-seed{seed}.npz"
    with _locked(folder / (path.name + ".lock")):
        if not path.is_file():
            x, y = generate(spec, seed)
            fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npz.tmp")
            with os.fdopen(fd, "wb") as file:
                np.savez(file, x=x, y=y)
            os.replace(tmp, path)
    with np.load(path) as data:
        return data["x"], data["y"]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive (blocking) lock on ``path``, so parallel trials generate a data set once."""
    try:
        import fcntl
    except ImportError:  # not POSIX: both may generate; os.replace keeps the file whole
        yield
        return
    with open(path, "a+", encoding="utf-8") as file:
        fcntl.flock(file, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file, fcntl.LOCK_UN)
