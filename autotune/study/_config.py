"""The study file: a validated, fully resolved :class:`StudyConfig`.

A study file is YAML under ``studies/``::

    name: quadratic
    space: [mlp, {parameters: {lr: {type: float, low: 1.0e-4, high: 0.1, log: true}}}]
    objective: {metric: val_loss, direction: minimize}
    constraints: ["n_params <= 2e6"]
    strategy: {name: ei}
    budget: {max_trials: 20}
    parallelism: {workers: 2}
    trial: {entry_point: "train:train", fixed_args: {size: full}, timeout_s: 300}

Every default is applied here, once: relative paths are resolved against the study file's
folder (the current directory for a config built in Python), ``output_dir`` defaults to
``runs/<name>`` there and ``tracking_uri`` to a SQLite store inside ``output_dir``. Nothing
downstream fills in a missing value.

Errors name the file, the key path, the rule, the value received and the fix::

    studies/x.yaml: budget.max_trials: must be >= 1, got 0. Fix: use e.g. max_trials: 50.
"""

from __future__ import annotations

import difflib
import json
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PrivateAttr,
    Strict,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError
from typing_extensions import Self

from autotune.exceptions import ConfigError, StudyConfigError, one_of, shown

if typing.TYPE_CHECKING:
    from autotune.space import SearchSpace
    from autotune.stopping import StoppingRule

__all__ = [
    "BudgetConfig",
    "ExecutorConfig",
    "ObjectiveConfig",
    "EarlyStoppingConfig",
    "ModelConfig",
    "ParallelismConfig",
    "StrategyConfig",
    "StudyConfig",
    "TrialConfig",
    "load_study_config",
]

def _number(value: Any) -> Any:
    """A real number, never a bool or a string (``true`` is not 1, ``"3"`` is not 3)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("float_type", "Input should be a number")
    return value


#: An integer: ``true``, ``1.0`` and ``"1"`` are refused.
StrictInt = Annotated[int, Strict()]
#: A string: bytes and numbers are refused.
StrictStr = Annotated[str, Strict()]
StrictBool = Annotated[bool, Strict()]
#: A finite number (an int is accepted and becomes a float; a bool or a string is refused).
Number = Annotated[float, BeforeValidator(_number)]
#: Largest number of workers, prefetched suggestions, initial trials (one ask is bounded too).
MAX_WORKERS = 10_000
#: Workers from which ``parallelism.ask_process`` is on by default.
ASK_PROCESS_FROM = 32
#: Most trials of one study.
MAX_TRIALS = 10_000_000
#: The tracking URI schemes MLflow stores accept (a plain path is a local file store).
_URI_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql", "file", "http", "https", "databricks")

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MODULE_ENTRY_POINT = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
# Set by the study's own sections; an executor option of the same name would contradict them.
_EXECUTOR_OPTIONS_FROM_PARALLELISM = {
    "n_workers": "parallelism.workers",
    "trials_per_gpu": "parallelism.trials_per_gpu",
}


class _Section(BaseModel):
    """A part of the study file: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ObjectiveConfig(_Section):
    """What the study optimises.

    Attributes:
        metric: The final metric of each trial to optimise (e.g. ``val_loss``).
        direction: ``minimize`` or ``maximize``.
    """

    metric: StrictStr = Field(min_length=1, max_length=250, examples=["val_loss"])
    direction: Literal["minimize", "maximize"] = Field(default="minimize", examples=["minimize"])


