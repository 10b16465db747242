"""A multi-objective study's record: objective values in and out, the Pareto front kept current.

One owner of what a study with ``objectives:`` adds to its record (:class:`StudyRecord` calls
it after each tell): every trial run's ``autotune.pareto`` tag (``true`` on the front, else
``false``, rewritten only when it changes), and on the parent run the ``hypervolume`` and
``pareto_size`` metrics (step: finished trials), the reference point as a tag and the front as
``pareto/front.json`` and ``pareto/front.csv``. With an inferred reference point, the point
moves as the front grows, so the logged hypervolume can fall; give ``reference_point:`` for a
curve that only rises.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from autotune.optimizer import Optimizer
    from autotune.study._config import StudyConfig
    from autotune.study._record import StudyRecord
    from autotune.tracking import LoadedTrial, MlflowTracker
    from autotune.trial import TrialResult


def objective_names(config: StudyConfig) -> list[str]:
    """The objective metrics: every one of ``objectives``, else the one ``objective``."""
    return [o.metric for o in config.objectives] if config.objectives else [config.objective.metric]


def optimizer_objectives(config: StudyConfig) -> dict[str, Any]:
    """The :class:`~autotune.optimizer.Optimizer` keywords of a multi-objective study (else empty)."""
    if not config.objectives:
        return {}
    return {"objectives": [(o.metric, o.direction) for o in config.objectives],
            "reference_point": config.reference_point}


def objective_value(config: StudyConfig, get: Callable[[str], float | None]) -> float | dict[str, float] | None:
    """A trial's value for ``Optimizer.tell``: the objective's, or ``{metric: value}`` for several.

    Args:
        config: The study.
        get: Reads one metric of the trial (``None`` when it has none or did not complete).

    Returns:
        ``None`` when any objective is missing (the trial is then learned as failed).
    """
    if not config.objectives:
        return get(config.objective.metric)
    values = {m: get(m) for m in objective_names(config)}
    if any(v is None for v in values.values()):
        return None
    return {k: float(v) for k, v in values.items() if v is not None}


def front_rows(optimizer: Optimizer) -> list[dict[str, Any]]:
    """The Pareto front as rows: ``trial_id``, each objective, then the params."""
    names = [o.metric for o in optimizer.objectives]
    return [{"trial_id": o.trial_id, **{n: o.metrics[n] for n in names}, **o.params} for o in optimizer.pareto_front()]


def front_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """Rows as CSV (columns of the first row first, then any others)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=cols or ["trial_id"])
    w.writeheader()
    w.writerows(rows)
    return out.getvalue()


