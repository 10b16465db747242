"""The live map of a 1-D or 2-D study: the objective GP's mean and standard deviation with the measured points.

Drawn from the optimiser's objective GP (fitted on a copy of its fitter by
:func:`autotune.analysis.fit_surface`, so drawing never changes a suggestion) and logged to the
study's parent run as ``plots/posterior_map.png``, at the cadence of the other study plots (the
driver's refreshes and :meth:`autotune.study.RemoteStudy.tell`), so a scientist watches the
map fill in from the MLflow UI. Spaces with more than two tunable parameters, or conditional
ones, and multi-objective studies get no map.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.tracking._plots import PLOTS_ARTIFACT_DIR

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from autotune.optimizer import Optimizer
    from autotune.space import Parameter
    from autotune.tracking._tracker import MlflowTracker

MAP_FILENAME = "posterior_map.png"
"""The map's file name under the parent run's ``plots/`` folder."""

POINTS_1D = 200
"""Points along the axis of a 1-D map."""

POINTS_2D = 60
"""Points along each axis of a 2-D map (``60 x 60`` predictions)."""


def map_parameters(optimizer: Optimizer) -> list[str] | None:
    """The one or two tunable parameters a map is drawn over, or ``None`` when the space has no map."""
    space = optimizer.space
    names = space.tunable
    if not 1 <= len(names) <= 2 or space.is_conditional or optimizer.multi_objective:
        return None
    return names


def plot_posterior_map(optimizer: Optimizer, objective: str = "objective") -> Figure | None:
    """The posterior mean and standard deviation over a 1-D or 2-D space, with the measured points.

    1-D: the mean with a ±2 standard deviation band; 2-D: mean and standard deviation heat maps.
    Completed trials are dots, failed ones crosses, pending ones hollow circles.

    Args:
        optimizer: The optimiser (its space, history and pending points).
        objective: The objective's name, for labels.

    Returns:
        The figure, or ``None`` when the space has no map or the GP has too few points
        (:data:`autotune.analysis.MIN_COMPLETED`) or cannot be fitted.
    """
    import torch
    from matplotlib.figure import Figure

    from autotune.analysis import fit_surface

    names = map_parameters(optimizer)
    if names is None:
        return None
    surface = fit_surface(optimizer)
    if surface is None:
        return None
    space = optimizer.space
    axes = [_axis(space.parameters[n], POINTS_1D if len(names) == 1 else POINTS_2D) for n in names]
    cols = [space.columns.index(n) for n in names]
    grid = torch.cartesian_prod(*(torch.tensor(a[0], dtype=torch.float64) for a in axes)).reshape(-1, len(names))
    X = torch.tensor(space.fill_vector(), dtype=torch.float64).repeat(len(grid), 1)
    X[:, cols] = grid
    mean, std = surface.predict(X)
    done = [o for o in optimizer.observations if o.value is not None and not o.state.is_failure]
    failed = [o for o in optimizer.observations if o.state.is_failure]
    pending = [s.params for s in optimizer.pending]

    def coords(params: list[dict[str, Any]], name: str) -> list[float]:
        return [_position(space.parameters[name], p[name]) for p in params]

    title = f"{objective}: GP posterior after {len(done)} measurements"
    if len(names) == 1:
        (name,) = names
        fig = Figure(figsize=(7.0, 4.0), layout="constrained")
        ax = fig.add_subplot()
        xs = axes[0][1]
        m, s = mean.numpy(), std.numpy()
        ax.plot(xs, m, color="tab:blue", label="posterior mean")
        ax.fill_between(xs, m - 2 * s, m + 2 * s, color="tab:blue", alpha=0.2, label="±2 sd")
        ax.plot(coords([o.params for o in done], name), [float(o.value or 0.0) for o in done], "o", color="black", ms=4,
                label="measured")
        low = float((m - 2 * s).min())
        if failed:
            ax.plot(coords([o.params for o in failed], name), [low] * len(failed), "x", color="tab:red", label="failed")
        if pending:
            ax.plot(coords(pending, name), [low] * len(pending), "o", mfc="none", color="tab:orange", label="pending")
        _label(ax, space.parameters[name], axes[0][2], "x")
        ax.set_ylabel(objective)
        ax.legend(fontsize="small")
        ax.set_title(title, fontsize="medium")
        return fig
    fig = Figure(figsize=(11.0, 4.5), layout="constrained")
    (nx, ny), (ax_x, ax_y) = names, axes
    for k, (ax, Z, label, cmap) in enumerate(zip(fig.subplots(1, 2), (mean, std), ("mean", "standard deviation"),
                                                 ("viridis", "magma"))):
        Zg = Z.reshape(len(ax_x[0]), len(ax_y[0])).T.numpy()  # rows: y
        mesh = ax.pcolormesh(ax_x[1], ax_y[1], Zg, shading="nearest", cmap=cmap)
        fig.colorbar(mesh, ax=ax, label=f"{objective} {label}")
        ax.plot(coords([o.params for o in done], nx), coords([o.params for o in done], ny), "o", color="white",
                mec="black", ms=5)
        if failed:
            ax.plot(coords([o.params for o in failed], nx), coords([o.params for o in failed], ny), "x", color="red")
        if pending:
            ax.plot(coords(pending, nx), coords(pending, ny), "o", mfc="none", mec="tab:orange", ms=7, mew=1.5)
        _label(ax, space.parameters[nx], ax_x[2], "x")
        _label(ax, space.parameters[ny], ax_y[2], "y")
        ax.set_title(f"posterior {label}" + ("" if k else f" ({len(done)} measured)"), fontsize="medium")
    return fig


def refresh_posterior_map(
    tracker: MlflowTracker, optimizer: Optimizer, objective: str = "objective", out_dir: str | Path | None = None,
) -> str | None:
    """Draw the map and log it to the parent run, replacing the previous version.

    Args:
        tracker: A tracker with a started (or found) study.
        optimizer: The study's optimiser, taught every finished trial.
        objective: The objective's name.
        out_dir: Where to keep the PNG as well; ``None`` keeps no local copy.

    Returns:
        The artifact path (``"plots/posterior_map.png"``), or ``None`` when there is no map yet.
    """
    fig = plot_posterior_map(optimizer, objective)
    if fig is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(out_dir) if out_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / MAP_FILENAME, format="png")
        tracker.log_study_artifact(folder / MAP_FILENAME, PLOTS_ARTIFACT_DIR)
    return f"{PLOTS_ARTIFACT_DIR}/{MAP_FILENAME}"


def _axis(p: Parameter, n: int) -> tuple[list[float], list[float], list[str] | None]:
    """Model-space values along a parameter, their plot positions, and tick labels for choices."""
    grid = p.grid_values()
    if grid is not None and len(grid) <= n:
        labels = None if p.kind == "int" else [str(p.decode(u)) for u in grid]
        return list(grid), [_position(p, p.decode(u)) for u in grid], labels
    us = [i / (n - 1) for i in range(n)]
    return us, [float(p.decode(u)) for u in us], None


def _position(p: Parameter, value: Any) -> float:
    """Where a value sits on the plot axis: the value for numbers, the choice's index otherwise."""
    if p.kind in ("float", "int"):
        return float(value)
    return float((p.finite_values() or [value]).index(value))


def _label(ax: Axes, p: Parameter, labels: list[str] | None, which: str) -> None:
    set_label = ax.set_xlabel if which == "x" else ax.set_ylabel
    set_label(p.name)
    if labels is not None:
        positions = [_position(p, v) for v in (p.finite_values() or [])]
        (ax.set_xticks if which == "x" else ax.set_yticks)(positions, labels)
    elif getattr(p, "log", False):
        (ax.set_xscale if which == "x" else ax.set_yscale)("log")