class StrategyConfig(_Section):
    """The strategy and its options (checked against the strategy's constructor).

    Attributes:
        name: A registered strategy name (see :func:`autotune.strategies.strategy_names`).
        options: Keyword arguments of the strategy.
    """

    name: StrictStr = Field(default="ei", examples=["ei"])
    options: dict[StrictStr, Any] = Field(default_factory=dict, examples=["{num_restarts: 8}"])

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        """Accept the short form ``strategy: ei``."""
        return {"name": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _check_registered(self) -> Self:
        from autotune.strategies import get_strategy, option_names, strategy_names

        names = strategy_names()
        if self.name not in names:
            raise ConfigError("strategy.name", "unknown strategy name", self.name, _one_of(self.name, names))
        _check_json_values("strategy.options", self.options)
        valid = option_names(type(get_strategy(self.name)))  # the constructor's, and the cost options
        for key, value in self.options.items():
            if key not in valid:
                get_strategy(self.name, dict(self.options), where="strategy")  # says why (e.g. a cost, no acquisition)
                raise ConfigError(f"strategy.options.{key}", f"is not an option of strategy {self.name!r}", shown(value),
                                  _one_of(key, sorted(valid)) if valid else "this strategy takes no options.")
        get_strategy(self.name, where="strategy", **self.options)  # the constructor checks the values
        return self


class ModelConfig(_Section):
    """The driver's GP surrogates.

    Attributes:
        device: Where the GPs are fitted and the acquisitions optimised: ``auto`` (a GPU that
            no trial uses: ``parallelism.driver_gpu``, or the first GPU when trials run on the
            CPU; else the CPU), ``cpu``, ``cuda`` or ``cuda:<i>``. Without CUDA, ``cuda``
            warns and uses the CPU.
        min_length_scale: ``{parameter: size}``: the smallest length scale a GP may fit (the
            smallest feature that matters; a factor > 1 on a log-scaled parameter).
        max_length_scale: ``{parameter: size}``: the largest length scale a GP may fit (the
            size of a narrow feature that must not be smoothed away).
        output_warp: ``power`` (a Yeo-Johnson transform of the objective fitted at every ask,
            :class:`~autotune.models.PowerWarp`) or ``none`` (the GP sees the raw objective);
            the default is the optimiser's.
    """

    min_length_scale: dict[StrictStr, float] | None = Field(default=None, examples=["{x: 0.01}"])
    max_length_scale: dict[StrictStr, float] | None = Field(default=None, examples=["{x: 0.05, y: 0.05}"])
    device: StrictStr = Field(default="auto", examples=["auto"])
    output_warp: Literal["power", "none"] = Field(default="power", examples=["power"])

    @field_validator("device")
    @classmethod
    def _known_device(cls, device: str) -> str:
        from autotune.models import check_device

        return check_device(device, "model.device")


class BudgetConfig(_Section):
    """When the study stops asking for new trials (at least one limit).

    Attributes:
        max_trials: Trials in the whole study, those already recorded included.
        max_time_s: Seconds of this :meth:`Study.optimize` call (executor clock: simulated
            time for the simulated executor); running trials are then let finish.
    """

    max_trials: StrictInt | None = Field(default=None, ge=1, le=MAX_TRIALS, examples=["50"])
    max_time_s: Number | None = Field(default=None, gt=0, allow_inf_nan=False, examples=["3600"])

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if self.max_trials is None and self.max_time_s is None:
            raise ConfigError("budget", "must set max_trials, max_time_s or both", None,
                              "write budget: {max_trials: 50}.")
        return self


class EarlyStoppingConfig(_Section):
    """Stop trials early from their reported learning curves (see :mod:`autotune.stopping`).

    Attributes:
        rule: ``none`` (default), ``median``, ``asha`` or ``hyperband``.
        metric: The reported metric the rule judges; default the objective.
        direction: Of ``metric``; default the objective's direction.
        min_step: No trial is stopped before this step (the first rung of ASHA/Hyperband).
        max_step: The last step of a full trial (e.g. the epochs); needed by ``asha`` and
            ``hyperband``.
        eta: The reduction factor of ASHA/Hyperband: the best ``1/eta`` continue at each rung.
        min_trials: Completed trials the median rule needs before it stops anything.
        brackets: Hyperband's brackets (default: one per rung).
        grace_s: Seconds a trial asked to stop (it learns it at its next ``report``) gets before
            it is killed.
    """

    rule: Literal["none", "median", "asha", "hyperband"] = Field(default="none", examples=["asha"])
    metric: StrictStr | None = Field(default=None, min_length=1, max_length=250, examples=["val_loss"])
    direction: Literal["minimize", "maximize"] | None = Field(default=None, examples=["minimize"])
    min_step: StrictInt = Field(default=1, ge=0, le=10_000_000, examples=["1"])
    max_step: StrictInt | None = Field(default=None, ge=1, le=10_000_000, examples=["27"])
    eta: StrictInt = Field(default=3, ge=2, le=100, examples=["3"])
    min_trials: StrictInt = Field(default=3, ge=1, le=10_000, examples=["3"])
    brackets: StrictInt | None = Field(default=None, ge=1, le=100, examples=["3"])
    grace_s: Number = Field(default=10.0, ge=0, le=86_400, allow_inf_nan=False, examples=["10"])

    @model_validator(mode="after")
    def _steps(self) -> Self:
        if self.rule in ("asha", "hyperband"):
            if self.max_step is None:
                raise ConfigError("early_stopping.max_step", f"is needed by rule {self.rule}", None,
                                  "set it to the last step a full trial reports, e.g. max_step: 27 for 27 epochs.")
            if self.max_step <= max(self.min_step, 1):
                raise ConfigError("early_stopping.max_step", f"must be above min_step ({self.min_step})",
                                  self.max_step, "use the last step a full trial reports, e.g. the epochs.")
        return self

    def build(self) -> StoppingRule:
        """The configured rule."""
        from autotune.stopping import make_rule

        if self.rule == "median":
            return make_rule("median", min_step=self.min_step, min_trials=self.min_trials)
        if self.rule == "asha":
            return make_rule("asha", min_step=self.min_step, max_step=self.max_step, eta=self.eta)
        if self.rule == "hyperband":
            return make_rule("hyperband", min_step=self.min_step, max_step=self.max_step, eta=self.eta,
                             brackets=self.brackets)
        return make_rule("none")


class ParallelismConfig(_Section):
    """How many trials run at once and what each one gets.

    Attributes:
        workers: Trials running at the same time.
        gpus_per_trial: GPUs pinned to each trial (0: CPU only; a machine without GPUs runs
            GPU trials on the CPU).
        trials_per_gpu: Trials sharing one GPU (only with ``gpus_per_trial: 1``).
        cpus_per_trial: CPU threads per trial (``OMP_NUM_THREADS`` in the trial's process).
        driver_gpu: A GPU index (``cuda:<i>`` as the driver sees it) kept from trials for the
            driver's GPs (``model.device: auto`` then uses it); ``None``: trials may use every GPU.
        prefetch: Suggestions the driver prepares ahead while it waits, so a freed worker gets
            its next trial without waiting for the GP (each is a pending point to later
            proposals, and is chosen without the results that arrive meanwhile). Default:
            ``workers // 4`` from 8 workers on, none below (resolved when the file is read).
        ask_process: Compute suggestions ahead in a second process (a mirror of the optimiser,
            :class:`~autotune.study._ahead.AskAhead`) while the driver records, tells and
            launches, so one core's ask time does not bound the trial rate. Default: on from
            :data:`ASK_PROCESS_FROM` workers for an asynchronous model-based strategy that does
            not learn from curves (resolved when the file is read); ``false``: never.
    """

    workers: StrictInt = Field(default=1, ge=1, le=MAX_WORKERS, examples=["4"])
    prefetch: StrictInt | None = Field(default=None, ge=0, le=MAX_WORKERS, examples=["16"])
    ask_process: StrictBool | None = Field(default=None, examples=["true"])
    gpus_per_trial: StrictInt = Field(default=0, ge=0, le=64, examples=["1"])
    trials_per_gpu: StrictInt = Field(default=1, ge=1, le=64, examples=["2"])
    cpus_per_trial: StrictInt = Field(default=1, ge=1, le=4096, examples=["2"])
    driver_gpu: StrictInt | None = Field(default=None, ge=0, le=63, examples=["0"])

    @model_validator(mode="after")
    def _sharing_needs_one_gpu(self) -> Self:
        if self.trials_per_gpu > 1 and self.gpus_per_trial != 1:
            raise ConfigError(
                "parallelism.trials_per_gpu",
                "needs gpus_per_trial: 1 (only single-GPU trials share a device)",
                self.trials_per_gpu,
                "set gpus_per_trial: 1, or trials_per_gpu: 1.",
            )
        return self

    @model_validator(mode="after")
    def _default_prefetch(self) -> Self:
        if self.prefetch is None:
            self.prefetch = self.workers // 4 if self.workers >= 8 else 0
        return self


class ExecutorConfig(_Section):
    """Where trials run.

    Attributes:
        name: ``local`` (one process per trial), ``inprocess`` (debugging), ``simulated``
            (virtual time), or an installed plugin.
        options: Keyword arguments of the executor, e.g. ``kill_grace_s`` for ``local``, or
            ``duration_fn``/``objective_fn`` (callables, or ``"pkg.mod:fn"`` strings) for
            ``simulated``. ``n_workers`` and ``trials_per_gpu`` come from ``parallelism``.
    """

    name: StrictStr = Field(default="local", examples=["local"])
    options: dict[StrictStr, Any] = Field(default_factory=dict, examples=["{kill_grace_s: 5}"])

    @model_validator(mode="after")
    def _check(self) -> Self:
        from autotune.executors import available_executors

        if _executor_factory(self.name) is None:  # built-ins first: reading entry points costs ~0.1 s
            names = available_executors()
            raise ConfigError("executor.name", "unknown executor name", self.name, _one_of(self.name, names))
        for key, owner in _EXECUTOR_OPTIONS_FROM_PARALLELISM.items():
            if key in self.options:
                raise ConfigError(f"executor.options.{key}", f"is set by {owner}", self.options[key],
                                  f"remove it and set {owner} instead.")
        _check_executor_options(self.name, self.options)
        return self


class TrialConfig(_Section):
    """What one trial runs.

    Attributes:
        entry_point: ``"module:function"``, imported from the study file's folder first (so
            ``train:train`` is ``train.py`` beside the study file), or a script path (relative
            to the study file's folder). The function is called as
            ``fn(params, report, **fixed_args)``.
        fixed_args: Keyword arguments passed to every trial (JSON values).
        timeout_s: Wall-clock limit of a trial; ``None`` for none.
    """

    entry_point: StrictStr = Field(min_length=1, max_length=4096, examples=["train:train"])
    fixed_args: dict[StrictStr, Any] = Field(default_factory=dict, examples=["{epochs: 10}"])
    timeout_s: Number | None = Field(default=None, gt=0, allow_inf_nan=False, examples=["600"])

    @field_validator("fixed_args")
    @classmethod
    def _plain_values(cls, fixed_args: dict[str, Any]) -> dict[str, Any]:
        _check_json_values("trial.fixed_args", fixed_args)
        return fixed_args


class StudyConfig(_Section):
    """A whole study, validated and resolved (built by :func:`load_study_config` or in Python).

    In Python, ``StudyConfig(**keys)`` takes the same keys as the file (nested dicts or section
    objects) and raises pydantic's ``ValidationError``; :meth:`from_dict` raises
    :class:`~autotune.exceptions.StudyConfigError` with the one-line message of a study file.
    Relative paths start at the study file's folder, or at the current directory without one.

    Attributes:
        name: The study; names the MLflow experiment and the default output folder.
        space: A search space: an inline ``{parameters: {...}}`` mapping, a path to a
            ``search_spaces/*.yaml`` file, or a list of both (concatenated in order).
        objective: The metric to optimise and its direction (with ``objectives``: the first one,
            filled in from there).
        objectives: Two or more objectives of a multi-objective study (``[{metric: val_loss,
            direction: minimize}, {metric: latency_ms, direction: minimize}]``), or ``None``.
            The strategy then defaults to ``qlognehvi``.
        reference_point: With ``objectives``, the worst value of interest of each objective by
            metric (the hypervolume's corner); inferred from the trials when absent.
        constraints: Outcome constraints on final metrics, e.g. ``"n_params <= 2e6"``.
        cost_metric: The metric holding each trial's cost (for cost-aware strategies).
        known_cost: ``"module:function"`` of a known cost (imported from the study file's folder
            first, like ``trial.entry_point``), called as ``fn(points, state)``
            (:class:`autotune.strategies.KnownCost`), for ``strategy.options.cost: known``.
        strategy: How new trials are proposed.
        n_initial: Initial-design trials before the model takes over (``None``: the
            optimiser's rule, ``clip(d + 1, 5, 10)``, or ``2(d + 1)`` with several objectives).
        initial_design: ``sobol``, ``random``, ``lhs`` or ``grid``.
        model: The driver's GPs: ``device`` and length-scale bounds in the parameters' units
            (:class:`ModelConfig`).
        budget: When to stop asking.
        parallelism: Workers and per-trial resources.
        early_stopping: Which rule stops trials early from their learning curves (none by default).
        executor: Where trials run.
        trial: What a trial runs.
        seed: Seed of every random choice of the optimiser.
        output_dir: The study's folder (trial workdirs, the default store); default
            ``runs/<name>`` beside the study file. Resolved to an absolute path.
        tracking_uri: The MLflow store; default: ``sqlite`` file ``mlflow.db`` in ``output_dir``.
        on_orphans: What resume does with trials a killed driver left running: ``fail``
            (recorded as failed, learned from) or ``requeue`` (run again with the same params).
    """

    name: StrictStr = Field(max_length=200, examples=["my_study"])
    space: Any = Field(examples=["mlp"])
    objective: ObjectiveConfig = Field(examples=["{metric: val_loss, direction: minimize}"])
    objectives: list[ObjectiveConfig] | None = Field(default=None, max_length=20, examples=[
        "[{metric: val_loss, direction: minimize}, {metric: latency_ms, direction: minimize}]"])
    reference_point: dict[StrictStr, float] | None = Field(default=None, examples=["{val_loss: 1.0, latency_ms: 50}"])
    constraints: list[StrictStr] = Field(default_factory=list, max_length=100, examples=['["n_params <= 2e6"]'])
    cost_metric: StrictStr | None = Field(default=None, min_length=1, max_length=250, examples=["train_seconds"])
    known_cost: StrictStr | None = Field(default=None, min_length=3, max_length=500, examples=["instrument:motor_s"])
    strategy: StrategyConfig = Field(default_factory=StrategyConfig, examples=["{name: ei}"])
    n_initial: StrictInt | None = Field(default=None, ge=0, le=MAX_WORKERS, examples=["8"])
    initial_design: Literal["sobol", "random", "lhs", "grid"] = Field(default="sobol", examples=["sobol"])
    model: ModelConfig = Field(default_factory=ModelConfig, examples=["{max_length_scale: {x: 0.05}}"])
    budget: BudgetConfig = Field(examples=["{max_trials: 50}"])
    parallelism: ParallelismConfig = Field(default_factory=ParallelismConfig, examples=["{workers: 2}"])
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig, examples=["{rule: asha, max_step: 27}"])
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, examples=["{name: local}"])
    trial: TrialConfig = Field(examples=["{entry_point: 'train:train'}"])
    seed: StrictInt = Field(default=0, ge=0, le=2**32 - 1, examples=["0"])
    output_dir: Path | None = Field(default=None, examples=["runs/my_study"])
    tracking_uri: StrictStr | None = Field(default=None, min_length=1, examples=["sqlite:///runs/my_study/mlflow.db"])
    on_orphans: Literal["fail", "requeue"] = Field(default="fail", examples=["fail"])

    _study_file: Path | None = PrivateAttr(None)
    _base_dir: Path | None = PrivateAttr(None)
    _space: SearchSpace | None = PrivateAttr(None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], study_file: str | Path | None = None) -> StudyConfig:
        """Validate a study's dict form (e.g. parsed YAML).

        Args:
            data: The study keys.
            study_file: The file it came from: relative paths start at its folder, and errors
                name it as given.

        Returns:
            The resolved config.

        Raises:
            StudyConfigError: The data is invalid.
        """
        source = None if study_file is None else str(study_file)
        context = {"study_file": None if study_file is None else Path(study_file).resolve()}
        if not isinstance(data, Mapping):
            raise StudyConfigError(source or "study", "must be a mapping of study keys", type(data).__name__,
                                   "write name: ..., space: ..., objective: ..., budget: ..., trial: ...")
        try:
            return cls.model_validate(dict(data), context=context)
        except ValidationError as exc:
            raise _study_config_error(exc, source) from None
        except (RecursionError, MemoryError) as exc:  # a pathological value deep in an option
            raise StudyConfigError(source or "study", "holds a value too deeply nested or too large to check",
                                   type(exc).__name__, "simplify the file.") from None

    # -- validation ---------------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _objective_from_objectives(cls, data: Any) -> Any:
        """With ``objectives``, ``objective`` is the first one (given or filled in)."""
        if isinstance(data, Mapping) and "objectives" in data and data.get("objectives") is not None:
            objs = data["objectives"]
            if not isinstance(objs, list) or len(objs) < 2:
                raise ConfigError("objectives", "must list two or more objectives", shown(objs),
                                  "write e.g. objectives: [{metric: val_loss, direction: minimize}, "
                                  "{metric: latency_ms, direction: minimize}], or use objective: for one.")
            from autotune.objectives import parse_objectives

            plain = [o.model_dump() if isinstance(o, BaseModel) else o for o in objs]
            parse_objectives(plain)  # each entry's metric and direction, named by index, with the fix
            first = plain[0]
            given = data.get("objective")
            given = given.model_dump() if isinstance(given, BaseModel) else given
            if given is None:
                data = {**data, "objective": first}
            elif isinstance(first, Mapping) and isinstance(given, Mapping) and (
                    given.get("metric") != first.get("metric")
                    or given.get("direction", "minimize") != first.get("direction", "minimize")):
                raise ConfigError("objective", "conflicts with objectives (give one of them)", shown(given),
                                  "drop objective: and list every objective under objectives:.")
        elif isinstance(data, Mapping) and data.get("reference_point") is not None:
            raise ConfigError("reference_point", "needs objectives: (two or more)", shown(data["reference_point"]),
                              "drop it, or list the objectives under objectives:.")
        return data

    @model_validator(mode="after")
    def _check_objectives(self) -> Self:
        if self.objectives is None:
            return self
        from autotune.objectives import parse_objectives, parse_reference_point

        objs = parse_objectives([(o.metric, o.direction) for o in self.objectives])
        if self.reference_point is not None:
            parse_reference_point(self.reference_point, objs)
        if "strategy" not in self.model_fields_set:
            self.strategy = StrategyConfig(name="qlognehvi")
        _check_strategy_objectives(self.strategy.name, len(objs))
        if self.early_stopping.rule == "median" and self.early_stopping.metric is None:
            raise ConfigError("early_stopping.rule", "median judges one metric; this study has "
                              f"{len(objs)} objectives", "median",
                              "use rule: asha or hyperband (they rank trials by Pareto front), or name one "
                              "early_stopping.metric to judge.")
        return self

    @model_validator(mode="after")
    def _check_single_objective_strategy(self) -> Self:
        if self.objectives is None:
            _check_strategy_objectives(self.strategy.name, 1)
        return self

    @model_validator(mode="after")
    def _resolve_ask_process(self) -> Self:
        if self.parallelism.ask_process is False:
            return self
        from autotune.strategies import get_strategy

        strategy = type(get_strategy(self.strategy.name))
        why = ("proposes without a model" if not strategy.model_based else "asks for whole batches at once"
               if strategy.synchronous else "learns from the trials' curves, which only the driver sees"
               if strategy.uses_curves else "")
        if self.parallelism.ask_process is None:
            self.parallelism.ask_process = not why and self.parallelism.workers >= ASK_PROCESS_FROM
        elif why:
            raise ConfigError("parallelism.ask_process", f"cannot be used with strategy {self.strategy.name!r}: it {why}",
                              True, "remove ask_process (the driver asks itself), or choose e.g. strategy: ei.")
        return self

    @model_validator(mode="after")
    def _check_driver_gpu(self) -> Self:
        gpu, device = self.parallelism.driver_gpu, self.model.device
        if gpu is not None and device not in ("auto", "cuda", f"cuda:{gpu}"):
            raise ConfigError("model.device", f"must be auto, cuda or cuda:{gpu} with parallelism.driver_gpu: {gpu}",
                              device, f"set model.device: auto (it then uses cuda:{gpu}), or remove driver_gpu.")
        return self

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not _NAME.match(name):
            raise ConfigError("name", "must start with a letter or digit and hold only letters, digits, '_', '-' "
                              "and '.' (it names a folder and an MLflow experiment)", name, "use e.g. name: mlp_small.")
        return name

    @field_validator("constraints")
    @classmethod
    def _check_constraints(cls, constraints: list[str]) -> list[str]:
        from autotune.strategies import OutcomeConstraint

        for i, text in enumerate(constraints):
            where = f"constraints[{i}]"
            constraint = OutcomeConstraint.parse(text, where=where)
            if not constraint.metric:
                raise ConfigError(where, "must name a metric before the operator", text, "write e.g. 'n_params <= 2e6'.")
            if not math.isfinite(constraint.bound):
                raise ConfigError(where, "must have a finite bound", text,
                                  "write a number such as 2e6 (nan or inf makes every trial fail or pass it).")
        return constraints

    @field_validator("output_dir", mode="before")
    @classmethod
    def _check_output_dir(cls, output_dir: Any) -> Any:
        from autotune.space import path_problem

        if isinstance(output_dir, (str, Path)):
            problem = path_problem(str(output_dir))
            if problem:
                raise ConfigError("output_dir", problem, str(output_dir), "write e.g. output_dir: runs/my_study.")
        return output_dir

    @field_validator("tracking_uri")
    @classmethod
    def _check_tracking_uri(cls, uri: str | None) -> str | None:
        return None if uri is None else _checked_tracking_uri(uri)

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> Self:
        """Apply every path default and build the search space, once."""
        study_file = (info.context or {}).get("study_file") if info is not None else None
        self._study_file = study_file
        base_dir = self._base_dir = study_file.parent if study_file is not None else Path.cwd()
        self._space = _build_space(self.space, base_dir)
        if not self._space.tunable:
            raise ConfigError("space", "has no parameter to tune (only fixed values or single choices)",
                              ", ".join(self._space.parameters),
                              "add a float, int, ordinal, bool or categorical parameter with at least two values, "
                              "or pass constants through trial.fixed_args.")
        self.space = _resolved_space_source(self.space, base_dir)
        self.output_dir = (base_dir / (self.output_dir or Path("runs") / self.name)).expanduser().resolve()
        if self.tracking_uri is None:
            from autotune.tracking import default_tracking_uri

            self.tracking_uri = default_tracking_uri(self.output_dir)
        elif self.tracking_uri.startswith("sqlite:///") and not self.tracking_uri.startswith("sqlite:////"):
            relative = self.tracking_uri.removeprefix("sqlite:///")  # a relative file, as SQLAlchemy reads it
            if relative and not relative.startswith(":memory:"):
                self.tracking_uri = "sqlite:///" + (base_dir / relative).resolve().as_posix()
        if self.model.min_length_scale or self.model.max_length_scale:
            from autotune.models import length_scale_bounds  # torch: only for a study that sets them

            length_scale_bounds(self._space, self.model.min_length_scale, self.model.max_length_scale, "model")
        if self.known_cost is not None and not _MODULE_ENTRY_POINT.match(self.known_cost):
            raise ConfigError("known_cost", "must be 'module:function'", self.known_cost,
                              "write e.g. known_cost: 'instrument:motor_s' (instrument.py beside the study file).")
        # Copies, so that section objects passed in by the caller are never changed.
        entry_point = _resolved_entry_point(self.trial.entry_point, base_dir)
        self.trial = self.trial.model_copy(update={"entry_point": entry_point})
        if self.executor.name == "inprocess" and self.parallelism.workers > 1:
            options = {"threaded": True, **self.executor.options}  # one thread per worker
            self.executor = self.executor.model_copy(update={"options": options})
        return self

    # -- views --------------------------------------------------------------------------------

    @property
    def study_file(self) -> Path | None:
        """The study file (absolute), or ``None`` for a config built in Python."""
        return self._study_file

    @property
    def base_dir(self) -> Path:
        """The folder relative paths were resolved against (the study file's, or the cwd then)."""
        return self._resolved("_base_dir")

    @property
    def search_space(self) -> SearchSpace:
        """The validated search space."""
        return self._resolved("_space")

    @property
    def resolved_output_dir(self) -> Path:
        """``output_dir``, typed as always set (it is, on a validated config)."""
        return self._resolved("output_dir")

    @property
    def resolved_tracking_uri(self) -> str:
        """``tracking_uri``, typed as always set (it is, on a validated config)."""
        return self._resolved("tracking_uri")

    def _resolved(self, name: str) -> Any:
        value = getattr(self, name)
        if value is None:
            raise TypeError(f"StudyConfig.{name.lstrip('_')} is unset: this config skipped validation "
                            "(model_construct?). Build it with StudyConfig(...) or load_study_config().")
        return value

    def check_entry_point(self) -> None:
        """Import the entry point and check it can be called as ``fn(params, report, **fixed_args)``.

        Not part of loading (that would import the training code for every command); ``autotune
        validate`` and ``run`` call it, so ``entry_point: nosuch:train`` fails before any trial.

        Raises:
            StudyConfigError: Naming the study file, ``trial.entry_point``, the value and the fix.
        """
        _check_entry_point(self)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (the space expanded inline), for records and printing.

        ``StudyConfig.from_dict(config.to_dict())`` gives back an equal config.
        """
        data = self.model_dump(mode="python")
        data["space"] = self.search_space.to_dict()
        plain: dict[str, Any] = json.loads(json.dumps(data, default=_plain))
        return plain


def _check_strategy_objectives(name: str, n_objectives: int) -> None:
    """The strategy must handle the study's number of objectives (model-free ones handle any)."""
    from autotune.strategies import strategy_class

    cls = strategy_class(name)
    multi = bool(getattr(cls, "multi_objective", False))
    if n_objectives >= 2 and cls.model_based and not multi:
        raise ConfigError("strategy.name", f"optimises one objective; this study has {n_objectives}", name,
                          "use qlognehvi (the default with objectives:), qnparego, mo_thompson, random or sobol.")
    if n_objectives < 2 and multi:
        raise ConfigError("strategy.name", "needs two or more objectives", name,
                          "list them under objectives:, or use a single-objective strategy such as ei.")


