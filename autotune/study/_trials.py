"""A study's trials as a table (``autotune trials``, ``Study.trials()``) and their reports (``autotune report``).

Readers only: nothing here writes to the record. Rows come from :meth:`StudyRecord.trials`
(the latest run of each trial id); the start time of each run and the intermediate reports
are read from MLflow in one bounded search plus one metric-history call per curve.
pandas is imported only by :func:`trials_frame`.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ConfigError, one_of
from autotune.tracking import (
    METRIC_PARAM_PREFIX,
    METRIC_PROPOSAL_PREFIX,
    TAG_DEVICE,
    TAG_DURATION_S,
    TAG_FAILURE_REASON,
    failure_line,
)
from autotune.trial import TrialState

if TYPE_CHECKING:
    import pandas as pd

    from autotune.study._record import StudyRecord
    from autotune.tracking import LoadedTrial

__all__ = [
    "SORT_KEYS",
    "TRIAL_COLUMNS",
    "filter_rows",
    "read_reports",
    "sort_rows",
    "study_url",
    "trials_frame",
    "trials_table",
]

_NOT_REPORTS = (METRIC_PARAM_PREFIX, METRIC_PROPOSAL_PREFIX)  # metric prefixes the tracker logs for charts, not the trial's reports
TRIAL_COLUMNS = ("trial_id", "state", "value", "duration_s", "device", "params", "failure", "started", "run_id")
"""The keys of every row of :func:`trials_table`."""
SORT_KEYS = ("id", "objective", "duration")
"""``--sort`` values: trial id (ascending), objective (best first), duration (longest first)."""
MAX_REPORT_KEYS = 32
"""Curves read per trial at most (``autotune report``)."""
MAX_REPORT_POINTS = 100_000
"""Metric values read per study at most (``autotune report``): a bound on the MLflow calls."""


def trials_table(source: StudyRecord | Sequence[LoadedTrial], objective: str) -> list[dict[str, Any]]:
    """One plain row per trial: what ``autotune trials`` shows.

    Args:
        source: A study's record (its latest run per trial id, with the runs' start times),
            or trials already loaded (then ``started`` is ``None``).
        objective: The objective metric.

    Returns:
        Rows sorted by trial id, each with the keys of :data:`TRIAL_COLUMNS`: ``trial_id``,
        ``state`` (a :class:`~autotune.trial.TrialState` value), ``value`` (the objective, or
        ``None`` unless completed with a finite value), ``duration_s``, ``device``, ``params``
        (a dict), ``failure`` (one line, or ``None``), ``started`` (UTC ISO 8601, or ``None``)
        and ``run_id``.
    """
    if isinstance(source, Sequence):
        trials, starts = list(source), {}
    else:
        trials = source.trials()
        starts = {run_id: info[0] for run_id, info in _run_infos(source).items()} if trials else {}
    rows = []
    for trial in sorted(trials, key=lambda t: t.trial_id):
        started_ms = starts.get(trial.run_id)
        rows.append({
            "trial_id": trial.trial_id,
            "state": trial.state.value,
            "value": trial.value(objective),
            "duration_s": _float(trial.tags.get(TAG_DURATION_S)),
            "device": trial.tags.get(TAG_DEVICE) or None,
            "params": dict(trial.params),
            "failure": _failure(trial),
            "started": None if started_ms is None else _dt.datetime.fromtimestamp(
                started_ms / 1000, tz=_dt.timezone.utc).isoformat(timespec="seconds"),
            "run_id": trial.run_id,
        })
    return rows


def trials_frame(source: StudyRecord | Sequence[LoadedTrial], objective: str) -> pd.DataFrame:
    """The trials as a pandas DataFrame (``Study.trials()``), one row per trial id.

    Args:
        source: As for :func:`trials_table`.
        objective: The objective metric; its values are the column named after it.

    Returns:
        A frame indexed by ``trial_id`` with the columns ``state``, ``<objective>``,
        ``duration_s``, ``device``, ``failure``, ``started`` (UTC timestamps), ``run_id`` and
        one ``params.<name>`` column per parameter.
    """
    import pandas as pd

    rows = trials_table(source, objective)
    flat = [_flat_row(row, objective) for row in rows]
    columns = ["trial_id", "state", objective, "duration_s", "device", "failure", "started", "run_id"]
    columns += sorted({key for row in flat for key in row if key.startswith("params.")})
    frame = pd.DataFrame(flat, columns=columns)
    frame["started"] = pd.to_datetime(frame["started"], utc=True)
    return frame.set_index("trial_id")


def filter_rows(rows: Iterable[dict[str, Any]], states: Sequence[str] | None) -> list[dict[str, Any]]:
    """The rows whose state is one of ``states`` (all rows when ``states`` is empty).

    Raises:
        ConfigError: A state is not a :class:`~autotune.trial.TrialState` value.
    """
    valid = [s.value for s in TrialState]
    for state in states or ():
        if state not in valid:
            raise ConfigError("--state", one_of(state, valid), state, f"use one of {', '.join(valid)}.")
    return [row for row in rows if not states or row["state"] in states]


def sort_rows(rows: Iterable[dict[str, Any]], key: str, direction: str = "minimize") -> list[dict[str, Any]]:
    """The rows sorted by ``key`` (one of :data:`SORT_KEYS`).

    Args:
        rows: Rows of :func:`trials_table`.
        key: ``id`` (ascending), ``objective`` (best first for ``direction``; trials without
            a value last, by id) or ``duration`` (longest first; unknown durations last).
        direction: The objective's direction, ``minimize`` or ``maximize``.

    Returns:
        A new sorted list.

    Raises:
        ConfigError: An unknown key.
    """
    rows = sorted(rows, key=lambda r: r["trial_id"])
    if key == "id":
        return rows
    if key == "objective":
        sign = -1.0 if direction == "maximize" else 1.0
        return sorted(rows, key=lambda r: (r["value"] is None, 0.0 if r["value"] is None else sign * r["value"]))
    if key == "duration":
        return sorted(rows, key=lambda r: (r["duration_s"] is None, -(r["duration_s"] or 0.0)))
    raise ConfigError("--sort", one_of(key, SORT_KEYS), key, f"use one of {', '.join(SORT_KEYS)}.")


def read_reports(record: StudyRecord, trials: Sequence[LoadedTrial] | None = None, *,
                 max_keys: int = MAX_REPORT_KEYS, max_points: int = MAX_REPORT_POINTS) -> dict[int, list[dict[str, float]]]:
    """Each trial's intermediate reports, read back from MLflow's metric history.

    A report is ``{"step": 3, "val_loss": 0.4, ...}`` (one per logged step, as
    :func:`autotune.analysis.write_report` takes them). A final-only metric (one value, not
    a curve: ``n_params``, ``train_seconds``) and the tracker's chart metrics (``param/``,
    ``proposal/``) are left out.

    Args:
        record: The study's record (it must exist).
        trials: Its trials (read from the record when ``None``).
        max_keys: Curves read per trial at most.
        max_points: Values read per study at most; trials beyond it get no reports.

    Returns:
        Per trial id, its reports by ascending step (trials without curves are absent).
    """
    trials = record.trials() if trials is None else trials
    if not trials:
        return {}
    infos = _run_infos(record)
    client = record.tracker.client
    reports: dict[int, list[dict[str, float]]] = {}
    budget = max_points
    for trial in sorted(trials, key=lambda t: t.trial_id):
        keys = [k for k in infos.get(trial.run_id, (0, []))[1] if not k.startswith(_NOT_REPORTS)][:max_keys]
        steps: dict[int, dict[str, float]] = {}
        for key in sorted(keys):
            if budget <= 0:
                break
            history = _history(client, trial.run_id, key)
            budget -= len(history)
            if len(history) < 2:
                continue  # a final-only metric, not a curve
            for point in history:
                if math.isfinite(point.value):
                    steps.setdefault(int(point.step), {"step": float(point.step)})[key] = float(point.value)
        if steps:
            reports[trial.trial_id] = [steps[s] for s in sorted(steps)]
    return reports


def study_url(base_url: str, experiment_id: str | None, metric: str, direction: str) -> str:
    """The MLflow UI's runs view of a study, sorted by its objective (best first).

    MLflow 3's runs view reads its sort from the URL's ``orderByKey`` (``metrics.`<key>```) and
    ``orderByAsc`` parameters (``mlflow/server/js``, ``experimentPage`` search facets).

    Args:
        base_url: The server, e.g. ``http://127.0.0.1:5000``.
        experiment_id: The study's experiment, or ``None`` (the experiment list).
        metric: The objective metric.
        direction: ``minimize`` (ascending) or ``maximize`` (descending).

    Returns:
        e.g. ``http://127.0.0.1:5000/#/experiments/1/runs?searchFilter=&orderByKey=metrics.%60loss%60&orderByAsc=true``.
    """
    from urllib.parse import quote

    base = base_url.rstrip("/")
    if experiment_id is None:
        return f"{base}/#/experiments"
    order_key = quote(f"metrics.`{metric}`", safe=".")
    ascending = "true" if direction == "minimize" else "false"
    return (f"{base}/#/experiments/{quote(str(experiment_id), safe='')}/runs?searchFilter="
            f"&orderByKey={order_key}&orderByAsc={ascending}")


# -- helpers --------------------------------------------------------------------------------------


def _run_infos(record: StudyRecord) -> dict[str, tuple[int, list[str]]]:
    """Per run of the study's experiment: its start time (ms) and its metric keys (one paged search)."""
    tracker = record.tracker
    client = tracker.client
    infos: dict[str, tuple[int, list[str]]] = {}
    token: str | None = None
    while True:
        page = client.search_runs([tracker.experiment_id], max_results=1000, page_token=token)
        for run in page:
            infos[run.info.run_id] = (int(run.info.start_time or 0), list(run.data.metrics))
        token = getattr(page, "token", None)
        if not token:
            return infos


def _history(client: Any, run_id: str, key: str) -> list[Any]:
    try:
        return list(client.get_metric_history(run_id, key))
    except Exception:  # noqa: BLE001 (a key that cannot be read is shown as no curve)
        return []


def _failure(trial: LoadedTrial) -> str | None:
    if trial.unreadable is not None:
        return f"unreadable: {trial.unreadable}"
    reason = trial.tags.get(TAG_FAILURE_REASON)
    if not reason:
        return None
    return failure_line(reason) or None  # older records hold the whole traceback


def _float(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _flat_row(row: Mapping[str, Any], objective: str) -> dict[str, Any]:
    flat = {key: value for key, value in row.items() if key not in ("params", "value")}
    flat[objective] = row["value"]
    flat.update({f"params.{name}": value for name, value in row["params"].items()})
    return flat
