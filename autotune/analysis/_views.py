"""The analysis views as plotly figures, and the data behind each (pure functions, no MLflow).

Each ``*_data`` function returns plain lists (tested directly); each ``plot_*`` function
draws one figure from them, or an annotated empty figure that says "not enough data" and why.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from autotune.analysis._importance import Importance, importance_from_surface
from autotune.analysis._surface import (
    MIN_COMPLETED,
    Surface,
    completed_and_failed,
    fit_surface,
)
from autotune.exceptions import MissingExtraError

if TYPE_CHECKING:
    from plotly.graph_objects import Figure

    from autotune.optimizer import Optimizer

Reports = Mapping[int, Sequence[Mapping[str, float]]]
"""Per trial id, its reports in order: ``{"step": 3, "val_loss": 0.41, ...}`` records."""

#: The title of each view, also its heading in the report.
TITLES: dict[str, str] = {
    "importance": "Parameter importance (Sobol indices of the GP)",
    "slices": "Slice plots (GP mean and ±2σ band at the best trial)",
    "contour": "Contour of the two most important parameters (GP mean)",
    "edf": "Empirical distribution of the objective",
    "intermediate": "Intermediate values per trial",
}
SLICE_POINTS = 60
"""Points along a slice of a parameter with more values than that (else one per value)."""
CONTOUR_POINTS = 40
"""Grid points per axis of the contour."""
_HEIGHT_PX = 420


def require_plotly() -> None:
    """Import plotly or raise :class:`MissingExtraError` naming the fix."""
    try:
        import plotly  # noqa: F401
    except ImportError:
        raise MissingExtraError("plotly", "analysis") from None


# -- data ------------------------------------------------------------------------------------
@dataclass
class SliceData:
    """One parameter's slice through the GP at the incumbent.

    Attributes:
        name: The parameter.
        x: The parameter's values along the slice (its own type: numbers, or category labels).
        mean: The GP mean at each, in the objective's units.
        std: The GP standard deviation at each.
        obs_x: The observed values of the parameter (completed trials where it is active).
        obs_y: Their objective values.
        categorical: Whether ``x`` holds category labels.
        log: Whether the parameter is log-scaled.
        active: Whether the parameter is active at the incumbent (else the slice is flat).
    """

    name: str
    x: list[Any]
    mean: list[float]
    std: list[float]
    obs_x: list[Any] = field(default_factory=list)
    obs_y: list[float] = field(default_factory=list)
    categorical: bool = False
    log: bool = False
    active: bool = True


def slice_data(surface: Surface, name: str, n_points: int = SLICE_POINTS) -> SliceData:
    """The GP along one parameter, the others at the incumbent.

    Args:
        surface: The fitted objective GP.
        name: A tunable parameter.
        n_points: Points along a parameter with more values than this.

    Returns:
        The slice and the observed points of that parameter.
    """
    import torch

    space = surface.space
    p = space.parameters[name]
    col = space.columns.index(name)
    grid = p.grid_values() if p.n_values <= n_points else None
    us = grid if grid is not None else [i / (n_points - 1) for i in range(n_points)]
    base = surface.encode(surface.incumbent)
    X = torch.tensor([base[:col] + [u] + base[col + 1:] for u in us], dtype=torch.float64)
    mean, std = surface.predict(X)
    xs = [p.decode(u) for u in us]
    categorical = p.column == "categorical" or any(not isinstance(v, (int, float)) or isinstance(v, bool) for v in xs)
    if categorical:
        xs = [str(v) for v in xs]
    obs = [o for o in surface.completed if name in o.params]
    obs_x = [str(o.params[name]) if categorical else o.params[name] for o in obs]
    return SliceData(
        name=name, x=xs, mean=mean.tolist(), std=std.tolist(), obs_x=obs_x, obs_y=[float(o.value or 0.0) for o in obs],
        categorical=categorical, log=bool(getattr(p, "log", False)),
        active=space.is_active(name, surface.incumbent),
    )


def edf_data(values: Sequence[float | None]) -> tuple[list[float], list[float]]:
    """The empirical distribution function of the finite values.

    Args:
        values: Objective values (``None`` and non-finite ones are left out).

    Returns:
        The sorted values and, for each, the fraction of values ``<=`` it (non-decreasing, ends at 1).
    """
    xs = sorted(float(v) for v in values if v is not None and math.isfinite(v))
    n = len(xs)
    return xs, [(i + 1) / n for i in range(n)]


def pick_metric(reports: Reports, objective: str) -> str | None:
    """The reported metric to draw: ``objective`` if any trial reported it, else the most reported one."""
    counts: dict[str, int] = {}
    for records in reports.values():
        for r in records:
            for k in r:
                if k != "step":
                    counts[k] = counts.get(k, 0) + 1
    if objective in counts:
        return objective
    return max(counts, key=lambda k: counts[k]) if counts else None


def curves_data(reports: Reports, metric: str) -> dict[int, tuple[list[float], list[float]]]:
    """Per trial, the steps and values of ``metric`` (a record without ``step`` counts from 0)."""
    out: dict[int, tuple[list[float], list[float]]] = {}
    for tid, records in reports.items():
        xs: list[float] = []
        ys: list[float] = []
        for i, r in enumerate(records):
            v = r.get(metric)
            if v is None or not math.isfinite(float(v)):
                continue
            xs.append(float(r.get("step", i)))
            ys.append(float(v))
        if xs:
            out[int(tid)] = (xs, ys)
    return out


# -- figures ---------------------------------------------------------------------------------
def _figure(title: str) -> Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.update_layout(title=title, template="plotly_white", height=_HEIGHT_PX, margin={"t": 60, "l": 60, "r": 30, "b": 50})
    return fig


def not_enough_data(title: str, why: str) -> Figure:
    """An empty figure titled ``title`` that says "not enough data" and why."""
    fig = _figure(title)
    fig.add_annotation(text=f"not enough data: {why}", x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False,
                       font={"size": 14, "color": "#666"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _too_few(surface: Surface | None, n_completed: int) -> str:
    if surface is None and n_completed >= MIN_COMPLETED:
        return "the GP could not be fitted on this history"
    return f"{n_completed} completed trial(s); the GP views need at least {MIN_COMPLETED}"


def plot_importance(importance: Importance | None, why: str = "") -> Figure:
    """Horizontal bars of each parameter's first-order index with its interval."""
    title = TITLES["importance"]
    if importance is None or not importance.names:
        return not_enough_data(title, why or "no tunable parameter")
    import plotly.graph_objects as go

    order = sorted(range(len(importance.names)), key=lambda i: importance.first_order[i])  # most important on top
    s = [importance.first_order[i] for i in order]
    fig = _figure(title)
    fig.add_trace(go.Bar(
        x=s, y=[importance.names[i] for i in order], orientation="h", name="first order",
        error_x={"type": "data", "symmetric": False,
                 "array": [importance.high[i] - importance.first_order[i] for i in order],
                 "arrayminus": [importance.first_order[i] - importance.low[i] for i in order]},
        customdata=[[importance.low[i], importance.high[i], importance.total_order[i]] for i in order],
        hovertemplate="%{y}: %{x:.3f} (%{customdata[0]:.3f} to %{customdata[1]:.3f}); total order "
                      "%{customdata[2]:.3f}<extra></extra>",
    ))
    fig.update_layout(
        height=max(_HEIGHT_PX, 60 + 28 * len(order)),
        xaxis={"title": f"share of the GP mean's variance (bars: {importance.level:.0%} interval, "
                        f"{importance.method})", "range": [0, 1.05]},
    )
    return fig


