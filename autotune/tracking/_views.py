"""What a study looks like in the MLflow UI: its runs view and the parent run's description.

Two things the MLflow 3 UI reads from the record, written here so that a reviewer who opens
the study sees the trials ranked by the objective and a summary, without picking columns:

* **The runs view.** MLflow's "share view" stores a runs-page state (search filter, sort,
  selected columns) as the experiment tag ``mlflow.sharedViewState.<key>`` and opens it from
  the URL parameter ``viewStateShareKey=<key>`` (``mlflow/server/js``,
  ``useSharedExperimentViewState``: the tag value is the page state as plain JSON, or
  ``deflate;`` + base64 zlib). :func:`runs_view_state` builds that state: the study's trials
  only (so they are listed flat, not folded under the parent), best first, with the
  objective, state, parameters, the GP's prediction and the failure reason as columns.
* **The parent run's description** (MLflow's note, tag ``mlflow.note.content``, Markdown):
  :func:`study_note` summarises objective, best trial with a link to its run, counts by
  state, strategy, budget, the plots inline and how to resume.

Pure functions: the tracker writes their results (:meth:`MlflowTracker.set_runs_view`,
:meth:`MlflowTracker.set_study_note`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from autotune.tracking._tracker import LoadedTrial

__all__ = [
    "NOTE_TAG",
    "RUNS_VIEW_KEY",
    "RUNS_VIEW_TAG_PREFIX",
    "runs_view_state",
    "runs_view_url",
    "study_note",
]

RUNS_VIEW_TAG_PREFIX = "mlflow.sharedViewState."
"""MLflow's experiment-tag prefix of a shared runs-page state."""

RUNS_VIEW_KEY = "autotune-trials"
"""The key of the study's runs view (one per experiment, rewritten in place on resume)."""

NOTE_TAG = "mlflow.note.content"
"""The tag MLflow shows as a run's description (Markdown)."""

MAX_PARAM_COLUMNS = 8
"""Parameters shown as columns (the first ones of the space); the rest stay one click away."""

_TAG_MAX_CHARS = 5000
"""Keep the view state well under MLflow's experiment-tag value limit (tag values: 5000 on some stores)."""


def _column(kind: str, name: str) -> str:
    """A runs-table column key as the UI writes it, e.g. ``metrics.`val_loss```."""
    return f"{kind}.`{name}`"


def runs_view_state(
    parent_run_id: str,
    objective: str,
    direction: str,
    param_names: Sequence[str],
    *,
    state_tag: str = "autotune.state",
    failure_tag: str = "autotune.failure_reason",
    prediction_metrics: Sequence[str] = ("proposal/pred_mean", "proposal/pred_std"),
) -> dict[str, Any]:
    """The runs-page state of a study: its trials, best first, with the columns a reviewer needs.

    Args:
        parent_run_id: The study's parent run (its trials are the runs whose
            ``mlflow.parentRunId`` tag names it).
        objective: The objective metric (the sort key and the first column).
        direction: ``minimize`` (ascending) or ``maximize``.
        param_names: The space's parameters; the first :data:`MAX_PARAM_COLUMNS` become columns.
        state_tag: The tag holding a trial's state.
        failure_tag: The tag holding a failed trial's one-line reason.
        prediction_metrics: The GP's prediction at proposal, logged as metrics.

    Returns:
        The state as the UI stores it (JSON-serialisable).
    """
    columns = [_column("metrics", objective), _column("tags", state_tag)]
    columns += [_column("params", name) for name in list(param_names)[:MAX_PARAM_COLUMNS]]
    columns += [_column("metrics", name) for name in prediction_metrics]
    columns += [_column("attributes", "Duration"), _column("tags", failure_tag)]
    return {
        "searchFilter": f"tags.`mlflow.parentRunId` = '{parent_run_id}'",
        "orderByKey": _column("metrics", objective),
        "orderByAsc": direction == "minimize",
        "lifecycleFilter": "Active",
        "selectedColumns": columns,
        "runsHiddenMode": "SHOW_ALL",
        "viewMaximized": False,
        "runListHidden": False,
    }