def load_study_config(path: str | Path, overrides: Mapping[str, Any] | None = None) -> StudyConfig:
    """Read and validate a study file.

    Args:
        path: The YAML file; errors name it as given.
        overrides: Keys merged over the file's (nested mappings merged key by key), e.g.
            ``{"budget": {"max_trials": 3}}`` from a command-line flag.

    Returns:
        The resolved config.

    Raises:
        StudyConfigError: The file is missing, not YAML, or invalid.
    """
    from autotune.space import read_yaml

    file = Path(path)
    data = read_yaml(file, StudyConfigError, what="study file")
    if isinstance(data, Mapping) and overrides:
        data = _merge(dict(data), overrides)
    return StudyConfig.from_dict(data if data is not None else {}, study_file=file)


# -- space, entry point and path helpers ------------------------------------------------------


def _space_items(space: Any) -> list[Any]:
    items = space if isinstance(space, list) else [space]
    if not items:
        raise ConfigError("space", "must name at least one search space", space,
                          "write space: mlp (a shipped space), a path to a space file, or space: {parameters: {...}}.")
    from autotune.space import path_problem

    for i, item in enumerate(items):
        where = "space" if not isinstance(space, list) else f"space[{i}]"
        if not isinstance(item, (str, Path, Mapping)):
            raise ConfigError(where, "must be a path to a space file or a {parameters: ...} mapping",
                              shown(item), "write space: mlp (a shipped space), a path to a space file, or space: {parameters: {lr: {...}}}.")
        problem = None if isinstance(item, Mapping) else path_problem(str(item))
        if problem:
            raise ConfigError(where, problem, str(item), "write space: mlp (a shipped space) or a path to a space file.")
    return items


