"""Ax: experiments (JSON) in and out of autotune.

* :func:`load_experiment` reads an Ax experiment saved as JSON (``ax.storage.json_store``'s
  ``save_experiment``, or a ``Client.save_to_json_file`` snapshot) as a
  :class:`~autotune.integrations.History`: its range, choice and fixed parameters as an
  autotune space, its completed trials with their objective value and other metrics, its
  failed trials as failed observations.
* :func:`save_experiment` writes a history as an Ax experiment JSON file whose trials are
  completed (with their data) or failed, ready for ``ax.storage.json_store.load``'s
  ``load_experiment`` (or ``Client().set_experiment(...)``) to continue in Ax.

Parameters map as: a float range to a ``Float`` (``log_scale`` kept), an int range to an
``Int``; an ordered numeric choice to an ``Ordinal``, a bool choice to a ``Bool``, any other
choice to a ``Categorical``; a fixed parameter to a ``Fixed``; and back. The autotune space
and the objective's name travel in the experiment's properties, so a round trip gives the
same space. Ax's JSON encoder keeps 10 decimals of each data mean, so values come back to
that precision.

Hand-written: the mapping. Reused: Ax's experiment classes and JSON encoders. Ax is slow to
import (seconds), so it is imported inside the functions, never with this module; without
it they raise :class:`~autotune.exceptions.MissingExtraError` (``pip install 'autotune[ax]'``).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autotune.exceptions import ConfigError, MissingExtraError
from autotune.integrations._history import History
from autotune.trial import Observation, TrialState

if TYPE_CHECKING:
    from ax.core.experiment import Experiment
    from ax.core.parameter import Parameter as AxParameter

    from autotune.space import Parameter, SearchSpace

__all__ = ["experiment_from_history", "history_from_experiment", "load_experiment", "save_experiment"]

SPACE_PROPERTY = "autotune_space"
"""Experiment property written by :func:`save_experiment`: the autotune space (an exact round trip)."""
METRIC_PROPERTY = "autotune_metric"
"""Experiment property written by :func:`save_experiment`: the objective's name."""
STATE_PROPERTY = "autotune_states"
"""Experiment property written by :func:`save_experiment`: the autotune state of each failed trial."""


def _require_ax() -> None:
    try:
        import ax  # noqa: F401
    except ImportError:
        raise MissingExtraError("ax-platform", "ax") from None


# -- files -------------------------------------------------------------------------------------


def load_experiment(path: str | os.PathLike[str], *, space: SearchSpace | None = None) -> History:
    """Read an Ax experiment JSON file as a history (to import into autotune).

    Args:
        path: A file written by Ax's ``save_experiment`` or ``Client.save_to_json_file``.
        space: The space to read the trials into (default: the one :func:`save_experiment`
            stored, else the experiment's own search space).

    Returns:
        The history.

    Raises:
        ConfigError: The file is not an Ax experiment, or the experiment cannot be mapped
            (several objectives, a hierarchical search space, a parameter kind autotune lacks).
        MissingExtraError: Ax is not installed.
    """
    _require_ax()
    from ax.storage.json_store.decoder import object_from_json
    from ax.storage.json_store.registry import (
        CORE_CLASS_DECODER_REGISTRY,
        CORE_DECODER_REGISTRY,
    )

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(str(path), f"cannot be read as JSON ({exc})", None,
                          "give the file written by Ax's save_experiment or Client.save_to_json_file.") from None
    if isinstance(data, dict) and "experiment" in data and "generation_strategy" in data:
        data = data["experiment"]  # a Client snapshot
    if not isinstance(data, dict) or data.get("__type") != "Experiment":
        kind = data.get("__type") if isinstance(data, dict) else type(data).__name__
        raise ConfigError(str(path), "is not an Ax experiment (its __type is not 'Experiment')", kind,
                          "give the file written by Ax's save_experiment or Client.save_to_json_file.")
    experiment = object_from_json(data, CORE_DECODER_REGISTRY, CORE_CLASS_DECODER_REGISTRY)
    return history_from_experiment(experiment, space=space, source=str(path))


