"""Study plots from the MLflow record: convergence, parallel coordinates, acquisition trace.

Figures are built on :class:`matplotlib.figure.Figure`, never through ``pyplot``, and saved
as PNG (rendered by Agg): no global figure state, no backend switch, no display needed.
Every plot copes with failed trials (no objective value), conditional parameters (missing
keys) and with zero or one trial (an annotated, empty figure).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from autotune.exceptions import ConfigError
from autotune.tracking._tracker import (
    TAG_ACQ_VALUE,
    TAG_PRED_MEAN,
    TAG_PRED_STD,
    TAG_STRATEGY,
    LoadedTrial,
    MlflowTracker,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Direction = Literal["minimize", "maximize"]

PLOTS_ARTIFACT_DIR = "plots"
_FIGSIZE_IN = (7.0, 4.0)
# The height, on a parallel-coordinates axis scaled to [0, 1], of "parameter inactive" (or
# "failed" on the objective's axis): a tick of its own well below the range, never on its minimum.
_INACTIVE = -0.25
# What each strategy's acquisition value is (the optimiser records it as computed).
_ACQUISITION_NAMES = {
    "ei": "log EI",
    "kriging_believer": "log EI",
    "constant_liar": "log EI",
    "kmeans": "log EI",
    "local_penalization": "log EI + log penalty",
    "ei_per_cost": "log EI per log cost",
    "pi": "log PI",
    "qei": "log qNEI",
    "ucb": "UCB",
    "lcb": "LCB",
    "max_variance": "posterior variance",
    "greedy": "posterior mean",
    "thompson": "posterior sample",
}


def plot_convergence(
    trials: Sequence[LoadedTrial], direction: Direction, objective: str = "objective"
) -> Figure:
    """The objective of each trial and the best value so far, against the trial id.

    Args:
        trials: The study's trials (failed ones are marked on the x axis).
        direction: ``"minimize"`` or ``"maximize"``.
        objective: The name of the objective metric.

    Returns:
        The figure.

    Raises:
        ConfigError: ``direction`` is neither.
    """
    better = _better(direction)
    fig, ax = _figure()
    ax.set_title(f"Convergence ({direction} {objective})")
    ax.set_xlabel("trial")
    ax.set_ylabel(objective)
    done = [(t.trial_id, v) for t in trials if (v := t.value(objective)) is not None]
    failed = [t.trial_id for t in trials if t.state.is_failure]
    if done:
        ids, values = zip(*sorted(done))
        best, best_so_far = values[0], []
        for value in values:
            best = better(best, value)
            best_so_far.append(best)
        ax.plot(ids, values, "o", color="tab:blue", alpha=0.7, label="trial")
        ax.step(ids, best_so_far, where="post", color="tab:orange", label="best so far")
    if failed:
        ax.plot(
            failed,
            [0.0] * len(failed),
            "x",
            color="tab:red",
            label="failed",
            transform=ax.get_xaxis_transform(),
            clip_on=False,
        )
    if done or failed:
        ax.legend(loc="best")
    else:
        _no_data(ax, "no trial has finished yet")
    return fig


def plot_parallel_coordinates(
    trials: Sequence[LoadedTrial], objective: str = "objective"
) -> Figure:
    """One vertical axis per parameter and one for the objective; one line per trial.

    Numeric axes are scaled to their range (log-scaled when positive over more than three
    decades), categorical ones (strings, bools) space their values evenly. A parameter a
    trial does not have (a conditional one) sits at "inactive" below its axis. Lines are
    coloured by the objective; failed trials are grey and dashed.

    Args:
        trials: The study's trials.
        objective: The name of the objective metric.

    Returns:
        The figure.
    """
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize

    names: list[str] = []
    for trial in trials:
        names.extend(name for name in trial.params if name not in names)
    fig, ax = _figure(width_in=max(_FIGSIZE_IN[0], 1.3 * (len(names) + 1)))
    ax.set_title(f"Parallel coordinates (colour: {objective})")
    if not trials or not names:
        _no_data(ax, "no trials with parameters yet")
        return fig
    columns = [[trial.params.get(name) for trial in trials] for name in names]
    values = [trial.value(objective) for trial in trials]
    columns.append(values)
    scaled, labels = zip(
        *(_scale_axis(c, "failed" if c is values else "inactive") for c in columns)
    )
    finite = [v for v in values if v is not None]
    norm = Normalize(min(finite), max(finite)) if finite else Normalize(0.0, 1.0)
    cmap = colormaps["viridis"]
    xs = range(len(columns))
    order = sorted(range(len(trials)), key=lambda i: values[i] is not None)  # failed ones first
    for i in order:
        ys = [axis[i] for axis in scaled]
        value = values[i]
        if value is None:
            ax.plot(xs, ys, color="0.6", linestyle="--", linewidth=0.8, alpha=0.7)
        else:
            ax.plot(xs, ys, color=cmap(norm(value)), linewidth=1.2, alpha=0.85)
    for x, ticks in zip(xs, labels):
        ax.plot([x, x], [0.0, 1.0], color="black", linewidth=0.8)  # the axis: its range only
        for y, text in ticks:
            missing = y == _INACTIVE
            if missing:  # a separate tick below the range, joined by a dotted gap
                ax.plot([x, x], [_INACTIVE, 0.0], color="0.6", linewidth=0.8, linestyle=":")
            ax.plot([x - 0.04, x], [y, y], color="0.6" if missing else "black", linewidth=0.8)
            ax.text(x + 0.03, y, text, fontsize=7, va="center", color="0.4" if missing else "black",
                    style="italic" if missing else "normal")
    ax.set_xticks(list(xs), [*names, objective], rotation=20)
    ax.set_yticks([])
    ax.set_ylim(_INACTIVE - 0.06, 1.06)
    ax.set_xlim(-0.2, len(columns) - 0.5)
    if finite:
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=objective)
    return fig


def plot_acquisition_trace(trials: Sequence[LoadedTrial], objective: str = "objective") -> Figure:
    """What the model expected of each proposal against what the trial observed.

    Top: the acquisition value of each proposal (tag ``autotune.acq_value``). Bottom: the
    predicted mean ± 2 standard deviations (tags ``autotune.pred_mean``/``pred_std``) and
    the observed objective. Trials without these tags (e.g. the initial design) are skipped.

    Args:
        trials: The study's trials.
        objective: The name of the objective metric.

    Returns:
        The figure.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(_FIGSIZE_IN[0], 1.5 * _FIGSIZE_IN[1]), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.set_title("Acquisition trace")
    top.set_ylabel(acquisition_label(trials))
    bottom.set_ylabel(objective)
    bottom.set_xlabel("trial")
    acq = [(t.trial_id, v) for t in trials if (v := t.float_tag(TAG_ACQ_VALUE)) is not None]
    if acq:
        top.plot(*zip(*acq), "o-", color="tab:purple", markersize=4)
    else:
        _no_data(top, "no acquisition values recorded")
    predicted = [
        (t.trial_id, mean, t.float_tag(TAG_PRED_STD) or 0.0)
        for t in trials
        if (mean := t.float_tag(TAG_PRED_MEAN)) is not None
    ]
    observed = [(t.trial_id, v) for t in trials if (v := t.value(objective)) is not None]
    if predicted:
        ids, means, stds = zip(*predicted)
        bottom.errorbar(
            ids,
            means,
            yerr=[2.0 * s for s in stds],
            fmt="s",
            color="tab:green",
            markersize=4,
            capsize=2,
            label="predicted (±2σ)",
        )
    if observed:
        bottom.plot(*zip(*observed), "o", color="tab:blue", markersize=4, label="observed")
    if predicted or observed:
        bottom.legend(loc="best")
    else:
        _no_data(bottom, "no predictions or observations yet")
    return fig