def _build_space(space: Any, base_dir: Path) -> SearchSpace:
    """The search space of ``space`` (paths relative to ``base_dir``), concatenated in order."""
    from autotune.exceptions import SearchSpaceError
    from autotune.space import load_space, shipped_space_names, space_from_spec

    items = _space_items(space)
    parts = []
    for i, item in enumerate(items):
        where = "space" if not isinstance(space, list) else f"space[{i}]"
        if isinstance(item, Mapping):
            try:
                parts.append(space_from_spec(item, "", base_dir))
            except SearchSpaceError as exc:  # "space.parameters.lr.low", or "space[1].include"
                sep = ": " if Path(exc.where.split(":", 1)[0]).is_absolute() else "."
                raise SearchSpaceError(f"{where}{sep}{exc.where}", exc.rule, exc.value, exc.fix) from None
            continue
        file = _space_file(item, base_dir)
        if file is None:
            raise SearchSpaceError(where, "names a space file that does not exist", str(item),
                                   f"give a path relative to the study file's folder ({base_dir}), or the "
                                   f"name of a shipped space ({', '.join(shipped_space_names())}).")
        try:
            parts.append(load_space(file, fragment=True))  # the whole space is checked for a choice below
        except SearchSpaceError as exc:
            raise SearchSpaceError(f"{where}: {exc.where}", exc.rule, exc.value, exc.fix) from None
    total = parts[0]
    for part in parts[1:]:
        try:
            total = total + part
        except SearchSpaceError as exc:
            raise SearchSpaceError(f"space: {exc.where}", exc.rule, exc.value,
                                   "each parameter must come from one space.") from None
    return total