class ParetoRecord:
    """Keeps the record of a multi-objective study's front current (see the module docstring).

    Args:
        tracker: The study's tracker.
        trials: Reads the record's trials (once, to learn the run ids and current tags).
    """

    def __init__(self, tracker: MlflowTracker, trials: Callable[[], list[LoadedTrial]]) -> None:
        self.tracker = tracker
        self._trials = trials
        self._on_front: dict[int, bool] | None = None
        self._run_ids: dict[int, str] = {}
        self._ref: str | None = None
        self._front: set[int] | None = None

    def _load(self) -> dict[int, bool]:
        from autotune.tracking import TAG_PARETO

        if self._on_front is None:
            self._on_front = {}
            for t in self._trials():
                self._run_ids[t.trial_id] = t.run_id
                if TAG_PARETO in t.tags:
                    self._on_front[t.trial_id] = t.tags[TAG_PARETO] == "true"
        return self._on_front

    def update(self, optimizer: Optimizer, trial_id: int | None = None, run_id: str | None = None) -> None:
        """Write what changed after a tell: trial tags, hypervolume, reference point and front table.

        Args:
            optimizer: The study's optimiser, already told.
            trial_id: The trial just told, and ``run_id`` its run (saves a look-up).
            run_id: See ``trial_id``.
        """
        from autotune.tracking import TAG_PARETO, TAG_REFERENCE_POINT

        on_front = self._load()
        if trial_id is not None and run_id is not None:
            self._run_ids[trial_id] = run_id
        front = {o.trial_id for o in optimizer.pareto_front() if o.trial_id is not None}
        told = [o.trial_id for o in optimizer.observations if o.trial_id is not None]
        changed = {t: t in front for t in told if on_front.get(t, False) != (t in front) or t == trial_id}
        if any(t not in self._run_ids for t in changed):
            self._run_ids.update({t.trial_id: t.run_id for t in self._trials()})
        for t, now in changed.items():
            if t in self._run_ids:
                self.tracker.set_trial_tags(self._run_ids[t], {TAG_PARETO: "true" if now else "false"})
                on_front[t] = now
        n = len(optimizer.observations)
        ref = optimizer.reference_point()
        hv = optimizer.hypervolume()
        self.tracker.log_study_metrics({"hypervolume": hv, "pareto_size": len(front)}, step=n)
        ref_text = json.dumps(ref, sort_keys=True)
        if ref is not None and ref_text != self._ref:
            self._ref = ref_text
            self.tracker.set_study_tags({TAG_REFERENCE_POINT: ref_text})
        if front != self._front:
            self._front = front
            rows = front_rows(optimizer)
            self.tracker.log_study_text(json.dumps({"reference_point": ref, "hypervolume": hv, "front": rows},
                                                   indent=1, default=str), "pareto/front.json")
            self.tracker.log_study_text(front_csv(rows), "pareto/front.csv")


def checked_objectives(config: StudyConfig, result: TrialResult) -> TrialResult:
    """A completed result of a multi-objective study lacking an objective becomes ``failed`` (or
    ``nonfinite`` for a non-finite value), with a reason naming the metric and the fix.

    The executors check the first objective (``objective``); this checks the others.
    """
    import dataclasses
    import math

    from autotune.trial import TrialState

    if not config.objectives or result.state is not TrialState.COMPLETED:
        return result
    names = objective_names(config)
    missing = [m for m in names if m not in result.metrics]
    if missing:
        return dataclasses.replace(result, state=TrialState.FAILED, error=(
            f"the trial finished without a value for the objective {missing[0]!r} (metrics: "
            f"{sorted(result.metrics)}). Fix: return a dict holding every objective ({', '.join(names)}), "
            f"or call report({missing[0]}=...)."))
    bad = [m for m in names if not math.isfinite(result.metrics[m])]
    if bad:
        return dataclasses.replace(result, state=TrialState.NONFINITE,
                                   error=f"the objective {bad[0]!r} is {result.metrics[bad[0]]}")
    return result


def front_summary(record: StudyRecord) -> dict[str, Any]:
    """The record's Pareto front, hypervolume and reference point (for ``autotune best``/``status``).

    Returns:
        ``objectives`` (``[{metric, direction}]``), ``reference_point`` (by metric; inferred
        when the study gives none, ``None`` before any feasible trial), ``reference_inferred``,
        ``hypervolume``, ``n_trials`` (finished, learned) and ``front`` (rows: ``trial_id``,
        each objective, ``params``, ``run_id``).
    """
    config = record.config
    optimizer = record.new_optimizer()
    trials = [t for t in record.trials() if t.state.is_finished and not t.requeue]
    run_ids = {t.trial_id: t.run_id for t in trials}
    if trials:
        record.rebuild(optimizer)
    names = objective_names(config)
    front = [{"trial_id": o.trial_id, **{n: o.metrics[n] for n in names}, "params": dict(o.params),
              "run_id": run_ids.get(o.trial_id if o.trial_id is not None else -1)}
             for o in optimizer.pareto_front()]
    return {
        "objectives": [{"metric": o.metric, "direction": o.direction} for o in config.objectives or []],
        "reference_point": optimizer.reference_point(),
        "reference_inferred": config.reference_point is None,
        "hypervolume": optimizer.hypervolume(),
        "n_trials": len(optimizer.observations),
        "front": front,
    }