def acquisition_label(trials: Sequence[LoadedTrial]) -> str:
    """The axis label of the recorded acquisition values, e.g. ``"log EI at proposal"``.

    Args:
        trials: The study's trials; the strategies of those with an acquisition value name it.

    Returns:
        ``"<acquisition> at proposal"``, naming each kind once (``"log EI / UCB at proposal"``),
        or ``"acquisition value at proposal"`` when no strategy is recorded.
    """
    kinds: list[str] = []
    for trial in trials:
        strategy = trial.tags.get(TAG_STRATEGY)
        if strategy is None or trial.float_tag(TAG_ACQ_VALUE) is None:
            continue
        kind = _ACQUISITION_NAMES.get(strategy, f"{strategy} acquisition")
        if kind not in kinds:
            kinds.append(kind)
    return f"{' / '.join(kinds) or 'acquisition value'} at proposal"


def plot_pareto_front(trials: Sequence[LoadedTrial], objectives: Sequence[tuple[str, str]]) -> Figure:
    """The trade-off of a multi-objective study: every completed trial and the Pareto front.

    Two objectives: a scatter of the trials (grey) with the front highlighted and joined by its
    staircase. Three or more: parallel coordinates of the objectives (each axis scaled to the
    observed range), the front's trials in colour. Trials tagged infeasible by constraints are
    still drawn; the front is the one recorded in each run's ``autotune.pareto`` tag.

    Args:
        trials: The study's trials.
        objectives: ``(metric, direction)`` pairs, two or more.
    """
    from autotune.tracking._tracker import TAG_PARETO

    names = [m for m, _ in objectives]
    rows = []
    for t in trials:
        vals = [t.value(m) for m in names]
        if all(v is not None for v in vals):
            rows.append(([float(v) for v in vals if v is not None], t.tags.get(TAG_PARETO) == "true"))
    fig, ax = _figure()
    if not rows:
        _no_data(ax, "no completed trial with every objective yet")
        return fig
    label = [f"{m} ({d[:3]})" for m, d in objectives]
    front = sorted((v for v, on in rows if on), key=lambda v: v[0])
    rest = [v for v, on in rows if not on]
    if len(names) == 2:
        ax.scatter([v[0] for v in rest], [v[1] for v in rest], s=14, color="0.65", label="trials")
        if front:
            ax.scatter([v[0] for v in front], [v[1] for v in front], s=24, color="C3", zorder=3,
                       label=f"Pareto front ({len(front)})")
            ax.step([v[0] for v in front], [v[1] for v in front], where="post", color="C3", lw=1)
        ax.set_xlabel(label[0])
        ax.set_ylabel(label[1])
        ax.legend(loc="best", fontsize="small")
        return fig
    cols = list(zip(*[v for v, _ in rows]))
    lo = [min(c) for c in cols]
    span = [(max(c) - min(c)) or 1.0 for c in cols]
    xs = list(range(len(names)))
    for point, on in sorted(rows, key=lambda r: r[1]):
        ys = [(v - a) / s for v, a, s in zip(point, lo, span)]
        ax.plot(xs, ys, color="C3" if on else "0.75", lw=1.2 if on else 0.6, alpha=0.9 if on else 0.5)
    ax.set_xticks(xs, label)
    ax.set_ylabel("scaled to the observed range")
    ax.set_title(f"Pareto front ({len(front)} of {len(rows)} trials, red)", fontsize="medium")
    return fig