def _resolved_space_source(space: Any, base_dir: Path) -> Any:
    """``space`` with every file path made absolute."""
    def resolve(item: Any) -> Any:
        if not isinstance(item, (str, Path)):
            return item
        file = _space_file(item, base_dir)
        return str(file if file is not None else (base_dir / item).resolve())

    return [resolve(item) for item in space] if isinstance(space, list) else resolve(space)


def _space_file(item: str | Path, base_dir: Path) -> Path | None:
    """The space file ``item`` names: a path relative to ``base_dir`` first, else a shipped space's name."""
    from autotune.space import shipped_space_path

    file = (base_dir / item).resolve()
    if file.is_file():
        return file
    return shipped_space_path(str(item)) if isinstance(item, str) else None


def _resolved_entry_point(entry_point: str, base_dir: Path) -> str:
    """A script entry point made absolute (it must exist); a module one checked for its form."""
    from autotune.executors import is_script
    from autotune.space import path_problem

    problem = path_problem(entry_point)
    if problem:
        raise ConfigError("trial.entry_point", problem, entry_point, "write e.g. entry_point: 'train:train'.")
    if is_script(entry_point):
        script = (base_dir / entry_point).resolve()
        if not script.is_file():
            raise ConfigError("trial.entry_point", "names a script that does not exist", entry_point,
                              f"give a path relative to the study file's folder ({base_dir}), or 'module:function'.")
        return str(script)
    if not _MODULE_ENTRY_POINT.match(entry_point):
        raise ConfigError("trial.entry_point", "must be 'module:function' or a path to a .py script", entry_point,
                          "write e.g. entry_point: 'train:train' (train.py beside the study file) or "
                          "'scripts/train.py'.")
    return entry_point


