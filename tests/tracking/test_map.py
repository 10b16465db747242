"""The live posterior map of 1-D and 2-D studies (``plots/posterior_map.png``)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from autotune.optimizer import Optimizer
from autotune.space import Categorical, Condition, Float, Int, SearchSpace
from autotune.tracking import MlflowTracker, plot_posterior_map, refresh_posterior_map


def taught(space: SearchSpace, n: int, seed: int = 0) -> Optimizer:
    opt = Optimizer(space, "ucb", seed=seed, direction="maximize")
    for p in space.sample(n, "sobol", seed=seed):
        x = p["x"] if isinstance(p["x"], float) else 0.5
        opt.add(p, math.sin(6 * x) + (0.3 if p.get("mode") == "b" else 0.0))
    return opt


def test_a_1d_map_shows_the_mean_band_and_every_kind_of_point() -> None:
    opt = taught(SearchSpace([Float("x", low=1e-3, high=1.0, log=True)]), 5)
    opt.add({"x": 0.5}, None)  # failed
    opt.ask(1)  # pending
    fig = plot_posterior_map(opt, "signal")
    assert fig is not None
    (ax,) = fig.axes
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["posterior mean", "±2 sd", "measured", "failed", "pending"]
    assert ax.get_xscale() == "log" and "5 measurements" in ax.get_title()


def test_a_2d_map_has_mean_and_std_panels_with_choice_ticks() -> None:
    space = SearchSpace([Float("x", low=0.0, high=1.0), Categorical("mode", choices=("a", "b", "c"))])
    fig = plot_posterior_map(taught(space, 6), "signal")
    assert fig is not None
    mean_ax, std_ax = fig.axes[:2]
    assert [t.get_text() for t in mean_ax.get_yticklabels()] == ["a", "b", "c"]
    assert "mean" in mean_ax.get_title() and "standard deviation" in std_ax.get_title()


@pytest.mark.parametrize(
    "space",
    [
        SearchSpace([Float("x", low=0.0, high=1.0), Float("y", low=0.0, high=1.0), Float("z", low=0.0, high=1.0)]),
        SearchSpace([Categorical("mode", choices=("a", "b")),
                     Float("x", low=0.0, high=1.0, conditions=(Condition("mode", "==", "a"),))]),
    ],
    ids=["3-D", "conditional"],
)
def test_spaces_without_a_map(space: SearchSpace) -> None:
    opt = Optimizer(space, "ucb", seed=0)
    for p in space.sample(6, "sobol"):
        opt.add(p, 1.0 + 0.1 * len(p))
    assert plot_posterior_map(opt) is None


def test_too_few_measurements_give_no_map_yet() -> None:
    opt = taught(SearchSpace([Float("x", low=0.0, high=1.0), Int("k", low=0, high=3)]), 2)
    assert plot_posterior_map(opt) is None


def test_refresh_logs_the_map_to_the_study_run(mlflow_sqlite_uri: str, tmp_path: Path) -> None:
    tracker = MlflowTracker(mlflow_sqlite_uri, "map-study")
    tracker.start_study({})
    opt = taught(SearchSpace([Float("x", low=0.0, high=1.0)]), 4)
    assert refresh_posterior_map(tracker, opt, "signal", out_dir=tmp_path) == "plots/posterior_map.png"
    assert (tmp_path / "posterior_map.png").stat().st_size > 1000
    files = [f.path for f in tracker.client.list_artifacts(tracker.parent_run_id, "plots")]
    assert files == ["plots/posterior_map.png"]