def runs_view_tag(state: Mapping[str, Any]) -> tuple[str, str]:
    """The experiment tag (key, value) that stores ``state`` under :data:`RUNS_VIEW_KEY`.

    Raises:
        ValueError: The state does not fit an experiment tag (too many long column names).
    """
    value = json.dumps(state, separators=(",", ":"))
    if len(value) > _TAG_MAX_CHARS:
        raise ValueError(f"the runs view state has {len(value)} characters (at most {_TAG_MAX_CHARS})")
    return RUNS_VIEW_TAG_PREFIX + RUNS_VIEW_KEY, value


def runs_view_url(base_url: str, experiment_id: str) -> str:
    """The link that opens the study's runs view (installed with :func:`runs_view_tag`)."""
    return (f"{base_url.rstrip('/')}/#/experiments/{quote(str(experiment_id), safe='')}/runs"
            f"?viewStateShareKey={quote(RUNS_VIEW_KEY, safe='')}")


def study_note(
    *,
    study_name: str,
    experiment_id: str,
    parent_run_id: str,
    objective: str,
    direction: str,
    strategy: str,
    trials: Sequence[LoadedTrial],
    best_trial_id: int | None = None,
    max_trials: int | None = None,
    study_file: str | None = None,
    plots: Sequence[str] = (),
    analysis: str | None = None,
) -> str:
    """The parent run's Markdown description of a study.

    Args:
        study_name: The study.
        experiment_id: Its experiment (for run links).
        parent_run_id: Its parent run (for artifact links).
        objective: The objective metric.
        direction: ``minimize`` or ``maximize``.
        strategy: The strategy's name.
        trials: The trials as recorded (the latest run of each trial id counts).
        best_trial_id: The best feasible trial as the optimiser sees it; ``None``: the best
            completed value among ``trials``.
        max_trials: The budget, if any.
        study_file: The study file, for the resume command.
        plots: Artifact paths of PNG plots in the parent run, shown inline.
        analysis: Artifact path of the analysis views (HTML) in the parent run.

    Returns:
        Markdown text.
    """
    latest: dict[int, LoadedTrial] = {}
    for trial in trials:
        latest[trial.trial_id] = trial  # load order: a re-run's later run wins
    counts = Counter(t.state.value for t in latest.values())
    values: dict[int, float] = {}
    for tid, trial in latest.items():
        value = trial.value(objective)  # None unless completed with a finite value
        if value is not None and math.isfinite(value):
            values[tid] = value
    if best_trial_id is None and values:
        pick = min if direction == "minimize" else max
        best_trial_id = pick(values, key=lambda tid: values[tid])
    runs = f"#/experiments/{quote(str(experiment_id), safe='')}/runs"

    lines = [f"## Study `{study_name}`", "",
             f"**Objective:** {direction} `{objective}` · **Strategy:** `{strategy}` · "
             f"**Trials:** {len(latest)}{f' of {max_trials}' if max_trials else ''}", ""]
    best = latest.get(best_trial_id) if best_trial_id is not None else None
    if best is not None and best_trial_id in values:
        params = ", ".join(f"`{k}={_short(v)}`" for k, v in best.params.items())
        lines += [f"**Best:** trial {best_trial_id}, `{objective}` = {values[best_trial_id]:.6g} "
                  f"([open its run]({runs}/{best.run_id})): {params}", ""]
    else:
        lines += ["**Best:** none yet (no completed trial)", ""]
    if counts:
        lines += ["| state | trials |", "|---|---|"]
        lines += [f"| {state} | {n} |" for state, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        lines.append("")
    if plots:
        lines += ["### Plots", ""]
        lines += [f"![{p.rsplit('/', 1)[-1]}]({_artifact_url(parent_run_id, p)})" for p in plots]
        lines.append("")
    if analysis:
        lines += [f"Parameter importance, slices, contour, EDF and learning curves: artifact `{analysis}` "
                  "(open it under *Artifacts*; interactive).", ""]
    where = f" {study_file}" if study_file else " <study file>"
    lines += ["### Resume and review", "",
              f"- Resume after a stop or crash: `autotune run{where}` again (finished trials are kept, "
              "running ones re-attached).",
              f"- In a terminal: `autotune trials{where}`, `autotune best{where}`, `autotune report{where}`."]
    return "\n".join(lines) + "\n"


def _artifact_url(run_id: str, path: str) -> str:
    """A parent-run artifact as the UI's server serves it (relative to the UI's base URL)."""
    return f"get-artifact?path={quote(path, safe='')}&run_uuid={quote(run_id, safe='')}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
