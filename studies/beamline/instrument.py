"""A simulated SAXS beamline: a 2-D sample, motors that take time, noisy sasmodels curves.

After Noack et al. (2019), "A Kriging-based approach to autonomous experimentation with
applications to X-ray scattering" (Sci. Rep. 9, 11809). The sample on ``[0, 1]^2`` holds
spheres whose radius varies smoothly with position, plus one narrow feature (a small bump
of much larger particles) and a volume fraction gradient. A measurement at ``(x, y)``:

1. moves the stage there: ``distance / speed`` seconds (both motors move together);
2. exposes for ``exposure_s`` seconds: sasmodels' ``sphere`` ``I(Q)`` at the local radius
   and volume fraction, plus background, with multiplicative Gaussian noise;
3. reduces the curve to the quantity of interest: the sphere radius, fitted by weighted
   least squares of ``a P_r(Q) + b`` over a fine grid of radii (parabolic refinement).

Hand-written because it is the experiment itself; sasmodels computes every curve. Use::

    beamline = Beamline(seed=0)
    m = beamline.measure(0.3, 0.7)      # m.radius (Angstrom), m.instrument_s, beamline.clock_s
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

FEATURE_CENTRE = (0.72, 0.31)
"""Where the narrow feature sits."""
FEATURE_WIDTH = 0.035
"""Its Gaussian width (fraction of the sample)."""
FEATURE_RADIUS = 0.06
"""A measurement closer than this to the centre is *inside* the feature (the bump adds > 9 Angstrom)."""


class CompilerMissingError(RuntimeError):
    """sasmodels cannot compile its model kernels: no C compiler on ``PATH``."""


def check_compiler() -> str:
    """The C compiler sasmodels will call (``$CC``, else ``cc``/``gcc``), or a clear error.

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
        f"({' or '.join(names)}) is on PATH. Fix: install gcc (e.g. `apt-get install gcc`), or set CC."
    )


