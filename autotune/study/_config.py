"""The study file: a validated, fully resolved :class:`StudyConfig`.

A study file is YAML under ``studies/``::

    name: quadratic
    space: [../../search_spaces/mlp.yaml, {parameters: {lr: {type: float, low: 1.0e-4, high: 0.1, log: true}}}]
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
import re
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from typing_extensions import Self

from autotune.exceptions import ConfigError, StudyConfigError

if typing.TYPE_CHECKING:
    from autotune.space import SearchSpace

__all__ = [
    "BudgetConfig",
    "ExecutorConfig",
    "ObjectiveConfig",
    "ParallelismConfig",
    "StrategyConfig",
    "StudyConfig",
    "TrialConfig",
    "load_study_config",
]

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

    metric: str = Field(min_length=1, examples=["val_loss"])
    direction: Literal["minimize", "maximize"] = Field(default="minimize", examples=["minimize"])


class StrategyConfig(_Section):
    """The strategy and its options (checked against the strategy's constructor).

    Attributes:
        name: A registered strategy name (see :func:`autotune.strategies.strategy_names`).
        options: Keyword arguments of the strategy.
    """

    name: str = Field(default="ei", examples=["ei"])
    options: dict[str, Any] = Field(default_factory=dict, examples=["{num_restarts: 8}"])

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, data: Any) -> Any:
        """Accept the short form ``strategy: ei``."""
        return {"name": data} if isinstance(data, str) else data

    @model_validator(mode="after")
    def _check_registered(self) -> Self:
        from autotune.strategies import get_strategy, strategy_names

        names = strategy_names()
        if self.name not in names:
            raise ConfigError("strategy.name", "unknown strategy name", self.name, _one_of(self.name, names))
        get_strategy(self.name, where="strategy", **self.options)  # checks the options (names and values)
        return self


class BudgetConfig(_Section):
    """When the study stops asking for new trials (at least one limit).

    Attributes:
        max_trials: Trials in the whole study, those already recorded included.
        max_time_s: Seconds of this :meth:`Study.optimize` call (executor clock: simulated
            time for the simulated executor); running trials are then let finish.
    """

    max_trials: int | None = Field(default=None, ge=1, examples=["50"])
    max_time_s: float | None = Field(default=None, gt=0, examples=["3600"])

    @model_validator(mode="after")
    def _at_least_one(self) -> Self:
        if self.max_trials is None and self.max_time_s is None:
            raise ConfigError("budget", "must set max_trials, max_time_s or both", None,
                              "write budget: {max_trials: 50}.")
        return self


class ParallelismConfig(_Section):
    """How many trials run at once and what each one gets.

    Attributes:
        workers: Trials running at the same time.
        gpus_per_trial: GPUs pinned to each trial (0: CPU only; a machine without GPUs runs
            GPU trials on the CPU).
        trials_per_gpu: Trials sharing one GPU (only with ``gpus_per_trial: 1``).
        cpus_per_trial: CPU threads per trial (``OMP_NUM_THREADS`` in the trial's process).
        prefetch: Suggestions the driver prepares ahead while it waits, so a freed worker gets
            its next trial without waiting for the GP (each is a pending point to later
            proposals, and is chosen without the results that arrive meanwhile). Default:
            ``workers // 4`` from 8 workers on, none below (resolved when the file is read).
    """

    workers: int = Field(default=1, ge=1, examples=["4"])
    prefetch: int | None = Field(default=None, ge=0, examples=["16"])
    gpus_per_trial: int = Field(default=0, ge=0, examples=["1"])
    trials_per_gpu: int = Field(default=1, ge=1, examples=["2"])
    cpus_per_trial: int = Field(default=1, ge=1, examples=["2"])

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

    name: str = Field(default="local", examples=["local"])
    options: dict[str, Any] = Field(default_factory=dict, examples=["{kill_grace_s: 5}"])

    @model_validator(mode="after")
    def _check(self) -> Self:
        from autotune.executors import available_executors

        names = available_executors()
        if self.name not in names:
            raise ConfigError("executor.name", "unknown executor name", self.name, _one_of(self.name, names))
        for key, owner in _EXECUTOR_OPTIONS_FROM_PARALLELISM.items():
            if key in self.options:
                raise ConfigError(f"executor.options.{key}", f"is set by {owner}", self.options[key],
                                  f"remove it and set {owner} instead.")
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

    entry_point: str = Field(min_length=1, examples=["train:train"])
    fixed_args: dict[str, Any] = Field(default_factory=dict, examples=["{epochs: 10}"])
    timeout_s: float | None = Field(default=None, gt=0, examples=["600"])


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
        objective: The metric to optimise and its direction.
        constraints: Outcome constraints on final metrics, e.g. ``"n_params <= 2e6"``.
        cost_metric: The metric holding each trial's cost (for cost-aware strategies).
        strategy: How new trials are proposed.
        n_initial: Initial-design trials before the model takes over (``None``: the
            optimiser's rule, ``clip(d + 1, 5, 10)``).
        initial_design: ``sobol``, ``random``, ``lhs`` or ``grid``.
        budget: When to stop asking.
        parallelism: Workers and per-trial resources.
        executor: Where trials run.
        trial: What a trial runs.
        seed: Seed of every random choice of the optimiser.
        output_dir: The study's folder (trial workdirs, the default store); default
            ``runs/<name>`` beside the study file. Resolved to an absolute path.
        tracking_uri: The MLflow store; default: ``sqlite`` file ``mlflow.db`` in ``output_dir``.
        on_orphans: What resume does with trials a killed driver left running: ``fail``
            (recorded as failed, learned from) or ``requeue`` (run again with the same params).
    """

    name: str = Field(examples=["my_study"])
    space: Any = Field(examples=["../search_spaces/mlp.yaml"])
    objective: ObjectiveConfig = Field(examples=["{metric: val_loss, direction: minimize}"])
    constraints: list[str] = Field(default_factory=list, examples=['["n_params <= 2e6"]'])
    cost_metric: str | None = Field(default=None, examples=["train_seconds"])
    strategy: StrategyConfig = Field(default_factory=StrategyConfig, examples=["{name: ei}"])
    n_initial: int | None = Field(default=None, ge=0, examples=["8"])
    initial_design: Literal["sobol", "random", "lhs", "grid"] = Field(default="sobol", examples=["sobol"])
    budget: BudgetConfig = Field(examples=["{max_trials: 50}"])
    parallelism: ParallelismConfig = Field(default_factory=ParallelismConfig, examples=["{workers: 2}"])
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, examples=["{name: local}"])
    trial: TrialConfig = Field(examples=["{entry_point: 'train:train'}"])
    seed: int = Field(default=0, ge=0, examples=["0"])
    output_dir: Path | None = Field(default=None, examples=["runs/my_study"])
    tracking_uri: str | None = Field(default=None, examples=["sqlite:///runs/my_study/mlflow.db"])
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

    # -- validation ---------------------------------------------------------------------------

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
            OutcomeConstraint.parse(text, where=f"constraints[{i}]")
        return constraints

    @model_validator(mode="after")
    def _resolve(self, info: ValidationInfo) -> Self:
        """Apply every path default and build the search space, once."""
        study_file = (info.context or {}).get("study_file") if info is not None else None
        self._study_file = study_file
        base_dir = self._base_dir = study_file.parent if study_file is not None else Path.cwd()
        self._space = _build_space(self.space, base_dir)
        self.space = _resolved_space_source(self.space, base_dir)
        self.output_dir = (base_dir / (self.output_dir or Path("runs") / self.name)).expanduser().resolve()
        if self.tracking_uri is None:
            from autotune.tracking import default_tracking_uri

            self.tracking_uri = default_tracking_uri(self.output_dir)
        elif self.tracking_uri.startswith("sqlite:///") and not self.tracking_uri.startswith("sqlite:////"):
            relative = self.tracking_uri.removeprefix("sqlite:///")  # a relative file, as SQLAlchemy reads it
            if relative and not relative.startswith(":memory:"):
                self.tracking_uri = "sqlite:///" + (base_dir / relative).resolve().as_posix()
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

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (the space expanded inline), for records and printing.

        ``StudyConfig.from_dict(config.to_dict())`` gives back an equal config.
        """
        data = self.model_dump(mode="python")
        data["space"] = self.search_space.to_dict()
        plain: dict[str, Any] = json.loads(json.dumps(data, default=_plain))
        return plain


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
    import yaml

    source = str(path)
    file = Path(path)
    if not file.is_file():
        raise StudyConfigError(source, "study file not found", None,
                               "check the path (relative paths start at the current directory).")
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark is not None else source
        raise StudyConfigError(where, "is not valid YAML", getattr(exc, "problem", None) or str(exc),
                               "fix the YAML syntax there.") from None
    if isinstance(data, Mapping) and overrides:
        data = _merge(dict(data), overrides)
    return StudyConfig.from_dict(data if data is not None else {}, study_file=file)


# -- space, entry point and path helpers ------------------------------------------------------


def _space_items(space: Any) -> list[Any]:
    items = space if isinstance(space, list) else [space]
    if not items:
        raise ConfigError("space", "must name at least one search space", space,
                          "write space: ../search_spaces/mlp.yaml, or space: {parameters: {...}}.")
    for i, item in enumerate(items):
        if not isinstance(item, (str, Path, Mapping)):
            where = "space" if not isinstance(space, list) else f"space[{i}]"
            raise ConfigError(where, "must be a path to a space file or a {parameters: ...} mapping",
                              item, "write space: ../search_spaces/mlp.yaml, or space: {parameters: {lr: {...}}}.")
    return items


def _build_space(space: Any, base_dir: Path) -> SearchSpace:
    """The search space of ``space`` (paths relative to ``base_dir``), concatenated in order."""
    from autotune.exceptions import SearchSpaceError
    from autotune.space import SearchSpace, load_space

    items = _space_items(space)
    parts = []
    for i, item in enumerate(items):
        where = "space" if not isinstance(space, list) else f"space[{i}]"
        if isinstance(item, Mapping):
            try:
                parts.append(SearchSpace.from_dict(item))
            except SearchSpaceError as exc:
                raise SearchSpaceError(f"{where}.{exc.where}", exc.rule, exc.value, exc.fix) from None
            continue
        file = (base_dir / item).resolve()
        if not file.is_file():
            raise SearchSpaceError(where, "names a space file that does not exist", str(item),
                                   f"give a path relative to the study file's folder ({base_dir}).")
        try:
            parts.append(load_space(file))
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
        return str((base_dir / item).resolve()) if isinstance(item, (str, Path)) else item

    return [resolve(item) for item in space] if isinstance(space, list) else resolve(space)


def _resolved_entry_point(entry_point: str, base_dir: Path) -> str:
    """A script entry point made absolute (it must exist); a module one checked for its form."""
    from autotune.executors._outcome import is_script

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


def _one_of(name: str, valid: list[str]) -> str:
    """The fix of an unknown name: the closest valid one, then all of them."""
    close = difflib.get_close_matches(name, valid, n=1)
    hint = f"did you mean {close[0]!r}? Otherwise use" if close else "use"
    return f"{hint} one of: {', '.join(valid)}."


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
        return StudyConfigError(prefix + key, "is not a known key", err["input"], fix)
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
    }
    rule = rules.get(kind, str(err["msg"]).replace("Input should be", "must be", 1))
    return StudyConfigError(prefix + key, rule, err["input"], f"use e.g. {leaf}: {example}." if example else None)


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