def _checked_tracking_uri(uri: str) -> str:
    """A tracking URI that keeps the record: a known scheme, a file or a server, never memory."""
    where = "tracking_uri"
    if not uri.strip() or uri != uri.strip() or any(ord(ch) < 32 for ch in uri):
        raise ConfigError(where, "must be a URI without spaces around it or control characters", uri,
                          "write e.g. tracking_uri: sqlite:///runs/mlflow.db or http://host:5000.")
    if ":memory:" in uri.lower():
        raise ConfigError(where, "is an in-memory store: the record would be lost when the driver exits", uri,
                          "name a file, e.g. tracking_uri: sqlite:///runs/mlflow.db.")
    scheme, sep, rest = uri.partition("://")
    if not sep:
        if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", uri) and not re.match(r"^[A-Za-z]:[\\/]", uri):
            raise ConfigError(where, "must be scheme://... or a folder path", uri,
                              f"use one of the schemes {', '.join(_URI_SCHEMES)}, e.g. sqlite:///runs/mlflow.db.")
        return uri  # a local folder: MLflow's file store
    base = scheme.split("+", 1)[0].lower()
    if base not in _URI_SCHEMES:
        raise ConfigError(where, "has a scheme MLflow cannot store to", scheme,
                          f"use one of: {', '.join(_URI_SCHEMES)} (e.g. sqlite:///runs/mlflow.db).")
    lowered = uri.lower()
    if base == "sqlite":
        path = rest.removeprefix("/")
        if rest and not rest.startswith("/"):
            raise ConfigError(where, "names a host; a SQLite URI reads sqlite:///relative/path.db or "
                              "sqlite:////absolute/path.db", uri, "write tracking_uri: sqlite:///runs/mlflow.db.")
        if not path.split("?", 1)[0] or ":memory:" in lowered or "mode=memory" in lowered:
            raise ConfigError(where, "is an in-memory SQLite store: the record would be lost when the driver exits",
                              uri, "name a file, e.g. tracking_uri: sqlite:///runs/mlflow.db.")
    elif base in ("http", "https") and not rest.split("/", 1)[0]:
        raise ConfigError(where, "names no host", uri, "write e.g. tracking_uri: http://127.0.0.1:5000.")
    return uri


