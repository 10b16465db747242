"""Early stopping in the study driver: feed the rule, stop condemned trials, record them ``pruned``.

The rule (:mod:`autotune.stopping`) is pure logic; this is its seam with the driver:

* every report the driver reads from a running trial goes to the rule (the judged metric,
  flipped so that smaller is better);
* a stopped trial is asked to stop gracefully: a :data:`~autotune.report.STOP_FILE` in its
  folder makes its next ``report()`` raise :class:`~autotune.report.TrialStopped` (and
  :func:`~autotune.should_stop` true), so it ends at once and its worker is free; an in-process
  trial is cancelled (it stops at its next report the same way); a trial that does not report
  again within ``grace_s`` is killed;
* its result becomes ``pruned`` with the step, value and reason of the decision as tags, and its
  last reported value goes to the optimiser as a low-fidelity observation;
* on resume the rule's state is rebuilt from the record: every recorded report is replayed with
  ``decided=True`` (no decision is made twice, no pruned trial runs again), and a trial a dead
  driver had asked to stop (its stop file exists) is recorded ``pruned`` when it ends.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.report import STOP_FILE
from autotune.trial import TrialResult, TrialState

if TYPE_CHECKING:
    from autotune.executors import Job
    from autotune.stopping import Decision, StoppingRule, Value
    from autotune.study._config import StudyConfig
    from autotune.tracking import LoadedTrial

__all__ = ["TAG_PRUNED_REASON", "TAG_PRUNED_STEP", "TAG_PRUNED_VALUE", "EarlyStopper", "strategy_options"]

logger = logging.getLogger(__name__)

TAG_PRUNED_STEP = "autotune.pruned_step"
TAG_PRUNED_VALUE = "autotune.pruned_value"
TAG_PRUNED_REASON = "autotune.pruned_reason"


def strategy_options(config: StudyConfig) -> dict[str, Any]:
    """The strategy's options, with a multi-fidelity strategy's levels taken from ``early_stopping``.

    ``mobster`` models the values at the rung levels of the stopping rule, so its ``min_step``,
    ``max_step`` and ``eta`` default to the study's (options given explicitly win).
    """
    options = dict(config.strategy.options)
    if config.strategy.name == "mobster":
        es = config.early_stopping
        options.setdefault("min_step", es.min_step)
        options.setdefault("eta", es.eta)
        if es.max_step is not None:
            options.setdefault("max_step", es.max_step)
    return options


@dataclasses.dataclass
class _Stop:
    decision: Decision
    deadline: float
    killed: bool = False


class EarlyStopper:
    """The driver's early-stopping state for one :meth:`Study.optimize` call.

    Args:
        config: The study (its ``early_stopping`` section and objective).
    """

    def __init__(self, config: StudyConfig) -> None:
        es = config.early_stopping
        self.rule: StoppingRule = es.build()
        self.active = es.rule != "none"
        if es.metric is None and config.objectives:  # several objectives: judged together (Pareto ranks)
            self.metrics = [o.metric for o in config.objectives]
            self.signs = [1.0 if o.direction == "minimize" else -1.0 for o in config.objectives]
        else:
            metric = es.metric or config.objective.metric
            direction = es.direction or (config.objective.direction if metric == config.objective.metric
                                         else "minimize")
            self.metrics, self.signs = [metric], [1.0 if direction == "minimize" else -1.0]
        #: The (first) judged metric.
        self.metric = self.metrics[0]
        self.grace_s = float(es.grace_s)
        self.stops: dict[int, _Stop] = {}

    # -- resume ---------------------------------------------------------------------------------

    def replay(self, trials: Sequence[LoadedTrial], reports: Mapping[int, Sequence[Mapping[str, Any]]]) -> int:
        """Rebuild the rule's state from the record, deciding nothing.

        Args:
            trials: The recorded trials (finished and running).
            reports: Their reported curves by trial id (``read_reports``).

        Returns:
            The number of reports replayed.
        """
        if not self.active:
            return 0
        n = 0
        for trial in sorted(trials, key=lambda t: t.trial_id):
            for record in reports.get(trial.trial_id, ()):
                value = self._value(record)
                if value is not None:
                    self.rule.observe(trial.trial_id, int(record["step"]), value, decided=True)
                    n += 1
            if trial.state is TrialState.COMPLETED:
                self.rule.completed(trial.trial_id)
        return n

    # -- while trials run -----------------------------------------------------------------------

    def feed(self, job: Job, reports: Sequence[Mapping[str, Any]]) -> Decision | None:
        """Give a running trial's new reports to the rule; stop the trial if it is condemned."""
        tid = job.trial_id
        if not self.active or tid in self.stops:
            return None
        for record in reports:
            value = self._value(record)
            if value is None:
                continue
            decision = self.rule.observe(tid, int(record["step"]), value)
            if decision is not None:
                self._request_stop(job, decision)
                return decision
        return None

    def enforce(self, jobs: Sequence[Job]) -> None:
        """Kill the stopped trials that did not end within the grace period."""
        now = time.monotonic()
        for job in jobs:
            stop = self.stops.get(job.trial_id)
            if stop is not None and not stop.killed and now >= stop.deadline and not job.done():
                stop.killed = True
                job.cancel()

    def finish(self, job: Job, result: TrialResult) -> tuple[TrialResult, dict[str, Any] | None]:
        """The trial's result as recorded: ``pruned`` if the rule stopped it (else unchanged).

        Returns:
            The result and the tags that say where it was stopped (``None`` if it was not).
        """
        stop = self.stops.pop(job.trial_id, None)
        if result.state is TrialState.COMPLETED:
            self.rule.completed(job.trial_id)
        if stop is None and result.state is TrialState.KILLED and _stop_file(job).is_file():
            # a dead driver asked it to stop: the decision was made, only its recording is left
            step = max((int(r["step"]) for r in result.history if "step" in r), default=0)
            stop = _Stop(_decision_from_record(job.trial_id, step, result, self.metric), 0.0)
        if stop is None or result.state not in (TrialState.KILLED, TrialState.PRUNED):
            return result, None  # not stopped, or it ended otherwise first (completed, failed)
        metrics: dict[str, float] = {}
        for record in result.history:
            metrics.update({k: float(v) for k, v in record.items() if k != "step" and isinstance(v, (int, float))})
        metrics.update(result.metrics)
        d = stop.decision
        value = list(d.value) if isinstance(d.value, tuple) else d.value  # several objectives: a JSON list
        tags = {TAG_PRUNED_STEP: d.step, TAG_PRUNED_VALUE: value, TAG_PRUNED_REASON: d.reason[:500]}
        return dataclasses.replace(result, state=TrialState.PRUNED, metrics=metrics, error=None), tags

    # -- helpers --------------------------------------------------------------------------------

    def _value(self, record: Mapping[str, Any]) -> Value | None:
        """The judged value of a report (smaller is better), a tuple with several objectives."""
        if "step" not in record or any(m not in record for m in self.metrics):
            return None
        out: list[float] = []
        for metric, sign in zip(self.metrics, self.signs):
            try:
                value = float(record[metric])
            except (TypeError, ValueError):
                return None
            out.append(sign * value if math.isfinite(value) else math.inf)
        return out[0] if len(out) == 1 else tuple(out)

    def _request_stop(self, job: Job, decision: Decision) -> None:
        self.stops[job.trial_id] = _Stop(decision, time.monotonic() + self.grace_s)
        path = _stop_file(job)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(decision.reason + "\n", encoding="utf-8")
        except OSError as exc:  # the grace period then ends in a kill
            logger.warning("trial %d: cannot write %s (%s); it is stopped after %g s", job.trial_id, path, exc,
                           self.grace_s)
        if getattr(job, "cancel_is_graceful", False):
            with contextlib.suppress(Exception):
                job.cancel()  # in-process: raises TrialStopped at the trial's next report
        logger.info("trial %d: stopped early at step %d (%s)", job.trial_id, decision.step, decision.reason)


def _stop_file(job: Job) -> Path:
    return Path(job.spec.workdir or ".") / STOP_FILE


def _decision_from_record(trial_id: int, step: int, result: TrialResult, metric: str) -> Decision:
    from autotune.stopping import Decision

    value = next((float(r[metric]) for r in reversed(result.history) if metric in r), math.nan)
    return Decision(trial_id, step, value, "stopped early by the rule before the driver restarted")