def true_radius(x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
    """The sample's sphere radius (Angstrom) at ``(x, y)``: smooth field plus the narrow feature."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    smooth = 50.0 + 12.0 * np.sin(math.pi * (1.3 * x + 0.4)) * np.cos(math.pi * (0.9 * y - 0.2)) + 8.0 * x * y
    d2 = (x - FEATURE_CENTRE[0]) ** 2 + (y - FEATURE_CENTRE[1]) ** 2
    return smooth + 40.0 * np.exp(-d2 / (2 * FEATURE_WIDTH**2))


def volume_fraction(x: np.ndarray | float, y: np.ndarray | float) -> np.ndarray:
    """The sphere volume fraction at ``(x, y)`` (a gradient along ``y``)."""
    return 0.02 + 0.08 * np.asarray(y, dtype=float) + 0.0 * np.asarray(x, dtype=float)


def in_feature(x: float, y: float) -> bool:
    """Whether ``(x, y)`` lies inside the narrow feature."""
    return math.hypot(x - FEATURE_CENTRE[0], y - FEATURE_CENTRE[1]) < FEATURE_RADIUS


@dataclass(frozen=True)
class Measurement:
    """One measurement.

    Attributes:
        x: Where (fraction of the sample).
        y: Where.
        radius: The fitted sphere radius (Angstrom): the quantity of interest.
        move_s: Motor time to get there.
        instrument_s: Motor plus exposure time of this measurement.
        clock_s: The instrument clock after it.
    """

    x: float
    y: float
    radius: float
    move_s: float
    instrument_s: float
    clock_s: float

    def metrics(self) -> dict[str, float]:
        """The final metrics of the trial (for ``tell``)."""
        return {"radius": self.radius, "move_s": self.move_s, "instrument_s": self.instrument_s,
                "clock_s": self.clock_s}


class Beamline:
    """The simulated instrument: a stage position, a clock, and a detector.

    Args:
        exposure_s: Fixed time of each exposure.
        speed: Stage speed (sample widths per second).
        noise: Relative (multiplicative, Gaussian) noise of each intensity.
        seed: The noise.
        start: Where the stage starts.
        n_q: Points of the ``Q`` grid (``0.005`` to ``0.3`` 1/Angstrom, log-spaced).
    """

    def __init__(self, exposure_s: float = 2.0, speed: float = 0.05, noise: float = 0.25, seed: int = 0,
                 start: tuple[float, float] = (0.0, 0.0), n_q: int = 100) -> None:
        if exposure_s < 0 or speed <= 0 or noise < 0:
            raise ValueError(f"Beamline needs exposure_s >= 0, speed > 0 and noise >= 0; got exposure_s="
                             f"{exposure_s}, speed={speed}, noise={noise}")
        self.exposure_s = float(exposure_s)
        self.speed = float(speed)
        self.noise = float(noise)
        self.rng = np.random.default_rng(seed)
        self.position = (float(start[0]), float(start[1]))
        self.clock_s = 0.0
        self.q = np.logspace(math.log10(0.005), math.log10(0.3), n_q)
        check_compiler()
        from sasmodels.core import load_model

        self._kernel: Any = load_model("sphere").make_kernel([self.q])
        self._radii = np.arange(10.0, 160.0, 0.25)
        self._templates = np.stack([self._model(r, 1.0, 0.0) for r in self._radii])  # radii x n_q

    def _model(self, radius: float, scale: float, background: float) -> np.ndarray:
        from sasmodels.direct_model import call_kernel

        pars: Mapping[str, float] = {"radius": radius, "scale": scale, "background": background}
        return np.asarray(call_kernel(self._kernel, pars), dtype=float)

    def move_time(self, x: float, y: float) -> float:
        """Seconds the stage needs from where it stands to ``(x, y)``."""
        return math.hypot(x - self.position[0], y - self.position[1]) / self.speed

    def cost(self, x: float, y: float) -> float:
        """Instrument seconds a measurement at ``(x, y)`` takes from here: move plus exposure."""
        return self.move_time(x, y) + self.exposure_s

    def curve(self, x: float, y: float) -> np.ndarray:
        """A noisy ``I(Q)`` at ``(x, y)`` (no move, no clock)."""
        radius = float(true_radius(x, y))
        intensity = self._model(radius, float(volume_fraction(x, y)), 0.001)
        return intensity * (1.0 + self.noise * self.rng.standard_normal(intensity.shape))

    def fit_radius(self, intensity: np.ndarray) -> float:
        """The sphere radius of a curve: weighted least squares of ``a P_r + b`` over the radius grid.

        Args:
            intensity: A `n_q` curve.

        Returns:
            The radius (Angstrom), refined between grid points by a parabola through the best three.
        """
        # Relative errors, taken from a running median so that one low noisy point gets no huge weight.
        padded = np.pad(np.abs(intensity), 3, mode="edge")
        level = np.median(np.lib.stride_tricks.sliding_window_view(padded, 7), axis=1)
        w = 1.0 / np.clip(level, 1e-12, None)
        t = self._templates * w  # radii x n_q (a column)
        one = np.broadcast_to(w, t.shape)  # (b column)
        yw = intensity * w
        s_tt, s_t1, s_11 = (t * t).sum(1), (t * one).sum(1), (one * one).sum(1)
        s_ty, s_1y = (t * yw).sum(1), (one * yw).sum(1)
        det = s_tt * s_11 - s_t1**2
        a = (s_ty * s_11 - s_t1 * s_1y) / det
        b = (s_tt * s_1y - s_t1 * s_ty) / det
        chi2 = ((a[:, None] * t + b[:, None] * one - yw) ** 2).sum(1)
        chi2[a <= 0] = np.inf  # a negative amount of scatterers is no fit
        k = int(np.argmin(chi2))
        if 0 < k < len(chi2) - 1:
            c0, c1, c2 = chi2[k - 1], chi2[k], chi2[k + 1]
            denom = c0 - 2 * c1 + c2
            if denom > 0:
                step = float(self._radii[1] - self._radii[0])
                return float(self._radii[k] + 0.5 * step * (c0 - c2) / denom)
        return float(self._radii[k])

    def measure(self, x: float, y: float) -> Measurement:
        """Move to ``(x, y)``, expose, reduce; the clock advances by the move and the exposure."""
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(f"Beamline.measure: ({x}, {y}) is off the sample; use 0 <= x, y <= 1")
        move_s = self.move_time(x, y)
        self.position = (float(x), float(y))
        self.clock_s += move_s + self.exposure_s
        radius = self.fit_radius(self.curve(x, y))
        return Measurement(float(x), float(y), radius, move_s, move_s + self.exposure_s, self.clock_s)


def measure_trial(params: Mapping[str, Any], report: Any, seed: int = 0) -> dict[str, float]:
    """A trial of ``study.yaml`` on the simulated instrument (one exposure, no motor time).

    ``autotune run studies/beamline/study.yaml`` measures the simulated sample this way; a
    real instrument runs the same study through ``autotune ask``/``autotune tell`` instead.

    Args:
        params: ``x`` and ``y``.
        report: Unused (a measurement has no epochs).
        seed: The detector noise (mixed with the position, so repeats differ).

    Returns:
        ``radius`` (the objective) and ``instrument_s``.
    """
    x, y = float(params["x"]), float(params["y"])
    beamline = Beamline(seed=seed + int(1e6 * x) * 7919 + int(1e6 * y), start=(x, y))
    return beamline.measure(x, y).metrics()