def _parameters(factory: Callable[..., Any], skip: tuple[str, ...]) -> dict[str, Any]:
    """The keyword parameters of a class or function (``{}`` when it takes ``**kwargs``: anything goes)."""
    import inspect

    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return {}
    out: dict[str, Any] = {}
    for name, param in signature.parameters.items():
        if param.kind is param.VAR_KEYWORD:
            return {}
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) and name not in skip and name != "self":
            out[name] = param
    return out


def _executor_factory(name: str) -> Callable[..., Any] | None:
    """The class (or factory) registered as executor ``name``, without building it or importing
    its backend (a plugin's module is loaded; Ray and submitit are imported only on first use)."""
    from autotune.executors import executor_factory

    try:
        return executor_factory(name)
    except Exception:  # noqa: BLE001 - a plugin whose module fails to import is reported when it is built
        return _broken_plugin


def _broken_plugin(*args: Any, **kwargs: Any) -> Any:
    """Stands for a plugin whose module fails to import: its options are checked when it is built."""


def _annotation_accepts(annotation: Any, value: Any) -> bool:
    """Whether ``value`` fits a (string) annotation such as ``float | None`` or ``Sequence[str]``."""
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if not text or text == "_empty" or "Any" == text:
        return True
    kinds = [part.strip() for part in re.split(r"\|(?![^\[]*\])", text)]
    def fits(kind: str) -> bool:
        head = kind.split("[", 1)[0].rsplit(".", 1)[-1]
        if value is None:
            return head in ("None", "Optional", "Any")
        if isinstance(value, bool):
            return head in ("bool", "Any")
        if isinstance(value, int):
            return head in ("int", "float", "Any")
        if isinstance(value, float):
            return head in ("float", "Any")
        if isinstance(value, str):
            return head in ("str", "PathLike", "Path", "Callable", "Any") or "PathLike" in kind
        if isinstance(value, list):
            return head in ("Sequence", "list", "tuple", "Iterable", "Any")
        if isinstance(value, dict):
            return head in ("Mapping", "dict", "Any")
        return head == "Any"
    return any(fits(kind) for kind in kinds) or not any(
        kind.split("[", 1)[0].rsplit(".", 1)[-1] in
        ("None", "bool", "int", "float", "str", "PathLike", "Path", "Callable", "Sequence", "list", "tuple",
         "Mapping", "dict", "Iterable", "Optional") for kind in kinds)


_NON_NEGATIVE = re.compile(r"(_s|_gb|_mb|_min|_bytes)$|^(num|max)_")


def _check_executor_options(name: str, options: Mapping[str, Any]) -> None:
    """Option names against the executor's constructor, values against its annotations."""
    _check_json_values("executor.options", options, callables=True)
    factory = _executor_factory(name)
    if factory is None:
        return
    params = _parameters(factory, skip=("n_workers",))
    if not params:
        return
    for key, value in options.items():
        where = f"executor.options.{key}"
        if key not in params:
            raise ConfigError(where, f"is not an option of executor {name!r}", shown(value), _one_of(key, sorted(params)))
        param = params[key]
        if value is None and param.default is None:
            continue
        if not _annotation_accepts(param.annotation, value):
            raise ConfigError(where, f"must be of type {param.annotation}", shown(value),
                              f"see the {name} executor's documentation for {key}.")
        if _NON_NEGATIVE.search(key) and isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
            raise ConfigError(where, "must be >= 0", value, f"use a non-negative {key}.")


def _check_json_values(where: str, options: Mapping[str, Any], callables: bool = False) -> None:
    """Every value a plain JSON value (finite numbers): they reach trials and records as JSON."""
    from autotune.space import json_problem

    for key, value in options.items():
        if callables and callable(value):
            continue
        problem = json_problem(value)
        if problem:
            raise ConfigError(f"{where}.{key}", problem, value, "give a string, a finite number, true/false, "
                              "null, or a list or mapping of them.")


def import_from_study(spec: str, base_dir: Path, where: str) -> Any:
    """Import ``module:attr`` with the study file's folder first on ``sys.path`` (as trials do).

    Args:
        spec: ``module:function`` (``attr`` may be dotted).
        base_dir: The study file's folder.
        where: The key for errors, e.g. ``"study.yaml: trial.entry_point"``.

    Raises:
        StudyConfigError: Naming ``where``, the value and the fix when the module is missing,
            lacks the attribute, or fails while importing.
    """
    import importlib
    import sys

    module_name, _, attr = spec.partition(":")
    folder = str(base_dir)
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        target: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
    except ModuleNotFoundError as exc:
        raise StudyConfigError(where, f"cannot be imported: no module named {exc.name!r}", spec,
                               f"put {module_name.replace('.', '/')}.py beside the study file ({folder}) or "
                               "install its package.") from None
    except AttributeError:
        raise StudyConfigError(where, f"names a function that module {module_name!r} does not define", spec,
                               f"check the name after ':' (module {module_name!r} defines: "
                               f"{', '.join(n for n in dir(sys.modules.get(module_name)) if not n.startswith('_'))[:300]}).") from None
    except Exception as exc:  # noqa: BLE001 - the user's module failed while importing
        raise StudyConfigError(where, f"fails to import ({type(exc).__name__}: {exc})"[:500], spec,
                               f"run python -c 'import {module_name}' from {folder} to see the error.") from None
    finally:
        if added and folder in sys.path:
            sys.path.remove(folder)
    return target