def save_experiment(history: History, path: str | os.PathLike[str], *, name: str | None = None) -> Experiment:
    """Write a history as an Ax experiment JSON file (to continue it in Ax).

    Args:
        history: The trials (e.g. from :func:`autotune.integrations.study_history`).
        path: The file to write; it must end in ``.json`` (Ax's rule).
        name: The experiment's name (default: the history's).

    Returns:
        The experiment that was written.

    Raises:
        ConfigError: The path does not end in ``.json``, or the space has conditions.
        MissingExtraError: Ax is not installed.
    """
    _require_ax()
    from ax.storage.json_store.save import save_experiment as ax_save

    path = Path(path)
    if path.suffix != ".json":
        raise ConfigError("save_experiment.path", "must end in .json (Ax's rule)", str(path),
                          f"use {path.with_suffix('.json')}.")
    experiment = experiment_from_history(history, name=name)
    ax_save(experiment, str(path))
    return experiment


# -- objects -----------------------------------------------------------------------------------


def history_from_experiment(
    experiment: Experiment, *, space: SearchSpace | None = None, source: str | None = None
) -> History:
    """The history of an Ax experiment object (see :func:`load_experiment`)."""
    from autotune.space import SearchSpace

    where = source or f"ax experiment {experiment.name!r}"
    opt_config = experiment.optimization_config
    if opt_config is None:
        raise ConfigError(where, "has no optimization config (no objective)", None,
                          "configure the objective in Ax (client.configure_optimization) before exporting.")
    objective = opt_config.objective
    objectives: list[tuple[str, str]] | None = None
    if objective.is_multi_objective:
        objectives = [(str(m), "minimize" if w < 0 else "maximize") for m, w in objective.metric_weights]
    elif not objective.is_single_objective or len(objective.metric_names) != 1:
        raise ConfigError(where, "has a scalarized objective; autotune imports single- and multi-objective "
                          "experiments", objective.metric_names, "export the objectives separately.")
    metric = objective.metric_names[0]
    props = experiment._properties or {}
    if space is None and SPACE_PROPERTY in props:
        space = SearchSpace.from_dict(props[SPACE_PROPERTY], source=f"{where}: properties.{SPACE_PROPERTY}")
    if space is None:
        space = SearchSpace([_from_ax(p, where) for p in experiment.search_space.parameters.values()], name="ax")
    if objectives is None:
        metric = str(props.get(METRIC_PROPERTY, metric))
    names = [m for m, _ in objectives or []]
    failed_states = props.get(STATE_PROPERTY, {})
    values = _final_means(experiment)
    observations = []
    for index, trial in sorted(experiment.trials.items()):
        arm = getattr(trial, "arm", None)
        if arm is None:
            raise ConfigError(f"{where}: trial {index}", "is a batch trial (several arms)", None,
                              "import experiments made of single-arm trials.")
        status = trial.status
        if not (status.is_completed or status.is_failed):
            continue  # running, abandoned, early stopped: nothing final to learn
        params = space.validate(dict(arm.parameters), where=f"{where}: trial {index}.parameters")
        metrics = dict(values.get(index, {}))
        value = metrics.get(names[0]) if names else metrics.pop(objective.metric_names[0], None)
        if names and any(n not in metrics for n in names):
            value = None
        if status.is_completed and value is not None:
            observations.append(Observation(params, value, TrialState.COMPLETED, metrics, index))
        else:
            state = TrialState(failed_states.get(str(index), TrialState.FAILED.value))
            observations.append(Observation(params, None, state if state.is_failure else TrialState.FAILED,
                                            metrics, index))
    direction = objectives[0][1] if objectives else ("minimize" if objective.minimize else "maximize")
    return History(space, observations, direction, metric, experiment.name, source,  # type: ignore[arg-type]
                   objectives)


