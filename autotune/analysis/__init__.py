"""Analysis views of a study from the surrogate that made its decisions.

Pure functions over an :class:`~autotune.optimizer.Optimizer` (its space, observations and
objective GP) and the trials' intermediate reports; they return plotly figures or HTML and
never call MLflow (the tracker decides where the artifacts go):

* :func:`parameter_importance`: first-order Sobol indices of the GP with an interval from
  posterior draws (:class:`Importance`);
* slices, the contour of the two most important parameters, the objective's empirical
  distribution and the learning curves (:func:`analysis_figures`);
* :func:`write_report`: all of them in one self-contained HTML file (``autotune report``).

Importing this package imports neither torch nor plotly; the functions do, when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from autotune.analysis._importance import (
    Importance,
    importance_from_surface,
    sobol_indices,
)
from autotune.analysis._report import report_html, write_report
from autotune.analysis._surface import MIN_COMPLETED, Surface, fit_surface
from autotune.analysis._views import (
    TITLES,
    Reports,
    SliceData,
    analysis_figures,
    contour_data,
    curves_data,
    edf_data,
    plot_contour,
    plot_edf,
    plot_importance,
    plot_intermediate_values,
    plot_slices,
    slice_data,
)

if TYPE_CHECKING:
    from autotune.optimizer import Optimizer

__all__ = [
    "MIN_COMPLETED",
    "TITLES",
    "Importance",
    "Reports",
    "SliceData",
    "Surface",
    "analysis_figures",
    "contour_data",
    "curves_data",
    "edf_data",
    "fit_surface",
    "importance_from_surface",
    "parameter_importance",
    "plot_contour",
    "plot_edf",
    "plot_importance",
    "plot_intermediate_values",
    "plot_slices",
    "report_html",
    "slice_data",
    "sobol_indices",
    "write_report",
]


def parameter_importance(
    optimizer: Optimizer, *, n_base: int | None = None, n_paths: int = 64, level: float = 0.9, seed: int = 0
) -> Importance | None:
    """The importance of each tunable parameter under the optimiser's objective GP.

    Args:
        optimizer: The optimiser.
        n_base: Monte Carlo base rows (see :func:`importance_from_surface`).
        n_paths: Posterior draws for the interval.
        level: The interval's coverage.
        seed: Seed of the fit, the Monte Carlo points and the draws.

    Returns:
        The importance, or ``None`` with fewer than :data:`MIN_COMPLETED` completed trials
        or when the GP cannot be fitted.
    """
    surface = fit_surface(optimizer, seed=seed)
    if surface is None:
        return None
    return importance_from_surface(surface, n_base=n_base, n_paths=n_paths, level=level, seed=seed)