def plot_slices(surface: Surface | None, why: str = "") -> Figure:
    """One panel per tunable parameter: observed points, GP mean and ±2σ band at the incumbent."""
    title = TITLES["slices"]
    if surface is None or not surface.space.tunable:
        return not_enough_data(title, why or "no tunable parameter")
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = surface.space.tunable
    n_cols = min(3, len(names))
    n_rows = math.ceil(len(names) / n_cols)
    slices = [slice_data(surface, n) for n in names]
    fig = make_subplots(rows=n_rows, cols=n_cols, shared_yaxes=True, horizontal_spacing=0.04,
                        vertical_spacing=0.5 / max(n_rows, 1) if n_rows > 1 else 0.1,
                        subplot_titles=[s.name + ("" if s.active else " (inactive at the best trial)") for s in slices])
    for k, s in enumerate(slices):
        row, col = k // n_cols + 1, k % n_cols + 1
        first = k == 0
        hi = [m + 2 * sd for m, sd in zip(s.mean, s.std)]
        lo = [m - 2 * sd for m, sd in zip(s.mean, s.std)]
        if s.categorical:
            fig.add_trace(go.Scatter(
                x=s.x, y=s.mean, mode="markers", marker={"color": "#1f77b4", "size": 10, "symbol": "diamond"},
                error_y={"type": "data", "array": [2 * sd for sd in s.std]}, name="GP mean ± 2σ",
                legendgroup="gp", showlegend=first,
            ), row=row, col=col)
        else:
            fig.add_trace(go.Scatter(x=s.x + s.x[::-1], y=hi + lo[::-1], fill="toself", line={"width": 0},
                                     fillcolor="rgba(31,119,180,0.18)", hoverinfo="skip", name="±2σ",
                                     legendgroup="band", showlegend=first), row=row, col=col)
            fig.add_trace(go.Scatter(x=s.x, y=s.mean, mode="lines", line={"color": "#1f77b4"}, name="GP mean",
                                     legendgroup="gp", showlegend=first), row=row, col=col)
        fig.add_trace(go.Scatter(x=s.obs_x, y=s.obs_y, mode="markers", name="observed",
                                 marker={"color": "#333", "size": 6, "opacity": 0.7},
                                 legendgroup="obs", showlegend=first), row=row, col=col)
        if s.log:
            fig.update_xaxes(type="log", row=row, col=col)
        if s.categorical:
            fig.update_xaxes(type="category", row=row, col=col)
    n_failed = len(surface.failed)
    note = f" ({n_failed} failed trial(s) not drawn)" if n_failed else ""
    fig.update_layout(title=title + note, template="plotly_white", height=max(_HEIGHT_PX, 300 * n_rows),
                      margin={"t": 80, "l": 60, "r": 30, "b": 40})
    return fig


