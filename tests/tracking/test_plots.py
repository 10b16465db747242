"""Study plots: built from trials, robust to failures and conditional params, logged to MLflow."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from autotune.exceptions import ConfigError
from autotune.tracking import (
    TAG_ACQ_VALUE,
    TAG_PRED_MEAN,
    TAG_PRED_STD,
    LoadedTrial,
    MlflowTracker,
    plot_acquisition_trace,
    plot_convergence,
    plot_parallel_coordinates,
    refresh_study_plots,
)
from autotune.trial import TrialResult, TrialState

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _trial(trial_id: int, params: dict, value: float | None, **tags: str) -> LoadedTrial:
    state = TrialState.COMPLETED if value is not None else TrialState.FAILED
    return LoadedTrial(
        trial_id=trial_id,
        run_id=f"run{trial_id}",
        params=params,
        state=state,
        metrics={} if value is None else {"objective": value},
        tags=tags,
        status="FINISHED" if value is not None else "FAILED",
    )


MIXED = [
    _trial(0, {"lr": 1e-5, "opt": "adam", "beta": 0.9}, 3.0),
    _trial(1, {"lr": 1e-1, "opt": "sgd", "momentum": 0.5}, None),  # failed, conditional param
    _trial(
        2,
        {"lr": 1e-3, "opt": "adam", "beta": 0.99, "bn": True},
        1.5,
        **{TAG_ACQ_VALUE: "0.2", TAG_PRED_MEAN: "1.2", TAG_PRED_STD: "0.3"},
    ),
    _trial(
        3,
        {"lr": 3e-3, "opt": "sgd", "momentum": 0.9, "bn": False},
        2.0,
        **{TAG_ACQ_VALUE: "0.1", TAG_PRED_MEAN: "1.8", TAG_PRED_STD: "nan"},
    ),
]
PLOTS = [
    lambda trials: plot_convergence(trials, "minimize"),
    lambda trials: plot_convergence(trials, "maximize"),
    plot_parallel_coordinates,
    plot_acquisition_trace,
]


def _png(fig: object) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")  # type: ignore[attr-defined]
    return buffer.getvalue()


@pytest.mark.parametrize(
    "trials", [[], MIXED[:1], MIXED[1:2], MIXED], ids=["0", "1", "1-failed", "4"]
)
@pytest.mark.parametrize("plot", PLOTS, ids=["conv-min", "conv-max", "parallel", "acq"])
def test_plots_render_any_number_of_trials(plot, trials: list[LoadedTrial]) -> None:
    png = _png(plot(trials))
    assert png.startswith(PNG_MAGIC) and len(png) > 5000


def test_convergence_draws_the_best_so_far() -> None:
    fig = plot_convergence(MIXED, "minimize")
    best = next(line for line in fig.axes[0].lines if line.get_label() == "best so far")
    assert list(best.get_ydata()) == [3.0, 1.5, 1.5]
    failed = next(line for line in fig.axes[0].lines if line.get_label() == "failed")
    assert list(failed.get_xdata()) == [1]


def test_parallel_coordinates_has_one_axis_per_param_and_the_objective() -> None:
    fig = plot_parallel_coordinates(MIXED)
    labels = [tick.get_text() for tick in fig.axes[0].get_xticklabels()]
    assert labels == ["lr", "opt", "beta", "momentum", "bn", "objective"]
    trial_lines = [line for line in fig.axes[0].lines if len(line.get_xdata()) == len(labels)]
    assert len(trial_lines) == len(MIXED)
    axes = [line for line in fig.axes[0].lines if list(line.get_ydata()) == [0.0, 1.0]]
    assert sorted(line.get_xdata()[0] for line in axes) == list(range(len(labels)))


def test_inactive_has_its_own_tick_below_the_axis_minimum() -> None:
    fig = plot_parallel_coordinates(MIXED)
    ax = fig.axes[0]
    texts = {(round(t.get_position()[0]), t.get_text()): t.get_position()[1] for t in ax.texts}
    # beta (axis 2) is inactive in two trials; its minimum (0.9) sits at the bottom of its range
    beta_min, beta_inactive = texts[(2, "0.9")], texts[(2, "inactive")]
    assert beta_min == 0.0 and beta_inactive <= -0.2  # a separate tick, clearly below
    ylim = ax.get_ylim()
    assert ylim[0] < beta_inactive  # and visible
    assert texts[(5, "failed")] == beta_inactive  # the objective's "failed" tick likewise
    # pixel check: the two labels do not overlap
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = {t.get_text(): t.get_window_extent(renderer) for t in ax.texts if round(t.get_position()[0]) == 2}
    assert not boxes["inactive"].overlaps(boxes["0.9"])


def test_the_acquisition_axis_says_what_it_shows() -> None:
    from autotune.tracking import TAG_STRATEGY

    assert plot_acquisition_trace(MIXED).axes[0].get_ylabel() == "acquisition value at proposal"
    with_strategy = [
        _trial(t.trial_id, t.params, t.value("objective"), **{**t.tags, TAG_STRATEGY: "ei"})
        for t in MIXED
    ]
    assert plot_acquisition_trace(with_strategy).axes[0].get_ylabel() == "log EI at proposal"
    mixed = [*with_strategy, _trial(9, {"lr": 0.1}, 1.0, **{TAG_STRATEGY: "ucb", TAG_ACQ_VALUE: "2"})]
    assert plot_acquisition_trace(mixed).axes[0].get_ylabel() == "log EI / UCB at proposal"


def test_an_unknown_direction_is_refused() -> None:
    with pytest.raises(ConfigError, match="must be 'minimize' or 'maximize', got 'min'"):
        plot_convergence(MIXED, "min")  # type: ignore[arg-type]


def test_refresh_logs_the_plots_to_the_study_run_and_replaces_them(
    tracker: MlflowTracker, tmp_path: Path
) -> None:
    parent = tracker.start_study({})
    for trial_id, value in enumerate([2.0, None, 1.0]):
        run_id = tracker.start_trial(trial_id, {"x": trial_id / 3, "kind": "ab"[trial_id % 2]})
        state = TrialState.COMPLETED if value is not None else TrialState.FAILED
        metrics = {"loss": value} if value is not None else {}
        tracker.end_trial(run_id, TrialResult(trial_id, state, metrics=metrics))

    paths = refresh_study_plots(tracker, [], "minimize", "loss")
    paths_again = refresh_study_plots(
        tracker, tracker.load_trials(), "minimize", "loss", out_dir=tmp_path / "plots"
    )
    assert (
        paths
        == paths_again
        == [
            "plots/convergence.png",
            "plots/parallel_coordinates.png",
            "plots/acquisition_trace.png",
        ]
    )
    logged = {f.path: f.file_size for f in tracker.client.list_artifacts(parent, "plots")}
    assert set(logged) == set(paths)
    for path in paths:  # the second version replaced the first
        local = tmp_path / "plots" / Path(path).name
        assert local.read_bytes().startswith(PNG_MAGIC)
        assert logged[path] == local.stat().st_size > 5000
    downloaded = tracker.client.download_artifacts(parent, paths[0], str(tmp_path / "dl"))
    assert Path(downloaded).read_bytes() == (tmp_path / "plots" / "convergence.png").read_bytes()
