"""The Pareto front plot: 2-D scatter with the front, parallel coordinates for 3+, empty cases."""

from __future__ import annotations

from autotune.tracking import TAG_PARETO, LoadedTrial, plot_pareto_front
from autotune.trial import TrialState


def _trial(i: int, metrics: dict[str, float], front: bool, state: TrialState = TrialState.COMPLETED) -> LoadedTrial:
    return LoadedTrial(trial_id=i, run_id=f"r{i}", state=state, params={"x": i}, metrics=metrics,
                       tags={TAG_PARETO: "true" if front else "false"}, status="FINISHED")


def test_two_objectives_scatter_with_the_front() -> None:
    trials = [_trial(0, {"a": 1, "b": 3}, True), _trial(1, {"a": 2, "b": 1}, True),
              _trial(2, {"a": 3, "b": 3}, False),
              _trial(3, {}, False, TrialState.FAILED)]
    fig = plot_pareto_front(trials, [("a", "minimize"), ("b", "minimize")])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "a (min)" and ax.get_ylabel() == "b (min)"
    sizes = sorted(len(c.get_offsets()) for c in ax.collections)
    assert sizes == [1, 2]  # one dominated trial, two on the front; the failed one is left out
    assert "Pareto front (2)" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_three_objectives_parallel_coordinates_and_no_data() -> None:
    trials = [_trial(i, {"a": i, "b": 3 - i, "c": i % 2}, i < 2) for i in range(4)]
    fig = plot_pareto_front(trials, [("a", "minimize"), ("b", "minimize"), ("c", "maximize")])
    ax = fig.axes[0]
    assert len(ax.lines) == 4 and [t.get_text() for t in ax.get_xticklabels()] == ["a (min)", "b (min)", "c (max)"]
    empty = plot_pareto_front([], [("a", "minimize"), ("b", "minimize")]).axes[0]
    assert "no completed trial" in empty.texts[0].get_text()