def experiment_from_history(history: History, *, name: str | None = None) -> Experiment:
    """An Ax experiment holding a history's trials as completed (with data) or failed trials."""
    _require_ax()
    import pandas as pd
    from ax.core.arm import Arm
    from ax.core.data import Data
    from ax.core.experiment import Experiment
    from ax.core.metric import Metric
    from ax.core.objective import Objective
    from ax.core.optimization_config import MultiObjectiveOptimizationConfig, OptimizationConfig
    from ax.core.search_space import SearchSpace as AxSearchSpace

    space = history.space
    if space.is_conditional:
        raise ConfigError("save_experiment", "does not export conditional spaces to Ax", str(space),
                          "export a space without 'when' conditions.")
    metric = history.metric
    minimize = history.direction == "minimize"
    names = [m for m, _ in history.objectives or []]
    others = sorted({k for o in history.observations for k in o.metrics if k != metric and k not in names})
    if names:
        bad = [m for m in names if not m.isidentifier()]
        if bad:
            raise ConfigError("save_experiment", "exports objectives named as identifiers only (Ax's "
                              "multi-objective expressions)", bad[0], "rename the objective, e.g. val_loss.")
        objective = Objective(expression=", ".join(f"-{m}" if d == "minimize" else m for m, d in history.objectives or []),
                              metric_name_to_signature={m: m for m in names})
    elif metric.isidentifier():
        objective = Objective(expression=f"-{metric}" if minimize else metric,
                              metric_name_to_signature={metric: metric})
    else:  # Ax's expressions cannot hold this name: the (deprecated) metric form can
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            objective = Objective(metric=Metric(metric), minimize=minimize)
    failed_states: dict[str, str] = {}
    experiment = Experiment(
        AxSearchSpace([_to_ax(p) for p in space]),
        name=name or history.name or "autotune",
        optimization_config=MultiObjectiveOptimizationConfig(objective) if names else OptimizationConfig(objective),
        tracking_metrics=[Metric(m) for m in others],
        properties={SPACE_PROPERTY: json.loads(json.dumps(space.to_dict())), METRIC_PROPERTY: metric,
                    STATE_PROPERTY: failed_states},
    )
    rows = []
    for o in history.observations:
        if o.state is TrialState.KILLED:
            continue
        params = space.validate(o.params, where=f"history trial {o.trial_id}.params")
        trial = experiment.new_trial()
        trial.add_arm(Arm(parameters=params))
        trial.mark_running(no_runner_required=True)
        results = {k: v for k, v in o.metrics.items() if math.isfinite(v)}
        if o.value is not None and math.isfinite(o.value):
            results[metric] = float(o.value)
        for key, mean in results.items():
            rows.append({"trial_index": trial.index, "arm_name": trial.arm.name, "metric_name": key,  # type: ignore[union-attr]
                         "metric_signature": key, "mean": float(mean), "sem": math.nan})
        if metric in results and all(n in results for n in names):
            trial.mark_completed()
        else:
            failed_states[str(trial.index)] = o.state.value if o.state.is_failure else TrialState.NONFINITE.value
            trial.mark_failed(reason=f"autotune {failed_states[str(trial.index)]}")
    if rows:
        experiment.attach_data(Data(df=pd.DataFrame(rows)))
    return experiment


# -- helpers -----------------------------------------------------------------------------------


def _final_means(experiment: Experiment) -> dict[int, dict[str, float]]:
    """Trial index to metric name to its final mean (the last row, if a metric has several steps)."""
    df = experiment.lookup_data().df
    out: dict[int, dict[str, float]] = {}
    if "step" in df.columns:
        df = df.sort_values("step", na_position="last", kind="stable")
    for row in df.itertuples(index=False):
        out.setdefault(int(row.trial_index), {})[str(row.metric_name)] = float(row.mean)
    return out