def contour_data(
    surface: Surface, x_name: str, y_name: str, n_points: int = CONTOUR_POINTS
) -> tuple[list[Any], list[Any], list[list[float]]]:
    """The GP mean over two parameters, the others at the incumbent.

    Returns:
        The x values, the y values and the mean as rows (one per y value).
    """
    import torch

    space = surface.space
    axes = []
    for name in (x_name, y_name):
        p = space.parameters[name]
        grid = p.grid_values() if p.n_values <= n_points else None
        us = grid if grid is not None else [i / (n_points - 1) for i in range(n_points)]
        axes.append((space.columns.index(name), us, p))
    (cx, ux, px), (cy, uy, py) = axes
    base = surface.encode(surface.incumbent)
    rows = []
    for v in uy:
        for u in ux:
            x = list(base)
            x[cx], x[cy] = u, v
            rows.append(x)
    mean, _ = surface.predict(torch.tensor(rows, dtype=torch.float64))
    z = mean.reshape(len(uy), len(ux)).tolist()

    def labels(p: Any, us: list[float]) -> list[Any]:
        vs = [p.decode(u) for u in us]
        return [str(v) for v in vs] if p.column == "categorical" or any(isinstance(v, (str, bool)) for v in vs) else vs

    return labels(px, ux), labels(py, uy), z


def plot_contour(surface: Surface | None, importance: Importance | None, why: str = "") -> Figure:
    """The GP mean over the two most important parameters, with the observed points."""
    title = TITLES["contour"]
    if surface is None or importance is None:
        return not_enough_data(title, why)
    ranked = importance.ranked()
    if len(ranked) < 2:
        return not_enough_data(title, "the space has fewer than two tunable parameters")
    import plotly.graph_objects as go

    x_name, y_name = ranked[0], ranked[1]
    xs, ys, z = contour_data(surface, x_name, y_name)
    fig = _figure(title)
    if isinstance(xs[0], str) or isinstance(ys[0], str):  # a categorical axis: one cell per category
        fig.add_trace(go.Heatmap(x=xs, y=ys, z=z, colorscale="Viridis", colorbar={"title": "GP mean"}, name="GP mean"))
    else:
        fig.add_trace(go.Contour(x=xs, y=ys, z=z, colorscale="Viridis", colorbar={"title": "GP mean"},
                                 contours={"coloring": "heatmap"}, name="GP mean"))
    pts = [o for o in surface.completed if x_name in o.params and y_name in o.params]
    fig.add_trace(go.Scatter(
        x=[_shown(o.params[x_name], xs) for o in pts], y=[_shown(o.params[y_name], ys) for o in pts],
        mode="markers", name="observed", text=[f"trial {o.trial_id}: {o.value:.4g}" for o in pts],
        marker={"color": "white", "size": 7, "line": {"color": "black", "width": 1}},
    ))
    for axis, name in (("xaxis", x_name), ("yaxis", y_name)):
        p = surface.space.parameters[name]
        fig.update_layout({axis: {"title": name, "type": "log" if getattr(p, "log", False) else None}})
    return fig