def _check_entry_point(config: StudyConfig) -> None:
    """Import the study's entry point and check that it can be called as a trial.

    A ``module:function`` entry point must import (from the study file's folder first) and name
    a callable accepting ``(params, report, **fixed_args)``; a script must exist (it runs as
    ``__main__``, so it is not imported). See :meth:`StudyConfig.check_entry_point`.

    Args:
        config: A validated study.

    Raises:
        StudyConfigError: Naming the study file, ``trial.entry_point``, the value and the fix.
    """
    import inspect

    from autotune.executors import is_script

    source = f"{config.study_file}: " if config.study_file is not None else ""
    entry_point = config.trial.entry_point
    where = source + "trial.entry_point"
    if is_script(entry_point):
        if not Path(entry_point).is_file():
            raise StudyConfigError(where, "names a script that does not exist", entry_point,
                                   "give a path relative to the study file's folder.")
        return
    target = import_from_study(entry_point, config.base_dir, where)
    if not callable(target):
        raise StudyConfigError(where, "must name a callable", entry_point, "point it at a function, e.g. train:train.")
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return  # a builtin or C callable: nothing to check
    try:
        signature.bind({}, lambda **_: None, **config.trial.fixed_args)
    except TypeError as exc:
        raise StudyConfigError(where, f"cannot be called as fn(params, report, **fixed_args): {exc}", entry_point,
                               f"define it as def {entry_point.rpartition(':')[2].rsplit('.', 1)[-1]}(params, report"
                               + "".join(f", {k}" for k in config.trial.fixed_args) + "): ...") from None


def _one_of(name: str, valid: list[str]) -> str:
    """The fix of an unknown name: the closest valid one, then all of them."""
    return one_of(name, valid)


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), Mapping):
            base[key] = _merge(dict(base[key]), value)
        else:
            base[key] = value
    return base


def _plain(value: Any) -> Any:
    """JSON fallback: paths as strings, callables as ``module:qualname``."""
    if isinstance(value, Path):
        return str(value)
    if callable(value):
        return f"{getattr(value, '__module__', '?')}:{getattr(value, '__qualname__', repr(value))}"
    return repr(value)


# -- pydantic errors -> StudyConfigError --------------------------------------------------------


def _study_config_error(exc: ValidationError, source: str | None) -> StudyConfigError:
    """The first validation error as a :class:`StudyConfigError` naming file, key, value and fix."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(str(part) for part in err["loc"])
    prefix = f"{source}: " if source else ""
    original = (err.get("ctx") or {}).get("error")
    if isinstance(original, ConfigError):
        return StudyConfigError(prefix + original.where, original.rule, original.value, original.fix)
    key = ".".join(loc) or "(top level)"
    leaf = loc[-1] if loc else "study"
    example = _example(loc)
    kind = err["type"]
    if kind == "missing":
        fix = f"add {leaf}: {example}." if example else f"add {leaf}."
        return StudyConfigError(prefix + key, "is required", None, fix)
    if kind == "extra_forbidden":
        owner_model = _model_at(loc[:-1])
        valid = sorted(owner_model.model_fields) if owner_model is not None else []
        close = difflib.get_close_matches(leaf, valid, n=1)
        hint = f"did you mean {close[0]!r}? " if close else "remove it; "
        owner = ".".join(loc[:-1]) or "a study file"
        fix = f"{hint}{owner} takes: {', '.join(valid)}."
        return StudyConfigError(prefix + key, "is not a known key", shown(err["input"]), fix)
    ctx = err.get("ctx") or {}
    rules = {
        "greater_than_equal": f"must be >= {ctx.get('ge')}",
        "greater_than": f"must be > {ctx.get('gt')}",
        "literal_error": f"must be {ctx.get('expected')}",
        "int_type": "must be an integer",
        "int_parsing": "must be an integer",
        "int_from_float": "must be a whole number",
        "float_type": "must be a number",
        "float_parsing": "must be a number",
        "string_type": "must be a string",
        "string_too_short": "must not be empty",
        "dict_type": "must be a mapping",
        "model_type": "must be a mapping",
        "model_attributes_type": "must be a mapping",
        "list_type": "must be a list",
        "string_too_long": f"must have at most {ctx.get('max_length')} characters",
        "too_long": f"must have at most {ctx.get('max_length')} items",
        "less_than_equal": f"must be <= {ctx.get('le')}",
        "finite_number": "must be a finite number",
    }
    rule = rules.get(kind, str(err["msg"]).replace("Input should be", "must be", 1))
    return StudyConfigError(prefix + key, rule, shown(err["input"]), f"use e.g. {leaf}: {example}." if example else None)


def _unwrap_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model in ``annotation`` (``X`` or ``X | None``), if any."""
    is_union = isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
    candidates = typing.get_args(annotation) if is_union else (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    """The section model at a key path (``()`` is :class:`StudyConfig`)."""
    model: type[BaseModel] | None = StudyConfig
    for part in loc:
        if model is None or part not in model.model_fields:
            return None
        model = _unwrap_model(model.model_fields[part].annotation)
    return model


def _example(loc: tuple[str, ...]) -> str | None:
    """The documented example value of the key at ``loc``."""
    if not loc:
        return None
    model = _model_at(loc[:-1])
    if model is None or loc[-1] not in model.model_fields:
        return None
    examples = model.model_fields[loc[-1]].examples
    return str(examples[0]) if examples else None
