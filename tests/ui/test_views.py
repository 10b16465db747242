"""The study's MLflow presentation as pure functions: the runs view state and the description."""

from __future__ import annotations

import json

import pytest

from autotune.tracking import NOTE_TAG, RUNS_VIEW_KEY, LoadedTrial, runs_view_state, runs_view_url, study_note
from autotune.tracking._views import MAX_PARAM_COLUMNS, runs_view_tag
from autotune.trial import TrialState


def _trial(tid: int, state: TrialState, loss: float | None = None, run: str | None = None) -> LoadedTrial:
    metrics = {} if loss is None else {"loss": loss}
    return LoadedTrial(trial_id=tid, run_id=run or f"run{tid}", params={"x": 0.5 * tid, "act": "relu"},
                       state=state, metrics=metrics, tags={}, status="FINISHED")


def test_runs_view_lists_the_study_trials_best_first_with_the_review_columns() -> None:
    state = runs_view_state("parent123", "val_loss", "minimize", ["lr", "width"])
    assert state["searchFilter"] == "tags.`mlflow.parentRunId` = 'parent123'"
    assert state["orderByKey"] == "metrics.`val_loss`" and state["orderByAsc"] is True
    cols = state["selectedColumns"]
    assert cols[:2] == ["metrics.`val_loss`", "tags.`autotune.state`"]
    assert "params.`lr`" in cols and "params.`width`" in cols
    assert "metrics.`proposal/pred_mean`" in cols and "tags.`autotune.failure_reason`" in cols
    assert runs_view_state("p", "acc", "maximize", [])["orderByAsc"] is False


def test_runs_view_shows_at_most_a_few_parameter_columns_and_fits_a_tag() -> None:
    names = [f"p{i}_" + "x" * 60 for i in range(40)]
    state = runs_view_state("p", "loss", "minimize", names)
    assert sum(c.startswith("params.") for c in state["selectedColumns"]) == MAX_PARAM_COLUMNS
    key, value = runs_view_tag(state)
    assert key == f"mlflow.sharedViewState.{RUNS_VIEW_KEY}"
    assert json.loads(value) == state  # plain JSON: the UI's loader reads it as is


def test_runs_view_tag_refuses_a_state_too_large_for_a_tag() -> None:
    state = runs_view_state("p", "loss", "minimize", [])
    state["selectedColumns"] = ["metrics.`" + "m" * 200 + "`"] * 40
    with pytest.raises(ValueError, match="characters"):
        runs_view_tag(state)


def test_runs_view_url_names_the_share_key_alone() -> None:
    # a search-facet parameter in the URL would make the UI ignore the shared view
    assert runs_view_url("http://127.0.0.1:5000/", "7") == (
        f"http://127.0.0.1:5000/#/experiments/7/runs?viewStateShareKey={RUNS_VIEW_KEY}")


def test_note_names_the_best_trial_with_a_link_counts_and_resume() -> None:
    trials = [_trial(0, TrialState.COMPLETED, 3.0), _trial(1, TrialState.COMPLETED, 1.5),
              _trial(2, TrialState.FAILED), _trial(3, TrialState.COMPLETED, 2.0)]
    note = study_note(study_name="toy", experiment_id="4", parent_run_id="par", objective="loss",
                      direction="minimize", strategy="ei", trials=trials, max_trials=10,
                      study_file="studies/toy.yaml", plots=["plots/convergence.png"], analysis="analysis/a.html")
    assert "trial 1, `loss` = 1.5" in note
    assert "(#/experiments/4/runs/run1)" in note
    assert "| completed | 3 |" in note and "| failed | 1 |" in note
    assert "**Trials:** 4 of 10" in note
    assert "![convergence.png](get-artifact?path=plots%2Fconvergence.png&run_uuid=par)" in note
    assert "`autotune run studies/toy.yaml`" in note and "analysis/a.html" in note
    maximize = study_note(study_name="toy", experiment_id="4", parent_run_id="par", objective="loss",
                          direction="maximize", strategy="ei", trials=trials)
    assert "trial 0, `loss` = 3" in maximize


def test_note_follows_the_optimizers_best_and_counts_a_rerun_once() -> None:
    trials = [_trial(0, TrialState.COMPLETED, 1.0), _trial(1, TrialState.KILLED, run="old"),
              _trial(1, TrialState.COMPLETED, 5.0, run="new")]
    # e.g. trial 0 violates an outcome constraint: the optimiser's best is trial 1
    note = study_note(study_name="s", experiment_id="1", parent_run_id="p", objective="loss",
                      direction="minimize", strategy="ei", trials=trials, best_trial_id=1)
    assert "trial 1, `loss` = 5" in note and "runs/new" in note
    assert "| completed | 2 |" in note and "killed" not in note


def test_note_without_a_completed_trial_says_so() -> None:
    note = study_note(study_name="s", experiment_id="1", parent_run_id="p", objective="loss",
                      direction="minimize", strategy="ei", trials=[_trial(0, TrialState.FAILED)])
    assert "none yet" in note and NOTE_TAG == "mlflow.note.content"


def test_eta_is_waves_of_the_median_duration() -> None:
    from autotune.study._study import eta_seconds, format_eta

    assert eta_seconds(5, [], 2, []) is None  # nothing finished yet: unknown
    assert eta_seconds(0, [], 2, [10.0]) == 0.0
    # 4 unstarted, 2 workers, median 10 s: two waves
    assert eta_seconds(4, [], 2, [8.0, 10.0, 30.0]) == pytest.approx(20.0)
    # two running (ages 4 and 9 of a 10 s median) + two unstarted: the first slot frees in 1 s
    assert eta_seconds(4, [4.0, 9.0], 2, [10.0]) == pytest.approx(1.0 + 10.0)
    # only running trials left: the one that started last decides
    assert eta_seconds(2, [4.0, 9.0], 2, [10.0]) == pytest.approx(6.0)
    # a trial running longer than the median is counted as about to end, never negative
    assert eta_seconds(1, [50.0], 1, [10.0]) == 0.0
    assert format_eta(None) == "-" and format_eta(65.4) == "1:05" and format_eta(3723) == "1:02:03"