def _shown(value: Any, axis: list[Any]) -> Any:
    return str(value) if axis and isinstance(axis[0], str) else value


def plot_edf(values: Sequence[float | None], objective: str = "objective", n_failed: int = 0) -> Figure:
    """The empirical distribution function of the completed trials' objective values."""
    title = TITLES["edf"]
    xs, fs = edf_data(values)
    if not xs:
        return not_enough_data(title, "no completed trial yet")
    import plotly.graph_objects as go

    fig = _figure(title + (f" ({n_failed} failed trial(s) not counted)" if n_failed else ""))
    fig.add_trace(go.Scatter(x=xs, y=fs, mode="lines+markers", line={"shape": "hv"}, name="EDF"))
    fig.update_layout(xaxis_title=objective, yaxis_title="fraction of completed trials ≤ value",
                      yaxis_range=[0, 1.02])
    return fig


def plot_intermediate_values(
    reports: Reports, final: Mapping[int, float | None], metric: str | None, failed: Sequence[int] = ()
) -> Figure:
    """Learning curves: one line per trial, coloured by the trial's final objective value.

    Args:
        reports: Per trial id, its reports.
        final: Per trial id, its final objective (``None`` for a failed or running trial).
        metric: The reported metric to draw (see :func:`pick_metric`).
        failed: The ids of failed trials (drawn dashed, grey).
    """
    title = TITLES["intermediate"]
    curves = curves_data(reports, metric) if metric else {}
    if not curves:
        return not_enough_data(title, "no trial reported intermediate values")
    import plotly.graph_objects as go
    from plotly.colors import sample_colorscale

    values = [v for t in curves if (v := final.get(t)) is not None and math.isfinite(v)]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    span = (hi - lo) or 1.0
    bad = set(failed)
    fig = _figure(f"{title}: {metric}")
    for tid, (xs, ys) in sorted(curves.items()):
        v = final.get(tid)
        if tid in bad or v is None or not math.isfinite(v):
            line = {"color": "#aaa", "dash": "dash" if tid in bad else "dot"}
            label = "failed" if tid in bad else "no final value"
        else:
            line = {"color": sample_colorscale("Viridis", [(v - lo) / span])[0]}
            label = f"final {v:.4g}"
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", line=line, name=f"trial {tid}", showlegend=False,
                                 hovertemplate=f"trial {tid} ({label})<br>step %{{x}}: %{{y:.4g}}<extra></extra>"))
    if values:  # a colour bar for the final values
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip", marker={
            "colorscale": "Viridis", "cmin": lo, "cmax": hi, "color": [lo], "showscale": True,
            "colorbar": {"title": "final value"}}))
    fig.update_layout(xaxis_title="step", yaxis_title=metric)
    return fig


# -- all views -------------------------------------------------------------------------------
def analysis_figures(
    optimizer: Optimizer,
    reports: Reports | None = None,
    *,
    objective: str = "objective",
    seed: int = 0,
) -> dict[str, Figure]:
    """Every analysis view of an optimiser's history, keyed as :data:`TITLES`.

    One GP fit and one importance estimate serve every view. Nothing is logged anywhere.

    Args:
        optimizer: The optimiser (space, observations, direction).
        reports: Per trial id, its intermediate reports (``None``: no learning curves).
        objective: The objective's name (axis labels; the metric drawn from the reports if reported).
        seed: Seed of the GP fit and of the importance's Monte Carlo.

    Returns:
        ``{"importance": fig, "slices": fig, "contour": fig, "edf": fig, "intermediate": fig}``.

    Raises:
        MissingExtraError: plotly is not installed.
    """
    require_plotly()
    reports = reports or {}
    done, failed = completed_and_failed(optimizer.observations)
    surface = fit_surface(optimizer, seed=seed)
    why = _too_few(surface, len(done))
    importance = importance_from_surface(surface, seed=seed) if surface is not None else None
    final = {o.trial_id: o.value for o in optimizer.observations if o.trial_id is not None}
    return {
        "importance": plot_importance(importance, why),
        "slices": plot_slices(surface, why),
        "contour": plot_contour(surface, importance, why),
        "edf": plot_edf([o.value for o in done], objective, len(failed)),
        "intermediate": plot_intermediate_values(
            reports, final, pick_metric(reports, objective), [o.trial_id for o in failed if o.trial_id is not None]),
    }