def refresh_study_plots(
    tracker: MlflowTracker,
    trials: Sequence[LoadedTrial],
    direction: Direction,
    objective: str = "objective",
    out_dir: str | Path | None = None,
    objectives: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """Draw the study plots and log them to the parent run, replacing the previous versions.

    Args:
        tracker: A tracker with a started (or found) study.
        trials: The study's trials, e.g. ``tracker.load_trials()``.
        direction: ``"minimize"`` or ``"maximize"``.
        objective: The name of the objective metric.
        out_dir: Where to keep the PNG files as well; ``None`` keeps no local copy.
        objectives: With two or more ``(metric, direction)`` pairs, also ``pareto_front.png``.

    Returns:
        The artifact paths of the plots in the parent run, e.g. ``"plots/convergence.png"``.
    """
    figures = {
        "convergence.png": plot_convergence(trials, direction, objective),
        "parallel_coordinates.png": plot_parallel_coordinates(trials, objective),
        "acquisition_trace.png": plot_acquisition_trace(trials, objective),
    }
    if len(objectives) >= 2:
        figures["pareto_front.png"] = plot_pareto_front(trials, objectives)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(out_dir) if out_dir is not None else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for filename, fig in figures.items():
            fig.savefig(folder / filename, format="png")  # PNG is always drawn by Agg
            tracker.log_study_artifact(folder / filename, PLOTS_ARTIFACT_DIR)
    return [f"{PLOTS_ARTIFACT_DIR}/{filename}" for filename in figures]


def _figure(width_in: float = _FIGSIZE_IN[0]) -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, _FIGSIZE_IN[1]), layout="constrained")
    return fig, fig.add_subplot()


def _better(direction: str) -> Any:
    if direction == "minimize":
        return min
    if direction == "maximize":
        return max
    raise ConfigError("plot direction", "must be 'minimize' or 'maximize'", direction)


def _no_data(ax: Axes, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="0.4")


def _scale_axis(column: Sequence[Any], missing: str) -> tuple[list[float], list[tuple[float, str]]]:
    """Heights in ``[0, 1]`` of one axis's values (``_INACTIVE`` for ``None``) and its labels."""
    present = [v for v in column if v is not None]
    labels = [(_INACTIVE, missing)] if len(present) < len(column) else []
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present)
    if present and numeric and all(math.isfinite(v) for v in present):
        low, high = min(present), max(present)
        log = low > 0 and high / low > 1e3
        lo, hi = (math.log10(low), math.log10(high)) if log else (low, high)
        span = (hi - lo) or 1.0

        def height(v: Any) -> float:
            if v is None:
                return _INACTIVE
            return ((math.log10(v) if log else v) - lo) / span if hi > lo else 0.5

        labels += [(height(low), f"{low:.3g}"), (height(high), f"{high:.3g}")]
        return [height(v) for v in column], labels
    categories = sorted({str(v) for v in present})
    position = {c: (i + 0.5) / len(categories) for i, c in enumerate(categories)}
    labels += [(position[c], c) for c in categories]
    return [_INACTIVE if v is None else position[str(v)] for v in column], labels