def _from_ax(p: AxParameter, where: str) -> Parameter:
    from ax.core.parameter import (
        ChoiceParameter,
        FixedParameter,
        ParameterType,
        RangeParameter,
    )

    from autotune.space import Bool, Categorical, Fixed, Float, Int, Ordinal

    key = f"{where}: search_space.{p.name}"
    if isinstance(p, RangeParameter):
        if p.logit_scale:
            raise ConfigError(key, "is logit-scaled; autotune has linear and log floats", p.name,
                              "pass space= with the parameter to use.")
        if p.parameter_type == ParameterType.INT:
            return Int(p.name, low=int(p.lower), high=int(p.upper), log=p.log_scale)
        return Float(p.name, low=float(p.lower), high=float(p.upper), log=p.log_scale)
    if isinstance(p, ChoiceParameter):
        if p.is_hierarchical:
            raise ConfigError(key, "has dependents (a hierarchical search space), which are not imported",
                              dict(p.dependents), "pass space= (a SearchSpace with 'when' conditions).")
        if p.parameter_type == ParameterType.BOOL and set(p.values) == {False, True}:
            return Bool(p.name)
        numeric = p.parameter_type in (ParameterType.INT, ParameterType.FLOAT)
        if p.is_ordered and numeric:
            return Ordinal(p.name, values=tuple(p.values))
        return Categorical(p.name, choices=tuple(p.values))
    if isinstance(p, FixedParameter):
        return Fixed(p.name, value=p.value)
    raise ConfigError(key, "is a parameter kind autotune does not map", type(p).__name__,
                      "pass space= with the parameter to use.")


def _to_ax(p: Parameter) -> AxParameter:
    from ax.core.parameter import (
        ChoiceParameter,
        FixedParameter,
        ParameterType,
        RangeParameter,
    )

    from autotune.space import Bool, Categorical, Fixed, Float, Int, Ordinal

    if isinstance(p, Float):
        return RangeParameter(p.name, ParameterType.FLOAT, p.low, p.high, log_scale=p.log)
    if isinstance(p, Int) and p.step == 1:
        return RangeParameter(p.name, ParameterType.INT, p.low, p.high, log_scale=p.log)
    if isinstance(p, Int):
        return ChoiceParameter(p.name, ParameterType.INT, list[Any](p.values), is_ordered=True, sort_values=True)
    if isinstance(p, Bool):
        return ChoiceParameter(p.name, ParameterType.BOOL, [False, True], is_ordered=True, sort_values=True)
    if isinstance(p, Fixed):
        return FixedParameter(p.name, _ax_type(p.value), p.value)
    if not isinstance(p, (Ordinal, Categorical)):
        raise ConfigError(f"space.parameters.{p.name}", "is a parameter kind Ax has no match for", p.kind,
                          "use float, int, ordinal, categorical, bool or fixed parameters.")
    values = list(p.values if isinstance(p, Ordinal) else p.choices)
    kinds = {_ax_type(v) for v in values}
    if len(kinds) != 1:
        raise ConfigError(f"space.parameters.{p.name}", "mixes value types, which Ax choices cannot",
                          values, "use values of one type (all str, all int, ...).")
    kind = kinds.pop()
    if len(values) == 1:  # Ax choices need two values
        return FixedParameter(p.name, kind, values[0])
    numeric = kind in (ParameterType.INT, ParameterType.FLOAT)
    ordered = isinstance(p, Ordinal) or len(values) == 2  # Ax orders every two-value choice
    return ChoiceParameter(p.name, kind, values, is_ordered=ordered, sort_values=ordered and numeric)


def _ax_type(value: Any) -> Any:
    from ax.core.parameter import ParameterType

    if isinstance(value, bool):
        return ParameterType.BOOL
    if isinstance(value, int):
        return ParameterType.INT
    if isinstance(value, float):
        return ParameterType.FLOAT
    if isinstance(value, str):
        return ParameterType.STRING
    raise ConfigError("space", "holds a value Ax parameters cannot", value, "use bool, int, float or str values.")
